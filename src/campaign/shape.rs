//! Finds every place where a campaign file's YAML does not have the expected shape (unknown key,
//! missing key, wrong type, unknown value) in one pass, where serde stops at the first.
//!
//! The expected shape is the JSON Schema that schemars derives from the very types that parse
//! the file (`schema.rs`), so it cannot drift from the parser; the jsonschema crate checks the
//! document against it, and each error it reports becomes a [`Misfit`] worded as serde words
//! it. Of an `anyOf`/`oneOf` that fails, schemars writes three forms: an `Option` (one branch is
//! `null`: the other branch's errors count), an internally tagged enum (every branch fixes `type`
//! with a `const`: the branch the value names counts), an untagged enum (anything else: the
//! value fits no branch).
//!
//! serde_yaml is lenient when it reads straight from the text: a number or `true` is accepted
//! where a string is expected, and an empty value where a mapping or list is. Values inside an
//! enum (a message item, a duration, an exclusion) are buffered by serde first and must fit
//! exactly. So the schema checked is the generated one with its types widened outside the
//! enums ([`lenient`]). The check only runs once serde has refused the file, and a file it
//! finds nothing in falls back to serde's own message: it can add problems to a report, never
//! refuse a file serde accepts.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind as Error;
use jsonschema::{ValidationError, Validator};
use serde_json::Value as Json;

use super::locate::join;
use super::schema::schema;

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

static VALIDATOR: LazyLock<Option<Validator>> =
    LazyLock::new(|| jsonschema::validator_for(&lenient(schema())).ok());

/// Checks `doc` against the campaign schema and returns every misfit, in document order.
pub(crate) fn misfits(doc: &Json) -> Vec<Misfit> {
    let Some(validator) = VALIDATOR.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in validator.iter_errors(doc) {
        collect(&e, doc, &mut out);
    }
    out
}

/// The campaign schema as serde_yaml reads text (see the module doc): outside the enums a
/// string may be a number, a boolean or empty, and a mapping or list may be empty. An
/// enumeration names its values rather than its type, and an unsigned integer's `format` its
/// `maximum`.
pub(crate) fn lenient(schema: &Json) -> Json {
    let mut modes = BTreeMap::new();
    modes_of(schema, schema, false, &mut modes);
    let mut out = schema.clone();
    if let Some(defs) = out.get_mut("$defs").and_then(Json::as_object_mut) {
        for (name, def) in defs.iter_mut() {
            // A definition used both ways stays lenient: the check never refuses more than serde.
            widen(def, !modes.get(name.as_str()).copied().unwrap_or(true));
        }
    }
    if let Some(root) = out.as_object_mut() {
        for (key, value) in root.iter_mut() {
            if key != "$defs" {
                widen_keyword(key, value, true);
            }
        }
    }
    out
}

/// Notes for each definition whether it is read strictly (`true`) from every place it is used.
fn modes_of<'s>(
    root: &'s Json,
    schema: &'s Json,
    strict: bool,
    modes: &mut BTreeMap<&'s str, bool>,
) {
    match schema {
        Json::Object(map) => {
            if let Some(name) = map.get("$ref").and_then(Json::as_str).and_then(def_name) {
                let seen = modes.get(name).copied();
                let now = seen.map_or(strict, |s| s && strict);
                if seen != Some(now) {
                    modes.insert(name, now);
                    if let Some(def) = root.get("$defs").and_then(|d| d.get(name)) {
                        modes_of(root, def, now, modes);
                    }
                }
            }
            for (key, value) in map {
                let inner = strict || (is_alternatives(key) && !is_option(value));
                if key != "$defs" && key != "examples" {
                    modes_of(root, value, inner, modes);
                }
            }
        }
        Json::Array(items) => items
            .iter()
            .for_each(|item| modes_of(root, item, strict, modes)),
        _ => {}
    }
}

fn def_name(reference: &str) -> Option<&str> {
    reference.strip_prefix("#/$defs/")
}

fn is_alternatives(key: &str) -> bool {
    key == "anyOf" || key == "oneOf"
}

/// `anyOf: [T, null]`, schemars' `Option<T>`.
fn is_option(branches: &Json) -> bool {
    let branches = branches.as_array().map_or(&[][..], Vec::as_slice);
    let nulls = branches.iter().filter(|b| is_null(b)).count();
    nulls > 0 && branches.len() - nulls == 1
}

