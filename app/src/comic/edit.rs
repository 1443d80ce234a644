//! Edits of a story script's text that keep everything else as written (comments, blank lines,
//! spelling): the app's pickers set `preset:` and `layout:`, character cards get a photo, and
//! dragging a panel moves its line among the panel lines.

use super::script::parse;
use std::path::Path;

/// Splits `text` into lines and remembers whether it ended with a newline.
fn lines_of(text: &str) -> (Vec<String>, bool) {
    (
        text.lines().map(str::to_owned).collect(),
        text.ends_with('\n'),
    )
}

fn join(lines: &[String], trailing_newline: bool) -> String {
    let mut out = lines.join("\n");
    if trailing_newline && !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The index of the `---` line (the end of the settings), if any.
fn separator(lines: &[String]) -> Option<usize> {
    lines.iter().position(|l| l.trim() == "---")
}

/// Whether a header line is the setting `key` (`key: value`, any case).
fn is_setting(line: &str, key: &str) -> bool {
    line.split_once(':')
        .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(key))
}

/// Sets the header setting `key` (`preset`, `layout`, `size`) to `value`, or removes it
/// (`None`). A new setting goes before the first character card (or the `---` line, or at the
/// top of a script without one).
pub fn set_setting(text: &str, key: &str, value: Option<&str>) -> String {
    let (mut lines, trailing) = lines_of(text);
    let end = separator(&lines).unwrap_or(lines.len());
    let existing = lines.iter().take(end).position(|l| is_setting(l, key));
    match (existing, value) {
        (Some(at), Some(value)) => lines[at] = format!("{key}: {value}"),
        (Some(at), None) => {
            lines.remove(at);
        }
        (None, Some(value)) => {
            let at = lines
                .iter()
                .take(end)
                .position(|l| {
                    l.trim_start()
                        .get(..9)
                        .is_some_and(|h| h.eq_ignore_ascii_case("character"))
                })
                .unwrap_or(end);
            lines.insert(at, format!("{key}: {value}"));
        }
        (None, None) => {}
    }
    join(&lines, trailing || text.is_empty())
}

/// Sets (or with `None` removes) the `| photo:` of character `name`'s card. `None` when the
/// script has no card for `name`.
pub fn set_photo(text: &str, name: &str, photo: Option<&Path>) -> Option<String> {
    let (mut lines, trailing) = lines_of(text);
    let end = separator(&lines).unwrap_or(lines.len());
    let lower = name.to_lowercase();
    let at = lines.iter().take(end).position(|line| {
        let Some((key, _)) = line.split_once(':') else {
            return false;
        };
        let key = key.trim();
        key.get(..9)
            .is_some_and(|h| h.eq_ignore_ascii_case("character"))
            && key
                .get(9..)
                .is_some_and(|n| n.trim().to_lowercase() == lower)
    })?;
    let line = lines[at].clone();
    let (head, value) = line.split_once(':')?;
    let description = match value.to_ascii_lowercase().rfind("| photo:") {
        Some(cut) => value.get(..cut).unwrap_or(value),
        None => value,
    };
    let mut rebuilt = format!("{}: {}", head.trim_end(), description.trim());
    if let Some(photo) = photo {
        rebuilt.push_str(&format!(" | photo: {}", photo.display()));
    }
    lines[at] = rebuilt;
    Some(join(&lines, trailing))
}

/// Moves panel `from` (0-based, in story order) to position `to`; the panel lines trade places
/// and every other line stays where it is. `None` when the script does not parse or an index
/// is out of range.
pub fn move_panel(text: &str, from: usize, to: usize) -> Option<String> {
    let story = parse(text).ok()?;
    let slots: Vec<usize> = story.panels.iter().map(|p| p.line - 1).collect();
    if from >= slots.len() || to >= slots.len() {
        return None;
    }
    let (mut lines, trailing) = lines_of(text);
    let mut contents: Vec<String> = slots
        .iter()
        .map(|&i| lines.get(i).cloned().unwrap_or_default())
        .collect();
    let moved = contents.remove(from);
    contents.insert(to, moved);
    for (slot, content) in slots.iter().zip(contents) {
        if let Some(line) = lines.get_mut(*slot) {
            *line = content;
        }
    }
    Some(join(&lines, trailing))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "// comment\npreset: clay\ncharacter Mia: a girl | photo: a.jpg\n---\n[Mia] one # A\n\n[NC] two\nthree # C\n";

    #[test]
    fn settings_are_replaced_added_and_removed() {
        let text = set_setting(SCRIPT, "preset", Some("ink"));
        assert!(text.contains("preset: ink\n") && !text.contains("clay"));
        let text = set_setting(&text, "layout", Some("manga-3"));
        assert_eq!(parse(&text).unwrap().layout.as_deref(), Some("manga-3"));
        assert!(text.find("layout").unwrap() < text.find("character").unwrap());
        let text = set_setting(&text, "preset", None);
        assert_eq!(parse(&text).unwrap().preset, None);
    }

    #[test]
    fn photos_are_written_into_the_card() {
        let text = set_photo(SCRIPT, "mia", Some(Path::new("/p/b.png"))).unwrap();
        let story = parse(&text).unwrap();
        assert_eq!(story.characters[0].description, "a girl");
        assert_eq!(
            story.characters[0].photo.as_deref(),
            Some(Path::new("/p/b.png"))
        );
        let text = set_photo(&text, "Mia", None).unwrap();
        assert_eq!(parse(&text).unwrap().characters[0].photo, None);
        assert!(set_photo(SCRIPT, "Leo", None).is_none());
    }

    #[test]
    fn moving_a_panel_keeps_the_other_lines() {
        let text = move_panel(SCRIPT, 2, 0).unwrap();
        let prompts: Vec<String> = parse(&text)
            .unwrap()
            .panels
            .into_iter()
            .map(|p| p.prompt)
            .collect();
        assert_eq!(prompts, ["three", "[Mia] one", "two"]);
        assert!(text.starts_with("// comment\n") && text.contains("\n\n"));
        assert!(move_panel(SCRIPT, 3, 0).is_none());
    }
}
