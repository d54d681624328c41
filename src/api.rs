//! The CosmoBots wire format: request and response types of docs/cosmobots-api.md, and the rules a
//! request must follow. This is the only module that knows the JSON shape.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a message goes (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(
    description = "Where the messages go: `contact` (the contact's conversation), `bot` or `desk`."
)]
pub(crate) enum Destination {
    Contact,
    Bot,
    Desk,
}

/// One request: one contact, all message items in order (§2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendRequest {
    pub destination: Destination,
    pub contact: Contact,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    pub message: Vec<MessageItem>,
}

/// §2.2. Optional fields that render empty are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Contact {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub custom: Map<String, Value>,
}

/// §2.3, passed through as the campaign gives it (strings rendered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session(pub Map<String, Value>);

/// §2.5 and §2.6: `{ "type": ..., "data": {...} }`. The nesting of each `data` lives here only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub(crate) enum MessageItem {
    Text(TextData),
    Buttons(ButtonsData),
    /// Nesting under `cards` is our decision (docs/cosmobots-api.md §2.6).
    Cards(CardsData),
    /// Fields directly in `data` is our decision (docs/cosmobots-api.md §2.6).
    Media(MediaData),
    Payload(Map<String, Value>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextData {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ButtonsData {
    pub text: String,
    pub buttons: Vec<Button>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(
    description = "What a click does: `text` replies with `value`, `url` opens the URL in `value`, `payload` sends `value` back to the bot."
)]
pub(crate) enum ButtonType {
    Text,
    Url,
    Payload,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Button {
    pub title: String,
    #[serde(rename = "type")]
    pub kind: ButtonType,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CardsData {
    pub cards: Vec<Card>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Card {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(description = "The kind of media: `image`, `audio`, `video` or `document`.")]
pub(crate) enum MediaKind {
    Image,
    Audio,
    Video,
    Document,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MediaData {
    #[serde(rename = "type")]
    pub kind: MediaKind,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// The channel kind decides whether `mobile_phone` is required (§2.2).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Default,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
#[schemars(
    description = "The channel's kind: `whatsapp`, `rcs` and `apple` require `contact.mobile_phone`; `other` does not."
)]
pub(crate) enum Channel {
    Whatsapp,
    Rcs,
    Apple,
    #[default]
    Other,
}

impl Channel {
    pub(crate) fn requires_phone(self) -> bool {
        !matches!(self, Channel::Other)
    }

    /// The channel's name as the campaign file writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
            Channel::Rcs => "rcs",
            Channel::Apple => "apple",
            Channel::Other => "other",
        }
    }
}

/// E.164 allows at most 15 digits, country code included.
const MAX_PHONE_DIGITS: usize = 15;

/// Whether `mobile_phone` is a number in the one form the API takes: libphonenumber's valid
/// international number, digits only (`5511987654321`). The sandbox holds every request to it;
/// cosmocast's own requests carry phones it normalised itself.
pub(crate) fn phone_violation(req: &SendRequest) -> Option<Violation> {
    let p = req.contact.mobile_phone.as_deref()?;
    match crate::phone::normalise(p, None) {
        Ok(phone) if phone.digits == p => None,
        Ok(phone) => Some(Violation {
            field: "contact.mobile_phone".into(),
            message: format!(
                "{p:?} is not in the normalised form: send {:?} (the international number, digits only)",
                phone.digits
            ),
        }),
        Err(e) => Some(Violation {
            field: "contact.mobile_phone".into(),
            message: format!("is not a valid international number: {e}"),
        }),
    }
}

/// One rule a request breaks: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub field: String,
    pub message: String,
}

fn violation(out: &mut Vec<Violation>, field: impl Into<String>, message: impl Into<String>) {
    out.push(Violation {
        field: field.into(),
        message: message.into(),
    });
}

fn is_web_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

/// `path` spells out where the buttons sit, given what follows; it runs only for a violation.
fn check_buttons(out: &mut Vec<Violation>, path: &dyn Fn(&str) -> String, buttons: &[Button]) {
    for (i, b) in buttons.iter().enumerate() {
        let at = |rest: &str| path(&format!("[{i}]{rest}"));
        if b.title.trim().is_empty() {
            violation(out, at(".title"), "a button needs a title");
        }
        if b.value.trim().is_empty() {
            violation(out, at(".value"), "a button needs a value");
        } else if b.kind == ButtonType::Url && !is_web_url(&b.value) {
            violation(
                out,
                at(".value"),
                format!("a url button needs an http(s) URL, got {:?}", b.value),
            );
        }
    }
}

/// The longest text item, in characters: WhatsApp's published limit, which every channel is
/// held to (the API documents none of its own).
pub(crate) const TEXT_MAX: usize = 4096;

const TEXT_RULE: &str = "on any channel a text may hold";

/// WhatsApp's published limits for an interactive buttons message, in characters.
pub(crate) const WHATSAPP_BUTTONS_TEXT_MAX: usize = 1024;
pub(crate) const WHATSAPP_BUTTONS_MAX: usize = 3;
pub(crate) const WHATSAPP_BUTTON_TITLE_MAX: usize = 20;
pub(crate) const WHATSAPP_BUTTON_VALUE_MAX: usize = 256;

/// A violation when `text` holds more than `max` characters (not bytes: `ção` is three);
/// `rule` says whose limit it is (`on WhatsApp a button title may hold`).
fn check_length(
    out: &mut Vec<Violation>,
    field: impl FnOnce() -> String,
    text: &str,
    max: usize,
    rule: &str,
) {
    // No more bytes than the limit means no more characters: most texts stop here. Counting
    // stops past the limit: a rendered text may be long.
    if text.len() <= max {
        return;
    }
    let n = text.chars().take(max + 1).count();
    if n > max {
        let total = text.chars().count();
        violation(
            out,
            field(),
            format!("is {total} characters long; {rule} at most {max}"),
        );
    }
}

/// The channel's length limits on text and buttons (none on cards, media or payloads).
fn check_limits(out: &mut Vec<Violation>, req: &SendRequest, channel: Channel) {
    let whatsapp = channel == Channel::Whatsapp;
    for (i, item) in req.message.iter().enumerate() {
        let at = |rest: &str| format!("message[{i}]{rest}");
        match item {
            MessageItem::Text(t) => {
                check_length(out, || at(".data.text"), &t.text, TEXT_MAX, TEXT_RULE)
            }
            MessageItem::Buttons(b) if whatsapp => {
                check_length(
                    out,
                    || at(".data.text"),
                    &b.text,
                    WHATSAPP_BUTTONS_TEXT_MAX,
                    "on WhatsApp a buttons message's text may hold",
                );
                if b.buttons.len() > WHATSAPP_BUTTONS_MAX {
                    violation(
                        out,
                        at(".data.buttons"),
                        format!(
                            "has {} buttons; on WhatsApp a buttons message may hold at most {WHATSAPP_BUTTONS_MAX}",
                            b.buttons.len()
                        ),
                    );
                }
                for (j, button) in b.buttons.iter().enumerate() {
                    check_length(
                        out,
                        || at(&format!(".data.buttons[{j}].title")),
                        &button.title,
                        WHATSAPP_BUTTON_TITLE_MAX,
                        "on WhatsApp a button title may hold",
                    );
                    check_length(
                        out,
                        || at(&format!(".data.buttons[{j}].value")),
                        &button.value,
                        WHATSAPP_BUTTON_VALUE_MAX,
                        "on WhatsApp a button value may hold",
                    );
                }
            }
            MessageItem::Buttons(b) => {
                check_length(out, || at(".data.text"), &b.text, TEXT_MAX, TEXT_RULE)
            }
            _ => {}
        }
    }
}

/// Checks a request against the API's rules; the sandbox applies the same rules.
pub(crate) fn validate(req: &SendRequest, channel: Channel) -> Vec<Violation> {
    let mut out = Vec::new();
    check_contact(&mut out, req, channel);
    if let Some(session) = &req.session {
        match session.0.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            _ => violation(&mut out, "session.id", "a session needs an id"),
        }
    }
    if req.message.is_empty() {
        violation(&mut out, "message", "needs at least one item");
    }
    for (i, item) in req.message.iter().enumerate() {
        check_item(&mut out, &|rest| format!("message[{i}]{rest}"), item);
    }
    check_limits(&mut out, req, channel);
    out
}

/// The contact's id, and its phone: digits only, and present where the channel needs one.
fn check_contact(out: &mut Vec<Violation>, req: &SendRequest, channel: Channel) {
    if req.contact.id.trim().is_empty() {
        violation(
            out,
            "contact.id",
            "is empty; use \"new_contact\" for a contact CosmoBots does not know yet",
        );
    }
    match &req.contact.mobile_phone {
        Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => violation(
            out,
            "contact.mobile_phone",
            format!("must hold digits only, got {p:?}"),
        ),
        Some(p) if p.is_empty() || p.len() > MAX_PHONE_DIGITS => violation(
            out,
            "contact.mobile_phone",
            format!(
                "has {} digits; an international number has 1 to {MAX_PHONE_DIGITS}",
                p.len()
            ),
        ),
        None if channel.requires_phone() && req.destination == Destination::Contact => violation(
            out,
            "contact.mobile_phone",
            "is empty, but this channel requires a phone with country code",
        ),
        _ => {}
    }
}

/// One message item (at `at("")`): text present, buttons and cards complete, URLs web URLs.
fn check_item(out: &mut Vec<Violation>, at: &dyn Fn(&str) -> String, item: &MessageItem) {
    match item {
        MessageItem::Text(t) => {
            if t.text.trim().is_empty() {
                violation(out, at(".data.text"), "text is empty");
            }
        }
        MessageItem::Buttons(b) => {
            if b.text.trim().is_empty() {
                violation(out, at(".data.text"), "text is empty");
            }
            if b.buttons.is_empty() {
                violation(out, at(".data.buttons"), "needs a button");
            }
            check_buttons(out, &|rest| at(&format!(".data.buttons{rest}")), &b.buttons);
        }
        MessageItem::Cards(c) => {
            if c.cards.is_empty() {
                violation(out, at(".data.cards"), "needs a card");
            }
            for (j, card) in c.cards.iter().enumerate() {
                check_card(out, &|rest| at(&format!(".data.cards[{j}]{rest}")), card);
            }
        }
        MessageItem::Media(m) => {
            if !is_web_url(&m.url) {
                violation(
                    out,
                    at(".data.url"),
                    format!("media needs an http(s) URL, got {:?}", m.url),
                );
            }
        }
        MessageItem::Payload(_) => {}
    }
}

/// One card (at `at("")`): a title, a web image URL, complete buttons.
fn check_card(out: &mut Vec<Violation>, at: &dyn Fn(&str) -> String, card: &Card) {
    if card.title.trim().is_empty() {
        violation(out, at(".title"), "a card needs a title");
    }
    if let Some(u) = &card.image_url
        && !is_web_url(u)
    {
        violation(
            out,
            at(".image_url"),
            format!("is not an http(s) URL: {u:?}"),
        );
    }
    check_buttons(out, &|rest| at(&format!(".buttons{rest}")), &card.buttons);
}

/// The API's answer to one request, as docs/cosmobots-api.md §3 reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// `status: sent`, or another 2xx body that carries message ids.
    Sent {
        contact_id: Option<String>,
        session_id: Option<String>,
        message_ids: Vec<String>,
    },
    /// `{ "id": ... }`: accepted into the queue.
    Queued { queue_id: String },
    /// `status: error`: a definite failure for this contact.
    Error { reason: String },
    /// A 2xx body we cannot read as any of the above, whole: it is redacted before it is cut.
    Unrecognised { raw: String },
}

