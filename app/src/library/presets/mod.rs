//! Style presets (issue 6): one TOML file plus a thumbnail each. Built-ins come from the
//! repository's `presets/` folder, embedded into the binary; user presets live in
//! `<config dir>/presets/` and override built-ins by id.
//!
//! - [`schema`]: the file format (schema 1) and its checks; errors name the file and line.
//! - [`store`]: listing, save / delete / import / export, thumbnails.
//! - [`resolve`]: a preset + prompt (+ photo) + model library → a [`kiln_inference::Recipe`].
//! - [`lookup`]: finding models by name hints, `<lora:name:w>` tags, `--lora FILE:WEIGHT`.
//! - [`caption`]: automatic captions of photos (WD14 tagger).
//!
//! For the app's presets panel: [`PresetStore::list`] (cards: `name(language)`,
//! `thumbnail_png`), [`PresetList::search`], [`preset_from_recipe`] + [`PresetStore::save`]
//! ("save current settings"), [`PresetStore::delete`] / `import` / `export`, and
//! [`resolve_with_caption`] for "apply to the form" (no photo) and "run on this photo".

pub mod caption;
pub mod error;
pub mod from_recipe;
pub mod lookup;
pub mod resolve;
pub mod schema;
pub mod store;
pub mod template;

pub use error::{Existing, ModelRole, PresetError};
pub use from_recipe::preset_from_recipe;
pub use lookup::{ModelLibrary, merge_loras, parse_lora_arg, resolve_prompt_loras};
pub use resolve::{PresetWarning, ResolveRequest, Resolved, resolve, resolve_with_caption};
pub use schema::{
    AutoCaption, ControlKind, ControlNetSpec, ImageSettings, LocalizedText, ModelSpec, Preset,
    PresetLora, parse_preset,
};
pub use store::{
    PresetEntry, PresetIssue, PresetList, PresetSource, PresetStore, load_preset_file,
    make_thumbnail,
};

#[cfg(test)]
mod tests;
