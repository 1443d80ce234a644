//! Creation records: a work's chain of steps (from [`crate::library::Gallery::chain`]) exported
//! as a self-contained folder a person can read without Kiln: `index.html` (inline CSS, no
//! script, no network; one section per step with its image and every choice made) beside
//! `record.json` and the step images. Also a side-by-side comparison of two versions.
//!
//! Touches the disk: call off the UI thread. Folders are written under a temp name next to the
//! target and renamed into place; an existing folder is never overwritten.

use crate::library::gallery::GalleryEntry;
use anyhow::Context;
use kiln_inference::recipe::{InitImage, ModelRef};
use kiln_inference::{Recipe, SamplerKind};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temp folders written by several threads of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "2026-11-23 09:41 UTC" from seconds since the Unix epoch.
pub fn format_date(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// The recipe of an entry: the stored one, else one rebuilt from the indexed columns (images
/// whose metadata could not be parsed into a full recipe).
pub fn entry_recipe(entry: &GalleryEntry) -> Recipe {
    entry.recipe().unwrap_or_else(|| Recipe {
        model: ModelRef {
            path: PathBuf::from(&entry.model),
            hash: entry.model_hash.clone(),
            family: None,
        },
        prompt: entry.prompt.clone(),
        negative: entry.negative.clone(),
        seed: entry.seed,
        sampler: SamplerKind::from_cli_name(&entry.sampler).unwrap_or_default(),
        steps: entry.steps as usize,
        cfg: entry.cfg,
        width: entry.width,
        height: entry.height,
        init: entry.parent.as_ref().map(|path| InitImage {
            path: path.clone(),
            strength: 1.0,
        }),
        ..Recipe::default()
    })
}

/// Model name as people say it: a checkpoint's file stem, a diffusers folder's name.
fn model_name(model: &ModelRef) -> String {
    let path = &model.path;
    let is_file = path.extension().is_some_and(|e| {
        ["safetensors", "sft", "ckpt"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    });
    let name = if is_file {
        path.file_stem()
    } else {
        path.file_name()
    };
    name.map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// LoRAs named in the prompt with A1111's `<lora:name:weight>` (or `<lyco:…>`) syntax.
pub fn prompt_loras(prompt: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = prompt;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else { break };
        let tag = &after[..end];
        if let Some(body) = tag
            .strip_prefix("lora:")
            .or_else(|| tag.strip_prefix("lyco:"))
        {
            let mut parts = body.splitn(2, ':');
            let name = parts.next().unwrap_or_default().trim();
            let weight = parts.next().map(str::trim).unwrap_or("1");
            if !name.is_empty() {
                found.push(format!("{name} ({weight})"));
            }
        }
        rest = &after[end + 1..];
    }
    found
}

/// The fields of a recipe people compare, as (field name, value). Field names are stable
/// identifiers (the UI translates them as `record.field_<name>`; see [`field_label`]).
pub fn recipe_fields(recipe: &Recipe) -> Vec<(&'static str, String)> {
    let none = || "—".to_owned();
    let loras = prompt_loras(&recipe.prompt);
    vec![
        ("prompt", recipe.prompt.clone()),
        (
            "negative",
            recipe
                .negative
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(none),
        ),
        ("model", model_name(&recipe.model)),
        ("model_hash", recipe.model.hash.clone().unwrap_or_else(none)),
        ("seed", recipe.seed.to_string()),
        ("sampler", recipe.sampler.cli_name().to_owned()),
        ("steps", recipe.steps.to_string()),
        ("cfg", format!("{}", recipe.cfg)),
        ("size", format!("{} × {}", recipe.width, recipe.height)),
        (
            "strength",
            recipe
                .init
                .as_ref()
                .map(|init| format!("{:.2}", init.strength))
                .unwrap_or_else(none),
        ),
        ("clip_skip", recipe.clip_skip.to_string()),
        (
            "loras",
            if loras.is_empty() {
                none()
            } else {
                loras.join(", ")
            },
        ),
    ]
}

/// English label of a field of [`recipe_fields`] (the exported pages are in English).
pub fn field_label(field: &str) -> &'static str {
    match field {
        "prompt" => "Prompt",
        "negative" => "Negative prompt",
        "model" => "Model",
        "model_hash" => "Model hash",
        "seed" => "Seed",
        "sampler" => "Sampler",
        "steps" => "Steps",
        "cfg" => "CFG scale",
        "size" => "Size",
        "strength" => "Denoising strength",
        "clip_skip" => "Clip skip",
        "loras" => "LoRAs",
        _ => "?",
    }
}

/// The fields where two recipes differ: (field name, value in `a`, value in `b`), in the
/// order of [`recipe_fields`].
pub fn recipe_differences(a: &Recipe, b: &Recipe) -> Vec<(&'static str, String, String)> {
    recipe_fields(a)
        .into_iter()
        .zip(recipe_fields(b))
        .filter(|((_, va), (_, vb))| va != vb)
        .map(|((name, va), (_, vb))| (name, va, vb))
        .collect()
}

/// A file-name-safe version of `name` (letters, digits, `-`, `_`, `.`; at most 60 chars).
fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    let trimmed = cleaned.trim_matches(|c| c == '-' || c == '.');
    if trimmed.is_empty() {
        "kiln".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes a folder atomically: `fill` writes into a fresh temp folder in `out_dir`, which is
/// then renamed to `name` (or `name-1`, `name-2` … when taken). Returns the final folder.
fn write_folder(
    out_dir: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create folder {}", out_dir.display()))?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = out_dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
    std::fs::create_dir(&temp)
        .with_context(|| format!("cannot create folder {}", temp.display()))?;
    if let Err(e) = fill(&temp) {
        std::fs::remove_dir_all(&temp).ok(); // Best effort: the export already failed.
        return Err(e);
    }
    for attempt in 0..10_000u32 {
        let target = if attempt == 0 {
            out_dir.join(name)
        } else {
            out_dir.join(format!("{name}-{attempt}"))
        };
        if target.exists() {
            continue;
        }
        match std::fs::rename(&temp, &target) {
            Ok(()) => return Ok(target),
            // Taken meanwhile by another writer: try the next name.
            Err(_) if target.exists() => continue,
            Err(e) => {
                std::fs::remove_dir_all(&temp).ok(); // Best effort: reporting the rename error.
                return Err(e).with_context(|| format!("cannot write {}", target.display()));
            }
        }
    }
    std::fs::remove_dir_all(&temp).ok(); // Best effort.
    anyhow::bail!("no free folder name for {name} in {}", out_dir.display())
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Copies an entry's image into `dir` as `name`; false when the source is gone.
fn copy_image(source: &Path, dir: &Path, name: &str) -> anyhow::Result<bool> {
    if !source.is_file() {
        return Ok(false);
    }
    let target = dir.join(name);
    std::fs::copy(source, &target)
        .with_context(|| format!("cannot copy {} to {}", source.display(), target.display()))?;
    Ok(true)
}

const CSS: &str = "
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #f6f5f2; --card: #fff; --muted: #6b6b70;
  --line: #dedcd6; --accent: #c2410c; --diff: #fde8d7; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e6e1; --bg: #18181a; --card: #222225;
  --muted: #9a9aa0; --line: #35353a; --accent: #f97316; --diff: #4a2a16; } }
body { font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', 'Noto Sans', 'PingFang SC',
  'Microsoft YaHei', sans-serif; color: var(--fg); background: var(--bg); margin: 0; padding: 32px; }
main { max-width: 1100px; margin: 0 auto; }
h1 { margin: 0 0 4px; font-size: 26px; } .sub { color: var(--muted); margin: 0 0 28px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 20px; margin: 0 0 20px; display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 3fr);
  gap: 24px; }
section h2 { grid-column: 1 / -1; margin: 0; font-size: 18px; }
section h2 small { color: var(--muted); font-weight: normal; margin-left: 8px; }
img { max-width: 100%; height: auto; border-radius: 6px; display: block; }
.missing { color: var(--muted); border: 1px dashed var(--line); border-radius: 6px; padding: 40px;
  text-align: center; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; vertical-align: top;
  padding: 5px 8px; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
th { color: var(--muted); font-weight: normal; white-space: nowrap; width: 1%; }
tr.diff td { background: var(--diff); } tr.diff th { color: var(--accent); font-weight: 600; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 20px; margin: 0 0 20px; }
.pair figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 12px; } figcaption { color: var(--muted); margin-top: 8px; overflow-wrap: anywhere; }
.compare { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px; }
footer { color: var(--muted); font-size: 13px; margin-top: 24px; }
";

fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        escape(title)
    )
}

