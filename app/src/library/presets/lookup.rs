//! Finding model files in the library: by a preset's name hints (`sd_xl_base_1.0`,
//! `ClayAnimationRedm`), by A1111 LoRA name (`<lora:name:w>` → file stem), and turning a LoRA
//! file into a [`LoraSpec`].
//!
//! The library is what [`crate::library::models::scan_folder`] lists for each model folder;
//! its depth-4 walk covers the usual LoRA sub-folders (`Lora`, `loras`, `models/Lora`,
//! `models/loras`, `LyCORIS`).

use super::error::PresetError;
use crate::library::models::{ModelEntry, ModelFileKind, scan_folder};
use kiln_inference::LoraSpec;
use kiln_inference::io::family::Family;
use std::path::{Path, PathBuf};

/// Most "did you mean" names listed.
const MAX_CLOSE_NAMES: usize = 5;

/// How well an entry matches hints, smaller is better: (contained rather than exact, rank of the
/// hint, name length, path).
type MatchKey<'a> = (usize, usize, usize, &'a Path);

/// The models in a set of folders, for lookups by hint or name.
#[derive(Clone, Debug, Default)]
pub struct ModelLibrary {
    dirs: Vec<PathBuf>,
    entries: Vec<ModelEntry>,
}

/// Lower-case letters and digits only: `SD_XL base-1.0` → `sdxlbase10`.
pub fn normalize_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The file stem of a path (folder name for folders), as A1111 names LoRAs.
fn stem_of(path: &Path) -> String {
    if path.is_dir() {
        return path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Names an entry answers to: its display name and its file stem.
fn names_of(entry: &ModelEntry) -> [String; 2] {
    [entry.name.clone(), stem_of(&entry.path)]
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

impl ModelLibrary {
    /// Scans `dirs` (see [`scan_folder`]); a file reached through two folders is listed once.
    /// Reads headers of every model file: call off the UI thread.
    pub fn scan(dirs: &[PathBuf]) -> Self {
        let mut entries: Vec<ModelEntry> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for dir in dirs {
            for entry in scan_folder(dir) {
                let key = std::fs::canonicalize(&entry.path).unwrap_or_else(|_| entry.path.clone());
                if seen.insert(key) {
                    entries.push(entry);
                }
            }
        }
        ModelLibrary {
            dirs: dirs.to_vec(),
            entries,
        }
    }

    /// A library from entries already scanned (the app keeps them), for `dirs`.
    pub fn from_entries(dirs: Vec<PathBuf>, entries: Vec<ModelEntry>) -> Self {
        ModelLibrary { dirs, entries }
    }

    /// The folders the library was made from.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Every entry.
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The best entry of one of `kinds` for `hints`: an exact name match (ignoring case and
    /// punctuation) before a name containing a hint, earlier hints first; usable entries and
    /// entries of `family` (or of unknown family) only; ties go to the shorter name, then the
    /// path. `None` when nothing matches.
    pub fn find(
        &self,
        kinds: &[ModelFileKind],
        family: Option<Family>,
        hints: &[String],
    ) -> Option<&ModelEntry> {
        let hints: Vec<String> = hints
            .iter()
            .map(|h| normalize_name(h))
            .filter(|h| !h.is_empty())
            .collect();
        let mut best: Option<(MatchKey<'_>, &ModelEntry)> = None;
        for entry in &self.entries {
            if !kinds.contains(&entry.kind) || !entry.usable() {
                continue;
            }
            if let (Some(want), Some(have)) = (family, entry.family)
                && want != have
            {
                continue;
            }
            let names = names_of(entry).map(|n| normalize_name(&n));
            let score = hints.iter().enumerate().find_map(|(rank, hint)| {
                if names.iter().any(|n| n == hint) {
                    Some((0, rank))
                } else if names.iter().any(|n| n.contains(hint.as_str())) {
                    Some((1, rank))
                } else {
                    None
                }
            });
            let Some((quality, rank)) = score else {
                continue;
            };
            let key = (quality, rank, entry.name.len(), entry.path.as_path());
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, entry));
            }
        }
        best.map(|(_, entry)| entry)
    }

    /// The LoRA called `name` (A1111: the file stem, compared ignoring case). Errors list close
    /// names.
    pub fn lora_by_name(&self, name: &str) -> Result<&ModelEntry, PresetError> {
        let wanted = name.trim().to_lowercase();
        let loras = || {
            self.entries
                .iter()
                .filter(|e| e.kind == ModelFileKind::Lora)
        };
        let mut matches: Vec<&ModelEntry> = loras()
            .filter(|e| names_of(e).iter().any(|n| n.to_lowercase() == wanted))
            .collect();
        matches.sort_by_key(|e| (!e.usable(), e.path.clone()));
        if let Some(entry) = matches.first() {
            if let Some(problem) = &entry.problem {
                return Err(PresetError::Other(format!(
                    "LoRA {name:?} cannot be used ({problem}): {}",
                    entry.path.display()
                )));
            }
            return Ok(entry);
        }
        let wanted_normal = normalize_name(&wanted);
        let mut close: Vec<(usize, String)> = loras()
            .map(|e| stem_of(&e.path))
            .map(|stem| {
                let normal = normalize_name(&stem);
                let distance = if !wanted_normal.is_empty()
                    && (normal.contains(&wanted_normal) || wanted_normal.contains(&normal))
                {
                    0
                } else {
                    edit_distance(&wanted_normal, &normal)
                };
                (distance, stem)
            })
            .filter(|(distance, stem)| *distance <= (stem.len().max(wanted.len()) / 3).max(2))
            .collect();
        close.sort();
        close.dedup_by(|a, b| a.1 == b.1);
        Err(PresetError::UnknownLora {
            name: name.to_owned(),
            close: close
                .into_iter()
                .take(MAX_CLOSE_NAMES)
                .map(|(_, n)| n)
                .collect(),
            searched: self.dirs.clone(),
        })
    }
}

/// A [`LoraSpec`] for a LoRA file: name = file stem (as `<lora:name:w>` writes it); the hash
/// is left for the engine, which computes it when it loads the file.
pub fn lora_spec(path: &Path, weight: f32) -> LoraSpec {
    LoraSpec {
        path: path.to_path_buf(),
        weight,
        name: stem_of(path),
        hash: None,
    }
}

/// Parses a `--lora FILE[:WEIGHT]` argument. The weight is after the last `:` when that part is
/// a number (so `C:\loras\clay.safetensors` and `C:\loras\clay.safetensors:0.7` both work);
/// otherwise the whole text is the file and the weight is 1.
pub fn parse_lora_arg(text: &str) -> Result<(PathBuf, f32), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("--lora needs a file (FILE or FILE:WEIGHT)".to_owned());
    }
    if let Some((file, weight)) = text.rsplit_once(':')
        && let Ok(weight) = weight.trim().parse::<f32>()
    {
        if file.is_empty() {
            return Err(format!("--lora {text:?}: the file is missing"));
        }
        if !weight.is_finite() || !(-5.0..=5.0).contains(&weight) {
            return Err(format!(
                "--lora {text:?}: the weight must be between -5 and 5, got {weight}"
            ));
        }
        return Ok((PathBuf::from(file), weight));
    }
    Ok((PathBuf::from(text), 1.0))
}

