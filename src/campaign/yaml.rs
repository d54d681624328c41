//! The campaign file's one YAML parse, with the line and column of every key and value.
//!
//! saphyr's parser gives the events; they are counted on their way to saphyr's loader, so that a
//! file nested deeper than [`MAX_NESTING`] is refused before a node is built (or a recursive
//! parser, serde_yaml's, sees it). The loader's nodes keep their marks; one walk over them gives
//! the document as JSON (for the schema check, `shape.rs`), the place of every key path
//! (`locate.rs`) and the look-alike characters of the keys and values (`lookalike.rs`). A
//! syntax error is saphyr's own, with its mark. serde_yaml reads the same text into the typed
//! campaign (`raw.rs`).

use std::borrow::Cow;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, ScalarStyle, Tag, YamlData, YamlLoader};
use saphyr_parser::{Event, Parser, ScanError, Span, SpannedEventReceiver};
use serde_json::{Map, Value as Json};

use super::locate::{Place, Places, Pos, join};
use crate::lookalike::{self, Lookalike};

/// The deepest nesting of YAML collections read; a campaign needs six or so.
pub(crate) const MAX_NESTING: usize = 64;

/// Values read as a template expression rather than as text with template tags: their
/// look-alikes count everywhere but in the expression's string literals.
const EXPRESSIONS: &[&str] = &["contacts.where"];

/// The campaign file, read.
#[derive(Debug, Default)]
pub(crate) struct Read {
    /// The document as JSON, as serde_yaml reads it untyped (an empty file is `null`).
    pub json: Json,
    pub places: Places,
    /// The look-alikes of the keys, of plain values and of the template tags in values, in line
    /// order.
    pub lookalikes: Vec<Lookalike>,
    /// Keys that are lists or mappings: the path of their mapping, and where they are.
    pub odd_keys: Vec<(String, Pos)>,
}

/// Why a file is not YAML the reader takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Collections nest deeper than [`MAX_NESTING`], first at this line.
    TooDeep { line: usize },
    /// saphyr's syntax error, at its mark.
    Syntax { at: Pos, info: String },
    /// A key twice in a mapping, at the second.
    Content { at: Pos, info: String },
    /// Aliases (`*name`) expanding past saphyr's budget of nodes, at the alias that passed it.
    Aliases { at: Pos },
    /// A second document (`---`) starts at this line.
    Documents { line: usize },
}

/// Parses `source` once into its JSON, places and look-alikes.
pub(crate) fn read(source: &str) -> Result<Read, Refusal> {
    let root = load(source)?;
    let mut walk = Walk {
        source,
        line_starts: line_starts(source),
        read: Read::default(),
    };
    walk.read.json = walk.node(&root, "");
    let mut read = walk.read;
    read.lookalikes.sort_by_key(|l| (l.line, l.column));
    read.lookalikes.dedup_by_key(|l| (l.line, l.column));
    Ok(read)
}

fn pos(mark: &saphyr::Marker) -> Pos {
    Pos {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

fn syntax(e: &ScanError) -> Refusal {
    Refusal::Syntax {
        at: pos(e.marker()),
        info: e.info().to_string(),
    }
}

/// Runs saphyr's parser into its loader. The first document's root (`BadValue` for an empty
/// file).
fn load(source: &str) -> Result<MarkedYaml<'_>, Refusal> {
    let mut loader = YamlLoader::<MarkedYaml>::default();
    // Scalars stay as written, with their style: how they read is decided by the walk.
    loader.early_parse(false);
    // The loader refuses two things: an alias past its budget (marked at the alias), and a
    // key written twice (marked at that key, though the event that ends its entry may be an
    // alias: `<<: *base` twice). Which one shows by where the refusal points.
    let mut by_alias = None;
    let read = events(source, |event, span| {
        let alias = matches!(event, Event::Alias(_));
        loader.on_event(event, span);
        if let (None, Some(e)) = (by_alias, loader.error()) {
            by_alias = Some(alias && e.marker().index() == span.start.index());
        }
    });
    if let Err(refusal) = read {
        return Err(deeper(source, refusal));
    }
    if let Some(e) = loader.error() {
        let at = pos(e.marker());
        return Err(match by_alias {
            Some(true) => Refusal::Aliases { at },
            _ => Refusal::Content {
                at,
                info: e.info().to_string(),
            },
        });
    }
    Ok(loader
        .into_documents()
        .into_iter()
        .next()
        .unwrap_or_else(|| MarkedYaml::from_bare_yaml(saphyr::Yaml::BadValue)))
}

/// Hands each event of `source` to `receive`, refusing deep nesting and a second document on
/// the way.
fn events<'s>(source: &'s str, mut receive: impl FnMut(Event<'s>, Span)) -> Result<(), Refusal> {
    let (mut depth, mut documents) = (0usize, 0usize);
    for item in Parser::new_from_str(source) {
        let (event, span) = item.map_err(|e| syntax(&e))?;
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Refusal::TooDeep {
                        line: span.start.line(),
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Refusal::Documents {
                        line: span.start.line(),
                    });
                }
            }
            _ => {}
        }
        receive(event, span);
    }
    Ok(())
}

