//! Where each key and value of the campaign file is written, by key path (`send.concurrency`,
//! `messages[2].text`), so that errors found after parsing still name a line and a column. The
//! index is filled from the one parse of the file (`yaml.rs`), which keeps every mark.

use std::collections::HashMap;

/// A 1-based line and column (the column counts characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Where one value is written: its key (none for a list item or the document) and the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub key: Option<Pos>,
    pub value: Pos,
    /// A block scalar (`|`, `>`): its text starts on the line after `value`.
    pub block: bool,
}

/// Which part of a `key: value` pair a position names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spot {
    Key,
    Value,
}

/// Every key path of a campaign file and where it is written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Places {
    map: HashMap<String, Place>,
}

impl Places {
    pub(crate) fn insert(&mut self, path: String, place: Place) {
        self.map.insert(path, place);
    }

    pub(crate) fn get(&self, path: &str) -> Option<&Place> {
        self.map.get(path)
    }

    /// The line where `path` is written, or where the deepest part of it that exists is.
    pub(crate) fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(place) = self.map.get(p) {
                return Some(place.key.unwrap_or(place.value).line);
            }
            p = parent_of(p)?;
        }
    }

    /// The line and column of `path`'s key or value. A value written on the lines below its key
    /// is pointed at by its key. A path that is not written gives the line of its nearest
    /// ancestor that is, without a column.
    pub(crate) fn position(&self, path: &str, spot: Spot) -> Option<(usize, Option<usize>)> {
        let Some(place) = self.map.get(path) else {
            return self.line_of(parent_of(path)?).map(|line| (line, None));
        };
        let at = match (spot, place.key) {
            (Spot::Key, Some(key)) => key,
            (Spot::Value, Some(key)) if place.value.line != key.line || place.block => key,
            _ => place.value,
        };
        Some((at.line, Some(at.column)))
    }
}

/// `a.b[2]` → `a.b`, `a.b` → `a`, `a` → none.
fn parent_of(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    (cut > 0).then(|| &path[..cut])
}

/// `a` + `b` → `a.b`; at the top, `b`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::yaml;

    const Y: &str = "version: 1\nname: x\nsend:\n  # comment\n  concurrency: 8\nmessages:\n  - type: text\n    text: hi\n  - type: buttons\n    text: q\n    buttons:\n      - { title: Yes, type: payload, value: y }\n      - title: No\n        type: url\n        value: z\n";

    fn places(text: &str) -> Places {
        yaml::read(text).expect("test YAML parses").places
    }

    #[test]
    fn finds_keys() {
        let p = places(Y);
        assert_eq!(p.line_of("name"), Some(2));
        assert_eq!(p.line_of("send.concurrency"), Some(5));
        assert_eq!(p.line_of("messages[0]"), Some(7));
        assert_eq!(p.line_of("messages[0].text"), Some(8));
        assert_eq!(p.line_of("messages[1].text"), Some(10));
        assert_eq!(p.line_of("messages[1].buttons[0].value"), Some(12));
        assert_eq!(p.line_of("messages[1].buttons[1].value"), Some(15));
        assert_eq!(p.line_of("nothing.here"), None);
    }

    #[test]
    fn counts_only_the_lists_own_items() {
        let y = "messages:\n- type: buttons\n  buttons:\n    - { title: a, type: url, value: b }\n    - { title: c, type: url, value: d }\n- type: media\n  media: gif\n- type: cards\n  cards:\n    - title: x\n      buttons: [{ title: o, type: url, value: v }]\n- type: text\n  text: hi\n";
        let p = places(y);
        assert_eq!(p.line_of("messages[1].media"), Some(7));
        assert_eq!(p.line_of("messages[0].buttons[1]"), Some(5));
        assert_eq!(p.line_of("messages[2].cards[0].buttons[0].type"), Some(11));
        assert_eq!(p.line_of("messages[3].text"), Some(13));
    }

    #[test]
    fn finds_columns() {
        let p = places(Y);
        assert_eq!(
            p.position("send.concurrency", Spot::Key),
            Some((5, Some(3)))
        );
        assert_eq!(
            p.position("send.concurrency", Spot::Value),
            Some((5, Some(16)))
        );
        assert_eq!(
            p.position("messages[1].text", Spot::Value),
            Some((10, Some(11)))
        );
        assert_eq!(
            p.position("messages[0].type", Spot::Key),
            Some((7, Some(5)))
        );
        assert_eq!(p.position("messages[1]", Spot::Value), Some((9, Some(5))));
        assert_eq!(
            p.position("messages[1].buttons[0].type", Spot::Value),
            Some((12, Some(29)))
        );
        assert_eq!(
            p.position("messages[1].buttons[1].type", Spot::Key),
            Some((14, Some(9)))
        );
        // A value written below its key: the key's column.
        assert_eq!(p.position("send", Spot::Value), Some((3, Some(1))));
        // A key that is not there: its parent's line.
        assert_eq!(p.position("send.rate", Spot::Key), Some((3, None)));
        let flow = places("days: [mon, \"tue\", 5]\n");
        assert_eq!(flow.position("days[2]", Spot::Value), Some((1, Some(20))));
        assert_eq!(flow.position("days[0]", Spot::Value), Some((1, Some(8))));
    }
}
