//! The campaign file's JSON Schema: `campaign.schema.json` is what `cosmocast schema` prints, every
//! valid campaign of the repository fits it, and every broken campaign whose problem is the file's
//! shape (unknown key, wrong type, unknown value) does not.

use std::path::{Path, PathBuf};

use crate::common::campaign_yaml;
use assert_cmd::Command;
use serde_json::Value;

/// Broken campaigns whose problem is the file's shape: the schema refuses them.
const SHAPE: &[&str] = &[
    "api-unknown-channel",
    "button-unknown-type",
    "campaign-names-its-ledger",
    "media-unknown-kind",
    "message-unknown-type",
    "yaml-three-typos",
    "yaml-unknown-nested-key",
    "yaml-unknown-top-key",
    "yaml-wrong-type",
];

/// Broken campaigns that are not YAML at all: no schema applies.
const NOT_YAML: &[&str] = &[
    "yaml-bad-indentation",
    "yaml-duplicate-key",
    "yaml-tab-indentation",
    "yaml-unclosed-quote",
];

/// Broken campaigns of the right shape: what is wrong is a value the types allow (a URL, a
/// duration, a name, a range, a required key the checker asks for), the environment, a template,
/// the CSV or a row. The schema accepts them; `check` refuses them.
const NOT_SHAPE: &[&str] = &[
    "api-bad-timeout",
    "api-not-a-url",
    "api-plain-http-remote",
    "api-url-with-password",
    "button-title-too-long",
    "contacts-bad-delimiter",
    "contacts-bad-encoding",
    "contacts-missing",
    "csv-duplicate-header",
    "csv-empty-header",
    "csv-file-missing",
    "csv-not-declared-encoding",
    "csv-not-utf8",
    "csv-ragged-row",
    "csv-stray-quote",
    "csv-stray-quote-swallows-rows",
    "csv-unterminated-quote-at-end",
    "csv-utf8-declared-windows-1252",
    "csv-cell-too-long",
    "env-variable-not-set",
    "exclude-file-missing",
    "inline-default-on-column",
    "inline-template-syntax-error",
    "inline-unknown-variable",
    "inline-unknown-vars-key",
    "inline-unknown-variable-in-block",
    "message-neither-text-nor-template",
    "message-text-and-template",
    "messages-missing",
    "row-amount-ambiguous",
    "row-date-not-iso",
    "row-key-empty",
    "row-media-url-not-http",
    "row-phone-missing-on-whatsapp",
    "row-phone-old-brazilian-mobile",
    "row-phone-too-short",
    "row-text-renders-empty",
    "row-url-button-without-url",
    "send-bad-backoff",
    "send-bad-rate",
    "send-retries-out-of-range",
    "send-zero-concurrency",
    "template-absolute-path",
    "template-file-missing",
    "template-outside-folder",
    "template-runaway-loop",
    "template-smart-quote-in-tag",
    "template-syntax-error",
    "template-unknown-filter-in-branch",
    "template-unknown-variable",
    "where-column-compared-with-number",
    "where-unknown-variable",
    "window-bad-day",
    "window-bad-time",
    "window-bad-timezone",
    "yaml-bad-env-reference",
    "yaml-bad-name",
    "yaml-bad-version",
    "yaml-literal-token",
    "yaml-missing-name",
    "yaml-missing-version",
    "yaml-smart-quotes-around-key",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn broken(name: &str) -> PathBuf {
    root()
        .join("tests/fixtures/broken")
        .join(name)
        .join("campaign.yaml")
}

/// The committed schema, as editors read it.
fn schema() -> Value {
    let text = std::fs::read_to_string(root().join("campaign.schema.json"))
        .expect("campaign.schema.json at the repository root");
    serde_json::from_str(&text).expect("campaign.schema.json is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the schema compiles")
}

/// YAML as JSON, the way an editor's YAML language server sees it.
fn as_json(yaml: &str) -> Value {
    let doc: serde_yaml::Value = serde_yaml::from_str(yaml).expect("YAML");
    serde_json::to_value(doc).expect("a YAML document with string keys")
}

/// The schema's complaints about a campaign, one line each.
fn complaints(v: &jsonschema::Validator, yaml: &str) -> Vec<String> {
    let doc = as_json(yaml);
    v.iter_errors(&doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn the_schema_file_is_what_the_command_prints() {
    let out = Command::cargo_bin("cosmocast")
        .expect("the binary")
        .arg("schema")
        .output()
        .expect("cosmocast schema runs");
    assert_eq!(out.status.code(), Some(0));
    let printed = String::from_utf8(out.stdout).expect("UTF-8");
    let committed =
        std::fs::read_to_string(root().join("campaign.schema.json")).unwrap_or_default();
    assert!(
        printed == committed,
        "campaign.schema.json differs from `cosmocast schema`; regenerate it with\n    cargo run -- schema > campaign.schema.json"
    );
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["$id"].is_string() && schema["title"].is_string());
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("the schema breaks the draft 2020-12 meta-schema: {e}");
    }
}

#[test]
fn the_example_campaign_names_the_schema_for_editors() {
    let text =
        std::fs::read_to_string(root().join("campaigns/welcome.yaml")).expect("welcome.yaml");
    assert_eq!(
        text.lines().next(),
        Some("# yaml-language-server: $schema=../campaign.schema.json")
    );
    assert!(root().join("campaigns/../campaign.schema.json").is_file());
}

const ALL_TYPES: &str = r#"  - type: text
    template: hello.txt.j2
  - type: buttons
    text: "Keep your {{ plan }} plan?"
    buttons:
      - { title: "Yes", type: payload, value: "renew-yes" }
      - { title: "See plans", type: url, value: "{{ vars.store_url }}/plans?c={{ customer_id }}" }
  - type: media
    media: image
    url: "https://cdn.example.com/{{ plan }}.png"
    name: "Your {{ plan }} card"
    mime_type: image/png
  - type: cards
    cards:
      - title: "{{ plan | title }}"
        subtitle: "Renews on {{ renews_on }}"
        image_url: "https://cdn.example.com/{{ plan }}.png"
        buttons: [{ title: "Open", type: url, value: "{{ vars.store_url }}" }]
  - type: payload
    payload: { campaign: renewal, tier: "{{ plan }}", n: 3 }
"#;

/// Campaigns as the integration tests write them, through `campaign_yaml`.
fn test_campaigns() -> Vec<String> {
    let url = "http://127.0.0.1:8787/messages/v1/send";
    let text = "  - type: text\n    text: \"Hi {{ first_name }}\"\n";
    let with_contacts = |extra: &str| {
        campaign_yaml(url, text, "").replace(
            "  file: contacts.csv\n",
            &format!("  file: contacts.csv\n{extra}"),
        )
    };
    vec![
        campaign_yaml(url, "  - type: text\n    template: hello.txt.j2\n", ""),
        campaign_yaml(
            url,
            ALL_TYPES,
            "vars:\n  store_url: https://shop.example.com\n",
        ),
        campaign_yaml(
            url,
            "  - type: buttons\n    text: \"Renew, {{ first_name }}?\"\n    buttons:\n      - { title: \"Yes\", type: payload, value: \"renew-yes\" }\n",
            "",
        ),
        campaign_yaml(url, text, "send:\n  concurrency: 16\n  rate: 200/s\n"),
        campaign_yaml(
            url,
            text,
            "send:\n  concurrency: 8\n  retries: 10\n  backoff: 5ms\n  max_consecutive_failures: 0\n",
        ),
        campaign_yaml(
            url,
            text,
            "send:\n  window:\n    from: \"09:00\"\n    until: \"10:00\"\n    timezone: UTC\n    days: [mon, fri]\n",
        ),
        with_contacts(
            "  key: \"{{ customer_id }}\"\n  encoding: windows-1252\n  delimiter: \";\"\n",
        ),
        with_contacts(
            "  where: \"opt_in == 'yes'\"\n  exclude: [optouts.csv]\n  country: BR\n  unique_phone: false\n",
        ),
        campaign_yaml(
            url,
            text,
            "destination: bot\nsession:\n  id: \"{{ session_id }}\"\n  control: bot\ntemplates: templates\n",
        ),
    ]
}

#[test]
fn every_valid_campaign_fits_the_schema() {
    let v = validator();
    let mut failures = Vec::new();
    let welcome =
        std::fs::read_to_string(root().join("campaigns/welcome.yaml")).expect("welcome.yaml");
    let mut campaigns = vec![("campaigns/welcome.yaml".to_string(), welcome)];
    for (i, yaml) in test_campaigns().into_iter().enumerate() {
        campaigns.push((format!("test campaign {i}"), yaml));
    }
    for name in NOT_SHAPE {
        let yaml = std::fs::read_to_string(broken(name)).expect("a fixture");
        campaigns.push((format!("tests/fixtures/broken/{name}"), yaml));
    }
    for (name, yaml) in &campaigns {
        let found = complaints(&v, yaml);
        if !found.is_empty() {
            failures.push(format!("{name}:\n  {}", found.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_shape_problem_fails_the_schema() {
    let v = validator();
    for name in SHAPE {
        let yaml = std::fs::read_to_string(broken(name)).expect("a fixture");
        assert!(
            !complaints(&v, &yaml).is_empty(),
            "{name}: the schema accepts a file whose shape is wrong"
        );
    }
    // The three typos and the wrong type are four complaints, as `check` reports four problems.
    let yaml = std::fs::read_to_string(broken("yaml-three-typos")).expect("a fixture");
    assert_eq!(
        complaints(&v, &yaml).len(),
        4,
        "{:#?}",
        complaints(&v, &yaml)
    );
}

#[test]
fn every_broken_campaign_is_classified() {
    let mut unlisted = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/fixtures/broken")).expect("the corpus") {
        let name = entry
            .expect("an entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let lists = [SHAPE, NOT_YAML, NOT_SHAPE];
        let count = lists.iter().filter(|l| l.contains(&name.as_str())).count();
        if count != 1 {
            unlisted.push(name);
        }
    }
    assert!(
        unlisted.is_empty(),
        "list each of these once in SHAPE, NOT_YAML or NOT_SHAPE in tests/schema.rs: {unlisted:?}"
    );
}
