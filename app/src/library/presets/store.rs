//! Where presets live: the built-ins (the repository's `presets/` folder, embedded into the
//! binary) and the user's own (`<config dir>/presets/<id>.toml` + `<id>.png`). A user preset
//! with a built-in's id overrides it. Saves, imports and exports never overwrite a file unless
//! asked to: they return [`PresetError::Conflict`] first, which the app turns into a question.
//!
//! Every function reads or writes files: call off the UI thread.

use super::error::{Existing, PresetError};
use super::schema::{Preset, parse_preset};
use crate::library::fsutil::atomic_write;
use crate::library::settings::{Language, config_dir};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Side of preset thumbnails, in pixels.
pub const THUMBNAIL_SIZE: u32 = 256;
/// Name of the user presets folder inside the config folder.
pub const USER_PRESETS_DIR: &str = "presets";

/// A preset shipped in the binary.
struct BuiltIn {
    file: &'static str,
    toml: &'static str,
    png: &'static [u8],
}

macro_rules! built_in {
    ($id:literal) => {
        BuiltIn {
            file: concat!($id, ".toml"),
            toml: include_str!(concat!("../../../../presets/", $id, ".toml")),
            png: include_bytes!(concat!("../../../../presets/", $id, ".png")),
        }
    };
}

/// The built-in presets, in gallery order.
const BUILT_INS: [BuiltIn; 8] = [
    built_in!("clay"),
    built_in!("3d-cartoon"),
    built_in!("anime"),
    built_in!("watercolor"),
    built_in!("pencil-sketch"),
    built_in!("product-shot"),
    built_in!("comic-ink"),
    built_in!("picture-book"),
];

/// Where a listed preset comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresetSource {
    /// Shipped with Kiln.
    BuiltIn,
    /// The user's file.
    User {
        /// The TOML file.
        path: PathBuf,
        /// It has a built-in's id and replaces it.
        overrides_builtin: bool,
    },
}

/// A preset with its origin, file text and thumbnail.
#[derive(Clone, Debug, PartialEq)]
pub struct PresetEntry {
    /// The preset.
    pub preset: Preset,
    /// Where it comes from.
    pub source: PresetSource,
    /// Its TOML text as stored (comments included).
    pub toml: Cow<'static, str>,
    /// Thumbnail PNG bytes, when it has one.
    pub thumbnail_png: Option<Cow<'static, [u8]>>,
}

impl PresetEntry {
    /// The preset id.
    pub fn id(&self) -> &str {
        &self.preset.id
    }

    /// The name in `language` (English when there is no translation).
    pub fn name(&self, language: Language) -> &str {
        self.preset.name.get(language)
    }

    /// The description in `language`.
    pub fn description(&self, language: Language) -> &str {
        self.preset.description.get(language)
    }

    /// Shipped with Kiln (not a user file).
    pub fn is_builtin(&self) -> bool {
        self.source == PresetSource::BuiltIn
    }

    /// Whether `query` (lower-cased words) matches the id, the names or the descriptions.
    pub fn matches(&self, query: &str) -> bool {
        let text = [
            self.preset.id.as_str(),
            self.preset.name.en.as_str(),
            self.preset.name.zh_cn.as_deref().unwrap_or(""),
            self.preset.description.en.as_str(),
            self.preset.description.zh_cn.as_deref().unwrap_or(""),
        ]
        .join(" ")
        .to_lowercase();
        query
            .to_lowercase()
            .split_whitespace()
            .all(|word| text.contains(word))
    }
}

/// A user preset file that could not be read.
#[derive(Debug)]
pub struct PresetIssue {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub error: PresetError,
}

/// All presets: built-ins (overridden ones replaced in place) then user presets by id, plus
/// the user files that could not be read.
#[derive(Debug, Default)]
pub struct PresetList {
    /// The presets, in gallery order.
    pub presets: Vec<PresetEntry>,
    /// Broken user files (shown, never silently dropped).
    pub issues: Vec<PresetIssue>,
}

impl PresetList {
    /// The preset with this id.
    pub fn get(&self, id: &str) -> Option<&PresetEntry> {
        self.presets.iter().find(|e| e.preset.id == id)
    }

