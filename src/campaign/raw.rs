//! The campaign file as written: a serde mirror of the YAML that rejects unknown keys.
//! Nothing here is checked beyond its type; `campaign::load` turns it into a `Campaign`.
//!
//! The same types give the file's JSON Schema (`cosmocast schema`, through schemars), so every
//! doc comment below is what an editor shows on hover: it speaks to the person writing the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{ButtonType, Channel, Destination, MediaKind};

/// A cosmocast campaign: who receives which messages through the CosmoBots Send Message API.
/// `${VAR}` values are read from the environment; strings described as minijinja templates are
/// rendered for each row of the contact CSV, whose columns are their variables.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Campaign")]
pub(crate) struct RawCampaign {
    /// The campaign format's version; required. The only version so far is 1.
    #[schemars(example = 1)]
    pub version: Option<u32>,
    /// Identifies the campaign in the ledger; required. Lower-case letters a-z, digits, `.`, `_`
    /// and `-`.
    #[schemars(example = "renewal-2026-12")]
    pub name: Option<String>,
    /// Where and how the requests are sent.
    #[serde(default)]
    #[schemars(example = json!({"token": "${COSMOBOTS_TOKEN}", "channel_id": "${COSMOBOTS_CHANNEL_ID}", "channel": "whatsapp"}))]
    pub api: RawApi,
    /// The contact CSV file and how to read it; required.
    #[schemars(example = json!({"file": "customers.csv", "key": "{{ customer_id }}"}))]
    pub contacts: Option<RawContacts>,
    /// Constants every template reads as `vars.NAME`; they are not templates themselves.
    #[serde(default)]
    #[schemars(example = json!({"store_url": "https://shop.example.com"}))]
    pub vars: Map<String, Value>,
    /// Where the messages go: `contact` (the default), `bot` or `desk`.
    #[schemars(example = Destination::Contact)]
    pub destination: Option<Destination>,
    /// The contact each request addresses; every string in it is a minijinja template.
    #[serde(default)]
    #[schemars(example = json!({"external_id": "{{ customer_id }}", "first_name": "{{ first_name | title }}", "mobile_phone": "{{ phone }}"}))]
    pub contact: RawContact,
    /// Session fields, sent as given; every string in it is a minijinja template.
    #[schemars(example = json!({"id": "{{ session_id }}", "control": "bot"}))]
    pub session: Option<Map<String, Value>>,
    /// The message items, sent in this order in one request per contact; at least one.
    #[serde(default)]
    #[schemars(example = json!([{"type": "text", "text": "Hello {{ first_name }}"}]))]
    pub messages: Vec<RawMessage>,
    /// The folder of template files, relative to this file's folder. Default: the nearest folder
    /// named `templates` at or above it.
    #[schemars(example = "../templates")]
    pub templates: Option<PathBuf>,
    /// How fast and how persistently to send.
    #[serde(default)]
    #[schemars(example = json!({"concurrency": 8, "rate": "20/s"}))]
    pub send: RawSend,
}

/// The CosmoBots Send Message API: endpoint, credentials and channel.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Api")]
pub(crate) struct RawApi {
    /// The endpoint. Default: https://api.cosmobots.io/messages/v1/send; plain `http://` only to
    /// 127.0.0.1 or localhost.
    #[schemars(example = "https://api.cosmobots.io/messages/v1/send")]
    pub url: Option<String>,
    /// The API token as `${VAR}`, read from the environment: a literal secret is refused.
    /// Default: `${COSMOBOTS_TOKEN}`.
    #[schemars(example = "${COSMOBOTS_TOKEN}")]
    pub token: Option<String>,
    /// The channel id as `${VAR}`, read from the environment. Default: `${COSMOBOTS_CHANNEL_ID}`.
    #[schemars(example = "${COSMOBOTS_CHANNEL_ID}")]
    pub channel_id: Option<String>,
    /// The channel's kind: `whatsapp`, `rcs` and `apple` require `contact.mobile_phone`.
    /// Default: `other`.
    #[schemars(example = Channel::Whatsapp)]
    pub channel: Option<Channel>,
    /// How long one request may take: `30s`, `500ms`, `2m`, or a number of seconds. Default: 30s.
    #[schemars(example = "30s")]
    pub timeout: Option<Scalar>,
    /// At most this many unique people messaged through this channel id in any rolling 24
    /// hours, counted across every campaign of the ledger (WhatsApp's messaging tiers: 250,
    /// 1000, 10000, 100000). Where campaigns declare different limits, the smallest applies.
    #[schemars(example = 1000, range(min = 1))]
    pub daily_limit: Option<u32>,
}

