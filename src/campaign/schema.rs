//! The campaign file's JSON Schema (draft 2020-12), derived by schemars from the types that parse
//! the file (`raw.rs` and the enums of `api.rs`): editors read it, and `shape.rs` checks
//! campaign files against it to report every shape problem at once.

use std::sync::LazyLock;

use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::raw::RawCampaign;

/// The schema's identifier: a URN, since the schema is served from no address of its own.
pub(crate) const ID: &str = "urn:cosmocast:campaign:1";

static SCHEMA: LazyLock<Value> = LazyLock::new(generate);

/// The schema, generated once per process.
pub(crate) fn schema() -> &'static Value {
    &SCHEMA
}

fn generate() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<RawCampaign>();
    let mut value = Value::from(schema);
    unwrap_descriptions(&mut value);
    if let Some(root) = value.as_object_mut() {
        root.insert("$id".into(), ID.into());
        root.insert("title".into(), "cosmocast campaign file".into());
    }
    value
}

/// Doc comments are wrapped at the source's line width; an editor's hover wraps on its own, so
/// the line breaks inside a paragraph become spaces.
fn unwrap_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) if key == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|paragraph| paragraph.replace('\n', " "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    // Examples are values, not schemas: left as written.
                    _ if key == "examples" => {}
                    _ => unwrap_descriptions(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// The schema as `cosmocast schema` prints it and `campaign.schema.json` holds it.
pub(crate) fn pretty() -> String {
    // Serialising a `Value` cannot fail: its keys are strings.
    let mut text = serde_json::to_string_pretty(schema()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_description_and_an_example() {
        let root = schema();
        let mut missing = Vec::new();
        let defs = root["$defs"].as_object().into_iter().flatten();
        let objects = defs
            .map(|(name, def)| (name.as_str(), def))
            .chain([("Campaign", root)]);
        for (name, def) in objects {
            let branches = def["oneOf"].as_array().cloned().unwrap_or_default();
            let shapes = if branches.is_empty() {
                vec![def.clone()]
            } else {
                branches
            };
            for shape in &shapes {
                for (key, prop) in shape["properties"].as_object().into_iter().flatten() {
                    // The tag of a message item is described by the item's own description.
                    if prop.get("const").is_some() {
                        continue;
                    }
                    if prop.get("description").is_none() {
                        missing.push(format!("{name}.{key}: description"));
                    }
                    if prop.get("examples").is_none() {
                        missing.push(format!("{name}.{key}: example"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn the_kinds_are_enumerations() {
        let defs = &schema()["$defs"];
        for (name, values) in [
            ("Channel", vec!["whatsapp", "rcs", "apple", "other"]),
            ("Destination", vec!["contact", "bot", "desk"]),
            ("MediaKind", vec!["image", "audio", "video", "document"]),
            ("ButtonType", vec!["text", "url", "payload"]),
        ] {
            assert_eq!(defs[name]["enum"], serde_json::json!(values), "{name}");
        }
        let types: Vec<&Value> = defs["Message"]["oneOf"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| &b["properties"]["type"]["const"])
            .collect();
        assert_eq!(
            serde_json::json!(types),
            serde_json::json!(["text", "buttons", "cards", "media", "payload"])
        );
    }

    #[test]
    fn unknown_keys_are_refused_everywhere() {
        let root = schema();
        assert_eq!(root["additionalProperties"], false);
        for name in [
            "Api", "Contacts", "Contact", "Button", "Card", "Send", "Window",
        ] {
            assert_eq!(root["$defs"][name]["additionalProperties"], false, "{name}");
        }
    }
}