fn is_null(schema: &Json) -> bool {
    schema.get("type").and_then(Json::as_str) == Some("null")
}

/// Widens a schema read leniently (`lenient`) down to its enums, which stay strict.
fn widen(schema: &mut Json, lenient: bool) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if map.contains_key("enum") || map.contains_key("const") {
        map.remove("type");
    }
    if let Some(max) = largest(map.get("format").and_then(Json::as_str)) {
        map.insert("maximum".into(), max.into());
    }
    for (key, value) in map.iter_mut() {
        widen_keyword(key, value, lenient);
    }
}

fn widen_keyword(key: &str, value: &mut Json, lenient: bool) {
    match key {
        "type" if lenient => widen_type(value),
        "properties" => value
            .as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut())
            .for_each(|v| widen(v, lenient)),
        "items" | "additionalProperties" => widen(value, lenient),
        _ if is_alternatives(key) => {
            let inner = lenient && is_option(value);
            for branch in value.as_array_mut().into_iter().flatten() {
                widen(branch, inner);
            }
        }
        _ => {}
    }
}

/// `string` → also a number, a boolean or null; `object` and `array` → also null.
fn widen_type(types: &mut Json) {
    let mut list: Vec<Json> = match &*types {
        Json::Array(ts) => ts.clone(),
        t => vec![t.clone()],
    };
    let has = |list: &[Json], t: &str| list.iter().any(|x| x == t);
    let mut extra = Vec::new();
    if has(&list, "string") {
        extra.extend(["number", "boolean", "null"]);
    }
    if has(&list, "object") || has(&list, "array") {
        extra.push("null");
    }
    for t in extra {
        if !has(&list, t) {
            list.push(t.into());
        }
    }
    *types = Json::Array(list);
}

/// One error of the check, as misfits (`AnyOf`/`OneOf` hold the errors of their branches).
fn collect(e: &ValidationError<'_>, doc: &Json, out: &mut Vec<Misfit>) {
    let root = schema();
    let steps: Vec<String> = e.evaluation_path().iter().map(|s| s.to_string()).collect();
    let chain = resolve(root, &steps);
    let owner = chain.len().checked_sub(2).and_then(|i| chain.get(i));
    let owner = owner.copied().unwrap_or(root);
    let path = dotted(doc, e.instance_path());
    let value = e.instance().as_ref();
    let kind = match e.kind() {
        Error::AdditionalProperties { unexpected } => {
            let known: Vec<String> = owner
                .get("properties")
                .and_then(Json::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            for key in unexpected {
                out.push(Misfit {
                    path: path.clone(),
                    kind: Kind::UnknownKey {
                        key: key.clone(),
                        known: known.clone(),
                    },
                });
            }
            return;
        }
        Error::AnyOf { context } | Error::OneOfNotValid { context } => {
            return alternatives(owner, context, (value, &path), doc, out);
        }
        Error::Required { property } => Kind::MissingKey {
            key: property.as_str().unwrap_or_default().to_string(),
            values: Vec::new(),
        },
        Error::Minimum { .. } | Error::Maximum { .. } => Kind::OutOfRange {
            found: describe(value),
            expected: range(owner),
        },
        Error::Enum { options } => {
            enumeration(options.as_array().map_or(&[][..], Vec::as_slice), value)
        }
        Error::Constant { expected_value } => {
            enumeration(std::slice::from_ref(&**expected_value), value)
        }
        _ => Kind::WrongType {
            found: describe(value),
            expected: expected(owner),
            example: example(&chain, &steps),
        },
    };
    out.push(Misfit { path, kind });
}

/// The schemas along an evaluation path, from the root: each `$ref` step leads to its
/// definition.
fn resolve<'s>(root: &'s Json, steps: &[String]) -> Vec<&'s Json> {
    let mut chain = vec![root];
    let mut at = root;
    for step in steps {
        let next = if step == "$ref" {
            at.get("$ref")
                .and_then(Json::as_str)
                .and_then(|r| root.pointer(r.strip_prefix('#')?))
        } else {
            match at {
                Json::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => at.get(step),
            }
        };
        let Some(next) = next else { break };
        chain.push(next);
        at = next;
    }
    chain
}

