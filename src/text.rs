//! Words for people: counts with the right plural, and text from outside made safe to print.

/// `1 contact`, `2 contacts`, `0 contacts`; a word ending in `y` after a consonant becomes `ies`.
pub(crate) fn count(n: u64, word: &str) -> String {
    format!("{n} {}", plural(n, word))
}

/// The word as it goes with `n`.
pub(crate) fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        return word.to_string();
    }
    match word.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{stem}ies"),
        _ if word.ends_with('s') || word.ends_with("sh") || word.ends_with("ch") => {
            format!("{word}es")
        }
        _ => format!("{word}s"),
    }
}

/// Text from outside (a CSV cell, an API error, a reply) as a terminal may show it: control
/// characters become visible escapes (`\x1b`, `\n`), so that none moves the cursor, clears
/// the screen or retitles the window.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("Olá, Ana"), "Olá, Ana");
        assert_eq!(
            printable("a\x1b]0;owned\x07\x1b[2Jb\n"),
            "a\\x1b]0;owned\\x07\\x1b[2Jb\\n"
        );
        assert_eq!(printable("\u{9b}"), "\\x9b");
    }

    #[test]
    fn plurals() {
        assert_eq!(count(1, "contact"), "1 contact");
        assert_eq!(count(0, "contact"), "0 contacts");
        assert_eq!(count(2, "reply"), "2 replies");
        assert_eq!(count(3, "day"), "3 days");
        assert_eq!(count(2, "retry"), "2 retries");
        assert_eq!(count(2, "process"), "2 processes");
    }
}
