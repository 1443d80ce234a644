//! Errors of the preset library. The app tells a few apart: [`PresetError::Conflict`] becomes a
//! "replace it?" question, [`PresetError::MissingModel`] offers the catalog download.

use std::fmt;
use std::path::PathBuf;

/// What a save, import or export would overwrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Existing {
    /// A user preset file with the same id.
    UserPreset(PathBuf),
    /// A built-in preset with the same id (saving would override it).
    BuiltIn,
    /// Some other file (an export target).
    File(PathBuf),
}

/// Which part of a preset a missing model file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelRole {
    /// The base checkpoint.
    Base,
    /// A LoRA.
    Lora,
    /// The image tagger for automatic captions.
    Tagger,
}

impl ModelRole {
    /// "base model", "LoRA", "image tagger".
    pub fn label(self) -> &'static str {
        match self {
            ModelRole::Base => "base model",
            ModelRole::Lora => "LoRA",
            ModelRole::Tagger => "image tagger",
        }
    }
}

/// An error of the preset library or of preset resolution.
#[derive(Debug)]
pub enum PresetError {
    /// A preset file that does not parse or validate.
    Invalid {
        /// The file (or "built-in clay.toml").
        origin: String,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The operation would overwrite something; ask the user, then retry with overwrite.
    Conflict {
        /// The preset id.
        id: String,
        /// What is in the way.
        existing: Existing,
    },
    /// No preset with this id.
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// Built-in presets cannot be deleted (only a user preset that overrides one).
    BuiltInReadOnly {
        /// The id.
        id: String,
    },
    /// A model file the preset needs is not in the library.
    MissingModel {
        /// The preset.
        preset: String,
        /// What the file is for.
        role: ModelRole,
        /// Catalog id to download, when the preset names one (and the catalog knows it).
        catalog_id: Option<String>,
        /// One line about the catalog entry (name, id, URL, size), when known.
        download: Option<String>,
        /// The names looked for.
        hints: Vec<String>,
        /// The folders searched.
        searched: Vec<PathBuf>,
    },
    /// A `<lora:name:w>` tag whose name matches no LoRA file.
    UnknownLora {
        /// The name in the tag.
        name: String,
        /// LoRA names in the library that look alike.
        close: Vec<String>,
        /// The folders searched.
        searched: Vec<PathBuf>,
    },
    /// Reading or writing a file failed.
    Io {
        /// What was being done ("cannot write preset").
        action: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Anything else, as a sentence.
    Other(String),
}

fn folders(searched: &[PathBuf]) -> String {
    if searched.is_empty() {
        return "no model folders are set".to_owned();
    }
    let list: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
    format!("searched {}", list.join(", "))
}

impl fmt::Display for PresetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PresetError::Invalid {
                origin,
                line,
                column,
                message,
            } => match (line, column) {
                (Some(line), Some(column)) => write!(
                    f,
                    "invalid preset: {message} (line {line}, column {column}): {origin}"
                ),
                (Some(line), None) => {
                    write!(f, "invalid preset: {message} (line {line}): {origin}")
                }
                _ => write!(f, "invalid preset: {message}: {origin}"),
            },
            PresetError::Conflict { id, existing } => match existing {
                Existing::UserPreset(path) => write!(
                    f,
                    "a preset with id {id:?} already exists: {}",
                    path.display()
                ),
                Existing::BuiltIn => write!(
                    f,
                    "{id:?} is a built-in preset; saving would replace it with your version"
                ),
                Existing::File(path) => {
                    write!(f, "the file already exists: {}", path.display())
                }
            },
            PresetError::NotFound { id } => write!(f, "no preset with id {id:?}"),
            PresetError::BuiltInReadOnly { id } => {
                write!(f, "{id:?} is a built-in preset and cannot be deleted")
            }
            PresetError::MissingModel {
                preset,
                role,
                catalog_id,
                download,
                hints,
                searched,
            } => {
                let role = role.label();
                let names = hints.join(", ");
                write!(f, "preset {preset:?} needs its {role} ({names}), not found")?;
                match (download, catalog_id) {
                    (Some(download), _) => write!(f, "; download {download}")?,
                    (None, Some(id)) => write!(f, "; catalog id {id} (unknown to this Kiln)")?,
                    (None, None) => {}
                }
                write!(f, " ({})", folders(searched))
            }
            PresetError::UnknownLora {
                name,
                close,
                searched,
            } => {
                write!(f, "no LoRA named {name:?} in the model library")?;
                if !close.is_empty() {
                    write!(f, "; did you mean {}?", close.join(", "))?;
                }
                write!(f, " ({})", folders(searched))
            }
            PresetError::Io {
                action,
                path,
                source,
            } => write!(f, "{action} ({source}): {}", path.display()),
            PresetError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for PresetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PresetError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl PresetError {
    /// An I/O error with what was being done and the path.
    pub fn io(action: &str, path: &std::path::Path, source: std::io::Error) -> Self {
        PresetError::Io {
            action: action.to_owned(),
            path: path.to_path_buf(),
            source,
        }
    }
}