/// The documented example of the key whose value a keyword (the last step) failed on: on the
/// keyword's schema or, reached through `$ref`, on the schema that refers.
fn example(chain: &[&Json], steps: &[String]) -> Option<String> {
    let mut i = chain.len().checked_sub(2)?;
    loop {
        if let Some(e) = example_of(chain[i]) {
            return Some(e);
        }
        if i == 0 || steps.get(i - 1).map(String::as_str) != Some("$ref") {
            return None;
        }
        i -= 1;
    }
}

/// An instance location as a key path: `/messages/0/text` → `messages[0].text`.
fn dotted(doc: &Json, location: &jsonschema::paths::Location) -> String {
    let mut path = String::new();
    let mut at = Some(doc);
    for step in location.iter() {
        let step = step.to_string();
        at = match at {
            Some(Json::Array(items)) => {
                path.push_str(&format!("[{step}]"));
                step.parse::<usize>().ok().and_then(|i| items.get(i))
            }
            other => {
                path = join(&path, &step);
                other.and_then(|v| v.get(&step))
            }
        };
    }
    path
}

/// A value of an `anyOf`/`oneOf` that fits no branch (see the module doc); `context` holds
/// each branch's errors.
fn alternatives(
    owner: &Json,
    context: &[Vec<ValidationError<'static>>],
    (value, path): (&Json, &str),
    doc: &Json,
    out: &mut Vec<Misfit>,
) {
    let root = schema();
    let listed = owner
        .get("anyOf")
        .or_else(|| owner.get("oneOf"))
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice);
    let branches: Vec<&Json> = listed.iter().map(|b| follow(root, b)).collect();
    let others: Vec<usize> = (0..listed.len())
        .filter(|&i| !is_null(&listed[i]))
        .collect();
    let chosen = if others.len() == 1 && others.len() < listed.len() {
        Some(others[0])
    } else if let Some(tag) = tag_of(&branches) {
        match tagged(tag, &branches, value) {
            Ok(i) => Some(i),
            Err(kind) => {
                let at = match &kind {
                    Kind::UnknownValue { .. } => join(path, tag),
                    _ => path.to_string(),
                };
                out.push(Misfit { path: at, kind });
                return;
            }
        }
    } else {
        None
    };
    match chosen.and_then(|i| context.get(i)) {
        Some(errors) => errors.iter().for_each(|e| collect(e, doc, out)),
        None => out.push(Misfit {
            path: path.to_string(),
            kind: Kind::WrongType {
                found: describe(value),
                expected: others
                    .iter()
                    .map(|&i| expected(branches[i]))
                    .collect::<Vec<_>>()
                    .join(" or "),
                example: None,
            },
        }),
    }
}

/// The definition a `$ref` schema points to, or the schema itself.
fn follow<'s>(root: &'s Json, schema: &'s Json) -> &'s Json {
    schema
        .get("$ref")
        .and_then(Json::as_str)
        .and_then(|r| root.pointer(r.strip_prefix('#')?))
        .unwrap_or(schema)
}

/// The branch of an internally tagged enum that `value` names with its `tag` key, or why none.
fn tagged(tag: &str, branches: &[&Json], value: &Json) -> Result<usize, Kind> {
    let values: Vec<String> = branches
        .iter()
        .filter_map(|b| tag_value(b, tag))
        .map(str::to_string)
        .collect();
    let Json::Object(m) = value else {
        return Err(Kind::WrongType {
            found: describe(value),
            expected: format!("`key: value` lines starting with `{tag}:`"),
            example: None,
        });
    };
    let Some(chosen) = m.get(tag) else {
        return Err(Kind::MissingKey {
            key: tag.to_string(),
            values,
        });
    };
    let text = scalar_text(chosen);
    match branches
        .iter()
        .position(|b| text.is_some() && tag_value(b, tag) == text.as_deref())
    {
        Some(i) => Ok(i),
        None => Err(Kind::UnknownValue {
            value: text.unwrap_or_else(|| describe(chosen)),
            values,
        }),
    }
}

