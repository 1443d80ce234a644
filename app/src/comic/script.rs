//! Story scripts: the plain-text form of a comic page (issue 10), parsed into a [`Story`].
//!
//! ```text
//! // Lines starting with // are comments; blank lines are ignored.
//! preset: clay
//! size: 768x512
//! layout: grid-2x2
//! character Mia: a girl with a red scarf and short black hair | photo: mia.jpg
//! ---
//! [Mia] wakes up in a small room # Morning again.
//! [Mia] walks to the bakery # "Smells good!"
//! [NC] the empty street at dusk # Later...
//! ```
//!
//! Settings and character cards come first, then a `---` line, then one panel per line. In a
//! panel line the text after the first `#` is the annotation: a quoted part at its end
//! (`"…"`, `“…”`, `「…」` or `『…』`) is spoken in a speech bubble, the rest is the caption.
//! `[Name]` puts a character in the panel (and stands for its description in the prompt);
//! `[NC]` marks a panel without characters. A panel that names nobody and is not `[NC]` shows
//! every character. This follows StoryDiffusion's prompt conventions (`FORMATS.md` §9), except
//! that the caption starts at the first `#`, so a caption may contain `#`.

use super::layout::{MAX_PANELS, Template};
use std::fmt;
use std::path::{Path, PathBuf};

/// A parsed story script.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Story {
    /// Style preset name (`preset:`), if given.
    pub preset: Option<String>,
    /// Panel size in pixels (`size: WxH`), if given.
    pub size: Option<(u32, u32)>,
    /// Page layout template name (`layout:`), if given; always a name [`Template::by_name`] knows.
    pub layout: Option<String>,
    /// Character cards, in script order.
    pub characters: Vec<Character>,
    /// Panels, in script order (at least one).
    pub panels: Vec<Panel>,
}

/// A character card: `character Name: description | photo: path`.
#[derive(Clone, Debug, PartialEq)]
pub struct Character {
    /// The name used in `[Name]` tags (matched without regard to case).
    pub name: String,
    /// What the character looks like; replaces `[Name]` in panel prompts.
    pub description: String,
    /// Reference photo for the face, as written (see [`Story::resolve_photos`]).
    pub photo: Option<PathBuf>,
}

/// One panel line.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// 1-based line number in the script.
    pub line: usize,
    /// The panel's text, with `[NC]` removed and `[Name]` tags kept where they stand (spelled as
    /// on the character card). [`Story::panel_prompt`] turns it into the model's prompt.
    pub prompt: String,
    /// Caption box text.
    pub caption: Option<String>,
    /// The characters in this panel: those named with `[Name]` (in order of first mention), or
    /// every character when the panel names none and is not `[NC]`; empty for `[NC]`.
    pub characters: Vec<String>,
    /// `[NC]`: a panel without the characters.
    pub no_characters: bool,
    /// Speech bubble text (the quoted end of the annotation).
    pub speech: Option<String>,
}

/// Why a script did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, in words.
    pub message: String,
}

fn error(line: usize, message: impl Into<String>) -> ScriptError {
    ScriptError {
        line,
        message: message.into(),
    }
}

/// Smallest and largest panel side in pixels.
pub const SIZE_RANGE: std::ops::RangeInclusive<u32> = 64..=4096;

/// Quote pairs that mark speech at the end of an annotation, in the order
/// [`Story::to_script`] tries them.
const QUOTES: [(char, char); 4] = [('"', '"'), ('“', '”'), ('「', '」'), ('『', '』')];

/// The reserved tag for panels without characters.
const NO_CHARACTERS_TAG: &str = "NC";