/// The contact CSV file and how to read it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Contacts")]
pub(crate) struct RawContacts {
    /// The contact CSV, relative to this file's folder; required. Its header names the template
    /// variables.
    #[schemars(example = "customers.csv")]
    pub file: PathBuf,
    /// The CSV's delimiter: `,`, `;` or `tab`. Default: detected among these three.
    #[schemars(example = ";")]
    pub delimiter: Option<String>,
    /// The CSV's text encoding, a WHATWG label such as `windows-1252`, `iso-8859-1` or
    /// `utf-16le`. Default: utf-8 (a byte order mark is ignored).
    #[schemars(example = "windows-1252")]
    pub encoding: Option<String>,
    /// The region of phones written without a country code: an ISO 3166-1 alpha-2 code.
    #[schemars(example = &"BR")]
    pub country: Option<String>,
    /// Skip a contact whose phone was already messaged under another key (recorded as
    /// `skipped: duplicate`). Default: true.
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub unique_phone: bool,
    /// A minijinja template: a contact's identity, for resuming and de-duplication.
    /// Default: the normalised `contact.mobile_phone`, else `contact.external_id`.
    #[schemars(example = "{{ customer_id }}")]
    pub key: Option<String>,
    /// A minijinja expression over the row: rows where it is false are not part of the campaign.
    #[serde(rename = "where")]
    #[schemars(example = "opt_in == 'yes'")]
    pub filter: Option<String>,
    /// Lists of people never to message in this campaign: a row whose key or phone is listed is
    /// skipped. `{ file, column }` reads one column of a CSV with a header row; a bare file name
    /// is a file of one cell a line, without a header. Relative to this file's folder.
    #[serde(default)]
    #[schemars(example = json!([{"file": "descadastros.csv", "column": "Telefone"}, "vip-only.csv"]))]
    pub exclude: Vec<RawExclude>,
    /// Whoever any campaign of the ledger messaged this recently waits (counted as `deferred`
    /// and sent by a later run): `24h`, `7d`. A bare number is refused: it needs its unit.
    #[schemars(example = "24h")]
    pub cooldown: Option<Scalar>,
}

/// One exclusion list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Exclude")]
pub(crate) enum RawExclude {
    /// A CSV file with a header row, of which only `column` is read (a phone or a key).
    Column(RawExcludeColumn),
    /// A file of one cell a line (a phone or a key), without a header row.
    File(PathBuf),
}

/// A CSV file with a header row, of which one column is read.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ExcludeColumn")]
pub(crate) struct RawExcludeColumn {
    /// The CSV file, relative to this file's folder.
    #[schemars(example = "descadastros.csv")]
    pub file: PathBuf,
    /// The header of the column that holds phones or keys.
    #[schemars(example = &"Telefone")]
    pub column: String,
}

fn yes() -> bool {
    true
}

/// The contact each request addresses; every field is a minijinja template rendered per row.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Contact")]
pub(crate) struct RawContact {
    /// A minijinja template: the CosmoBots contact id. Default: `new_contact`.
    #[schemars(example = "{{ cosmo_id or 'new_contact' }}")]
    pub id: Option<String>,
    /// A minijinja template: your own id for the contact.
    #[schemars(example = "{{ customer_id }}")]
    pub external_id: Option<String>,
    /// A minijinja template: the contact's first name.
    #[schemars(example = "{{ first_name | title }}")]
    pub first_name: Option<String>,
    /// A minijinja template: the contact's last name.
    #[schemars(example = "{{ last_name }}")]
    pub last_name: Option<String>,
    /// A minijinja template: the contact's phone, normalised to the international number
    /// (digits only; `contacts.country` completes numbers written without a country code).
    #[schemars(example = "{{ phone }}")]
    pub mobile_phone: Option<String>,
    /// Custom contact fields, sent as given; every string in it is a minijinja template.
    #[serde(default)]
    #[schemars(example = json!({"plan": "{{ plan }}"}))]
    pub custom: BTreeMap<String, Value>,
}

/// One message item, chosen by `type`: `text`, `buttons`, `cards`, `media` or `payload`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
#[schemars(rename = "Message")]
pub(crate) enum RawMessage {
    /// A text message: `text` inline, or `template`, a file in the templates folder.
    Text {
        /// A minijinja template file in the templates folder, rendered per row; give `template`
        /// or `text`, not both.
        #[schemars(example = "renewal.txt.j2")]
        template: Option<String>,
        /// A minijinja template: the message text; give `text` or `template`, not both.
        #[schemars(example = "Hello {{ first_name }}!")]
        text: Option<String>,
    },
    /// A text with buttons under it.
    Buttons {
        /// A minijinja template file in the templates folder, rendered per row; give `template`
        /// or `text`, not both.
        #[schemars(example = "question.txt.j2")]
        template: Option<String>,
        /// A minijinja template: the text above the buttons; give `text` or `template`, not both.
        #[schemars(example = "Keep your {{ plan }} plan?")]
        text: Option<String>,
        /// The buttons, in order; required.
        #[schemars(example = json!([{"title": "Yes", "type": "payload", "value": "renew-yes"}]))]
        buttons: Vec<RawButton>,
    },
    /// A carousel of cards.
    Cards {
        /// The cards, in order; required.
        #[schemars(example = json!([{"title": "{{ plan | title }}", "subtitle": "Renews on {{ renews_on }}"}]))]
        cards: Vec<RawCard>,
    },
    /// An image, audio, video or document, by URL.
    Media {
        /// The kind of media; required.
        #[schemars(example = MediaKind::Image)]
        media: MediaKind,
        /// A minijinja template: the media's http(s) URL; required.
        #[schemars(example = "https://cdn.example.com/{{ plan }}.png")]
        url: String,
        /// A minijinja template: the caption or file name shown.
        #[schemars(example = "Your {{ plan }} card")]
        name: Option<String>,
        /// A minijinja template: the media's MIME type.
        #[schemars(example = "image/png")]
        mime_type: Option<String>,
    },
    /// A JSON object passed to the bot as it is.
    Payload {
        /// Any object, sent as given; every string in it is a minijinja template. Required.
        #[schemars(example = json!({"campaign": "renewal", "tier": "{{ plan }}"}))]
        payload: Map<String, Value>,
    },
}

