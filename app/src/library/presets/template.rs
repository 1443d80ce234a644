//! Prompt templates: `{prompt}` is replaced by the user's prompt (or an automatic caption);
//! without either, the placeholder and the separator next to it disappear, so
//! `"{prompt}, (claymation style:1.2), clay"` becomes `"(claymation style:1.2), clay"`.

/// The one placeholder a template has.
pub const PLACEHOLDER: &str = "{prompt}";

/// Checks a template: exactly one `{prompt}` and no other `{name}` placeholder.
pub fn check_template(template: &str) -> Result<(), String> {
    let count = template.matches(PLACEHOLDER).count();
    if count == 0 {
        return Err(format!(
            "the prompt template must contain {PLACEHOLDER} (where the user's prompt goes), \
             e.g. \"{PLACEHOLDER}, watercolor\""
        ));
    }
    if count > 1 {
        return Err(format!(
            "the prompt template contains {PLACEHOLDER} {count} times; use it once"
        ));
    }
    let rest = template.replace(PLACEHOLDER, "");
    for (start, c) in rest.char_indices() {
        if c != '{' {
            continue;
        }
        let Some(end) = rest[start..].find('}') else {
            continue;
        };
        let inner = &rest[start + 1..start + end];
        if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "unknown placeholder {{{inner}}} in the prompt template (only {PLACEHOLDER} \
                 is supported)"
            ));
        }
    }
    Ok(())
}

/// Splits at commas outside `()`, `[]` and `<>`.
fn top_level_parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '<' => depth += 1,
            ')' | ']' | '>' => depth = (depth - 1).max(0),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Fills the template. A non-empty `prompt` (trimmed) replaces `{prompt}` as it is. An empty one
/// removes the comma-separated part that held the placeholder when nothing else but brackets,
/// weights and spaces is left in it, so no dangling commas remain.
pub fn fill_template(template: &str, prompt: &str) -> String {
    let prompt = prompt.trim();
    if !prompt.is_empty() {
        return template.replace(PLACEHOLDER, prompt).trim().to_owned();
    }
    if !template.contains(PLACEHOLDER) {
        return template.trim().to_owned();
    }
    let kept: Vec<String> = top_level_parts(template)
        .into_iter()
        .filter_map(|part| {
            if !part.contains(PLACEHOLDER) {
                let trimmed = part.trim();
                return (!trimmed.is_empty()).then(|| trimmed.to_owned());
            }
            let rest = part.replace(PLACEHOLDER, "");
            let has_words = rest
                .chars()
                .any(|c| c.is_alphabetic() || (c.is_ascii_digit() && !weight_only(&rest)));
            has_words.then(|| collapse_spaces(&rest))
        })
        .collect();
    kept.join(", ")
}

/// `(:1.2)`, `[]`, `( )`: brackets, colons, a number and spaces only.
fn weight_only(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_digit() || " \t()[]:.+-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_removes_the_placeholder_cleanly() {
        let t = "{prompt}, (claymation style:1.2), clay";
        assert_eq!(
            fill_template(t, "a fox"),
            "a fox, (claymation style:1.2), clay"
        );
        assert_eq!(fill_template(t, "  "), "(claymation style:1.2), clay");
        assert_eq!(fill_template("watercolor, {prompt}", ""), "watercolor");
        assert_eq!(fill_template("a, {prompt}, b", ""), "a, b");
        assert_eq!(fill_template("a, ({prompt}:1.3), b", ""), "a, b");
        assert_eq!(
            fill_template("a photo of {prompt} made of clay", ""),
            "a photo of made of clay"
        );
        assert_eq!(fill_template("{prompt}", ""), "");
        // Commas inside weights stay.
        assert_eq!(
            fill_template("(red, blue:1.1), {prompt}", ""),
            "(red, blue:1.1)"
        );
    }

    #[test]
    fn checks_placeholders() {
        assert!(check_template("{prompt}, clay").is_ok());
        assert!(check_template("clay").unwrap_err().contains("{prompt}"));
        assert!(
            check_template("{prompt} {prompt}")
                .unwrap_err()
                .contains("2 times")
        );
        assert!(
            check_template("{prompt}, {style}")
                .unwrap_err()
                .contains("{style}")
        );
        // Braces that are not placeholders are fine.
        assert!(check_template("{prompt}, {a|b}").is_ok());
    }
}