/// Parses a story script. Errors carry the 1-based line number.
pub fn parse(text: &str) -> Result<Story, ScriptError> {
    let mut story = Story::default();
    let mut in_panels = false;
    let mut separator_line = 0;
    let mut last_line = 0;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text); // A byte-order mark.
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        last_line = line_number;
        let line = raw.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if !in_panels {
            if line == "---" {
                in_panels = true;
                separator_line = line_number;
            } else {
                parse_header_line(&mut story, line, line_number)?;
            }
            continue;
        }
        if line == "---" {
            return Err(error(line_number, "a second '---' line"));
        }
        let panel = parse_panel(&story, line, line_number)?;
        let capacity = match &story.layout {
            Some(name) => Template::by_name(name).map_or(MAX_PANELS, |t| t.capacity()),
            None => MAX_PANELS,
        };
        if story.panels.len() >= capacity {
            let holder = match &story.layout {
                Some(name) => format!("layout '{name}'"),
                None => "a page".to_owned(),
            };
            return Err(error(
                line_number,
                format!("too many panels: {holder} holds at most {capacity}"),
            ));
        }
        story.panels.push(panel);
    }
    if !in_panels {
        return Err(error(
            last_line.max(1),
            "no '---' line: put one between the settings and character cards and the panels",
        ));
    }
    if story.panels.is_empty() {
        return Err(error(
            separator_line,
            "no panels: write one panel per line after '---'",
        ));
    }
    Ok(story)
}

/// A settings line or a character card (before `---`).
fn parse_header_line(story: &mut Story, line: &str, number: usize) -> Result<(), ScriptError> {
    if line.starts_with('[') {
        return Err(error(
            number,
            "a panel before the '---' line (settings and characters come first)",
        ));
    }
    let Some((key, value)) = line.split_once(':') else {
        return Err(error(
            number,
            format!("expected 'key: value' or 'character Name: description', got '{line}'"),
        ));
    };
    let key = key.trim();
    let value = value.trim();
    if let Some(name) = strip_prefix_ignore_case(key, "character") {
        // `character Mia` (a space after the keyword), not `characters`.
        if name.starts_with(char::is_whitespace) || name.is_empty() {
            return parse_character(story, name.trim(), value, number);
        }
    }
    let set = |slot: &mut Option<String>, what: &str| -> Result<String, ScriptError> {
        if slot.is_some() {
            return Err(error(number, format!("'{what}' is given twice")));
        }
        if value.is_empty() {
            return Err(error(number, format!("'{what}' has no value")));
        }
        *slot = Some(value.to_owned());
        Ok(value.to_owned())
    };
    match key.to_ascii_lowercase().as_str() {
        "preset" => {
            set(&mut story.preset, "preset")?;
        }
        "layout" => {
            if story.layout.is_some() {
                return Err(error(number, "'layout' is given twice"));
            }
            let name = value;
            let Some(template) = Template::by_name(name) else {
                return Err(error(
                    number,
                    format!(
                        "unknown layout '{name}' (layouts: {})",
                        Template::NAMES.join(", ")
                    ),
                ));
            };
            story.layout = Some(template.name().to_owned());
        }
        "size" => {
            if story.size.is_some() {
                return Err(error(number, "'size' is given twice"));
            }
            story.size = Some(parse_size(value).map_err(|m| error(number, m))?);
        }
        _ => {
            return Err(error(
                number,
                format!(
                    "unknown setting '{key}' (expected preset, size, layout or character Name)"
                ),
            ));
        }
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// `768x512` (also `768×512`, `768 x 512`): multiples of 8 within [`SIZE_RANGE`].
fn parse_size(value: &str) -> Result<(u32, u32), String> {
    let bad = || format!("bad size '{value}': expected WIDTHxHEIGHT, e.g. 768x512");
    let (w, h) = value
        .split_once(['x', 'X', '×'])
        .ok_or_else(bad)
        .map(|(w, h)| (w.trim(), h.trim()))?;
    let width: u32 = w.parse().map_err(|_| bad())?;
    let height: u32 = h.parse().map_err(|_| bad())?;
    for side in [width, height] {
        if !SIZE_RANGE.contains(&side) {
            return Err(format!(
                "bad size '{value}': each side must be {} to {} pixels",
                SIZE_RANGE.start(),
                SIZE_RANGE.end()
            ));
        }
        if side % 8 != 0 {
            return Err(format!(
                "bad size '{value}': each side must be a multiple of 8"
            ));
        }
    }
    Ok((width, height))
}

/// Whether `name` can be a character name: the text of a `[Name]` tag.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a character needs a name: 'character Name: description'".into());
    }
    if name.eq_ignore_ascii_case(NO_CHARACTERS_TAG) {
        return Some("'NC' is reserved for panels without characters".into());
    }
    if let Some(c) = name.chars().find(|c| "[]#:|\"".contains(*c)) {
        return Some(format!("a character name cannot contain '{c}': '{name}'"));
    }
    None
}

