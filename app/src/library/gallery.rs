//! The outputs gallery and history index: one SQLite table of images (path, prompt, model,
//! seed, size, date, parent, recipe JSON), searchable by prompt text through an FTS5 trigram
//! index (substring matches, case-insensitive, CJK included), with a date index for paging.
//!
//! The PNGs are the truth: every Kiln output embeds its recipe, so the index can be rebuilt from
//! a folder ([`Gallery::rebuild_from_folder`]). A1111 `parameters` and ComfyUI graphs are read
//! too. Each row remembers its parent (the init image it came from), which gives a work's
//! creation record ([`Gallery::chain`]).
//!
//! Every method runs SQL or reads files: call them off the UI thread (the gallery panel's
//! background task owns the [`Gallery`]; it is `Send`, not `Sync`).

mod png_info;
mod thumbnail;

pub use thumbnail::{load_or_make_thumbnail, thumbnail_path};

use crate::library::fsutil::{mtime_unix, now_unix};
use anyhow::Context;
use kiln_inference::Recipe;
use png_info::PngInfo;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Version of the schema below, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    prompt TEXT NOT NULL DEFAULT '',
    negative TEXT,
    model TEXT NOT NULL DEFAULT '',
    model_hash TEXT,
    seed INTEGER NOT NULL DEFAULT 0,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    sampler TEXT NOT NULL DEFAULT '',
    steps INTEGER NOT NULL DEFAULT 0,
    cfg REAL NOT NULL DEFAULT 0,
    created_unix INTEGER NOT NULL DEFAULT 0,
    parent TEXT,
    recipe_json TEXT
);
CREATE INDEX IF NOT EXISTS images_by_date ON images(created_unix DESC, id DESC);
CREATE INDEX IF NOT EXISTS images_by_model ON images(model, created_unix DESC, id DESC);
";

/// Full-text index over prompt and negative, kept in step with `images` by triggers.
const FTS_TABLE: &str = "
CREATE VIRTUAL TABLE IF NOT EXISTS images_fts USING fts5(
    prompt, negative, content='images', content_rowid='id', tokenize='trigram'
);
";

const FTS_TRIGGERS: &str = "
CREATE TRIGGER IF NOT EXISTS images_fts_insert AFTER INSERT ON images BEGIN
    INSERT INTO images_fts(rowid, prompt, negative) VALUES (new.id, new.prompt, new.negative);
END;
CREATE TRIGGER IF NOT EXISTS images_fts_delete AFTER DELETE ON images BEGIN
    INSERT INTO images_fts(images_fts, rowid, prompt, negative)
        VALUES ('delete', old.id, old.prompt, old.negative);
END;
CREATE TRIGGER IF NOT EXISTS images_fts_update AFTER UPDATE ON images BEGIN
    INSERT INTO images_fts(images_fts, rowid, prompt, negative)
        VALUES ('delete', old.id, old.prompt, old.negative);
    INSERT INTO images_fts(rowid, prompt, negative) VALUES (new.id, new.prompt, new.negative);
END;
";

const COLUMNS: &str = "id, path, prompt, negative, model, model_hash, seed, width, height, \
                       sampler, steps, cfg, created_unix, parent, recipe_json";

/// The FTS5 trigram tokenizer matches substrings of at least this many characters.
const TRIGRAM: usize = 3;

/// Longest creation record followed by [`Gallery::chain`] (stops cycles and runaway chains).
const MAX_CHAIN: usize = 1000;

/// Rows written per transaction while rebuilding, so other writers are not held up for long.
const REBUILD_BATCH: usize = 200;

/// Deepest sub-folder searched for PNGs by [`Gallery::rebuild_from_folder`].
const REBUILD_MAX_DEPTH: usize = 8;