/// A syntax error found before the events of the collections around it (the scanner looks
/// ahead past opening brackets, up to a limit of its own): the text before the error, read
/// again, shows whether it was nested too deep, which is then the refusal.
fn deeper(source: &str, refusal: Refusal) -> Refusal {
    let Refusal::Syntax { at, .. } = &refusal else {
        return refusal;
    };
    let end = source
        .char_indices()
        .nth(at_index(source, *at))
        .map_or(source.len(), |(i, _)| i);
    match events(&source[..end], |_, _| {}) {
        Err(deep @ Refusal::TooDeep { .. }) => deep,
        _ => refusal,
    }
}

/// The character index of a line and column.
fn at_index(source: &str, at: Pos) -> usize {
    let before: usize = source
        .split_inclusive('\n')
        .take(at.line.saturating_sub(1))
        .map(|l| l.chars().count())
        .sum();
    before + at.column - 1
}

/// The byte offset where each line starts.
fn line_starts(source: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(source.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// The walk over the loaded nodes; nesting is bounded by [`MAX_NESTING`], so it may recurse.
struct Walk<'s> {
    source: &'s str,
    line_starts: Vec<usize>,
    read: Read,
}

impl Walk<'_> {
    fn node(&mut self, node: &MarkedYaml, path: &str) -> Json {
        match &node.data {
            YamlData::Representation(text, style, tag) => {
                self.value_lookalikes(node, text, *style, path);
                scalar_json(text, *style, tag)
            }
            YamlData::Value(scalar) => scalar_value(scalar, ""),
            YamlData::Sequence(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.entry(format!("{path}[{i}]"), None, item))
                    .collect(),
            ),
            YamlData::Mapping(map) => {
                let mut out = Map::new();
                for (key, value) in map {
                    let Some(name) = key_text(key) else {
                        self.read
                            .odd_keys
                            .push((path.to_string(), pos(&key.span.start)));
                        continue;
                    };
                    self.found(key, &name, lookalike::find(&name));
                    let v = self.entry(join(path, &name), Some(key), value);
                    out.insert(name, v);
                }
                Json::Object(out)
            }
            YamlData::Tagged(_, inner) => self.node(inner, path),
            YamlData::Alias(_) | YamlData::BadValue => Json::Null,
        }
    }

    /// Notes where the value at `path` is, and reads it.
    fn entry(&mut self, path: String, key: Option<&MarkedYaml>, value: &MarkedYaml) -> Json {
        let block = matches!(
            &value.data,
            YamlData::Representation(_, ScalarStyle::Literal | ScalarStyle::Folded, _)
        );
        let place = Place {
            key: key.map(|k| pos(&k.span.start)),
            value: pos(&value.span.start),
            block,
        };
        self.read.places.insert(path.clone(), place);
        self.node(value, &path)
    }

    /// The look-alikes of a scalar value: in its template tags (or in the whole of an
    /// expression), and, written plain, those that stand for YAML's own syntax.
    fn value_lookalikes(&mut self, node: &MarkedYaml, text: &str, style: ScalarStyle, path: &str) {
        if !text.chars().any(|c| lookalike::known(c).is_some()) {
            return;
        }
        let mut found = if EXPRESSIONS.contains(&path) {
            lookalike::in_expression(text)
        } else {
            lookalike::in_template(text)
        };
        if style == ScalarStyle::Plain {
            found.extend(lookalike::in_plain_value(text));
        }
        self.found(node, text, found);
    }

    /// Places look-alikes found in `text` (lines and columns of the text itself) in the file:
    /// the n-th such character of the text is the n-th in the node's span. One the span does
    /// not hold (written as an escape, `\u2018`) is placed at the node's start.
    fn found(&mut self, node: &MarkedYaml, text: &str, found: Vec<Lookalike>) {
        if found.is_empty() {
            return;
        }
        let span = self.span_chars(&node.span);
        let chars = lookalike::positioned(text);
        for l in found {
            let index = chars
                .iter()
                .position(|&(line, column, _)| (line, column) == (l.line, l.column))
                .unwrap_or(0);
            let nth = chars[..index].iter().filter(|&&(.., c)| c == l.ch).count();
            let at = match span.iter().filter(|s| s.2 == l.ch).nth(nth) {
                Some(&(line, column, _)) => Pos { line, column },
                None => pos(&node.span.start),
            };
            self.read.lookalikes.push(Lookalike {
                line: at.line,
                column: at.column,
                ..l
            });
        }
    }

    /// The characters of `span`, each with its line and column.
    fn span_chars(&self, span: &Span) -> Vec<(usize, usize, char)> {
        let (line, column) = (span.start.line(), span.start.col());
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return Vec::new();
        };
        let len = span.end.index().saturating_sub(span.start.index());
        let (mut at_line, mut at_column) = (line, column + 1);
        self.source[start..]
            .chars()
            .skip(column)
            .take(len)
            .map(|c| {
                let here = (at_line, at_column, c);
                if c == '\n' {
                    at_line += 1;
                    at_column = 1;
                } else {
                    at_column += 1;
                }
                here
            })
            .collect()
    }
}

