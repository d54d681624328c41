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

/// A wait as people read it, in its two largest units: `45s`, `4m 10s`, `11d 13h`.
pub(crate) fn span(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (big, small) = match s {
        0..60 => return format!("{s}s"),
        60..3600 => ((s / 60, "m"), (s % 60, "s")),
        3600..86_400 => ((s / 3600, "h"), (s % 3600 / 60, "m")),
        _ => ((s / 86_400, "d"), (s % 86_400 / 3600, "h")),
    };
    if small.0 == 0 {
        format!("{}{}", big.0, big.1)
    } else {
        format!("{}{} {}{}", big.0, big.1, small.0, small.1)
    }
}

/// Unicode's bidirectional embeddings, overrides and isolates (and the marks of the Arabic and
/// left/right directions): invisible, they reorder the text around them, so a reply could show
/// `ok` where it says `ko`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text from outside as a page shows it: the bidirectional controls become visible escapes
/// (`\u{202e}`), so no text reorders what follows it; the rest is kept.
pub(crate) fn without_bidi_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_bidi_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if is_bidi_control(c) => out.push_str(&unicode_escape(c)),
            c => out.push(c),
        }
    }
    out.into()
}

/// `\u{202e}`: how [`printable`] and [`without_bidi_controls`] show a character they escape.
fn unicode_escape(c: char) -> String {
    format!("\\u{{{:x}}}", c as u32)
}

/// Text from outside (a CSV cell, an API error, a reply) as a terminal may show it: control
/// characters become visible escapes (`\x1b`, `\n`), so that none moves the cursor, clears
/// the screen or retitles the window, and neither do the bidirectional controls reorder it.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
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
            c if c.is_control() || is_bidi_control(c) => out.push_str(&unicode_escape(c)),
            c => out.push(c),
        }
    }
    out.into()
}

/// Text of several lines from outside (a list of problems quoting CSV cells) made printable
/// line by line: its line breaks stay, every other control character becomes an escape.
pub(crate) fn printable_lines(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| (c.is_control() && c != '\n') || is_bidi_control(c))
    {
        return text.into();
    }
    text.split('\n')
        .map(printable)
        .collect::<Vec<_>>()
        .join("\n")
        .into()
}

/// A data cell (CSV) as written: escaped like [`printable`] when it goes to a terminal, where
/// a person reads it, and kept as it is for a file or a pipe, where a program reads the data.
pub(crate) fn cell(text: &str, to_terminal: bool) -> std::borrow::Cow<'_, str> {
    if to_terminal {
        printable(text)
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidirectional_controls_are_shown_not_obeyed() {
        assert_eq!(
            printable("\u{202e}desrever\u{202c} ok"),
            "\\u{202e}desrever\\u{202c} ok"
        );
        assert_eq!(printable_lines("a\n\u{2067}b"), "a\n\\u{2067}b");
        assert_eq!(without_bidi_controls("Olá\n\u{200f}x"), "Olá\n\\u{200f}x");
        assert_eq!(without_bidi_controls("مرحبا, Ana"), "مرحبا, Ana");
    }

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
    fn waits_read_well() {
        let d = std::time::Duration::from_secs;
        assert_eq!(span(d(45)), "45s");
        assert_eq!(span(d(300)), "5m");
        assert_eq!(span(d(250)), "4m 10s");
        assert_eq!(span(d(999_999)), "11d 13h");
    }

    #[test]
    fn lines_keep_their_breaks() {
        assert_eq!(printable_lines("a\x1b[2J\nb\r"), "a\\x1b[2J\nb\\r");
        assert_eq!(cell("a\x07", false), "a\x07");
        assert_eq!(cell("a\x07", true), "a\\x07");
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