    /// Presets matching a search text (all for an empty one), in gallery order.
    pub fn search(&self, query: &str) -> Vec<&PresetEntry> {
        self.presets.iter().filter(|e| e.matches(query)).collect()
    }
}

/// The built-in presets. A built-in that does not parse is a bug (a test reads them all); it is
/// left out here rather than breaking the app.
pub fn builtin_presets() -> Vec<PresetEntry> {
    BUILT_INS
        .iter()
        .filter_map(|b| {
            let preset = parse_preset(b.toml, &format!("built-in presets/{}", b.file)).ok()?;
            Some(PresetEntry {
                preset,
                source: PresetSource::BuiltIn,
                toml: Cow::Borrowed(b.toml),
                thumbnail_png: Some(Cow::Borrowed(b.png)),
            })
        })
        .collect()
}

/// Every built-in as `(file name, parse result)`, for tests and diagnostics.
pub fn builtin_parse_results() -> Vec<(&'static str, Result<Preset, PresetError>)> {
    BUILT_INS
        .iter()
        .map(|b| {
            (
                b.file,
                parse_preset(b.toml, &format!("built-in presets/{}", b.file)),
            )
        })
        .collect()
}

/// Reads a preset file (any path: `kiln generate --preset my.toml`, imports).
pub fn load_preset_file(path: &Path) -> Result<Preset, PresetError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| PresetError::io("cannot read preset", path, e))?;
    parse_preset(&text, &path.display().to_string())
}

/// Checks PNG bytes and brings them to a [`THUMBNAIL_SIZE`] square (centre crop), unless they
/// already are one.
pub fn normalize_thumbnail(png: &[u8]) -> Result<Vec<u8>, PresetError> {
    let image = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .map_err(|e| PresetError::Other(format!("the thumbnail is not a readable PNG ({e})")))?;
    if image.width() == THUMBNAIL_SIZE && image.height() == THUMBNAIL_SIZE {
        return Ok(png.to_vec());
    }
    make_thumbnail(&image)
}

/// A [`THUMBNAIL_SIZE`] square PNG of an image (centre crop, then resize): for "save as preset"
/// with the last output.
pub fn make_thumbnail(image: &image::DynamicImage) -> Result<Vec<u8>, PresetError> {
    let side = image.width().min(image.height()).max(1);
    let x = (image.width() - side.min(image.width())) / 2;
    let y = (image.height() - side.min(image.height())) / 2;
    let square = image.crop_imm(x, y, side, side).to_rgb8();
    let small = image::imageops::resize(
        &square,
        THUMBNAIL_SIZE,
        THUMBNAIL_SIZE,
        image::imageops::FilterType::Lanczos3,
    );
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(small)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| PresetError::Other(format!("cannot encode the thumbnail ({e})")))?;
    Ok(bytes)
}

/// A preset id made from a name: `"My Clay v2"` → `my-clay-v2` (`preset` when nothing is left).
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(48).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        "preset".to_owned()
    } else {
        slug
    }
}

/// The built-in and user presets.
#[derive(Clone, Debug)]
pub struct PresetStore {
    user_dir: PathBuf,
}

impl PresetStore {
    /// A store whose user presets are in `user_dir` (tests, portable installs).
    pub fn new(user_dir: PathBuf) -> Self {
        PresetStore { user_dir }
    }

    /// The user's store: `<config dir>/presets` (see [`config_dir`]).
    pub fn user_default() -> Self {
        PresetStore::new(config_dir().join(USER_PRESETS_DIR))
    }

    /// The user presets folder.
    pub fn user_dir(&self) -> &Path {
        &self.user_dir
    }

