//! Finds every place where a campaign file's YAML does not have the expected shape (unknown key,
//! missing key, wrong type, unknown value) in one pass, where serde stops at the first.
//!
//! The expected shape is the JSON Schema that schemars derives from the very types that parse
//! the file (`schema.rs`), so it cannot drift from the parser. This walker reads the small part
//! of JSON Schema those types produce: `$ref` into `$defs`, `type`, `properties`, `required`,
//! `additionalProperties`, `items`, `enum`, `const`, `minimum`, the `format` of unsigned
//! integers, and `anyOf`/`oneOf` in the three forms schemars writes: an `Option` (one branch is
//! `null`), an internally tagged enum (every branch fixes `type` with a `const`), an untagged
//! enum (anything else: the value must fit one branch).
//!
//! It mirrors serde_yaml's leniency: read straight from the text, a number or `true` is accepted
//! where a string is expected, and an empty value where a mapping or list is. Values inside an
//! enum (a message item, a duration) are buffered by serde first and must fit exactly, so the
//! walk turns strict below them. The walk only runs once serde has refused the file, and a file
//! the walk finds nothing in falls back to serde's own message: it can add problems to a report,
//! never refuse a file serde accepts.

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

/// One place where the YAML does not have the expected shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Misfit {
    /// The key path of the value (`send.concurrency`), or of the mapping that lacks or has an
    /// unknown key (`send`; empty at the top).
    pub path: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A key the mapping does not take; `known` lists the keys it does.
    UnknownKey { key: String, known: Vec<String> },
    /// A required key is absent; `values` lists its valid values when it chooses a variant.
    MissingKey { key: String, values: Vec<String> },
    /// The value is of the wrong type (`found`: `string "many"`, `expected`: `a whole number`);
    /// `example` is the key's documented example, written as YAML.
    WrongType {
        found: String,
        expected: String,
        example: Option<String>,
    },
    /// A number outside the type's range.
    OutOfRange { found: String, expected: String },
    /// A value that is not one of the enumeration's `values`.
    UnknownValue { value: String, values: Vec<String> },
}

/// Walks `doc` against `schema` and returns every misfit, in document order.
pub(crate) fn misfits(doc: &Yaml, schema: &Json) -> Vec<Misfit> {
    let mut w = Walker {
        root: schema,
        out: Vec::new(),
    };
    w.walk(schema, doc, "", Mode::Lenient);
    w.out
}

/// How exactly a value must match its type (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lenient,
    Strict,
}

struct Walker<'s> {
    root: &'s Json,
    out: Vec<Misfit>,
}

/// `$ref` chains longer than this are taken as a loop and accepted unchecked.
const MAX_REFS: usize = 32;