/// A value that is not one of `allowed`.
fn enumeration(allowed: &[Json], value: &Json) -> Kind {
    let values: Vec<String> = allowed
        .iter()
        .map(|v| match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    match scalar_text(value) {
        Some(value) => Kind::UnknownValue { value, values },
        None => Kind::WrongType {
            found: describe(value),
            expected: one_of(&values),
            example: None,
        },
    }
}

/// The largest value of an unsigned integer `format` narrower than 64 bits.
fn largest(format: Option<&str>) -> Option<u64> {
    match format? {
        "uint8" => Some(u64::from(u8::MAX)),
        "uint16" => Some(u64::from(u16::MAX)),
        "uint32" => Some(u64::from(u32::MAX)),
        _ => None,
    }
}

/// The range of an unsigned integer, in words: `minimum`, and the largest value its `format`
/// holds.
fn range(s: &Json) -> String {
    let max = largest(s.get("format").and_then(Json::as_str));
    match (s.get("minimum").and_then(Json::as_i64), max) {
        (Some(min), Some(max)) => format!("a whole number from {min} to {max}"),
        (Some(min), None) => format!("a whole number, {min} or more"),
        _ => "a smaller whole number".to_string(),
    }
}

/// What a schema expects, in words: "a whole number", "`key: value` lines".
fn expected(schema: &Json) -> String {
    let root = self::schema();
    let s = follow(root, schema);
    if let Some(branches) = s
        .get("anyOf")
        .or_else(|| s.get("oneOf"))
        .and_then(Json::as_array)
    {
        let words: Vec<String> = branches
            .iter()
            .filter(|b| !is_null(b))
            .map(expected)
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

/// A scalar as the text it stands for; `None` for mappings and lists.
fn scalar_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Null => Some("null".into()),
        Json::Array(_) | Json::Object(_) => None,
    }
}

/// A value as a message names it: `string "many"`, `integer `5``, `a list`.
fn describe(value: &Json) -> String {
    match value {
        Json::Null => "an empty value".into(),
        Json::Bool(b) => format!("boolean `{b}`"),
        Json::Number(n) if n.is_i64() || n.is_u64() => format!("integer `{n}`"),
        Json::Number(n) => format!("floating point `{n}`"),
        Json::String(s) => format!("string {s:?}"),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "`key: value` lines".into(),
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
        let doc = crate::campaign::yaml::read(yaml).expect("test YAML parses");
        misfits(&doc.json)
    }

    fn serde_accepts(yaml: &str) -> bool {
        serde_yaml::from_str::<RawCampaign>(yaml).is_ok()
    }

    /// Files serde_yaml reads, some only through its leniency: the check must find nothing.
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

    /// Files serde_yaml refuses: the check must name at least one problem.
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
    fn the_check_agrees_with_serde() {
        for yaml in ACCEPTED {
            assert!(serde_accepts(yaml), "serde refuses {yaml:?}");
            assert_eq!(found(yaml), vec![], "{yaml:?}");
        }
        for yaml in REFUSED {
            assert!(!serde_accepts(yaml), "serde accepts {yaml:?}");
            assert!(
                !found(yaml).is_empty(),
                "the check finds nothing in {yaml:?}"
            );
        }
    }

    #[test]
    fn the_check_agrees_with_serde_on_every_campaign_of_the_repository() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("campaigns/welcome.yaml")];
        for case in std::fs::read_dir(root.join("tests/fixtures/broken")).expect("the corpus") {
            files.push(case.expect("a corpus entry").path().join("campaign.yaml"));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a campaign file");
            let Ok(doc) = crate::campaign::yaml::read(&text) else {
                continue;
            };
            let walk = misfits(&doc.json);
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
        let mut got = found(
            "versoin: 1\napi:\n  chanel: x\n  channel: sms\nsend:\n  concurrency: many\nmessages:\n  - type: media\n    media: image\n",
        );
        got.sort_by_key(|m| m.path.clone());
        let kinds: Vec<(&str, &Kind)> = got.iter().map(|m| (m.path.as_str(), &m.kind)).collect();
        assert_eq!(kinds.len(), 5, "{got:#?}");
        assert!(matches!(kinds[0], ("", Kind::UnknownKey { key, .. }) if key == "versoin"));
        assert!(matches!(kinds[1], ("api", Kind::UnknownKey { key, .. }) if key == "chanel"));
        assert!(
            matches!(kinds[2], ("api.channel", Kind::UnknownValue { value, .. }) if value == "sms")
        );
        assert!(
            matches!(kinds[4], ("send.concurrency", Kind::WrongType { expected, example, .. }) if expected == "a whole number" && example.as_deref() == Some("8"))
        );
        assert!(matches!(kinds[3], ("messages[0]", Kind::MissingKey { key, .. }) if key == "url"));
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