fn parse_character(
    story: &mut Story,
    name: &str,
    value: &str,
    number: usize,
) -> Result<(), ScriptError> {
    if let Some(problem) = name_problem(name) {
        return Err(error(number, problem));
    }
    if let Some(other) = story
        .characters
        .iter()
        .find(|c| c.name.to_lowercase() == name.to_lowercase())
    {
        return Err(error(
            number,
            format!("character '{}' is defined twice", other.name),
        ));
    }
    // `| photo:` splits off the photo; a `|` elsewhere stays in the description.
    let (description, photo) = match find_photo(value) {
        Some((at, path_start)) => {
            let path = value.get(path_start..).unwrap_or("").trim();
            if path.is_empty() {
                return Err(error(number, format!("'{name}': 'photo:' has no path")));
            }
            (
                value.get(..at).unwrap_or("").trim(),
                Some(PathBuf::from(path)),
            )
        }
        None => (value, None),
    };
    if description.is_empty() {
        return Err(error(
            number,
            format!("'{name}' has no description: 'character {name}: what they look like'"),
        ));
    }
    story.characters.push(Character {
        name: name.to_owned(),
        description: description.to_owned(),
        photo,
    });
    Ok(())
}

/// The byte offsets of the last `| photo:` (start of the `|`, start of the path).
fn find_photo(value: &str) -> Option<(usize, usize)> {
    let lower = value.to_lowercase();
    if lower.len() != value.len() {
        // Lower-casing changed byte lengths (rare scripts): match the exact spelling only.
        let at = value.rfind('|')?;
        let rest = value.get(at + 1..)?;
        let trimmed = rest.trim_start();
        let after = trimmed.strip_prefix("photo:")?;
        return Some((at, value.len() - after.len()));
    }
    let mut search_end = value.len();
    while let Some(at) = lower.get(..search_end)?.rfind('|') {
        let rest = lower.get(at + 1..)?;
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed.strip_prefix("photo:") {
            return Some((at, value.len() - after.len()));
        }
        search_end = at;
    }
    None
}

/// A `[…]` tag found in a panel's text.
enum Tag {
    NoCharacters,
    Character(usize),
}

/// Classifies the text inside brackets: `NC`, a character name, or not a tag (`None`: prompt
/// syntax such as `[cat:dog:0.5]`). An unknown plain name is an error.
fn classify_tag(story: &Story, inside: &str, number: usize) -> Result<Option<Tag>, ScriptError> {
    let name = inside.trim();
    if name.is_empty() || name.contains([':', '|', '[', '(', '<']) {
        return Ok(None);
    }
    if name.eq_ignore_ascii_case(NO_CHARACTERS_TAG) {
        return Ok(Some(Tag::NoCharacters));
    }
    let lower = name.to_lowercase();
    if let Some(index) = story
        .characters
        .iter()
        .position(|c| c.name.to_lowercase() == lower)
    {
        return Ok(Some(Tag::Character(index)));
    }
    let known = if story.characters.is_empty() {
        "no characters are defined".to_owned()
    } else {
        let names: Vec<&str> = story.characters.iter().map(|c| c.name.as_str()).collect();
        format!("characters: {}", names.join(", "))
    };
    Err(error(
        number,
        format!("unknown character '{name}' ({known}; [NC] marks a panel without characters)"),
    ))
}