/// The LoRAs named by `<lora:name:weight>` tags in `prompt`, looked up in `library` (tags stay
/// in the prompt; the engine's prompt parser ignores them). Unknown names are errors listing
/// close names.
pub fn resolve_prompt_loras(
    prompt: &str,
    library: &ModelLibrary,
) -> Result<Vec<LoraSpec>, PresetError> {
    let (_, tags) = kiln_inference::text::prompt::extract_loras(prompt);
    tags.iter()
        .map(|tag| {
            let entry = library.lora_by_name(&tag.name)?;
            Ok(lora_spec(&entry.path, tag.weight))
        })
        .collect()
}

/// Adds `loras` to `list`: a LoRA whose file is already in the list replaces that entry's
/// weight (later sources override earlier ones), others are appended.
pub fn merge_loras(list: &mut Vec<LoraSpec>, loras: impl IntoIterator<Item = LoraSpec>) {
    for lora in loras {
        let key = std::fs::canonicalize(&lora.path).unwrap_or_else(|_| lora.path.clone());
        let existing = list
            .iter_mut()
            .find(|l| std::fs::canonicalize(&l.path).unwrap_or_else(|_| l.path.clone()) == key);
        match existing {
            Some(existing) => existing.weight = lora.weight,
            None => list.push(lora),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: ModelFileKind, family: Option<Family>) -> ModelEntry {
        let path = PathBuf::from(path);
        ModelEntry {
            name: stem_of(&path),
            path,
            kind,
            family,
            size_bytes: 1,
            problem: None,
            hash: None,
        }
    }

    fn library() -> ModelLibrary {
        ModelLibrary::from_entries(
            vec![PathBuf::from("/models")],
            vec![
                entry(
                    "/models/sd_xl_base_1.0_0.9vae.safetensors",
                    ModelFileKind::Checkpoint,
                    Some(Family::Sdxl),
                ),
                entry(
                    "/models/sd_xl_base_1.0.safetensors",
                    ModelFileKind::Checkpoint,
                    Some(Family::Sdxl),
                ),
                entry(
                    "/models/v1-5-pruned.safetensors",
                    ModelFileKind::Checkpoint,
                    Some(Family::Sd1),
                ),
                entry(
                    "/models/Lora/ClayAnimationRedm.safetensors",
                    ModelFileKind::Lora,
                    Some(Family::Sdxl),
                ),
                entry(
                    "/models/Lora/watercolor_v1_sdxl.safetensors",
                    ModelFileKind::Lora,
                    None,
                ),
            ],
        )
    }

    fn hints(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hints_prefer_exact_names_and_respect_kind_and_family() {
        let lib = library();
        let base = lib
            .find(
                &[ModelFileKind::Checkpoint],
                Some(Family::Sdxl),
                &hints(&["SD-XL base 1.0"]),
            )
            .unwrap();
        assert!(base.path.ends_with("sd_xl_base_1.0.safetensors"));
        // Contained, not exact.
        let base = lib
            .find(&[ModelFileKind::Checkpoint], None, &hints(&["xl_base"]))
            .unwrap();
        assert!(
            base.path.ends_with("sd_xl_base_1.0.safetensors"),
            "{base:?}"
        );
        // Family filter.
        assert!(
            lib.find(
                &[ModelFileKind::Checkpoint],
                Some(Family::Sdxl),
                &hints(&["v1-5-pruned"])
            )
            .is_none()
        );
        // Kind filter.
        assert!(
            lib.find(
                &[ModelFileKind::Checkpoint],
                None,
                &hints(&["clayanimationredm"])
            )
            .is_none()
        );
        let lora = lib
            .find(
                &[ModelFileKind::Lora],
                Some(Family::Sdxl),
                &hints(&["watercolor_v1_sdxl"]),
            )
            .unwrap();
        assert!(lora.path.ends_with("watercolor_v1_sdxl.safetensors"));
    }

    #[test]
    fn lora_names_match_ignoring_case_and_suggest_close_ones() {
        let lib = library();
        let found = lib.lora_by_name("clayanimationredm").unwrap();
        assert!(found.path.ends_with("ClayAnimationRedm.safetensors"));
        match lib.lora_by_name("ClayAnimationRed") {
            Err(PresetError::UnknownLora { close, .. }) => {
                assert_eq!(close, ["ClayAnimationRedm"]);
            }
            other => panic!("{other:?}"),
        }
        match lib.lora_by_name("watercolour_v1_sdxl") {
            Err(PresetError::UnknownLora { close, .. }) => {
                assert_eq!(close, ["watercolor_v1_sdxl"]);
            }
            other => panic!("{other:?}"),
        }
        match lib.lora_by_name("zzz") {
            Err(e @ PresetError::UnknownLora { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("\"zzz\"") && text.contains("/models"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lora_args_parse_from_the_last_colon() {
        assert_eq!(
            parse_lora_arg("clay.safetensors").unwrap(),
            (PathBuf::from("clay.safetensors"), 1.0)
        );
        assert_eq!(
            parse_lora_arg("clay.safetensors:0.7").unwrap(),
            (PathBuf::from("clay.safetensors"), 0.7)
        );
        assert_eq!(
            parse_lora_arg(r"C:\loras\clay.safetensors").unwrap(),
            (PathBuf::from(r"C:\loras\clay.safetensors"), 1.0)
        );
        assert_eq!(
            parse_lora_arg(r"C:\loras\clay.safetensors:-0.5").unwrap(),
            (PathBuf::from(r"C:\loras\clay.safetensors"), -0.5)
        );
        assert!(parse_lora_arg("").is_err());
        assert!(parse_lora_arg(":0.5").is_err());
        assert!(
            parse_lora_arg("a.safetensors:9")
                .unwrap_err()
                .contains("between")
        );
    }

    #[test]
    fn merging_replaces_weights_of_the_same_file() {
        let spec = |p: &str, w: f32| LoraSpec {
            path: PathBuf::from(p),
            weight: w,
            name: String::new(),
            hash: None,
        };
        let mut list = vec![spec("/a", 0.8)];
        merge_loras(&mut list, [spec("/b", 1.0), spec("/a", 0.3)]);
        let got: Vec<(String, f32)> = list
            .iter()
            .map(|l| (l.path.display().to_string(), l.weight))
            .collect();
        assert_eq!(got, [("/a".to_string(), 0.3), ("/b".to_string(), 1.0)]);
    }
}