/// A key's text; `None` for a list or mapping used as a key.
fn key_text(key: &MarkedYaml) -> Option<String> {
    match &key.data {
        YamlData::Representation(text, ..) => Some(text.to_string()),
        YamlData::Value(scalar) => scalar_value(scalar, "").as_str().map(str::to_string),
        YamlData::Tagged(_, inner) => key_text(inner),
        _ => None,
    }
}

/// A scalar as YAML 1.2's core schema reads it: quoted is text, plain may be a number, a
/// boolean or null.
fn scalar_json(text: &str, style: ScalarStyle, tag: &Option<Cow<'_, Tag>>) -> Json {
    match Scalar::parse_from_cow_and_metadata(Cow::Borrowed(text), style, tag.as_ref()) {
        Some(scalar) => scalar_value(&scalar, text),
        None => Json::String(text.to_string()),
    }
}

/// A scalar as JSON; a float JSON cannot hold (`.inf`) is its text.
fn scalar_value(scalar: &Scalar, text: &str) -> Json {
    match scalar {
        Scalar::Null => Json::Null,
        Scalar::Boolean(b) => Json::Bool(*b),
        Scalar::Integer(i) => Json::from(*i),
        Scalar::FloatingPoint(f) => serde_json::Number::from_f64(f.into_inner())
            .map_or_else(|| Json::String(text.to_string()), Json::Number),
        Scalar::String(s) => Json::String(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::lookalike_names as names;

    fn lookalikes(text: &str) -> Vec<String> {
        names(&read(text).expect("test YAML parses").lookalikes)
    }

    #[test]
    fn reads_json_as_the_core_schema_does() {
        let r =
            read("a: 1\nb: \"1\"\nc: [true, ~, 0x10, 1.5, x]\nd: !custom\n  e: f\n").expect("YAML");
        assert_eq!(
            r.json,
            serde_json::json!({"a": 1, "b": "1", "c": [true, null, 16, 1.5, "x"], "d": {"e": "f"}})
        );
        assert_eq!(read("").expect("empty").json, Json::Null);
    }

    #[test]
    fn deep_flow_and_deep_blocks_are_refused_at_their_line() {
        let flow = format!("a: 1\nb: {}", "[".repeat(100_000));
        assert_eq!(read(&flow).err(), Some(Refusal::TooDeep { line: 2 }));
        let mut blocks = String::new();
        for i in 0..70 {
            blocks.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert_eq!(
            read(&blocks).err(),
            Some(Refusal::TooDeep {
                line: MAX_NESTING + 1
            })
        );
        let dashes = format!("x:\n{}1\n", "- ".repeat(70));
        assert_eq!(read(&dashes).err(), Some(Refusal::TooDeep { line: 2 }));
        let shallow = format!("x: {}{}", "[".repeat(63), "]".repeat(63));
        assert!(read(&shallow).is_ok());
    }

    #[test]
    fn a_syntax_error_is_saphyrs_at_its_mark() {
        let Err(Refusal::Syntax { at, info }) = read("a: b\n  c: d\n") else {
            panic!("a syntax error");
        };
        assert_eq!((at.line, at.column), (2, 4));
        assert!(!info.is_empty());
        assert_eq!(
            read("a: 1\n---\nb: 2\n").err(),
            Some(Refusal::Documents { line: 2 })
        );
        assert!(matches!(
            read("a: 1\na: 2\n").err(),
            Some(Refusal::Content {
                at: Pos { line: 2, column: 1 },
                ..
            })
        ));
    }

    #[test]
    fn aliases_expanding_without_end_are_refused_as_such() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, prev) in ["bcdefghi".chars().zip("abcdefgh".chars())]
            .into_iter()
            .flatten()
        {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb += &format!("{name}: &{name} [{refs}]\n");
        }
        assert!(matches!(
            read(&bomb).err(),
            Some(Refusal::Aliases {
                at: Pos { line: 5, .. }
            })
        ));
        assert!(matches!(
            read("a: &a [1]\nb: *a\nb: 2\n").err(),
            Some(Refusal::Content { .. })
        ));
        // A key twice whose second value is an alias is a key twice, not a bomb.
        assert!(matches!(
            read("base: &b {x: 1}\ny:\n  <<: *b\n  <<: *b\n").err(),
            Some(Refusal::Content {
                at: Pos { line: 4, .. },
                ..
            })
        ));
    }

    #[test]
    fn prose_with_smart_quotes_is_fine() {
        let text = "messages:\n  - type: text\n    text: Olá “Ana”, tudo bem?\n  - type: text\n    text: \"Olá “{{ first_name }}” – até já\"\n  - type: text\n    text: “Olá” disse Ana\n  - type: text\n    text: |\n      – Oferta “especial”\n      – para você\n  - { type: text, text: 'It’s “on”' }\nname: a\u{200B}b\n";
        assert_eq!(lookalikes(text), Vec::<String>::new());
    }

    #[test]
    fn look_alike_quotes_around_a_whole_value_or_in_a_key_are_reported() {
        let text = "contacts:\n  key: “{{ customer_id }}”\n  where: ‘opt_in == 1’ # ok\n  “file”: a.csv\nbuttons: [{ title: “Yes”, type: payload }]\n";
        assert_eq!(
            lookalikes(text),
            [
                "2:8 U+201C",
                "2:26 U+201D",
                "3:10 U+2018",
                "3:22 U+2019",
                "4:3 U+201C",
                "4:8 U+201D",
                "5:20 U+201C",
                "5:24 U+201D",
            ]
        );
    }

    #[test]
    fn dashes_colons_and_spaces_that_are_not_ascii_are_reported() {
        for (text, found) in [
            ("messages:\n  – type: text\n", "2:3 U+2013"),
            ("messages:\n  - type：text\n", "2:9 U+FF1A"),
            ("messages:\n  - type:\u{00A0}text\n", "2:10 U+00A0"),
            ("messages:\n  -\u{202F}type: text\n", "2:4 U+202F"),
            ("send:\n  \u{00A0}concurrency: 4\n", "2:3 U+00A0"),
        ] {
            assert_eq!(lookalikes(text), [found], "{text:?}");
        }
    }

    #[test]
    fn tags_in_values_and_expressions_are_checked() {
        let text = "contact:\n  first_name: \"{{ first_name | title }}\"\n  last_name: \"{{ last\u{00A0}name }}\"\n  custom: Olá {{ “x” }}\ncontacts:\n  where: >-\n    plan == 'a'\n    or opt_in == “yes”\n";
        assert_eq!(
            lookalikes(text),
            [
                "3:22 U+00A0",
                "4:18 U+201C",
                "4:20 U+201D",
                "8:18 U+201C",
                "8:22 U+201D"
            ]
        );
    }

    #[test]
    fn any_text_is_read_and_every_look_alike_points_at_its_character() {
        let alphabet: Vec<char> = "ab :-#{}%[],'\"|>\n\t\\“”‘’–\u{00A0}\u{200B}｛｝％："
            .chars()
            .collect();
        for text in crate::testing::random_texts(&alphabet, 0x2545_F491_4F6C_DD1Du64, 3000) {
            let Ok(r) = read(&text) else { continue };
            let lines: Vec<Vec<char>> = text.split('\n').map(|l| l.chars().collect()).collect();
            for l in r.lookalikes {
                let at = lines
                    .get(l.line - 1)
                    .and_then(|line| line.get(l.column - 1));
                assert_eq!(at, Some(&l.ch), "{text:?}");
            }
        }
    }
}