fn parse_panel(story: &Story, line: &str, number: usize) -> Result<Panel, ScriptError> {
    let (body, annotation) = match line.split_once('#') {
        Some((body, annotation)) => (body, Some(annotation.trim())),
        None => (line, None),
    };
    let (caption, speech) = annotation.map(split_speech).unwrap_or((None, None));

    // Walk the tags: keep character tags (canonical spelling), drop [NC].
    let mut prompt = String::new();
    let mut named: Vec<String> = Vec::new();
    let mut no_characters = false;
    let mut rest = body;
    while let Some(open) = rest.find('[') {
        let (before, from_open) = rest.split_at(open);
        prompt.push_str(before);
        let Some(close) = from_open.find(']') else {
            prompt.push_str(from_open);
            rest = "";
            break;
        };
        let inside = from_open.get(1..close).unwrap_or("");
        let whole = from_open.get(..=close).unwrap_or("");
        match classify_tag(story, inside, number)? {
            None => prompt.push_str(whole),
            Some(Tag::NoCharacters) => no_characters = true,
            Some(Tag::Character(index)) => {
                if let Some(character) = story.characters.get(index) {
                    prompt.push('[');
                    prompt.push_str(&character.name);
                    prompt.push(']');
                    if !named.contains(&character.name) {
                        named.push(character.name.clone());
                    }
                }
            }
        }
        rest = from_open.get(close + 1..).unwrap_or("");
    }
    prompt.push_str(rest);
    let prompt = prompt.split_whitespace().collect::<Vec<_>>().join(" ");

    if no_characters && !named.is_empty() {
        return Err(error(
            number,
            format!(
                "[NC] marks a panel without characters, but it names {}",
                named.join(", ")
            ),
        ));
    }
    if prompt.is_empty() {
        return Err(error(
            number,
            "empty panel: write what the panel shows before any '#'",
        ));
    }
    let characters = if no_characters {
        Vec::new()
    } else if named.is_empty() {
        story.characters.iter().map(|c| c.name.clone()).collect()
    } else {
        named
    };
    Ok(Panel {
        line: number,
        prompt,
        caption,
        characters,
        no_characters,
        speech,
    })
}

/// Splits an annotation into caption and speech: a quoted part at the very end is speech.
fn split_speech(annotation: &str) -> (Option<String>, Option<String>) {
    let non_empty = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    };
    for (open, close) in QUOTES {
        let Some(inner_end) = annotation.strip_suffix(close) else {
            continue;
        };
        if let Some(start) = inner_end.rfind(open) {
            let caption = inner_end.get(..start).unwrap_or("");
            let speech = inner_end.get(start + open.len_utf8()..).unwrap_or("");
            return (non_empty(caption), non_empty(speech));
        }
    }
    (non_empty(annotation), None)
}

impl Story {
    /// The character card called `name` (without regard to case).
    pub fn character(&self, name: &str) -> Option<&Character> {
        let lower = name.to_lowercase();
        self.characters
            .iter()
            .find(|c| c.name.to_lowercase() == lower)
    }

    /// The prompt the model gets for `panel`: each `[Name]` tag replaced by that character's
    /// description. A panel that names nobody but shows every character (not `[NC]`) gets the
    /// descriptions in front, joined with " and ", then ", " and the panel's text. `[NC]` panels
    /// and stories without characters get the panel's text as it is.
    pub fn panel_prompt(&self, panel: &Panel) -> String {
        let mut text = panel.prompt.clone();
        let mut named_any = false;
        for character in &self.characters {
            let tag = format!("[{}]", character.name);
            if text.contains(&tag) {
                named_any = true;
                text = text.replace(&tag, &character.description);
            }
        }
        if !named_any && !panel.no_characters && !self.characters.is_empty() {
            let descriptions: Vec<&str> = self
                .characters
                .iter()
                .map(|c| c.description.as_str())
                .collect();
            text = format!("{}, {text}", descriptions.join(" and "));
        }
        text
    }