/// A button under a text or a card.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Button")]
pub(crate) struct RawButton {
    /// A minijinja template: the button's label; required.
    #[schemars(example = "See plans")]
    pub title: String,
    /// What a click does; required.
    #[serde(rename = "type")]
    #[schemars(example = ButtonType::Url)]
    pub kind: ButtonType,
    /// A minijinja template: the reply text, the URL, or the payload sent back on a click;
    /// required.
    #[schemars(example = "{{ vars.store_url }}/plans?c={{ customer_id }}")]
    pub value: String,
}

/// One card of a carousel.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Card")]
pub(crate) struct RawCard {
    /// A minijinja template: the card's title; required.
    #[schemars(example = "{{ plan | title }}")]
    pub title: String,
    /// A minijinja template: the line under the title.
    #[schemars(example = "Renews on {{ renews_on }}")]
    pub subtitle: Option<String>,
    /// A minijinja template: the http(s) URL of the card's picture.
    #[schemars(example = "https://cdn.example.com/{{ plan }}.png")]
    pub image_url: Option<String>,
    /// The card's buttons, in order.
    #[serde(default)]
    #[schemars(example = json!([{"title": "Open", "type": "url", "value": "{{ vars.store_url }}"}]))]
    pub buttons: Vec<RawButton>,
}

/// How fast and how persistently to send.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Send")]
pub(crate) struct RawSend {
    /// Requests in flight at most, 1 to 1024. Default: 4.
    #[schemars(example = 8)]
    pub concurrency: Option<usize>,
    /// A ceiling on requests: `N/s`, `N/min` or `N/h`. Default: none.
    #[schemars(example = "20/s")]
    pub rate: Option<String>,
    /// Extra attempts for failures that are safe to retry, 0 to 20. Default: 4.
    #[schemars(example = 4)]
    pub retries: Option<u32>,
    /// The first wait before a retry (`1s`, `250ms`, or a number of seconds), doubled at each
    /// attempt with jitter, capped at 60s. Default: 1s.
    #[schemars(example = "1s")]
    pub backoff: Option<Scalar>,
    /// The longest `Retry-After` the run waits out (`5m`, `90s`, or a number of seconds). When
    /// the API asks for a longer wait, the run stops (exit 4) and a later run continues where
    /// it stopped. Default: 5m.
    #[schemars(example = "5m")]
    pub max_wait: Option<Scalar>,
    /// Stop the run when this many contacts fail in a row. Default: 50.
    #[schemars(example = 50)]
    pub max_consecutive_failures: Option<u32>,
    /// Send only inside these hours; a run outside them sends nothing and exits 4.
    #[schemars(example = json!({"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "until": "20:00", "timezone": "America/Sao_Paulo"}))]
    pub window: Option<RawWindow>,
}

/// The hours in which sending is allowed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Window")]
pub(crate) struct RawWindow {
    /// The days to send on: `mon` … `sun` (or `Monday` …), or a range such as `mon-fri`. Default:
    /// every day.
    #[serde(default)]
    #[schemars(example = ["mon", "tue", "wed", "thu", "fri"])]
    pub days: Vec<String>,
    /// The time sending may start, `HH:MM`; required.
    #[schemars(example = "09:00")]
    pub from: String,
    /// The time sending stops, `HH:MM`; required.
    #[schemars(example = "20:00")]
    pub until: String,
    /// An IANA time zone for `from` and `until`. Default: the machine's.
    #[schemars(example = "America/Sao_Paulo")]
    pub timezone: Option<String>,
}

/// A duration: a number of seconds (`30`) or a number with a unit (`30s`, `500ms`, `2m`, `1h`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Duration")]
pub(crate) enum Scalar {
    Number(f64),
    Text(String),
}

impl Scalar {
    pub(crate) fn as_text(&self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}
