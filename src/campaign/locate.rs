//! Finds the line of a key path (`send.concurrency`, `messages[2].text`) in the campaign's YAML
//! text, and the column of its key or value, so that errors found after parsing still name a
//! line.

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
pub(crate) fn line_of(source: &str, path: &str) -> Option<usize> {
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

/// Which part of a `key: value` line a position names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spot {
    Key,
    Value,
}

/// The 1-based line and column of `path`'s key or value. A path that cannot be found gives the
/// line of its nearest ancestor that can, without a column.
pub(crate) fn position(source: &str, path: &str, spot: Spot) -> Option<(usize, Option<usize>)> {
    if let Some(line) = line_of(source, path) {
        let text = source.lines().nth(line - 1)?;
        let last = steps(path).pop();
        return Some((line, last.and_then(|step| column(text, &step, spot))));
    }
    let mut p = path;
    while let Some(parent) = parent_of(p) {
        if let Some(line) = line_of(source, parent) {
            return Some((line, None));
        }
        p = parent;
    }
    None
}

/// `a.b[2]` → `a.b`, `a.b` → `a`, `a` → none.
fn parent_of(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    (cut > 0).then(|| &path[..cut])
}

/// The 1-based column of the step's key (or of the value after it) on `line`.
fn column(line: &str, step: &Step<'_>, spot: Spot) -> Option<usize> {
    let at = match step {
        Step::Key(k) => {
            let (key_at, value_at) = find_key(line, k)?;
            match spot {
                Spot::Key => key_at,
                // A value written on the lines below: point at the key.
                Spot::Value if value_at >= line.len() || line[value_at..].starts_with('#') => {
                    key_at
                }
                Spot::Value => value_at,
            }
        }
        Step::Index(n) => {
            let t = line.trim_start();
            if let Some(item) = t.strip_prefix("- ") {
                line.len() - item.trim_start().len()
            } else {
                flow_item(line, *n)?
            }
        }
    };
    Some(line[..at].chars().count() + 1)
}

/// Where key `k` starts on `line`, and where the value after its colon starts (byte offsets).
fn find_key(line: &str, k: &str) -> Option<(usize, usize)> {
    for (i, _) in line.match_indices(k) {
        let before = line[..i].chars().next_back();
        let after = &line[i + k.len()..];
        let rest = match before {
            Some(q @ ('"' | '\'')) => after.strip_prefix(q).and_then(|r| r.strip_prefix(':')),
            None | Some(' ' | '{' | ',' | '-' | '\t') => after.strip_prefix(':'),
            _ => None,
        };
        let Some(rest) = rest else { continue };
        if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            continue;
        }
        let key_at = match before {
            Some('"' | '\'') => i - 1,
            _ => i,
        };
        let value_at = line.len() - rest.trim_start().len();
        return Some((key_at, value_at));
    }
    None
}

/// The byte offset of the `n`-th element of the first flow sequence (`[a, b, c]`) on `line`.
fn flow_item(line: &str, n: usize) -> Option<usize> {
    let open = line.find('[')?;
    let (mut depth, mut quote, mut seen) = (0usize, None::<char>, 0usize);
    let mut start = open + 1;
    for (i, c) in line.char_indices().skip_while(|(i, _)| *i <= open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') if depth == 0 => break,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                if seen == n {
                    break;
                }
                seen += 1;
                start = i + 1;
            }
            _ => {}
        }
    }
    (seen == n).then(|| start + (line[start..].len() - line[start..].trim_start().len()))
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

    #[test]
    fn finds_columns() {
        assert_eq!(
            position(Y, "send.concurrency", Spot::Key),
            Some((5, Some(3)))
        );
        assert_eq!(
            position(Y, "send.concurrency", Spot::Value),
            Some((5, Some(16)))
        );
        assert_eq!(
            position(Y, "messages[1].text", Spot::Value),
            Some((10, Some(11)))
        );
        assert_eq!(
            position(Y, "messages[0].type", Spot::Key),
            Some((7, Some(5)))
        );
        assert_eq!(position(Y, "messages[1]", Spot::Value), Some((9, Some(5))));
        assert_eq!(
            position(Y, "messages[1].buttons[0].type", Spot::Value),
            Some((12, Some(29)))
        );
        assert_eq!(
            position(Y, "messages[1].buttons[1].type", Spot::Key),
            Some((14, Some(9)))
        );
        // A value written below its key: the key's column.
        assert_eq!(position(Y, "send", Spot::Value), Some((3, Some(1))));
        // A key that is not there: its parent's line.
        assert_eq!(position(Y, "send.rate", Spot::Key), Some((3, None)));
        let flow = "days: [mon, \"tue\", 5]\n";
        assert_eq!(position(flow, "days[2]", Spot::Value), Some((1, Some(20))));
        assert_eq!(position(flow, "days[0]", Spot::Value), Some((1, Some(8))));
    }
}