impl<'s> Walker<'s> {
    /// The schema a `$ref` points to (in `$defs` of the root), or the schema itself.
    fn resolve(&self, mut schema: &'s Json) -> Option<&'s Json> {
        for _ in 0..MAX_REFS {
            match schema.get("$ref").and_then(Json::as_str) {
                Some(r) => schema = self.root.pointer(r.strip_prefix('#')?)?,
                None => return Some(schema),
            }
        }
        None
    }

    fn push(&mut self, path: &str, kind: Kind) {
        self.out.push(Misfit {
            path: path.to_string(),
            kind,
        });
    }

    fn walk(&mut self, schema: &'s Json, value: &Yaml, path: &str, mode: Mode) {
        // A YAML tag (`!foo`) does not change how serde_yaml reads the value under it.
        let value = untagged(value);
        let Some(s) = self.resolve(schema) else {
            return;
        };
        if let Some(branches) = s
            .get("anyOf")
            .or_else(|| s.get("oneOf"))
            .and_then(Json::as_array)
        {
            return self.alternatives(branches, value, path, mode);
        }
        if let Some(c) = s.get("const") {
            return self.enumeration(std::slice::from_ref(c), value, path);
        }
        if let Some(values) = s.get("enum").and_then(Json::as_array) {
            return self.enumeration(values, value, path);
        }
        if let Some(types) = s.get("type") {
            let fits = match types {
                Json::String(t) => fits(t, value, mode),
                Json::Array(ts) => ts
                    .iter()
                    .filter_map(Json::as_str)
                    .any(|t| fits(t, value, mode)),
                _ => true,
            };
            if !fits {
                let example = example_of(schema).or_else(|| example_of(s));
                let expected = self.expected(s);
                return self.push(
                    path,
                    Kind::WrongType {
                        found: describe(value),
                        expected,
                        example,
                    },
                );
            }
        }
        match value {
            Yaml::Number(n) => self.range(s, n, path),
            Yaml::Mapping(m) => self.mapping(s, m, path, mode),
            Yaml::Sequence(items) => {
                if let Some(item) = s.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.walk(item, v, &format!("{path}[{i}]"), mode);
                    }
                }
            }
            _ => {}
        }
    }

    fn alternatives(&mut self, branches: &'s [Json], value: &Yaml, path: &str, mode: Mode) {
        let (nulls, others): (Vec<&'s Json>, Vec<&'s Json>) = branches
            .iter()
            .partition(|b| b.get("type").and_then(Json::as_str) == Some("null"));
        // `Option<T>`: serde reads `T` directly, with no buffering.
        if !nulls.is_empty() && others.len() == 1 {
            if !value.is_null() {
                self.walk(others[0], value, path, mode);
            }
            return;
        }
        let resolved: Vec<&'s Json> = others.iter().filter_map(|b| self.resolve(b)).collect();
        if let Some(tag) = tag_of(&resolved) {
            return self.tagged(tag, &resolved, value, path);
        }
        if value.is_null() && !nulls.is_empty() {
            return;
        }
        // An untagged enum: serde tries each branch on the buffered value.
        let fits_one = resolved.iter().any(|b| {
            let mut trial = Walker {
                root: self.root,
                out: Vec::new(),
            };
            trial.walk(b, value, path, Mode::Strict);
            trial.out.is_empty()
        });
        if !fits_one {
            let expected = resolved
                .iter()
                .map(|b| self.expected(b))
                .collect::<Vec<_>>()
                .join(" or ");
            self.push(
                path,
                Kind::WrongType {
                    found: describe(value),
                    expected,
                    example: None,
                },
            );
        }
    }

    /// An internally tagged enum: the `tag` key's value chooses the branch.
    fn tagged(&mut self, tag: &str, branches: &[&'s Json], value: &Yaml, path: &str) {
        let values: Vec<String> = branches
            .iter()
            .filter_map(|b| tag_value(b, tag))
            .map(str::to_string)
            .collect();
        let Yaml::Mapping(m) = value else {
            return self.push(
                path,
                Kind::WrongType {
                    found: describe(value),
                    expected: format!("`key: value` lines starting with `{tag}:`"),
                    example: None,
                },
            );
        };
        let Some(chosen) = m.get(tag) else {
            return self.push(
                path,
                Kind::MissingKey {
                    key: tag.to_string(),
                    values,
                },
            );
        };
        let chosen_text = scalar_text(untagged(chosen));
        match branches
            .iter()
            .find(|b| chosen_text.is_some() && tag_value(b, tag) == chosen_text.as_deref())
        {
            Some(branch) => self.walk(branch, value, path, Mode::Strict),
            None => self.push(
                &join(path, tag),
                Kind::UnknownValue {
                    value: chosen_text.unwrap_or_else(|| describe(chosen)),
                    values,
                },
            ),
        }
    }

    fn enumeration(&mut self, allowed: &[Json], value: &Yaml, path: &str) {
        let values: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        match scalar_text(value) {
            Some(text) if values.contains(&text) => {}
            Some(text) => self.push(
                path,
                Kind::UnknownValue {
                    value: text,
                    values,
                },
            ),
            None => self.push(
                path,
                Kind::WrongType {
                    found: describe(value),
                    expected: one_of(&values),
                    example: None,
                },
            ),
        }
    }

    /// The bounds of an unsigned integer: `minimum`, and the largest value its `format` holds.
    fn range(&mut self, s: &Json, n: &serde_yaml::Number, path: &str) {
        let integer = s.get("type").is_some_and(|t| match t {
            Json::String(t) => t == "integer",
            Json::Array(ts) => ts.iter().any(|t| t == "integer"),
            _ => false,
        });
        if !integer {
            return;
        }
        let max = match s.get("format").and_then(Json::as_str) {
            Some("uint32") => Some(u64::from(u32::MAX)),
            Some("uint8") => Some(u64::from(u8::MAX)),
            Some("uint16") => Some(u64::from(u16::MAX)),
            _ => None,
        };
        let min = s.get("minimum").and_then(Json::as_i64);
        let below = min.is_some_and(|min| n.as_i64().is_some_and(|v| v < min));
        let above = max.is_some_and(|max| n.as_u64().is_some_and(|v| v > max));
        if below || above {
            let expected = match (min, max) {
                (Some(min), Some(max)) => format!("a whole number from {min} to {max}"),
                (Some(min), None) => format!("a whole number, {min} or more"),
                _ => "a smaller whole number".to_string(),
            };
            self.push(
                path,
                Kind::OutOfRange {
                    found: describe(&Yaml::Number(n.clone())),
                    expected,
                },
            );
        }
    }

    fn mapping(&mut self, s: &'s Json, m: &serde_yaml::Mapping, path: &str, mode: Mode) {
        let props = s.get("properties").and_then(Json::as_object);
        let additional = s.get("additionalProperties");
        for (k, v) in m {
            let Some(key) = scalar_text(untagged(k)) else {
                self.push(
                    path,
                    Kind::WrongType {
                        found: format!("{} as a key", describe(k)),
                        expected: "a key name".into(),
                        example: None,
                    },
                );
                continue;
            };
            match props.and_then(|p| p.get(&key)) {
                Some(p) => self.walk(p, v, &join(path, &key), mode),
                None => match additional {
                    Some(Json::Bool(false)) => {
                        let known = props
                            .map(|p| p.keys().cloned().collect())
                            .unwrap_or_default();
                        self.push(path, Kind::UnknownKey { key, known });
                    }
                    Some(extra) => self.walk(extra, v, &join(path, &key), mode),
                    None => {}
                },
            }
        }
        for key in s
            .get("required")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
        {
            if m.get(key).is_none() {
                self.push(
                    path,
                    Kind::MissingKey {
                        key: key.to_string(),
                        values: Vec::new(),
                    },
                );
            }
        }
    }

    /// What a schema expects, in words: "a whole number", "`key: value` lines".
    fn expected(&self, schema: &'s Json) -> String {
        let Some(s) = self.resolve(schema) else {
            return "something else".into();
        };
        if let Some(branches) = s
            .get("anyOf")
            .or_else(|| s.get("oneOf"))
            .and_then(Json::as_array)
        {
            let words: Vec<String> = branches
                .iter()
                .filter(|b| b.get("type").and_then(Json::as_str) != Some("null"))
                .map(|b| self.expected(b))
                .collect();
            return words.join(" or ");
        }
        if let Some(values) = s.get("enum").and_then(Json::as_array) {
            let values: Vec<String> = values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect();
            return one_of(&values);
        }
        let types: Vec<&str> = match s.get("type") {
            Some(Json::String(t)) => vec![t.as_str()],
            Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        };
        let words: Vec<&str> = types
            .iter()
            .filter(|t| **t != "null")
            .map(|t| match *t {
                "integer" => "a whole number",
                "number" => "a number",
                "string" => "a string",
                "boolean" => "`true` or `false`",
                "object" => "`key: value` lines",
                "array" => "a list",
                _ => "something else",
            })
            .collect();
        if words.is_empty() {
            "something else".into()
        } else {
            words.join(" or ")
        }
    }
}