const PAGE_END: &str = "<footer>Exported by Kiln.</footer>\n</main>\n</body>\n</html>\n";

/// Exports a creation record (`chain` oldest first, as [`crate::library::Gallery::chain`]
/// returns it) into a new folder under `out_dir`: `index.html`, `record.json` and the images
/// as `step-1.png`, `step-2.png` … Returns the folder.
pub fn export_record(chain: &[GalleryEntry], out_dir: &Path) -> anyhow::Result<PathBuf> {
    let last = chain.last().context("the creation record is empty")?;
    let name = format!("{}-record", safe_name(&stem(&last.path)));
    write_folder(out_dir, &name, |dir| {
        let mut html = page_start("Creation record");
        let _ = write!(
            html,
            "<h1>Creation record</h1>\n<p class=\"sub\">{} — {} step{}, from {} to {}</p>\n",
            escape(&stem(&last.path)),
            chain.len(),
            if chain.len() == 1 { "" } else { "s" },
            escape(&format_date(chain[0].created_unix)),
            escape(&format_date(last.created_unix)),
        );
        let mut steps = Vec::with_capacity(chain.len());
        for (i, entry) in chain.iter().enumerate() {
            let number = i + 1;
            let image_name = format!("step-{number}.png");
            let copied = copy_image(&entry.path, dir, &image_name)?;
            let recipe = entry.recipe();
            let shown = recipe.clone().unwrap_or_else(|| entry_recipe(entry));
            let previous = i.checked_sub(1).map(|p| &chain[p]);
            let parent = match (&entry.parent, previous) {
                (Some(parent), Some(prev)) if *parent == prev.path => {
                    format!("step {} ({})", number - 1, file_label(parent))
                }
                (Some(parent), _) => file_label(parent),
                (None, _) => "— (text to image)".to_owned(),
            };
            let _ = write!(
                html,
                "<section id=\"step-{number}\">\n<h2>Step {number}<small>{}</small></h2>\n",
                escape(&format_date(entry.created_unix))
            );
            if copied {
                let _ = writeln!(
                    html,
                    "<div><img src=\"{image_name}\" alt=\"Step {number}\" width=\"{}\" height=\"{}\"></div>",
                    entry.width, entry.height
                );
            } else {
                let _ = writeln!(
                    html,
                    "<div class=\"missing\">Image missing: {}</div>",
                    escape(&entry.path.display().to_string())
                );
            }
            html.push_str("<table>\n");
            for (field, value) in recipe_fields(&shown) {
                if field == "strength" && shown.init.is_none() {
                    continue;
                }
                if field == "loras" && value == "—" {
                    continue;
                }
                let _ = writeln!(
                    html,
                    "<tr><th>{}</th><td>{}</td></tr>",
                    field_label(field),
                    escape(&value)
                );
            }
            let _ = writeln!(
                html,
                "<tr><th>Made from</th><td>{}</td></tr>\n\
                 <tr><th>Date</th><td>{}</td></tr>\n\
                 <tr><th>File</th><td>{}</td></tr>\n</table>\n</section>",
                escape(&parent),
                escape(&format_date(entry.created_unix)),
                escape(&entry.path.display().to_string())
            );
            steps.push(serde_json::json!({
                "step": number,
                "image": copied.then_some(image_name),
                "source": entry.path,
                "parent": entry.parent,
                "created_unix": entry.created_unix,
                "created": format_date(entry.created_unix),
                "model": entry.model,
                "recipe": recipe,
            }));
        }
        html.push_str(PAGE_END);
        let json = serde_json::json!({
            "kiln_record": 1,
            "exported": format_date(crate::library::fsutil::now_unix()),
            "steps": steps,
        });
        write_file(dir, "index.html", html.as_bytes())?;
        let json = serde_json::to_vec_pretty(&json).context("cannot encode record.json")?;
        write_file(dir, "record.json", &json)
    })
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Exports two versions side by side into a new folder under `out_dir`: `index.html` with
/// both images (`a.png`, `b.png`) and a table of their settings, the differing rows
/// highlighted. Returns the folder.
pub fn export_comparison(
    a: &GalleryEntry,
    b: &GalleryEntry,
    out_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let name = format!(
        "compare-{}-vs-{}",
        safe_name(&stem(&a.path)),
        safe_name(&stem(&b.path))
    );
    write_folder(out_dir, &name, |dir| {
        let mut html = page_start("Comparison");
        html.push_str("<h1>Comparison</h1>\n<p class=\"sub\">Differing settings are highlighted.</p>\n<div class=\"pair\">\n");
        for (label, entry, image) in [("A", a, "a.png"), ("B", b, "b.png")] {
            html.push_str("<figure>");
            if copy_image(&entry.path, dir, image)? {
                let _ = write!(html, "<img src=\"{image}\" alt=\"{label}\">");
            } else {
                html.push_str("<div class=\"missing\">Image missing</div>");
            }
            let _ = writeln!(
                html,
                "<figcaption><strong>{label}</strong> · {} · {}</figcaption></figure>",
                escape(&file_label(&entry.path)),
                escape(&format_date(entry.created_unix))
            );
        }
        html.push_str(
            "</div>\n<div class=\"compare\"><table>\n<tr><th></th><th>A</th><th>B</th></tr>\n",
        );
        let (ra, rb) = (entry_recipe(a), entry_recipe(b));
        for ((field, va), (_, vb)) in recipe_fields(&ra).into_iter().zip(recipe_fields(&rb)) {
            let class = if va == vb { "" } else { " class=\"diff\"" };
            let _ = writeln!(
                html,
                "<tr{class}><th>{}</th><td>{}</td><td>{}</td></tr>",
                field_label(field),
                escape(&va),
                escape(&vb)
            );
        }
        html.push_str("</table></div>\n");
        html.push_str(PAGE_END);
        write_file(dir, "index.html", html.as_bytes())?;
        let json = serde_json::json!({
            "kiln_comparison": 1,
            "a": { "source": a.path, "recipe": a.recipe() },
            "b": { "source": b.path, "recipe": b.recipe() },
            "differences": recipe_differences(&ra, &rb),
        });
        let json = serde_json::to_vec_pretty(&json).context("cannot encode comparison.json")?;
        write_file(dir, "comparison.json", &json)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::Gallery;
    use kiln_inference::io::png_meta::encode_png;

    fn write_png(path: &Path, recipe: &Recipe) {
        let image = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 100, 50]));
        let json = serde_json::to_string(recipe).unwrap();
        std::fs::write(path, encode_png(&image, "", &json).unwrap()).unwrap();
    }

    /// A parent → child chain of two indexed PNGs.
    fn two_steps(dir: &Path) -> Vec<GalleryEntry> {
        let gallery = Gallery::open_in_memory().unwrap();
        let first = dir.join("kiln-1.png");
        let second = dir.join("kiln-2.png");
        let recipe = Recipe {
            prompt: "a <b>clay</b> fox & \"friends\" <lora:claymation:0.7>".into(),
            negative: Some("blurry".into()),
            model: ModelRef {
                path: "/models/dreamy.safetensors".into(),
                hash: Some("abc123def0".into()),
                family: Some("sd1".into()),
            },
            seed: 42,
            ..Recipe::default()
        };
        write_png(&first, &recipe);
        gallery.add(&first, &recipe, None).unwrap();
        let child = Recipe {
            seed: 43,
            init: Some(InitImage {
                path: first.clone(),
                strength: 0.55,
            }),
            ..recipe
        };
        write_png(&second, &child);
        let id = gallery.add(&second, &child, Some(&first)).unwrap();
        gallery.chain(id).unwrap()
    }

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn record_has_html_json_and_images() {
        let dir = tempfile::tempdir().unwrap();
        let chain = two_steps(dir.path());
        assert_eq!(chain.len(), 2);
        let out = dir.path().join("records");
        let folder = export_record(&chain, &out).unwrap();
        assert_eq!(folder, out.join("kiln-2-record"));
        let html = std::fs::read_to_string(folder.join("index.html")).unwrap();
        assert!(html.contains("a &lt;b&gt;clay&lt;/b&gt; fox &amp; &quot;friends&quot;"));
        assert!(!html.contains("<b>clay</b>"));
        assert!(!html.contains("<script"));
        assert!(html.contains("src=\"step-1.png\"") && html.contains("src=\"step-2.png\""));
        assert!(html.contains("abc123def0"));
        assert!(html.contains("Denoising strength") && html.contains("0.55"));
        assert!(html.contains("claymation (0.7)"));
        assert!(html.contains("step 1 (kiln-1.png)"));
        // Step 1 is text to image: no strength row before step 2.
        let step2 = html.find("id=\"step-2\"").unwrap();
        assert!(!html[..step2].contains("Denoising strength"));
        for step in ["step-1.png", "step-2.png"] {
            let bytes = std::fs::read(folder.join(step)).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("record.json")).unwrap()).unwrap();
        let steps = json["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0]["recipe"]["seed"], 42);
        assert_eq!(steps[1]["recipe"]["seed"], 43);
        assert_eq!(steps[1]["image"], "step-2.png");
        let recipe: Recipe = serde_json::from_value(steps[1]["recipe"].clone()).unwrap();
        assert_eq!(recipe.init.unwrap().strength, 0.55);
        // Nothing but the folder is left in `out` (no temp folder).
        let names: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn exports_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let chain = two_steps(dir.path());
        let out = dir.path().join("records");
        let first = export_record(&chain, &out).unwrap();
        std::fs::write(first.join("note.txt"), "mine").unwrap();
        let second = export_record(&chain, &out).unwrap();
        let third = export_record(&chain, &out).unwrap();
        assert_eq!(second, out.join("kiln-2-record-1"));
        assert_eq!(third, out.join("kiln-2-record-2"));
        assert_eq!(
            std::fs::read_to_string(first.join("note.txt")).unwrap(),
            "mine"
        );
        assert!(export_record(&[], &out).is_err());
    }

    #[test]
    fn missing_image_is_noted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let chain = two_steps(dir.path());
        std::fs::remove_file(&chain[0].path).unwrap();
        let folder = export_record(&chain, &dir.path().join("records")).unwrap();
        assert!(!folder.join("step-1.png").exists());
        assert!(folder.join("step-2.png").exists());
        let html = std::fs::read_to_string(folder.join("index.html")).unwrap();
        assert!(html.contains("Image missing"));
    }

    #[test]
    fn differences_list_changed_fields_only() {
        let a = Recipe {
            prompt: "a fox".into(),
            seed: 1,
            ..Recipe::default()
        };
        let b = Recipe {
            prompt: "a fox".into(),
            seed: 2,
            cfg: 5.5,
            init: Some(InitImage {
                path: "x.png".into(),
                strength: 0.4,
            }),
            ..Recipe::default()
        };
        let diffs = recipe_differences(&a, &b);
        assert_eq!(
            diffs,
            vec![
                ("seed", "1".into(), "2".into()),
                ("cfg", "7".into(), "5.5".into()),
                ("strength", "—".into(), "0.40".into()),
            ]
        );
        assert!(recipe_differences(&a, &a).is_empty());
    }

    #[test]
    fn comparison_highlights_differences() {
        let dir = tempfile::tempdir().unwrap();
        let chain = two_steps(dir.path());
        let out = dir.path().join("records");
        let folder = export_comparison(&chain[0], &chain[1], &out).unwrap();
        assert_eq!(folder, out.join("compare-kiln-1-vs-kiln-2"));
        assert!(folder.join("a.png").exists() && folder.join("b.png").exists());
        let html = std::fs::read_to_string(folder.join("index.html")).unwrap();
        assert!(html.contains("<tr class=\"diff\"><th>Seed</th><td>42</td><td>43</td></tr>"));
        assert!(html.contains("<tr><th>Steps</th>"));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("comparison.json")).unwrap())
                .unwrap();
        assert_eq!(json["differences"].as_array().unwrap().len(), 2);
        let again = export_comparison(&chain[0], &chain[1], &out).unwrap();
        assert_eq!(again, out.join("compare-kiln-1-vs-kiln-2-1"));
    }

    #[test]
    fn dates_and_loras() {
        assert_eq!(format_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_date(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(
            prompt_loras("x <lora:a:0.5>, <lyco:b> <notalora:c>"),
            vec!["a (0.5)".to_owned(), "b (1)".to_owned()]
        );
    }
}
