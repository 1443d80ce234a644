//! User settings: a TOML file in the OS config folder (`directories::ProjectDirs`), written via
//! temp file + rename. Every field has a default (`#[serde(default)]`), so files from older or
//! newer versions load: unknown keys are ignored, missing ones take their defaults.

use crate::library::fsutil::atomic_write;
use anyhow::Context;
use kiln_inference::Recipe;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable that overrides [`config_dir`] (tests, portable installs).
pub const CONFIG_DIR_ENV: &str = "KILN_CONFIG_DIR";
/// Environment variable that overrides [`data_dir`] (tests, portable installs).
pub const DATA_DIR_ENV: &str = "KILN_DATA_DIR";
/// File name of the settings in [`config_dir`].
pub const SETTINGS_FILE: &str = "settings.toml";

/// Language of the user interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Language {
    /// English.
    #[default]
    #[serde(rename = "en")]
    English,
    /// Simplified Chinese (简体中文).
    #[serde(rename = "zh-CN")]
    SimplifiedChinese,
}

impl Language {
    /// Every language, in the order the settings panel lists them.
    pub const ALL: [Language; 2] = [Language::English, Language::SimplifiedChinese];

    /// The language code, as serialized and as the translation files are named: `en`, `zh-CN`.
    pub fn code(&self) -> &'static str {
        match self {
            Language::English => "en",
            Language::SimplifiedChinese => "zh-CN",
        }
    }

    /// The language by its code (exact, as [`Language::code`] writes it).
    pub fn from_code(code: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The language's own name ("English", "简体中文"), shown untranslated in language pickers.
    pub fn native_name(&self) -> &'static str {
        match self {
            Language::English => "English",
            Language::SimplifiedChinese => "简体中文",
        }
    }
}

/// Colour theme.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Dark theme (the default).
    #[default]
    Dark,
    /// Light theme.
    Light,
}

impl Theme {
    /// Every theme, in the order the settings panel lists them.
    pub const ALL: [Theme; 2] = [Theme::Dark, Theme::Light];
}

/// Numeric precision of the weights and activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit float: the reference precision (matches diffusers on CPU).
    #[default]
    Fp32,
    /// bfloat16: half the memory, slightly different pixels.
    Bf16,
    /// 8-bit weights (one scale per output channel), bf16 compute: half of bf16's weight
    /// memory, for machines with 8 GiB.
    Int8,
}

impl Precision {
    /// Every precision, in the order the settings panel lists them.
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Bf16, Precision::Int8];
}

/// Where inference runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDevice {
    /// A hardware GPU (through wgpu) when there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The GPU through wgpu (Vulkan, Metal, DX12), even a software one.
    Gpu,
}

impl ComputeDevice {
    /// The inference core's choice.
    pub fn to_core(self) -> kiln_inference::gpu::ComputeDevice {
        match self {
            ComputeDevice::Auto => kiln_inference::gpu::ComputeDevice::Auto,
            ComputeDevice::Cpu => kiln_inference::gpu::ComputeDevice::Cpu,
            ComputeDevice::Gpu => kiln_inference::gpu::ComputeDevice::Wgpu,
        }
    }
}

/// Everything the user sets once and expects to find again next time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Folder where outputs are written.
    pub output_dir: PathBuf,
    /// Folders scanned for models, Kiln's own first; external installs the user added follow.
    pub model_dirs: Vec<PathBuf>,
    /// Interface language.
    pub language: Language,
    /// Colour theme.
    pub theme: Theme,
    /// CPU threads for inference; `None` lets the core decide.
    pub threads: Option<usize>,
    /// Numeric precision.
    pub precision: Precision,
    /// Where the UNet and VAE run.
    pub device: ComputeDevice,
    /// Generation settings last used in the Generate panel (restored at start-up).
    ///
    /// Stored as a JSON string: TOML integers cannot hold seeds above `i64::MAX`. A value that
    /// no longer parses loads as `None` instead of breaking the whole file.
    #[serde(with = "recipe_as_json", skip_serializing_if = "Option::is_none")]
    pub last_recipe: Option<Recipe>,
    /// Live previews while sampling.
    pub previews: bool,
    /// Hugging Face Hub endpoint or mirror for model downloads; `None`: `HF_ENDPOINT`, else
    /// huggingface.co.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub_endpoint: Option<String>,
    /// Proxy for model downloads; `None`: the `HTTPS_PROXY`/`ALL_PROXY` environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            output_dir: default_output_dir(),
            model_dirs: vec![data_dir().join("models")],
            language: Language::default(),
            theme: Theme::default(),
            threads: None,
            precision: Precision::default(),
            device: ComputeDevice::default(),
            last_recipe: None,
            previews: true,
            hub_endpoint: None,
            proxy: None,
        }
    }
}

