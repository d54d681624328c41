//! Finds the line of a key path (`send.concurrency`, `messages[2].text`) in the campaign's YAML
//! text, so that errors found after parsing still name a line.

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            if let Ok(i) = r[..end].parse() {
                out.push(Step::Index(i));
            }
            rest = &r[end + 1..];
        }
    }
    out
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// The 1-based line where `path` is written, or the deepest part of it that exists.
pub fn line_of(source: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = source.lines().collect();
    // The region we search: lines [start, end) holding children indented more than `parent`.
    let (mut start, mut end) = (0usize, lines.len());
    let mut parent: isize = -1;
    let mut found = None;
    for step in steps(path) {
        let mut hit = None;
        let mut seen = 0usize;
        // The indentation of the list's own dashes: deeper dashes belong to nested lists.
        let mut list_indent = None;
        for (i, &line) in lines.iter().enumerate().take(end).skip(start) {
            if !is_content(line) {
                continue;
            }
            let ind = indent(line) as isize;
            let t = line.trim_start();
            let dash = t.starts_with("- ") || t == "-";
            // A list may sit at its key's own indentation (`key:` then `- item`).
            let item_at_key_level = ind == parent && dash && matches!(step, Step::Index(_));
            if ind <= parent && i > start && !item_at_key_level {
                break;
            }
            match step {
                Step::Key(k) => {
                    // A key at this level: `key:` or, inside a list item, `- key:`.
                    let body = t.strip_prefix("- ").unwrap_or(t);
                    let body_ind = ind + (t.len() - body.len()) as isize;
                    if body_ind > parent
                        && (body.starts_with(&format!("{k}:"))
                            || body.starts_with(&format!("\"{k}\":")))
                    {
                        hit = Some((i, body_ind));
                        break;
                    }
                    // Flow mappings on one line: `{ title: x, value: y }`.
                    if body.contains('{') && body.contains(&format!("{k}:")) {
                        return Some(i + 1);
                    }
                }
                Step::Index(n) => {
                    if i == start && found.is_some() {
                        // The parent key's own line: `key: [a, b]` is a flow sequence.
                        if t.split_once(':')
                            .is_some_and(|(_, v)| v.trim_start().starts_with('['))
                        {
                            return Some(i + 1);
                        }
                        continue;
                    }
                    if dash {
                        let at = *list_indent.get_or_insert(ind);
                        if ind == at {
                            if seen == n {
                                hit = Some((i, ind));
                                break;
                            }
                            seen += 1;
                        }
                    }
                }
            }
        }
        let (i, ind) = hit?;
        found = Some(i + 1);
        parent = ind;
        start = i;
        end = (i + 1..lines.len())
            .find(|&j| {
                is_content(lines[j])
                    && (indent(lines[j]) as isize) <= ind
                    && !starts_item_at(lines[j], ind, &step)
            })
            .unwrap_or(lines.len());
        if let Step::Index(_) = step {
            // Keys of the item sit after the dash; the dash line itself may hold the first key.
            parent = ind;
        }
    }
    found
}

fn starts_item_at(line: &str, ind: isize, step: &Step<'_>) -> bool {
    // Keys of a list item may sit at the same indentation as the dash of the next item.
    matches!(step, Step::Key(_))
        && indent(line) as isize == ind
        && line.trim_start().starts_with("- ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: &str = "version: 1\nname: x\nsend:\n  # comment\n  concurrency: 8\nmessages:\n  - type: text\n    text: hi\n  - type: buttons\n    text: q\n    buttons:\n      - { title: Yes, type: payload, value: y }\n      - title: No\n        type: url\n        value: z\n";

    #[test]
    fn finds_keys() {
        assert_eq!(line_of(Y, "name"), Some(2));
        assert_eq!(line_of(Y, "send.concurrency"), Some(5));
        assert_eq!(line_of(Y, "messages[0]"), Some(7));
        assert_eq!(line_of(Y, "messages[0].text"), Some(8));
        assert_eq!(line_of(Y, "messages[1].text"), Some(10));
        assert_eq!(line_of(Y, "messages[1].buttons[0].value"), Some(12));
        assert_eq!(line_of(Y, "messages[1].buttons[1].value"), Some(15));
        assert_eq!(line_of(Y, "nothing.here"), None);
    }

    #[test]
    fn counts_only_the_lists_own_items() {
        let y = "messages:\n- type: buttons\n  buttons:\n    - { title: a, type: url, value: b }\n    - { title: c, type: url, value: d }\n- type: media\n  media: gif\n- type: cards\n  cards:\n    - title: x\n      buttons: [{ title: o, type: url, value: v }]\n- type: text\n  text: hi\n";
        assert_eq!(line_of(y, "messages[1].media"), Some(7));
        assert_eq!(line_of(y, "messages[0].buttons[1]"), Some(5));
        assert_eq!(line_of(y, "messages[2].cards[0].buttons[0].type"), Some(11));
        assert_eq!(line_of(y, "messages[3].text"), Some(13));
    }
}