#[derive(Deserialize)]
struct RawAnswer {
    status: Option<String>,
    #[serde(default)]
    contact_id: Id,
    #[serde(default)]
    session_id: Id,
    #[serde(default)]
    message_ids: Option<Vec<Id>>,
    #[serde(default)]
    id: Id,
    error: Option<Value>,
    message: Option<Value>,
    reason: Option<Value>,
}

/// An identifier in an answer: a non-empty string, or a number written out; any other value
/// (null, empty, an object) is none.
#[derive(Debug, Default, Deserialize)]
#[serde(from = "Value")]
struct Id(Option<String>);

impl From<Value> for Id {
    fn from(value: Value) -> Id {
        Id(match value {
            Value::String(s) if !s.is_empty() => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    }
}

/// Keeps at most `max` bytes of `s`, cut on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Reads a 2xx response body (§3; unknown fields ignored).
pub(crate) fn parse_answer(body: &[u8]) -> Answer {
    let raw = || Answer::Unrecognised {
        raw: String::from_utf8_lossy(body).into_owned(),
    };
    let Ok(a) = serde_json::from_slice::<RawAnswer>(body) else {
        return raw();
    };
    let ids: Vec<String> = a
        .message_ids
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.0)
        .collect();
    let status = a.status.as_deref();
    let is = |word: &str| status.is_some_and(|s| s.eq_ignore_ascii_case(word));
    match () {
        _ if is("error") => {
            let reason = [&a.error, &a.message, &a.reason]
                .into_iter()
                .flatten()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .next()
                .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
            Answer::Error { reason }
        }
        _ if is("sent") || !ids.is_empty() => Answer::Sent {
            contact_id: a.contact_id.0,
            session_id: a.session_id.0,
            message_ids: ids,
        },
        _ => match a.id.0 {
            Some(queue_id) => Answer::Queued { queue_id },
            None => raw(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contact() -> Contact {
        Contact {
            id: "new_contact".into(),
            mobile_phone: Some("5511999990042".into()),
            ..Default::default()
        }
    }

    fn body(item: MessageItem) -> Value {
        let req = SendRequest {
            destination: Destination::Contact,
            contact: contact(),
            session: None,
            message: vec![item],
        };
        serde_json::to_value(&req).unwrap()["message"][0].clone()
    }

    #[test]
    fn text_fixture() {
        let v = body(MessageItem::Text(TextData { text: "Hi".into() }));
        assert_eq!(v, json!({"type": "text", "data": {"text": "Hi"}}));
    }

    #[test]
    fn buttons_fixture() {
        let v = body(MessageItem::Buttons(ButtonsData {
            text: "Keep?".into(),
            buttons: vec![Button {
                title: "Yes".into(),
                kind: ButtonType::Payload,
                value: "renew-yes".into(),
            }],
        }));
        assert_eq!(
            v,
            json!({"type": "buttons", "data": {"text": "Keep?", "buttons": [
                {"title": "Yes", "type": "payload", "value": "renew-yes"}]}})
        );
    }

    #[test]
    fn cards_fixture() {
        let v = body(MessageItem::Cards(CardsData {
            cards: vec![Card {
                title: "Gold".into(),
                subtitle: None,
                image_url: Some("https://cdn.example.com/gold.png".into()),
                buttons: vec![],
            }],
        }));
        assert_eq!(
            v,
            json!({"type": "cards", "data": {"cards": [
                {"title": "Gold", "image_url": "https://cdn.example.com/gold.png"}]}})
        );
    }

    #[test]
    fn media_fixture() {
        let v = body(MessageItem::Media(MediaData {
            kind: MediaKind::Image,
            url: "https://cdn.example.com/a.png".into(),
            name: Some("Card".into()),
            mime_type: None,
        }));
        assert_eq!(
            v,
            json!({"type": "media", "data": {"type": "image",
                "url": "https://cdn.example.com/a.png", "name": "Card"}})
        );
    }

    #[test]
    fn payload_fixture() {
        let mut m = Map::new();
        m.insert("tier".into(), json!("gold"));
        let v = body(MessageItem::Payload(m));
        assert_eq!(v, json!({"type": "payload", "data": {"tier": "gold"}}));
    }

    #[test]
    fn answers() {
        assert_eq!(
            parse_answer(br#"{"status":"sent","contact_id":"c1","session_id":"s1","message_ids":["m1","m2"],"x":1}"#),
            Answer::Sent {
                contact_id: Some("c1".into()),
                session_id: Some("s1".into()),
                message_ids: vec!["m1".into(), "m2".into()]
            }
        );
        assert_eq!(
            parse_answer(br#"{"id":"q-9"}"#),
            Answer::Queued {
                queue_id: "q-9".into()
            }
        );
        assert_eq!(
            parse_answer(br#"{"status":"error","message":"window closed"}"#),
            Answer::Error {
                reason: "window closed".into()
            }
        );
        assert!(matches!(
            parse_answer(b"<html>"),
            Answer::Unrecognised { .. }
        ));
    }

    #[test]
    fn identifiers_come_as_strings_numbers_or_nothing() {
        assert_eq!(
            parse_answer(
                br#"{"status":"SENT","contact_id":42,"session_id":"","message_ids":[7,"m\u00e9",null,"",{"a":[1]},[2],1.5,true],"id":null}"#
            ),
            Answer::Sent {
                contact_id: Some("42".into()),
                session_id: None,
                message_ids: vec!["7".into(), "m\u{e9}".into(), "1.5".into()]
            }
        );
        assert_eq!(
            parse_answer(br#"{"contact_id":{"nested":{"deep":[1,2]}},"id":-3}"#),
            Answer::Queued {
                queue_id: "-3".into()
            }
        );
        assert!(matches!(
            parse_answer(br#"{"status":"accepted","id":""}"#),
            Answer::Unrecognised { .. }
        ));
    }

    fn request(item: MessageItem) -> SendRequest {
        SendRequest {
            destination: Destination::Contact,
            contact: contact(),
            session: None,
            message: vec![item],
        }
    }

    fn button(title: &str, value: &str) -> Button {
        Button {
            title: title.into(),
            kind: ButtonType::Payload,
            value: value.into(),
        }
    }

    fn shown(v: &[Violation]) -> Vec<String> {
        v.iter()
            .map(|v| format!("{} {}", v.field, v.message))
            .collect()
    }

    #[test]
    fn a_text_holds_4096_characters_on_every_channel_counted_as_characters() {
        // 4096 characters of two bytes each: within the limit, though 8192 bytes.
        let at_limit = "ç".repeat(TEXT_MAX);
        for channel in [
            Channel::Whatsapp,
            Channel::Rcs,
            Channel::Apple,
            Channel::Other,
        ] {
            let ok = request(MessageItem::Text(TextData {
                text: at_limit.clone(),
            }));
            assert!(validate(&ok, channel).is_empty(), "{channel:?}");
            let long = request(MessageItem::Text(TextData {
                text: format!("{at_limit}a"),
            }));
            assert_eq!(
                shown(&validate(&long, channel)),
                [
                    "message[0].data.text is 4097 characters long; on any channel a text may hold at most 4096"
                ],
                "{channel:?}"
            );
        }
    }

    #[test]
    fn whatsapp_buttons_follow_whatsapps_limits() {
        let buttons = |text: &str, buttons: Vec<Button>| {
            request(MessageItem::Buttons(ButtonsData {
                text: text.into(),
                buttons,
            }))
        };
        let fits = buttons(
            &"é".repeat(1024),
            vec![
                button(&"ã".repeat(20), &"v".repeat(256)),
                button("b", "b"),
                button("c", "c"),
            ],
        );
        assert!(validate(&fits, Channel::Whatsapp).is_empty());
        let over = buttons(
            &"é".repeat(1025),
            vec![
                button(&"ã".repeat(21), &"v".repeat(257)),
                button("b", "b"),
                button("c", "c"),
                button("d", "d"),
            ],
        );
        assert_eq!(
            shown(&validate(&over, Channel::Whatsapp)),
            [
                "message[0].data.text is 1025 characters long; on WhatsApp a buttons message's text may hold at most 1024",
                "message[0].data.buttons has 4 buttons; on WhatsApp a buttons message may hold at most 3",
                "message[0].data.buttons[0].title is 21 characters long; on WhatsApp a button title may hold at most 20",
                "message[0].data.buttons[0].value is 257 characters long; on WhatsApp a button value may hold at most 256",
            ]
        );
        // Other channels keep only the text limit.
        assert!(validate(&over, Channel::Other).is_empty());
        let long = buttons(&"x".repeat(TEXT_MAX + 1), vec![button("a", "a")]);
        assert_eq!(
            shown(&validate(&long, Channel::Rcs)),
            [
                "message[0].data.text is 4097 characters long; on any channel a text may hold at most 4096"
            ]
        );
    }

    #[test]
    fn phone_rules() {
        let mut req = SendRequest {
            destination: Destination::Contact,
            contact: contact(),
            session: None,
            message: vec![MessageItem::Text(TextData { text: "x".into() })],
        };
        assert!(validate(&req, Channel::Whatsapp).is_empty());
        req.contact.mobile_phone = None;
        assert_eq!(validate(&req, Channel::Whatsapp).len(), 1);
        assert!(validate(&req, Channel::Other).is_empty());
        req.contact.mobile_phone = Some("55 11".into());
        assert_eq!(
            validate(&req, Channel::Other)[0].field,
            "contact.mobile_phone"
        );
        // The sandbox's stricter rule: only the normalised form.
        req.contact.mobile_phone = Some("5511987654321".into());
        assert_eq!(phone_violation(&req), None);
        for written in ["011987654321", "55011987654321", "123"] {
            req.contact.mobile_phone = Some(written.into());
            assert!(phone_violation(&req).is_some(), "{written}");
        }
    }
}
