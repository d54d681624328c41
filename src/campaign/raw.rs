//! The campaign file as written: a serde mirror of the YAML that rejects unknown keys.
//! Nothing here is checked beyond its type; `campaign::load` turns it into a `Campaign`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api::{Channel, Destination, MediaKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCampaign {
    pub version: Option<u32>,
    pub name: Option<String>,
    #[serde(default)]
    pub api: RawApi,
    pub contacts: Option<RawContacts>,
    #[serde(default)]
    pub vars: Map<String, Value>,
    pub destination: Option<Destination>,
    #[serde(default)]
    pub contact: RawContact,
    pub session: Option<Map<String, Value>>,
    #[serde(default)]
    pub messages: Vec<RawMessage>,
    pub templates: Option<PathBuf>,
    pub ledger: Option<PathBuf>,
    #[serde(default)]
    pub send: RawSend,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub url: Option<String>,
    pub token: Option<String>,
    pub channel_id: Option<String>,
    pub channel: Option<Channel>,
    pub timeout: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContacts {
    pub file: PathBuf,
    pub delimiter: Option<String>,
    pub encoding: Option<String>,
    pub key: Option<String>,
    #[serde(rename = "where")]
    pub filter: Option<String>,
    #[serde(default)]
    pub exclude: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContact {
    pub id: Option<String>,
    pub external_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub mobile_phone: Option<String>,
    #[serde(default)]
    pub custom: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum RawMessage {
    Text {
        template: Option<String>,
        text: Option<String>,
    },
    Buttons {
        template: Option<String>,
        text: Option<String>,
        buttons: Vec<RawButton>,
    },
    Cards {
        cards: Vec<RawCard>,
    },
    Media {
        media: MediaKind,
        url: String,
        name: Option<String>,
        mime_type: Option<String>,
    },
    Payload {
        payload: Map<String, Value>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawButton {
    pub title: String,
    #[serde(rename = "type")]
    pub kind: crate::api::ButtonType,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCard {
    pub title: String,
    pub subtitle: Option<String>,
    pub image_url: Option<String>,
    #[serde(default)]
    pub buttons: Vec<RawButton>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSend {
    pub concurrency: Option<usize>,
    pub rate: Option<String>,
    pub retries: Option<u32>,
    pub backoff: Option<Scalar>,
    pub max_consecutive_failures: Option<u32>,
    pub window: Option<RawWindow>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    #[serde(default)]
    pub days: Vec<String>,
    pub from: String,
    pub until: String,
    pub timezone: Option<String>,
}

/// A YAML scalar a user may write as `30`, `30s` or `"30s"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Number(f64),
    Text(String),
}

impl Scalar {
    pub fn as_text(&self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}