/// `<OS pictures folder>/Kiln`, else `<home>/Kiln`, else `Kiln` in the current folder.
fn default_output_dir() -> PathBuf {
    let base = directories::UserDirs::new().map(|dirs| {
        dirs.picture_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.home_dir().to_path_buf())
    });
    base.unwrap_or_default().join("Kiln")
}

/// The override in `env` when set and not empty, else the `ProjectDirs` folder, else a
/// `fallback` folder in the current directory (no home directory at all).
fn dir_from(
    env: Option<std::ffi::OsString>,
    pick: fn(&directories::ProjectDirs) -> &Path,
    fallback: &str,
) -> PathBuf {
    if let Some(dir) = env.filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("", "", "Kiln")
        .map(|dirs| pick(&dirs).to_path_buf())
        .unwrap_or_else(|| PathBuf::from(fallback))
}

/// Kiln's config folder: `$KILN_CONFIG_DIR` when set, else the OS one (`~/.config/kiln` on
/// Linux, `%APPDATA%\Kiln\config` on Windows, `~/Library/Application Support/Kiln` on macOS).
pub fn config_dir() -> PathBuf {
    dir_from(
        std::env::var_os(CONFIG_DIR_ENV),
        directories::ProjectDirs::config_dir,
        "kiln-config",
    )
}

/// Kiln's data folder (models, gallery index, caches): `$KILN_DATA_DIR` when set, else the OS
/// one (`~/.local/share/kiln` on Linux, `%APPDATA%\Kiln\data` on Windows).
pub fn data_dir() -> PathBuf {
    dir_from(
        std::env::var_os(DATA_DIR_ENV),
        directories::ProjectDirs::data_dir,
        "kiln-data",
    )
}

/// The settings file: `<config_dir>/settings.toml`.
pub fn settings_path() -> PathBuf {
    config_dir().join(SETTINGS_FILE)
}

impl Settings {
    /// The user's settings from [`settings_path`]. A missing file gives the defaults; a broken
    /// one is renamed to `settings.toml.bad` (so the next save does not destroy it) and gives the
    /// defaults, with a note on stderr. Reads one small file: fine at start-up.
    pub fn load() -> Settings {
        let (settings, warning) = Settings::load_or_default(&settings_path());
        if let Some(warning) = warning {
            eprintln!("kiln: {warning}");
        }
        settings
    }

    /// Like [`Settings::load`] for any path, returning the message to show when the file was
    /// broken (and renamed to `<name>.bad`) or unreadable, instead of printing it.
    pub fn load_or_default(path: &Path) -> (Settings, Option<String>) {
        if !path.exists() {
            return (Settings::default(), None);
        }
        match Settings::load_from(path) {
            Ok(settings) => (settings, None),
            Err(error) => {
                let mut bad = path.as_os_str().to_owned();
                bad.push(".bad");
                let bad = PathBuf::from(bad);
                let warning = match std::fs::rename(path, &bad) {
                    Ok(()) => format!(
                        "{error:#}; using default settings (the old file was kept as {})",
                        bad.display()
                    ),
                    Err(rename_error) => format!(
                        "{error:#}; using default settings (could not rename it: {rename_error})"
                    ),
                };
                (Settings::default(), Some(warning))
            }
        }
    }

    /// Reads settings from a TOML file.
    pub fn load_from(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read settings {}", path.display()))?;
        Settings::from_toml(&text)
            .with_context(|| format!("invalid settings file {}", path.display()))
    }

    /// Parses settings from TOML text.
    pub fn from_toml(text: &str) -> anyhow::Result<Settings> {
        Ok(toml::from_str(text)?)
    }

    /// The settings as TOML text.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("cannot write settings as TOML")
    }

    /// Saves to [`settings_path`] (temp file + rename), creating the folder.
    pub fn save(&self) -> anyhow::Result<()> {
        self.save_to(&settings_path())
    }

    /// Saves to `path` (temp file + rename), creating its folder.
    pub fn save_to(&self, path: &Path) -> anyhow::Result<()> {
        atomic_write(path, self.to_toml()?.as_bytes())
    }
}

/// `last_recipe` as a JSON string inside the TOML file (see [`Settings::last_recipe`]).
mod recipe_as_json {
    use kiln_inference::Recipe;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(recipe: &Option<Recipe>, s: S) -> Result<S::Ok, S::Error> {
        match recipe {
            Some(recipe) => {
                let json = serde_json::to_string(recipe).map_err(serde::ser::Error::custom)?;
                s.serialize_some(&json)
            }
            None => s.serialize_none(),
        }
    }