/// One indexed image.
#[derive(Clone, Debug, PartialEq)]
pub struct GalleryEntry {
    /// Row id (stable while the file stays indexed, also across re-adds of the same path).
    pub id: i64,
    /// The image file (absolute).
    pub path: PathBuf,
    /// Positive prompt.
    pub prompt: String,
    /// Negative prompt, when one was given.
    pub negative: Option<String>,
    /// Model name: file stem of a checkpoint, folder name of a diffusers model.
    pub model: String,
    /// AutoV2 hash of the model, when known.
    pub model_hash: Option<String>,
    /// Seed.
    pub seed: u64,
    /// Image width in pixels (of the file itself when it is a PNG).
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Sampler: Kiln's CLI name (`dpm++2m-karras`), or the other app's name when Kiln has none.
    pub sampler: String,
    /// Sampling steps.
    pub steps: u32,
    /// Guidance scale.
    pub cfg: f32,
    /// Creation time: the file's modification time, in seconds since the Unix epoch.
    pub created_unix: i64,
    /// The image this one was made from (init image), when there is one.
    pub parent: Option<PathBuf>,
    /// The full recipe as JSON (Kiln's own, or one converted from A1111/ComfyUI metadata).
    pub recipe_json: Option<String>,
}

impl GalleryEntry {
    /// The stored recipe, parsed (`None` when absent or unreadable).
    pub fn recipe(&self) -> Option<Recipe> {
        serde_json::from_str(self.recipe_json.as_deref()?).ok()
    }
}

/// Which entries to list: all conditions must hold. `Default` lists everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GalleryQuery {
    /// Words that must all occur in the prompt or negative (substrings, case-insensitive).
    pub text: String,
    /// Only this model (as in [`GalleryEntry::model`]).
    pub model: Option<String>,
    /// Only entries created at or after this time (seconds since the Unix epoch).
    pub since_unix: Option<i64>,
    /// Only entries created before this time (exclusive).
    pub until_unix: Option<i64>,
    /// Entries to skip (paging).
    pub offset: usize,
    /// Most entries to return; 0 means no limit.
    pub limit: usize,
}

/// The SQLite index of outputs.
pub struct Gallery {
    conn: Connection,
    /// Whether the FTS5 trigram index exists (else text search uses `LIKE`).
    fts: bool,
}

impl std::fmt::Debug for Gallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gallery")
            .field("path", &self.conn.path())
            .field("fts", &self.fts)
            .finish()
    }
}

/// What one row holds, before it has an id.
struct NewRow {
    path: String,
    prompt: String,
    negative: Option<String>,
    model: String,
    model_hash: Option<String>,
    seed: u64,
    width: u32,
    height: u32,
    sampler: String,
    steps: u32,
    cfg: f32,
    created_unix: i64,
    parent: Option<String>,
    recipe_json: Option<String>,
}