    /// User preset files (`*.toml`, hidden and temp files skipped), sorted by path.
    fn user_files(&self) -> Vec<PathBuf> {
        let Ok(listing) = std::fs::read_dir(&self.user_dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = listing
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                let visible = name.as_deref().is_some_and(|n| !n.starts_with('.'));
                visible && p.extension().is_some_and(|e| e == "toml") && p.is_file()
            })
            .collect();
        files.sort();
        files
    }

    /// Reads one user file into an entry.
    fn user_entry(path: &Path, builtin_ids: &[String]) -> Result<PresetEntry, PresetError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PresetError::io("cannot read preset", path, e))?;
        let preset = parse_preset(&text, &path.display().to_string())?;
        let thumbnail = std::fs::read(path.with_extension("png")).ok();
        Ok(PresetEntry {
            source: PresetSource::User {
                path: path.to_path_buf(),
                overrides_builtin: builtin_ids.contains(&preset.id),
            },
            preset,
            toml: Cow::Owned(text),
            thumbnail_png: thumbnail.map(Cow::Owned),
        })
    }

    /// Built-ins (a user preset with the same id takes its place) followed by the other user
    /// presets sorted by id; unreadable user files and duplicate ids are listed as issues.
    pub fn list(&self) -> PresetList {
        let mut presets = builtin_presets();
        let builtin_ids: Vec<String> = presets.iter().map(|e| e.preset.id.clone()).collect();
        let mut issues = Vec::new();
        let mut user_only: Vec<PresetEntry> = Vec::new();
        let mut user_ids: Vec<String> = Vec::new();
        for path in self.user_files() {
            let entry = match Self::user_entry(&path, &builtin_ids) {
                Ok(entry) => entry,
                Err(error) => {
                    issues.push(PresetIssue { path, error });
                    continue;
                }
            };
            let id = entry.preset.id.clone();
            if user_ids.contains(&id) {
                issues.push(PresetIssue {
                    error: PresetError::Other(format!(
                        "another user preset file already has id {id:?}; this one is ignored: {}",
                        path.display()
                    )),
                    path,
                });
                continue;
            }
            user_ids.push(id.clone());
            match presets.iter_mut().find(|e| e.preset.id == id) {
                Some(slot) => *slot = entry,
                None => user_only.push(entry),
            }
        }
        user_only.sort_by(|a, b| a.preset.id.cmp(&b.preset.id));
        presets.extend(user_only);
        PresetList { presets, issues }
    }

    /// The preset with this id (user version first).
    pub fn get(&self, id: &str) -> Result<PresetEntry, PresetError> {
        self.list()
            .presets
            .into_iter()
            .find(|e| e.preset.id == id)
            .ok_or_else(|| PresetError::NotFound { id: id.to_owned() })
    }

    /// The user file holding preset `id`, if any.
    fn user_file_of(&self, id: &str) -> Option<PathBuf> {
        self.list()
            .presets
            .into_iter()
            .find_map(|e| match e.source {
                PresetSource::User { path, .. } if e.preset.id == id => Some(path),
                _ => None,
            })
    }

    /// An id based on `name` that no preset uses yet (`my-clay`, `my-clay-2`, …).
    pub fn free_id(&self, name: &str) -> String {
        let list = self.list();
        let base = slugify(name);
        let taken = |id: &str| list.get(id).is_some();
        if !taken(&base) {
            return base;
        }
        (2..)
            .map(|n| format!("{base}-{n}"))
            .find(|id| !taken(id))
            .unwrap_or(base)
    }

    /// Writes `text` (already checked to be `preset`) and the thumbnail as a user preset.
    fn write_user(
        &self,
        preset: &Preset,
        text: &str,
        thumbnail_png: Option<&[u8]>,
        overwrite: bool,
    ) -> Result<PathBuf, PresetError> {
        let existing = self.user_file_of(&preset.id);
        if !overwrite {
            if let Some(path) = &existing {
                return Err(PresetError::Conflict {
                    id: preset.id.clone(),
                    existing: Existing::UserPreset(path.clone()),
                });
            }
            if builtin_presets().iter().any(|b| b.preset.id == preset.id) {
                return Err(PresetError::Conflict {
                    id: preset.id.clone(),
                    existing: Existing::BuiltIn,
                });
            }
        }
        let path = existing.unwrap_or_else(|| self.user_dir.join(format!("{}.toml", preset.id)));
        if !overwrite && path.exists() {
            // A file of that name that holds some other (or a broken) preset.
            return Err(PresetError::Conflict {
                id: preset.id.clone(),
                existing: Existing::File(path),
            });
        }
        if let Some(png) = thumbnail_png {
            let png = normalize_thumbnail(png)?;
            let png_path = path.with_extension("png");
            atomic_write(&png_path, &png).map_err(|e| PresetError::Other(format!("{e:#}")))?;
        }
        atomic_write(&path, text.as_bytes()).map_err(|e| PresetError::Other(format!("{e:#}")))?;
        Ok(path)
    }

    /// Saves `preset` as a user preset (`<id>.toml`, and `<id>.png` from `thumbnail_png`, any
    /// PNG: brought to a 256-pixel square). Without `overwrite`, an existing user preset or a
    /// built-in with the same id is a [`PresetError::Conflict`]; with it, the user file is
    /// replaced (its thumbnail kept when none is given). Returns the TOML path.
    pub fn save(
        &self,
        preset: &Preset,
        thumbnail_png: Option<&[u8]>,
        overwrite: bool,
    ) -> Result<PathBuf, PresetError> {
        preset.validate().map_err(|message| PresetError::Invalid {
            origin: format!("preset {:?}", preset.id),
            line: None,
            column: None,
            message,
        })?;
        let text = preset.to_toml()?;
        self.write_user(preset, &text, thumbnail_png, overwrite)
    }

    /// Deletes a user preset (its TOML and thumbnail). Deleting a user preset that overrides a
    /// built-in brings the built-in back; built-ins themselves cannot be deleted.
    pub fn delete(&self, id: &str) -> Result<(), PresetError> {
        let Some(path) = self.user_file_of(id) else {
            return Err(if builtin_presets().iter().any(|b| b.preset.id == id) {
                PresetError::BuiltInReadOnly { id: id.to_owned() }
            } else {
                PresetError::NotFound { id: id.to_owned() }
            });
        };
        std::fs::remove_file(&path)
            .map_err(|e| PresetError::io("cannot delete preset", &path, e))?;
        let png = path.with_extension("png");
        if png.exists() {
            std::fs::remove_file(&png)
                .map_err(|e| PresetError::io("cannot delete thumbnail", &png, e))?;
        }
        Ok(())
    }

    /// Imports a preset file (validated first; its comments kept) and the PNG of the same name
    /// next to it, if any. Conflicts as in [`PresetStore::save`].
    pub fn import(&self, toml_path: &Path, overwrite: bool) -> Result<PresetEntry, PresetError> {
        let text = std::fs::read_to_string(toml_path)
            .map_err(|e| PresetError::io("cannot read preset", toml_path, e))?;
        let preset = parse_preset(&text, &toml_path.display().to_string())?;
        let png_path = toml_path.with_extension("png");
        let thumbnail = match std::fs::read(&png_path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(PresetError::io("cannot read thumbnail", &png_path, e)),
        };
        self.write_user(&preset, &text, thumbnail.as_deref(), overwrite)?;
        self.get(&preset.id)
    }

    /// Exports preset `id` into `dir` as `<id>.toml` (+ `<id>.png` when it has a thumbnail).
    /// Without `overwrite`, an existing file there is a [`PresetError::Conflict`]. Returns the
    /// files written.
    pub fn export(
        &self,
        id: &str,
        dir: &Path,
        overwrite: bool,
    ) -> Result<Vec<PathBuf>, PresetError> {
        let entry = self.get(id)?;
        let toml_path = dir.join(format!("{id}.toml"));
        let png_path = dir.join(format!("{id}.png"));
        if !overwrite {
            for path in [&toml_path, &png_path] {
                if path.exists() {
                    return Err(PresetError::Conflict {
                        id: id.to_owned(),
                        existing: Existing::File(path.clone()),
                    });
                }
            }
        }
        let mut written = Vec::new();
        if let Some(png) = &entry.thumbnail_png {
            atomic_write(&png_path, png).map_err(|e| PresetError::Other(format!("{e:#}")))?;
            written.push(png_path);
        }
        atomic_write(&toml_path, entry.toml.as_bytes())
            .map_err(|e| PresetError::Other(format!("{e:#}")))?;
        written.insert(0, toml_path);
        Ok(written)
    }
}
