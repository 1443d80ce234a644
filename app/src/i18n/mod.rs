//! UI translations: every visible string is looked up by key (`tr(lang, "generate.run")`) in
//! `assets/i18n/en.toml` and `assets/i18n/zh-CN.toml`, both bundled into the binary and parsed
//! once. Also installs the bundled CJK font so Chinese labels and prompts render.

mod fonts;

pub use fonts::{CJK_FONT, install_fonts};

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::OnceLock;

/// A UI language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English (the fallback for missing keys).
    #[default]
    En,
    /// Simplified Chinese.
    ZhCn,
}

impl Lang {
    /// Every language, in the order the settings list them.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::ZhCn];

    /// The BCP 47 code, also the translation file's name: `en`, `zh-CN`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// Parses a code (`en`, `zh-CN`; case-insensitive, `zh` and `zh_CN` accepted).
    pub fn from_code(code: &str) -> Option<Lang> {
        match code.to_ascii_lowercase().replace('_', "-").as_str() {
            "en" | "en-us" | "en-gb" => Some(Lang::En),
            "zh" | "zh-cn" | "zh-hans" => Some(Lang::ZhCn),
            _ => None,
        }
    }

    /// The language's own name, shown in the language picker whatever the UI language is.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::ZhCn => "简体中文",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("../../../assets/i18n/en.toml"),
            Lang::ZhCn => include_str!("../../../assets/i18n/zh-CN.toml"),
        }
    }

    fn index(self) -> usize {
        match self {
            Lang::En => 0,
            Lang::ZhCn => 1,
        }
    }
}

type Table = HashMap<String, String>;

/// Flattens nested TOML tables into `section.key` → text.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Table) -> Result<(), String> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(text) => {
                out.insert(full, text.clone());
            }
            toml::Value::Table(inner) => flatten(&full, inner, out)?,
            _ => return Err(format!("{full}: expected a string or a table")),
        }
    }
    Ok(())
}

/// Parses one translation file into its flat table.
fn parse(source: &str) -> Result<Table, String> {
    let table: toml::Table = toml::from_str(source).map_err(|e| e.to_string())?;
    let mut out = Table::new();
    flatten("", &table, &mut out)?;
    Ok(out)
}

fn tables() -> &'static [Table; 2] {
    static TABLES: OnceLock<[Table; 2]> = OnceLock::new();
    TABLES.get_or_init(|| {
        // A broken bundled file is a bug the unit tests catch; at run time show keys instead.
        Lang::ALL.map(|lang| parse(lang.source()).unwrap_or_default())
    })
}

/// The text for `key` in `lang`; English when the language lacks it, the key itself when
/// neither has it (so a missing string is visible, never a blank).
pub fn tr(lang: Lang, key: &str) -> &str {
    let tables = tables();
    let found = tables
        .get(lang.index())
        .and_then(|t| t.get(key))
        .or_else(|| tables.first().and_then(|t| t.get(key)));
    match found {
        Some(text) => text.as_str(),
        None => key,
    }
}

/// [`tr`] with `{name}` placeholders replaced by the given values.
pub fn tr_args(lang: Lang, key: &str, args: &[(&str, &dyn Display)]) -> String {
    let mut text = tr(lang, key).to_owned();
    for (name, value) in args {
        text = text.replace(&format!("{{{name}}}"), &value.to_string());
    }
    text
}

/// A count in a sentence: `{key}_one` when `count` is 1 (English "1 image"), else `key`
/// ("3 images"); `{count}` is filled in. Chinese has the same text for both.
pub fn tr_count(lang: Lang, key: &str, count: usize) -> String {
    let one = format!("{key}_one");
    let chosen = if count == 1 && tr(lang, &one) != one {
        one.as_str()
    } else {
        key
    };
    tr_args(lang, chosen, &[("count", &count)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn both_languages_have_the_same_keys_and_no_empty_values() {
        let en = parse(Lang::En.source()).unwrap();
        let zh = parse(Lang::ZhCn.source()).unwrap();
        let en_keys: BTreeSet<_> = en.keys().collect();
        let zh_keys: BTreeSet<_> = zh.keys().collect();
        let only_en: Vec<_> = en_keys.difference(&zh_keys).collect();
        let only_zh: Vec<_> = zh_keys.difference(&en_keys).collect();
        assert!(only_en.is_empty(), "missing in zh-CN.toml: {only_en:?}");
        assert!(only_zh.is_empty(), "missing in en.toml: {only_zh:?}");
        for (lang, table) in [(Lang::En, &en), (Lang::ZhCn, &zh)] {
            for (key, text) in table {
                assert!(!text.trim().is_empty(), "{}: {key} is empty", lang.code());
            }
        }
    }

    #[test]
    fn placeholders_match_between_languages() {
        let en = parse(Lang::En.source()).unwrap();
        let zh = parse(Lang::ZhCn.source()).unwrap();
        let placeholders = |text: &str| -> BTreeSet<String> {
            text.split('{')
                .skip(1)
                .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
                .collect()
        };
        for (key, text) in &en {
            let other = zh.get(key).map(String::as_str).unwrap_or_default();
            assert_eq!(placeholders(text), placeholders(other), "{key}");
        }
    }

    #[test]
    fn lookup_falls_back_to_the_key() {
        assert_eq!(tr(Lang::ZhCn, "no.such.key"), "no.such.key");
        assert_eq!(tr(Lang::En, "nav.generate"), "Generate");
        assert_eq!(tr(Lang::ZhCn, "nav.generate"), "生成");
        assert_eq!(
            tr_args(
                Lang::En,
                "generate.tokens",
                &[("count", &3), ("limit", &75)]
            ),
            "3 / 75"
        );
    }

    #[test]
    fn counts_use_the_singular_for_one() {
        assert_eq!(tr_count(Lang::En, "gallery.count", 1), "1 image");
        assert_eq!(tr_count(Lang::En, "gallery.count", 3), "3 images");
        assert_eq!(tr_count(Lang::ZhCn, "gallery.count", 1), "1 张图像");
    }

    #[test]
    fn codes_round_trip() {
        for lang in Lang::ALL {
            assert_eq!(Lang::from_code(lang.code()), Some(lang));
        }
        assert_eq!(Lang::from_code("zh_CN"), Some(Lang::ZhCn));
        assert_eq!(Lang::from_code("fr"), None);
    }
}