/// Whether `value` has JSON type `t`, as serde_yaml reads it in `mode`.
fn fits(t: &str, value: &Yaml, mode: Mode) -> bool {
    let lenient = mode == Mode::Lenient;
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_bool(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => {
            value.is_string()
                || (lenient && (value.is_number() || value.is_bool() || value.is_null()))
        }
        "object" => value.is_mapping() || (lenient && value.is_null()),
        "array" => value.is_sequence() || (lenient && value.is_null()),
        _ => true,
    }
}

/// The key every branch fixes with a `const` (schemars writes `type` for a tagged enum).
fn tag_of<'a>(branches: &[&'a Json]) -> Option<&'a str> {
    let first = branches.first()?.get("properties")?.as_object()?;
    let tag = first
        .iter()
        .find(|(_, p)| p.get("const").is_some())
        .map(|(k, _)| k.as_str())?;
    branches
        .iter()
        .all(|b| tag_value(b, tag).is_some())
        .then_some(tag)
}

fn tag_value<'a>(branch: &'a Json, tag: &str) -> Option<&'a str> {
    branch.get("properties")?.get(tag)?.get("const")?.as_str()
}

fn untagged(value: &Yaml) -> &Yaml {
    match value {
        Yaml::Tagged(t) => untagged(&t.value),
        other => other,
    }
}

