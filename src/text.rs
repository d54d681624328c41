//! Words for people: counts with the right plural, and long values cut to fit.

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

#[cfg(test)]
mod tests {
    use super::*;

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
