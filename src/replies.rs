//! What comes back on the webhook (cosmobots-api.md §4): the body has the send request's fields,
//! with no documented example, so everything is optional, the documented aliases are accepted,
//! types are matched case-insensitively and unknown types are kept raw. Also: opt-out words.

use serde::Deserialize;
use serde_json::Value;

use crate::api::normalise_phone;

/// One webhook delivery, read leniently.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Inbound {
    contact: Option<InContact>,
    #[serde(alias = "messages")]
    message: Option<OneOrMany>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InContact {
    id: Option<Value>,
    #[serde(alias = "phone", alias = "mobilePhone")]
    mobile_phone: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<InMessage>),
    One(InMessage),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InMessage {
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<Value>,
}

/// The parts of a reply the ledger keeps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    pub contact_id: Option<String>,
    pub phone: Option<String>,
    /// Lower-case type of the first item (`text`, `payload`, `buttons`, or whatever came).
    pub kind: Option<String>,
    pub text: Option<String>,
    /// What a button click sent back.
    pub payload: Option<String>,
    /// The body as received, re-serialised.
    pub raw: String,
    /// Identifies a repeat of the same delivery.
    pub fingerprint: String,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// FNV-1a, twice with different offsets: a stable 128-bit fingerprint without a crypto crate.
fn fingerprint(bytes: &[u8]) -> String {
    let fnv = |seed: u64| {
        bytes.iter().fold(seed, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x84222325_cbf29ce4)
    )
}

/// Reads a webhook body; `Err` only when it is not JSON at all.
pub fn parse(body: &[u8]) -> Result<Reply, serde_json::Error> {
    let value: Value = serde_json::from_slice(body)?;
    // serde_json's map is ordered by key, so the same content always serialises the same way.
    let raw = value.to_string();
    let inbound: Inbound = serde_json::from_value(value).unwrap_or_default();
    let contact = inbound.contact.unwrap_or_default();
    let items = match inbound.message {
        Some(OneOrMany::Many(v)) => v,
        Some(OneOrMany::One(m)) => vec![m],
        None => vec![],
    };
    let mut reply = Reply {
        contact_id: contact
            .id
            .as_ref()
            .and_then(scalar)
            .filter(|id| id != "new_contact"),
        phone: contact
            .mobile_phone
            .as_ref()
            .and_then(scalar)
            .map(|p| normalise_phone(&p))
            .filter(|p| !p.is_empty()),
        kind: items
            .first()
            .and_then(|m| m.kind.as_deref())
            .map(str::to_ascii_lowercase),
        fingerprint: fingerprint(raw.as_bytes()),
        raw,
        ..Default::default()
    };
    for item in &items {
        let kind = item.kind.as_deref().unwrap_or("").to_ascii_lowercase();
        let data = item.data.as_ref();
        let text = data.and_then(|d| d.get("text")).and_then(scalar);
        if reply.text.is_none() {
            reply.text = text.or_else(|| data.and_then(scalar));
        }
        if reply.payload.is_none() {
            reply.payload = match kind.as_str() {
                // A click sends the button's value back: as the payload itself, or in a field.
                "payload" | "button" | "buttons" | "postback" => data.and_then(|d| {
                    scalar(d)
                        .or_else(|| {
                            ["payload", "value"]
                                .iter()
                                .find_map(|k| d.get(*k).and_then(scalar))
                        })
                        .or_else(|| (kind == "payload" && d.is_object()).then(|| d.to_string()))
                }),
                _ => None,
            };
        }
    }
    Ok(reply)
}

/// The default opt-out words (matched case- and accent-insensitively, as the whole message).
pub const OPT_OUT_WORDS: [&str; 5] = ["STOP", "SAIR", "PARAR", "CANCELAR", "UNSUBSCRIBE"];

/// Upper-case, accents removed, surrounding punctuation and spaces trimmed.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let base = match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' | 'å' | 'Á' | 'À' | 'Â' | 'Ã' | 'Ä' | 'Å' => {
                'A'
            }
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => 'E',
            'í' | 'ì' | 'î' | 'ï' | 'Í' | 'Ì' | 'Î' | 'Ï' => 'I',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' | 'Ó' | 'Ò' | 'Ô' | 'Õ' | 'Ö' => 'O',
            'ú' | 'ù' | 'û' | 'ü' | 'Ú' | 'Ù' | 'Û' | 'Ü' => 'U',
            'ç' | 'Ç' => 'C',
            'ñ' | 'Ñ' => 'N',
            c => c.to_ascii_uppercase(),
        };
        out.push(base);
    }
    out.trim_matches(|c: char| !c.is_alphanumeric())
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a reply's text asks never to be messaged again.
pub fn is_opt_out(text: &str, words: &[String]) -> bool {
    let t = fold(text);
    !t.is_empty() && words.iter().any(|w| fold(w) == t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_replies_with_aliases() {
        let r = parse(br#"{"destination":"bot","contact":{"id":"ct9","phone":"+55 11 99999-0001","firtName":"Ana"},
            "messages":{"type":"Text","data":{"text":"Oi!"}},"extra":1}"#)
        .unwrap();
        assert_eq!(r.contact_id.as_deref(), Some("ct9"));
        assert_eq!(r.phone.as_deref(), Some("5511999990001"));
        assert_eq!(r.kind.as_deref(), Some("text"));
        assert_eq!(r.text.as_deref(), Some("Oi!"));
        assert_eq!(r.payload, None);
    }

    #[test]
    fn reads_button_clicks_and_unknown_types() {
        let r = parse(br#"{"contact":{"id":"c1"},"message":[{"type":"payload","data":{"value":"renew-yes"}}]}"#).unwrap();
        assert_eq!(r.payload.as_deref(), Some("renew-yes"));
        let r =
            parse(br#"{"contact":{"id":"c1"},"message":[{"type":"PAYLOAD","data":"renew-no"}]}"#)
                .unwrap();
        assert_eq!(r.payload.as_deref(), Some("renew-no"));
        let r = parse(br#"{"message":[{"type":"sticker","data":{"id":5}}]}"#).unwrap();
        assert_eq!(r.kind.as_deref(), Some("sticker"));
        assert!(r.raw.contains("sticker"));
        assert!(parse(b"{not json").is_err());
        assert!(
            parse(b"[1,2]").is_ok(),
            "valid JSON of another shape is kept raw"
        );
    }

    #[test]
    fn the_same_delivery_has_the_same_fingerprint() {
        let a =
            parse(br#"{"contact":{"id":"c1"},"message":[{"type":"text","data":{"text":"x"}}]}"#)
                .unwrap();
        let b =
            parse(br#"{ "message":[{"data":{"text":"x"},"type":"text"}], "contact":{"id":"c1"} }"#)
                .unwrap();
        let c =
            parse(br#"{"contact":{"id":"c1"},"message":[{"type":"text","data":{"text":"y"}}]}"#)
                .unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn opt_out_words_ignore_case_accents_and_punctuation() {
        let words: Vec<String> = OPT_OUT_WORDS.iter().map(|w| w.to_string()).collect();
        for t in [
            "stop",
            " Stop! ",
            "sair",
            "PARAR.",
            "cancelar",
            "Unsubscribe",
        ] {
            assert!(is_opt_out(t, &words), "{t}");
        }
        assert!(is_opt_out("cancélar", &words));
        for t in ["don't stop", "stopped", "", "parar agora"] {
            assert!(!is_opt_out(t, &words), "{t}");
        }
    }
}