    /// The page layout: the named one, else the plain one for the panel count (`None` only
    /// for stories [`parse`] would not return: no panels, or more than a page holds).
    pub fn template(&self) -> Option<Template> {
        match &self.layout {
            Some(name) => Template::by_name(name),
            None => Template::for_count(self.panels.len()),
        }
    }

    /// Makes relative photo paths relative to `base` (the script's folder).
    pub fn resolve_photos(&mut self, base: &Path) {
        for character in &mut self.characters {
            if let Some(photo) = &mut character.photo
                && photo.is_relative()
            {
                *photo = base.join(&*photo);
            }
        }
    }

    /// Writes the story back as a script that [`parse`] reads to the same story (the app's
    /// editor uses this after reordering panels).
    pub fn to_script(&self) -> String {
        let mut out = String::new();
        if let Some(preset) = &self.preset {
            out.push_str(&format!("preset: {preset}\n"));
        }
        if let Some((width, height)) = self.size {
            out.push_str(&format!("size: {width}x{height}\n"));
        }
        if let Some(layout) = &self.layout {
            out.push_str(&format!("layout: {layout}\n"));
        }
        for character in &self.characters {
            out.push_str(&format!(
                "character {}: {}",
                character.name, character.description
            ));
            if let Some(photo) = &character.photo {
                out.push_str(&format!(" | photo: {}", photo.display()));
            }
            out.push('\n');
        }
        out.push_str("---\n");
        for panel in &self.panels {
            if panel.no_characters {
                out.push_str("[NC] ");
            }
            out.push_str(&panel.prompt);
            if panel.caption.is_some() || panel.speech.is_some() {
                out.push_str(" #");
                if let Some(caption) = &panel.caption {
                    out.push(' ');
                    out.push_str(caption);
                }
                if let Some(speech) = &panel.speech {
                    let (open, close) = QUOTES
                        .into_iter()
                        .find(|(o, c)| !speech.contains(*o) && !speech.contains(*c))
                        .unwrap_or(QUOTES[0]);
                    out.push_str(&format!(" {open}{speech}{close}"));
                }
            }
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Story {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_script())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "\
// A morning story.
preset: clay
size: 768x512
layout: grid-2x2
character Mia: a girl with a red scarf and short black hair | photo: mia.jpg
character Leo: a boy with round glasses

---
[Mia] wakes up in a small room # Morning again.
[Mia] meets [leo] at the bakery # \"Smells good!\"
[NC] the empty street at dusk # Later...
a picnic in the park # That evening. “Let's eat!”
";

    fn parse_err(text: &str) -> ScriptError {
        parse(text).expect_err("the script should not parse")
    }

    #[test]
    fn settings_characters_and_panels() {
        let story = parse(EXAMPLE).unwrap();
        assert_eq!(story.preset.as_deref(), Some("clay"));
        assert_eq!(story.size, Some((768, 512)));
        assert_eq!(story.layout.as_deref(), Some("grid-2x2"));
        assert_eq!(story.characters.len(), 2);
        assert_eq!(story.characters[0].name, "Mia");
        assert_eq!(
            story.characters[0].description,
            "a girl with a red scarf and short black hair"
        );
        assert_eq!(story.characters[0].photo, Some(PathBuf::from("mia.jpg")));
        assert_eq!(story.characters[1].photo, None);
        let lines: Vec<usize> = story.panels.iter().map(|p| p.line).collect();
        assert_eq!(lines, [9, 10, 11, 12]);
        assert_eq!(story.template().unwrap().name(), "grid-2x2");
        let plain = parse("---\na\nb\nc\n").unwrap();
        assert_eq!(plain.template().unwrap().name(), "three-rows");
    }

    #[test]
    fn captions_and_speech() {
        let story = parse(EXAMPLE).unwrap();
        let p = &story.panels;
        assert_eq!(p[0].caption.as_deref(), Some("Morning again."));
        assert_eq!(p[0].speech, None);
        assert_eq!(p[1].caption, None);
        assert_eq!(p[1].speech.as_deref(), Some("Smells good!"));
        assert_eq!(p[2].caption.as_deref(), Some("Later..."));
        assert_eq!(p[3].caption.as_deref(), Some("That evening."));
        assert_eq!(p[3].speech.as_deref(), Some("Let's eat!"));
        // A quote inside the caption (not at its end) stays caption; `#` may follow the first.
        let story = parse("---\na door # The sign said \"Open\" all day #2\n").unwrap();
        assert_eq!(
            story.panels[0].caption.as_deref(),
            Some("The sign said \"Open\" all day #2")
        );
        assert_eq!(story.panels[0].speech, None);
        // No annotation at all, and an empty one.
        let story = parse("---\na door\na window #   \n").unwrap();
        assert_eq!(story.panels[0].caption, None);
        assert_eq!(story.panels[1].caption, None);
    }

    #[test]
    fn names_nc_and_prompts() {
        let story = parse(EXAMPLE).unwrap();
        let p = &story.panels;
        assert_eq!(p[0].characters, ["Mia"]);
        assert_eq!(p[0].prompt, "[Mia] wakes up in a small room");
        // `[leo]` matches without regard to case and is kept in the card's spelling.
        assert_eq!(p[1].characters, ["Mia", "Leo"]);
        assert_eq!(p[1].prompt, "[Mia] meets [Leo] at the bakery");
        assert!(p[2].no_characters);
        assert!(p[2].characters.is_empty());
        assert_eq!(p[2].prompt, "the empty street at dusk");
        // Names nobody, not [NC]: every character.
        assert!(!p[3].no_characters);
        assert_eq!(p[3].characters, ["Mia", "Leo"]);

        assert_eq!(
            story.panel_prompt(&p[0]),
            "a girl with a red scarf and short black hair wakes up in a small room"
        );
        assert_eq!(
            story.panel_prompt(&p[1]),
            "a girl with a red scarf and short black hair meets a boy with round glasses at the bakery"
        );
        assert_eq!(story.panel_prompt(&p[2]), "the empty street at dusk");
        assert_eq!(
            story.panel_prompt(&p[3]),
            "a girl with a red scarf and short black hair and a boy with round glasses, a picnic in the park"
        );
    }

    #[test]
    fn prompt_syntax_in_brackets_is_not_a_tag() {
        let story =
            parse("character Mia: a girl\n---\n[Mia] in a [cat:dog:0.5] costume, <lora:x:0.7>\n")
                .unwrap();
        assert_eq!(story.panels[0].characters, ["Mia"]);
        assert_eq!(
            story.panel_prompt(&story.panels[0]),
            "a girl in a [cat:dog:0.5] costume, <lora:x:0.7>"
        );
    }

    #[test]
    fn cjk_text() {
        let script = "\
preset: clay
character 小美: 戴红围巾的短发女孩
character ミオ: 青いリボンの女の子
---
[小美] 在小房间里醒来 # 又是早晨。
[ミオ] がパン屋へ歩く # 「いい匂い！」
[NC] 黄昏的空街 # 后来……“走吧”
";
        let story = parse(script).unwrap();
        let p = &story.panels;
        assert_eq!(p[0].characters, ["小美"]);
        assert_eq!(p[0].caption.as_deref(), Some("又是早晨。"));
        assert_eq!(
            story.panel_prompt(&p[0]),
            "戴红围巾的短发女孩 在小房间里醒来"
        );
        assert_eq!(p[1].characters, ["ミオ"]);
        assert_eq!(p[1].caption, None);
        assert_eq!(p[1].speech.as_deref(), Some("いい匂い！"));
        assert!(p[2].no_characters);
        assert_eq!(p[2].caption.as_deref(), Some("后来……"));
        assert_eq!(p[2].speech.as_deref(), Some("走吧"));
        assert_eq!(p[2].line, 7);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "character Mia: a girl\n---\n[Bob] waves\n",
                3,
                "unknown character 'Bob'",
            ),
            (
                "character Mia: a girl\n\ncharacter mia: another girl\n---\nx\n",
                3,
                "defined twice",
            ),
            ("---\n\n# only a caption\n", 3, "empty panel"),
            ("character Mia: a girl\n---\n[NC]\n", 3, "empty panel"),
            (
                "character Mia: a girl\n---\n[NC] [Mia] waves\n",
                3,
                "[NC] marks a panel without characters",
            ),
            ("size: 770x512\n---\nx\n", 1, "multiple of 8"),
            ("size: 768\n---\nx\n", 1, "bad size"),
            ("size: 8x8\n---\nx\n", 1, "64 to 4096"),
            ("size: 99999999999x512\n---\nx\n", 1, "bad size"),
            ("layout: zigzag\n---\nx\n", 1, "unknown layout 'zigzag'"),
            (
                "layout: two-rows\n---\na\nb\n// comment\nc\n",
                6,
                "layout 'two-rows' holds at most 2",
            ),
            ("---\n1\n2\n3\n4\n5\n6\n7\n", 8, "a page holds at most 6"),
            ("colour: red\n---\nx\n", 1, "unknown setting 'colour'"),
            ("preset: clay\npreset: ink\n---\nx\n", 2, "given twice"),
            ("preset clay\n---\nx\n", 1, "expected 'key: value'"),
            ("character : a girl\n---\nx\n", 1, "needs a name"),
            ("character NC: a girl\n---\nx\n", 1, "reserved"),
            ("character Mia:\n---\nx\n", 1, "no description"),
            ("character Mia: a girl | photo:\n---\nx\n", 1, "no path"),
            ("preset: clay\n[Mia] waves\n", 2, "before the '---' line"),
            ("preset: clay\n\n", 2, "no '---' line"),
            ("preset: clay\n---\n\n", 2, "no panels"),
            ("---\na\n---\nb\n", 3, "second '---'"),
        ];
        for (script, line, needle) in cases {
            let e = parse_err(script);
            assert_eq!(e.line, *line, "{script:?}: {e}");
            assert!(e.message.contains(needle), "{script:?}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
        }
        assert_eq!(parse_err("").line, 1);
        assert_eq!(parse_err("\u{feff}preset: clay\r\n---\r\n").line, 2);
    }

    #[test]
    fn photo_split_keeps_other_bars() {
        let story =
            parse("character Mia: [red|blue] scarf | Photo: faces/mia 1.png\n---\n[Mia] waves\n")
                .unwrap();
        let mia = &story.characters[0];
        assert_eq!(mia.description, "[red|blue] scarf");
        assert_eq!(mia.photo, Some(PathBuf::from("faces/mia 1.png")));
        let mut story = story;
        story.resolve_photos(Path::new("/stories"));
        assert_eq!(
            story.characters[0].photo,
            Some(PathBuf::from("/stories/faces/mia 1.png"))
        );
    }

    #[test]
    fn script_round_trips() {
        let story = parse(EXAMPLE).unwrap();
        let again = parse(&story.to_script()).unwrap();
        // Line numbers differ (comments and blank lines are gone); everything else is kept.
        let strip = |s: &Story| {
            let mut s = s.clone();
            for p in &mut s.panels {
                p.line = 0;
            }
            s
        };
        assert_eq!(strip(&again), strip(&story));
        // Speech containing straight quotes is written with other quotes.
        let mut story = story;
        story.panels[0].speech = Some("He said \"no\"".into());
        let again = parse(&story.to_script()).unwrap();
        assert_eq!(again.panels[0].speech.as_deref(), Some("He said \"no\""));
        assert_eq!(again.panels[0].caption.as_deref(), Some("Morning again."));
    }

    #[test]
    fn the_docs_example_parses() {
        let text = include_str!("../../../docs/examples/story.txt");
        let story = parse(text).unwrap();
        assert_eq!(story.panels.len(), 4);
        assert!(story.characters.iter().all(|c| c.photo.is_none()));
    }
}