/// Absolute form of a path (not resolving symlinks), as stored in the index.
fn normalize(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Text form of a path for the index (lossy for non-UTF-8 names).
fn path_key(path: &Path) -> String {
    normalize(path).to_string_lossy().into_owned()
}

/// Seeds are u64; SQLite integers are i64. Stored bit for bit.
fn seed_to_sql(seed: u64) -> i64 {
    i64::from_ne_bytes(seed.to_ne_bytes())
}

fn seed_from_sql(seed: i64) -> u64 {
    u64::from_ne_bytes(seed.to_ne_bytes())
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<GalleryEntry> {
    Ok(GalleryEntry {
        id: row.get(0)?,
        path: PathBuf::from(row.get::<_, String>(1)?),
        prompt: row.get(2)?,
        negative: row.get(3)?,
        model: row.get(4)?,
        model_hash: row.get(5)?,
        seed: seed_from_sql(row.get(6)?),
        width: row.get(7)?,
        height: row.get(8)?,
        sampler: row.get(9)?,
        steps: row.get(10)?,
        cfg: row.get::<_, f64>(11)? as f32,
        created_unix: row.get(12)?,
        parent: row.get::<_, Option<String>>(13)?.map(PathBuf::from),
        recipe_json: row.get(14)?,
    })
}

/// `LIKE` pattern matching `term` anywhere, with `%`, `_` and `\` escaped (`ESCAPE '\'`).
fn like_pattern(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// An FTS5 string literal: the term in double quotes, inner quotes doubled.
fn fts_phrase(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

/// PNG files under `dir` (sub-folders to [`REBUILD_MAX_DEPTH`], hidden ones skipped), sorted.
fn png_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                if !hidden && depth < REBUILD_MAX_DEPTH {
                    // A sub-folder that cannot be read is skipped, not fatal.
                    walk(&path, depth + 1, out).ok();
                }
            } else if !hidden
                && path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("png"))
            {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, 0, &mut files).with_context(|| format!("cannot list {}", dir.display()))?;
    files.sort();
    Ok(files)
}

impl Gallery {
    /// Opens (creating when needed) the index at `db_path`, in WAL mode so that readers and the
    /// writer do not block each other.
    pub fn open(db_path: &Path) -> anyhow::Result<Gallery> {
        if let Some(parent) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create folder {}", parent.display()))?;
        }
        let conn = Connection::open(db_path)
            .with_context(|| format!("cannot open gallery index {}", db_path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .with_context(|| format!("cannot set up gallery index {}", db_path.display()))?;
        Gallery::with_connection(conn)
            .with_context(|| format!("cannot set up gallery index {}", db_path.display()))
    }

    /// A throw-away index in memory (tests, or when the data folder cannot be written).
    pub fn open_in_memory() -> anyhow::Result<Gallery> {
        let conn = Connection::open_in_memory().context("cannot open an in-memory gallery")?;
        Gallery::with_connection(conn)
    }

    fn with_connection(conn: Connection) -> anyhow::Result<Gallery> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "the gallery index was written by a newer Kiln (schema {version}, this one reads {SCHEMA_VERSION})"
            );
        }
        conn.execute_batch(SCHEMA)?;
        let fts_existed: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'images_fts')",
            [],
            |row| row.get(0),
        )?;
        // FTS5 with the trigram tokenizer is compiled into the bundled SQLite; fall back to
        // LIKE should a build lack it.
        let fts = fts_existed || conn.execute_batch(FTS_TABLE).is_ok();
        if fts {
            conn.execute_batch(FTS_TRIGGERS)?;
            if !fts_existed {
                conn.execute("INSERT INTO images_fts(images_fts) VALUES ('rebuild')", [])?;
            }
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Gallery { conn, fts })
    }

    /// Runs `f` inside one transaction (a savepoint, so calls nest): all of its writes land
    /// together or, when it fails, none do. Thousands of [`Gallery::add`]s are much faster so.
    pub fn in_transaction<T>(
        &self,
        f: impl FnOnce(&Gallery) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.conn.execute_batch("SAVEPOINT kiln_gallery")?;
        match f(self) {
            Ok(value) => {
                self.conn.execute_batch("RELEASE kiln_gallery")?;
                Ok(value)
            }
            Err(error) => {
                // The error from `f` is the one to report; rolling back is best effort.
                self.conn
                    .execute_batch("ROLLBACK TO kiln_gallery; RELEASE kiln_gallery")
                    .ok();
                Err(error)
            }
        }
    }

    /// Indexes a PNG from its embedded metadata: Kiln recipe, else A1111 `parameters`, else a
    /// ComfyUI graph. Replaces the row of the same path (keeping its id). `Ok(None)` when the
    /// PNG has no such metadata (and any old row for it is removed); `Err` when the file cannot
    /// be read or is not a PNG.
    pub fn add_png(&self, path: &Path) -> anyhow::Result<Option<i64>> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let info = PngInfo::from_png(&bytes)
            .with_context(|| format!("cannot read the PNG metadata of {}", path.display()))?;
        let Some(info) = info else {
            self.remove_path(path)?;
            return Ok(None);
        };
        let created_unix = std::fs::metadata(path)
            .map(|m| mtime_unix(&m))
            .unwrap_or_else(|_| now_unix());
        let parent = info.recipe.init.as_ref().map(|init| init.path.clone());
        let row =
            NewRow::new(path, &info.recipe, parent.as_deref(), created_unix).with_png_info(info);
        self.upsert(&row).map(Some)
    }

    /// Indexes an output just written: `recipe` is what made it, `parent` the image it came
    /// from (init image or canvas), if any. Replaces the row of the same path (keeping its id).
    pub fn add(&self, path: &Path, recipe: &Recipe, parent: Option<&Path>) -> anyhow::Result<i64> {
        let created_unix = std::fs::metadata(path)
            .map(|m| mtime_unix(&m))
            .unwrap_or_else(|_| now_unix());
        let mut row = NewRow::new(path, recipe, parent, created_unix);
        row.recipe_json = Some(serde_json::to_string(recipe).context("cannot store the recipe")?);
        self.upsert(&row)
    }

    fn upsert(&self, row: &NewRow) -> anyhow::Result<i64> {
        let sql = format!(
            "INSERT INTO images ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT(path) DO UPDATE SET prompt = excluded.prompt, negative = excluded.negative,
                 model = excluded.model, model_hash = excluded.model_hash, seed = excluded.seed,
                 width = excluded.width, height = excluded.height, sampler = excluded.sampler,
                 steps = excluded.steps, cfg = excluded.cfg, created_unix = excluded.created_unix,
                 parent = excluded.parent, recipe_json = excluded.recipe_json
             RETURNING id",
            COLUMNS.trim_start_matches("id, ")
        );
        let id = self
            .conn
            .prepare_cached(&sql)?
            .query_row(
                params![
                    row.path,
                    row.prompt,
                    row.negative,
                    row.model,
                    row.model_hash,
                    seed_to_sql(row.seed),
                    row.width,
                    row.height,
                    row.sampler,
                    row.steps,
                    f64::from(row.cfg),
                    row.created_unix,
                    row.parent,
                    row.recipe_json,
                ],
                |r| r.get(0),
            )
            .with_context(|| format!("cannot add {} to the gallery index", row.path))?;
        Ok(id)
    }

    /// `WHERE …` (possibly empty) and its parameters for the filters of `q`.
    fn filter(&self, q: &GalleryQuery) -> (String, Vec<Value>) {
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut fts_terms = Vec::new();
        for term in q.text.split_whitespace() {
            if self.fts && term.chars().count() >= TRIGRAM {
                fts_terms.push(fts_phrase(term));
            } else {
                conditions.push(
                    "(prompt LIKE ? ESCAPE '\\' OR ifnull(negative, '') LIKE ? ESCAPE '\\')".into(),
                );
                let pattern = like_pattern(term);
                values.push(Value::Text(pattern.clone()));
                values.push(Value::Text(pattern));
            }
        }
        if !fts_terms.is_empty() {
            conditions.push("id IN (SELECT rowid FROM images_fts WHERE images_fts MATCH ?)".into());
            values.push(Value::Text(fts_terms.join(" AND ")));
        }
        if let Some(model) = &q.model {
            conditions.push("model = ?".into());
            values.push(Value::Text(model.clone()));
        }
        if let Some(since) = q.since_unix {
            conditions.push("created_unix >= ?".into());
            values.push(Value::Integer(since));
        }
        if let Some(until) = q.until_unix {
            conditions.push("created_unix < ?".into());
            values.push(Value::Integer(until));
        }
        if conditions.is_empty() {
            (String::new(), values)
        } else {
            (format!("WHERE {}", conditions.join(" AND ")), values)
        }
    }

    /// The entries matching `q`, newest first, paged by `offset` and `limit`.
    pub fn query(&self, q: &GalleryQuery) -> anyhow::Result<Vec<GalleryEntry>> {
        let (filter, mut values) = self.filter(q);
        let limit = if q.limit == 0 {
            -1
        } else {
            i64::try_from(q.limit).unwrap_or(i64::MAX)
        };
        values.push(Value::Integer(limit));
        values.push(Value::Integer(i64::try_from(q.offset).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT {COLUMNS} FROM images {filter} ORDER BY created_unix DESC, id DESC LIMIT ? OFFSET ?"
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let rows = statement.query_map(params_from_iter(values), entry_from_row)?;
        let entries = rows
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("cannot query the gallery index")?;
        Ok(entries)
    }

    /// How many entries match `q` (ignoring `offset` and `limit`).
    pub fn count(&self, q: &GalleryQuery) -> anyhow::Result<usize> {
        let (filter, values) = self.filter(q);
        let sql = format!("SELECT count(*) FROM images {filter}");
        let count: i64 = self
            .conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(values), |row| row.get(0))
            .context("cannot count gallery entries")?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Every model name in the index, sorted (for the model filter).
    pub fn models(&self) -> anyhow::Result<Vec<String>> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT DISTINCT model FROM images WHERE model != '' ORDER BY model")?;
        let models = statement
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(models)
    }

    /// The entry with this id.
    pub fn get(&self, id: i64) -> anyhow::Result<Option<GalleryEntry>> {
        let sql = format!("SELECT {COLUMNS} FROM images WHERE id = ?1");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([id], entry_from_row)
            .optional()?)
    }

    /// The entry of this image file (e.g. a PNG dropped onto the window), if indexed.
    pub fn get_by_path(&self, path: &Path) -> anyhow::Result<Option<GalleryEntry>> {
        let sql = format!("SELECT {COLUMNS} FROM images WHERE path = ?1");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([path_key(path)], entry_from_row)
            .optional()?)
    }

    /// Removes the entry with this id (the file stays). Returns whether there was one.
    pub fn remove(&self, id: i64) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM images WHERE id = ?1", [id])?
            > 0)
    }

    fn remove_path(&self, path: &Path) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM images WHERE path = ?1", [path_key(path)])?
            > 0)
    }

    /// Removes the rows whose file no longer exists; returns how many. Checks every file.
    pub fn remove_missing(&self) -> anyhow::Result<usize> {
        let rows: Vec<(i64, String)> = {
            let mut statement = self.conn.prepare("SELECT id, path FROM images")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let missing: Vec<i64> = rows
            .into_iter()
            .filter(|(_, path)| !Path::new(path).exists())
            .map(|(id, _)| id)
            .collect();
        self.in_transaction(|gallery| {
            for id in &missing {
                gallery.remove(*id)?;
            }
            Ok(())
        })?;
        Ok(missing.len())
    }

    /// Indexes every PNG under `dir` (sub-folders included) from its metadata alone, then drops
    /// rows whose file is gone. Files without metadata, or that are not readable PNGs, are
    /// skipped. Calls `progress(done, total)` before the first file and after each. Returns how
    /// many images were indexed.
    pub fn rebuild_from_folder(
        &self,
        dir: &Path,
        progress: &mut dyn FnMut(usize, usize),
    ) -> anyhow::Result<usize> {
        let files = png_files(dir)?;
        let total = files.len();
        progress(0, total);
        let mut indexed = 0;
        for (batch_index, batch) in files.chunks(REBUILD_BATCH).enumerate() {
            self.in_transaction(|gallery| {
                for (i, file) in batch.iter().enumerate() {
                    // A file that is not a readable PNG is not an output: skip it.
                    if let Ok(Some(_)) = gallery.add_png(file) {
                        indexed += 1;
                    }
                    progress(batch_index * REBUILD_BATCH + i + 1, total);
                }
                Ok(())
            })?;
        }
        self.remove_missing()?;
        Ok(indexed)
    }

    /// The creation record of an entry: its parents (following each entry's parent path while
    /// it is indexed) and the entry itself, oldest first. Empty when `id` is unknown. The
    /// oldest entry's `parent`, when set, is a source image outside the index.
    pub fn chain(&self, id: i64) -> anyhow::Result<Vec<GalleryEntry>> {
        let mut chain = Vec::new();
        let mut seen = HashSet::new();
        let mut current = self.get(id)?;
        while let Some(entry) = current {
            if !seen.insert(entry.id) || chain.len() >= MAX_CHAIN {
                break;
            }
            current = match &entry.parent {
                Some(parent) => self.get_by_path(parent)?,
                None => None,
            };
            chain.push(entry);
        }
        chain.reverse();
        Ok(chain)
    }
}

impl NewRow {
    fn new(path: &Path, recipe: &Recipe, parent: Option<&Path>, created_unix: i64) -> NewRow {
        NewRow {
            path: path_key(path),
            prompt: recipe.prompt.clone(),
            negative: recipe.negative.clone(),
            model: png_info::model_name(&recipe.model.path),
            model_hash: recipe.model.hash.clone(),
            seed: recipe.seed,
            width: recipe.width,
            height: recipe.height,
            sampler: recipe.sampler.cli_name().to_owned(),
            steps: u32::try_from(recipe.steps).unwrap_or(u32::MAX),
            cfg: recipe.cfg,
            created_unix,
            parent: parent.map(path_key),
            recipe_json: None,
        }
    }

    /// Takes what the PNG itself says over the recipe: real size, sampler name, recipe text.
    fn with_png_info(mut self, info: PngInfo) -> NewRow {
        if let Some((width, height)) = info.size {
            (self.width, self.height) = (width, height);
        }
        if let Some(sampler) = info.sampler {
            self.sampler = sampler;
        }
        self.recipe_json = Some(info.recipe_json);
        self
    }
}

#[cfg(test)]
mod tests;