/// A scalar as the text it stands for; `None` for mappings and lists.
fn scalar_text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Null => Some("null".into()),
        Yaml::Tagged(t) => scalar_text(&t.value),
        Yaml::Sequence(_) | Yaml::Mapping(_) => None,
    }
}

/// A value as a message names it: `string "many"`, `integer `5``, `a list`.
fn describe(value: &Yaml) -> String {
    match value {
        Yaml::Null => "an empty value".into(),
        Yaml::Bool(b) => format!("boolean `{b}`"),
        Yaml::Number(n) if n.is_i64() || n.is_u64() => format!("integer `{n}`"),
        Yaml::Number(n) => format!("floating point `{n}`"),
        Yaml::String(s) => format!("string {s:?}"),
        Yaml::Sequence(_) => "a list".into(),
        Yaml::Mapping(_) => "`key: value` lines".into(),
        Yaml::Tagged(t) => describe(&t.value),
    }
}

/// A key's documented example as it would be written in YAML, when it is a single value.
fn example_of(schema: &Json) -> Option<String> {
    match schema.get("examples")?.as_array()?.first()? {
        Json::String(s) if plain(s) => Some(s.clone()),
        Json::String(s) => Some(format!("{s:?}")),
        v @ (Json::Number(_) | Json::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

/// Whether a string can be written in YAML without quotes and read back as the same string.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.trim() == s
        && !s.contains(": ")
        && !s.contains('{')
        && !s.contains(" #")
        && !s.starts_with(|c: char| "{}[]&*!|>'\"%@`#,?:-".contains(c))
        && s.parse::<f64>().is_err()
        && !matches!(s, "true" | "false" | "null" | "~")
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// "`a`", "`a` or `b`", "one of `a`, `b`, `c`", as serde words its expectations.
pub(crate) fn one_of(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
    match quoted.as_slice() {
        [] => "nothing".into(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        more => format!("one of {}", more.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::raw::RawCampaign;

    fn found(yaml: &str) -> Vec<Misfit> {
        let doc: Yaml = serde_yaml::from_str(yaml).expect("test YAML parses");
        misfits(&doc, crate::campaign::schema::schema())
    }

    fn serde_accepts(yaml: &str) -> bool {
        serde_yaml::from_str::<RawCampaign>(yaml).is_ok()
    }

    /// Files serde_yaml reads, some only through its leniency: the walk must find nothing.
    const ACCEPTED: &[&str] = &[
        "version: 1\nname: x\n",
        "name: 2026\nversion: 1\n",
        "api:\nvars:\ncontact:\nsend:\nmessages:\n",
        "contacts:\n  file: 12\n  exclude: [a.csv, { file: b.csv, column: Telefone }]\n  unique_phone: false\n  country: br\n",
        "api: !custom\n  timeout: 30\n",
        "api: { timeout: 1.5 }\nsend: { backoff: 2s, concurrency: 0x10, window: { from: 9, until: \"17:00\", days: [mon] } }\n",
        "contact: { first_name: true, custom: { a: [1, {b: null}] } }\n",
        "session:\n  id: 7\nvars: { a: 1 }\n",
        "messages:\n  - type: text\n    text: hi\n  - type: buttons\n    text: q\n    buttons: [{ title: a, type: url, value: b }]\n  - type: cards\n    cards: [{ title: t }]\n  - type: media\n    media: audio\n    url: u\n  - type: payload\n    payload: { n: 3 }\n",
    ];

    /// Files serde_yaml refuses: the walk must name at least one problem.
    const REFUSED: &[&str] = &[
        "nmae: x\n",
        "send:\n  concurrency: many\n",
        "send:\n  concurrency: -1\n",
        "send:\n  retries: 5000000000\n",
        "send:\n  concurrency: 2.5\n",
        "version: \"1\"\n",
        "api:\n  channel: telegram\n",
        "api:\n  timeout: true\n",
        "api: [1]\n",
        "contacts:\n  delimiter: ;\n",
        "contacts:\n  file: a.csv\n  unique_phone: maybe\n",
        "contacts:\n  file: a.csv\n  exclude: [1, true]\n",
        "contacts:\n  file: a.csv\n  exclude: [{ file: b.csv }]\n",
        "contacts:\n  file: a.csv\n  exclude: [{ file: b.csv, column: 7 }]\n",
        "destination: [bot]\n",
        "messages:\n  - text: hi\n",
        "messages:\n  - type: video\n",
        "messages:\n  - type: text\n    txt: hi\n",
        "messages:\n  - type: text\n    text: 1\n",
        "messages:\n  - type: media\n    media: gif\n    url: u\n",
        "messages:\n  - type: media\n    media: image\n",
        "messages:\n  - type: buttons\n    text: q\n    buttons: [{ title: a, type: link, value: b }]\n",
        "messages:\n  - type: cards\n    cards: [{ title: t, buttons: [{ title: a }] }]\n",
        "messages: {type: text}\n",
        "send:\n  window: { from: \"09:00\" }\n",
        "send:\n  window: { from: \"09:00\", until: \"10:00\", days: mon }\n",
        "contact:\n  custom: [a]\n",
    ];

    #[test]
    fn the_walk_agrees_with_serde() {
        for yaml in ACCEPTED {
            assert!(serde_accepts(yaml), "serde refuses {yaml:?}");
            assert_eq!(found(yaml), vec![], "{yaml:?}");
        }
        for yaml in REFUSED {
            assert!(!serde_accepts(yaml), "serde accepts {yaml:?}");
            assert!(
                !found(yaml).is_empty(),
                "the walk finds nothing in {yaml:?}"
            );
        }
    }

    #[test]
    fn the_walk_agrees_with_serde_on_every_campaign_of_the_repository() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("campaigns/welcome.yaml")];
        for case in std::fs::read_dir(root.join("tests/fixtures/broken")).expect("the corpus") {
            files.push(case.expect("a corpus entry").path().join("campaign.yaml"));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a campaign file");
            let Ok(doc) = serde_yaml::from_str::<Yaml>(&text) else {
                continue;
            };
            let walk = misfits(&doc, crate::campaign::schema::schema());
            assert_eq!(
                serde_accepts(&text),
                walk.is_empty(),
                "{}: {walk:#?}",
                file.display()
            );
        }
    }

    #[test]
    fn every_problem_is_found_at_once() {
        let got = found(
            "versoin: 1\napi:\n  chanel: x\n  channel: sms\nsend:\n  concurrency: many\nmessages:\n  - type: media\n    media: image\n",
        );
        let kinds: Vec<(&str, &Kind)> = got.iter().map(|m| (m.path.as_str(), &m.kind)).collect();
        assert_eq!(kinds.len(), 5, "{got:#?}");
        assert!(matches!(kinds[0], ("", Kind::UnknownKey { key, .. }) if key == "versoin"));
        assert!(matches!(kinds[1], ("api", Kind::UnknownKey { key, .. }) if key == "chanel"));
        assert!(
            matches!(kinds[2], ("api.channel", Kind::UnknownValue { value, .. }) if value == "sms")
        );
        assert!(
            matches!(kinds[3], ("send.concurrency", Kind::WrongType { expected, example, .. }) if expected == "a whole number" && example.as_deref() == Some("8"))
        );
        assert!(matches!(kinds[4], ("messages[0]", Kind::MissingKey { key, .. }) if key == "url"));
    }

    #[test]
    fn a_message_without_type_lists_the_types() {
        let got = found("messages:\n  - text: hi\n");
        assert_eq!(
            got,
            vec![Misfit {
                path: "messages[0]".into(),
                kind: Kind::MissingKey {
                    key: "type".into(),
                    values: ["text", "buttons", "cards", "media", "payload"]
                        .map(String::from)
                        .to_vec(),
                },
            }]
        );
    }

    #[test]
    fn a_duration_names_both_forms() {
        let got = found("api:\n  timeout: [1]\n");
        assert!(
            matches!(&got[0].kind, Kind::WrongType { expected, .. } if expected == "a number or a string"),
            "{got:?}"
        );
    }
}