    /// Accepts the JSON string Kiln writes, or a table (hand-written); anything else is `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Recipe>, D::Error> {
        let value = Option::<toml::Value>::deserialize(d)?;
        Ok(match value {
            Some(toml::Value::String(json)) => serde_json::from_str(&json).ok(),
            Some(table @ toml::Value::Table(_)) => table.try_into().ok(),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_inference::recipe::{InitImage, ModelRef};

    fn custom() -> Settings {
        Settings {
            output_dir: PathBuf::from("/tmp/kiln out/图片"),
            model_dirs: vec![
                PathBuf::from("/a/models"),
                PathBuf::from("/b/ComfyUI/models"),
            ],
            language: Language::SimplifiedChinese,
            theme: Theme::Light,
            threads: Some(6),
            precision: Precision::Bf16,
            device: ComputeDevice::Gpu,
            last_recipe: Some(Recipe {
                model: ModelRef {
                    path: PathBuf::from("/m/dreamshaper_8.safetensors"),
                    hash: Some("879db523c3".into()),
                    family: Some("sd1".into()),
                },
                prompt: "a clay fox, \"quoted\"\nsecond line".into(),
                negative: Some("blurry".into()),
                seed: u64::MAX,
                steps: 30,
                cfg: 6.5,
                init: Some(InitImage {
                    path: PathBuf::from("/x/init.png"),
                    strength: 0.6,
                }),
                ..Recipe::default()
            }),
            previews: false,
            hub_endpoint: Some("https://hf-mirror.com".into()),
            proxy: Some("http://127.0.0.1:3128".into()),
        }
    }

    #[test]
    fn round_trip_through_toml() {
        for settings in [Settings::default(), custom()] {
            let text = settings.to_toml().unwrap();
            assert_eq!(Settings::from_toml(&text).unwrap(), settings, "{text}");
        }
        let text = custom().to_toml().unwrap();
        assert!(text.contains("language = \"zh-CN\""), "{text}");
        assert!(text.contains("theme = \"light\""), "{text}");
        assert!(text.contains("precision = \"bf16\""), "{text}");
    }

    #[test]
    fn round_trip_through_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(SETTINGS_FILE);
        custom().save_to(&path).unwrap();
        assert_eq!(Settings::load_from(&path).unwrap(), custom());
        let (loaded, warning) = Settings::load_or_default(&path);
        assert_eq!(loaded, custom());
        assert_eq!(warning, None);
    }

    #[test]
    fn unknown_and_missing_fields_are_tolerated() {
        let text = "theme = \"light\"\nfuture_option = 3\n[future_table]\nx = 1\n";
        let settings = Settings::from_toml(text).unwrap();
        assert_eq!(settings.theme, Theme::Light);
        assert_eq!(
            settings,
            Settings {
                theme: Theme::Light,
                ..Settings::default()
            }
        );
        assert_eq!(Settings::from_toml("").unwrap(), Settings::default());
    }

    #[test]
    fn unreadable_last_recipe_is_dropped_not_fatal() {
        let settings = Settings::from_toml("last_recipe = \"{not json\"\nthreads = 2\n").unwrap();
        assert_eq!(settings.last_recipe, None);
        assert_eq!(settings.threads, Some(2));
        let table = "[last_recipe]\nprompt = \"hand written\"\nsteps = 12\n";
        let settings = Settings::from_toml(table).unwrap();
        let recipe = settings.last_recipe.unwrap();
        assert_eq!((recipe.prompt.as_str(), recipe.steps), ("hand written", 12));
    }

    #[test]
    fn broken_file_gives_defaults_and_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SETTINGS_FILE);
        std::fs::write(&path, "theme = \"purple\"\n").unwrap();
        let (settings, warning) = Settings::load_or_default(&path);
        assert_eq!(settings, Settings::default());
        assert!(warning.unwrap().contains("settings.toml.bad"));
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("settings.toml.bad")).unwrap(),
            "theme = \"purple\"\n"
        );
        // Missing file: defaults, nothing to report.
        assert_eq!(
            Settings::load_or_default(&path),
            (Settings::default(), None)
        );
    }

    #[test]
    fn language_codes() {
        for language in Language::ALL {
            assert_eq!(Language::from_code(language.code()), Some(language));
        }
        assert_eq!(Language::SimplifiedChinese.code(), "zh-CN");
        assert_eq!(Language::from_code("fr"), None);
    }

    #[test]
    fn dirs_honour_overrides() {
        let dir = dir_from(
            Some("/tmp/kiln-test-config".into()),
            directories::ProjectDirs::config_dir,
            "x",
        );
        assert_eq!(dir, PathBuf::from("/tmp/kiln-test-config"));
        let empty = dir_from(Some("".into()), directories::ProjectDirs::config_dir, "x");
        assert_ne!(empty, PathBuf::from(""));
        assert!(Settings::default().model_dirs[0].ends_with("models"));
        assert!(Settings::default().output_dir.ends_with("Kiln"));
    }
}
