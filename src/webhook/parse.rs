//! What comes back on the webhook (docs/cosmobots-api.md §4): it has the send request's fields,
//! with no documented example, so every field is optional, the documented aliases are accepted,
//! types are matched case-insensitively and unknown types are kept raw. Only a JSON object is a
//! delivery. Also: what identifies a delivery, and opt-out words.

use serde_json::{Map, Value};

use crate::phone::Region;

/// Where a delivery's own id may be, in a message item and then at the top level; the first
/// found wins. No id is documented (docs/cosmobots-api.md §4), so the usual spellings are tried.
const MESSAGE_ID_FIELDS: [&str; 3] = ["id", "message_id", "messageId"];
const TOP_MESSAGE_ID_FIELDS: [&str; 3] = ["message_id", "messageId", "id"];
/// Where a delivery's timestamp may be, at the top level and then in a message item.
const TIME_FIELDS: [&str; 4] = ["timestamp", "time", "created_at", "createdAt"];

/// The parts of a reply the ledger keeps.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Reply {
    pub(crate) contact_id: Option<String>,
    pub(crate) phone: Option<String>,
    /// Lower-case type of the first item (`text`, `payload`, `buttons`, or whatever came).
    pub(crate) kind: Option<String>,
    pub(crate) text: Option<String>,
    /// What a button click sent back.
    pub(crate) payload: Option<String>,
    /// The provider's id for this message, when the body carries one.
    pub(crate) message_id: Option<String>,
    /// The provider's timestamp for this message, as it came, when the body carries one.
    pub(crate) provider_time: Option<String>,
    /// The phone came without its country code, and none was given (`listen --country`): it
    /// is kept as its digits, which no campaign's normalised phone equals.
    pub(crate) phone_without_country: bool,
    /// The body as received, re-serialised.
    pub(crate) raw: String,
    /// Identifies a repeat of the same delivery: the message id (with the contact) when there
    /// is one, else the whole body.
    pub(crate) fingerprint: String,
}

impl Reply {
    /// The reply with every secret `redactor` knows taken out of what is stored of it (the
    /// fingerprint is a hash, and keeps telling repeats apart).
    pub(crate) fn redacted(self, redactor: &crate::redact::Redactor) -> Reply {
        let text = |v: Option<String>| v.map(|t| redactor.apply(&t));
        let id = |v: Option<String>| v.map(|t| redactor.apply_to_id(&t));
        Reply {
            contact_id: id(self.contact_id),
            phone: id(self.phone),
            kind: id(self.kind),
            text: text(self.text),
            payload: text(self.payload),
            message_id: id(self.message_id),
            provider_time: id(self.provider_time),
            raw: redactor.apply(&self.raw),
            ..self
        }
    }

    /// Whether the body names its message (an id or a timestamp), so that the same fingerprint
    /// is the same message however late it comes again.
    pub(crate) fn names_its_message(&self) -> bool {
        self.message_id.is_some() || self.provider_time.is_some()
    }
}

/// Why a body is not a webhook delivery.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotADelivery {
    #[error("malformed JSON: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("a webhook delivery is a JSON object, this is {0}")]
    NotAnObject(&'static str),
}

fn shape(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first of `names` in `obj` that holds a usable value.
fn field(obj: Option<&Value>, names: &[&str]) -> Option<String> {
    let obj = obj?.as_object()?;
    names.iter().find_map(|n| obj.get(*n).and_then(scalar))
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

/// The message items: `message` or `messages`, one object or an array of them.
fn items(top: &Map<String, Value>) -> Vec<&Value> {
    let found = ["message", "messages"]
        .iter()
        .find_map(|k| top.get(*k).filter(|v| !v.is_null()));
    match found {
        Some(Value::Array(a)) => a.iter().filter(|v| v.is_object()).collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => vec![],
    }
}

/// What a button click sent back, for an item of a click's type.
fn click(kind: &str, data: Option<&Value>) -> Option<String> {
    // A click sends the button's value back: as the payload itself, or in a field.
    if !matches!(kind, "payload" | "button" | "buttons" | "postback") {
        return None;
    }
    let d = data?;
    scalar(d)
        .or_else(|| field(Some(d), &["payload", "value"]))
        .or_else(|| (kind == "payload" && d.is_object()).then(|| d.to_string()))
}

/// JSON text with each lone surrogate escape (`\ud83d` without its pair, as an emoji cut in
/// half leaves it) written as `\ufffd`, or `None` when it has none. serde_json refuses a lone
/// surrogate, and the rest of the reply is worth keeping. Only escapes are read: a backslash
/// stands for itself nowhere else in valid JSON.
fn mend_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    let escape_at = |i: usize| -> Option<u16> {
        let hex = body.get(i..i + 6)?.strip_prefix(b"\\u")?;
        u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let mut out = Vec::with_capacity(body.len());
    let mut mended = false;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let step = match escape_at(i) {
            Some(0xD800..=0xDBFF) if matches!(escape_at(i + 6), Some(0xDC00..=0xDFFF)) => 12,
            Some(0xD800..=0xDFFF) => {
                out.extend_from_slice(b"\\ufffd");
                mended = true;
                i += 6;
                continue;
            }
            _ => 2,
        };
        out.extend_from_slice(&body[i..(i + step).min(body.len())]);
        i += step;
    }
    mended.then_some(out)
}

/// Reads a webhook body: `Err` when it is not JSON, or JSON but not an object. A lone
/// surrogate in a string becomes U+FFFD.
#[cfg(test)]
pub(crate) fn parse(body: &[u8]) -> Result<Reply, NotADelivery> {
    parse_in(body, None)
}

/// [`parse`], reading a phone without its country code as one of `region`'s.
pub(crate) fn parse_in(body: &[u8], region: Option<&Region>) -> Result<Reply, NotADelivery> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => match mend_surrogates(body) {
            Some(mended) => serde_json::from_slice(&mended)?,
            None => return Err(e.into()),
        },
    };
    let Value::Object(top) = &value else {
        return Err(NotADelivery::NotAnObject(shape(&value)));
    };
    // serde_json's map is ordered by key, so the same content always serialises the same way.
    let raw = value.to_string();
    let contact = top.get("contact");
    let items = items(top);
    // The normalised form (what campaigns record), else the digits as they came.
    let given = field(contact, &["mobile_phone", "phone", "mobilePhone"]);
    let normalised = given
        .as_deref()
        .and_then(|p| crate::phone::match_key(p, region));
    let phone_without_country = region.is_none() && given.is_some() && normalised.is_none();
    let mut reply = Reply {
        contact_id: field(contact, &["id"]).filter(|id| id != "new_contact"),
        phone: normalised
            .or_else(|| given.map(|p| p.chars().filter(char::is_ascii_digit).collect()))
            .filter(|p: &String| !p.is_empty()),
        phone_without_country,
        kind: items
            .first()
            .and_then(|m| m.get("type"))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase),
        message_id: items
            .iter()
            .find_map(|m| field(Some(m), &MESSAGE_ID_FIELDS))
            .or_else(|| field(Some(&value), &TOP_MESSAGE_ID_FIELDS)),
        provider_time: field(Some(&value), &TIME_FIELDS)
            .or_else(|| items.iter().find_map(|m| field(Some(m), &TIME_FIELDS))),
        ..Default::default()
    };
    for item in &items {
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let data = item.get("data");
        if reply.text.is_none() {
            reply.text = field(data, &["text"]).or_else(|| data.and_then(scalar));
        }
        if reply.payload.is_none() {
            reply.payload = click(&kind, data);
        }
    }
    reply.fingerprint = match &reply.message_id {
        // The same message may come again with other fields changed (a retry's own time).
        Some(id) => fingerprint(
            format!(
                "message-id\0{}\0{}\0{id}",
                reply.contact_id.as_deref().unwrap_or(""),
                reply.phone.as_deref().unwrap_or("")
            )
            .as_bytes(),
        ),
        None => fingerprint(raw.as_bytes()),
    };
    reply.raw = raw;
    Ok(reply)
}

/// The default opt-out phrases, for a market that writes Portuguese, Spanish and English. A reply
/// opts out only when, read as words (see [`is_opt_out`]), it is one of them, or one of them
/// repeated: the same words inside a longer message ("não pare", "stop by tomorrow", "stop
/// please") are an ordinary reply. They are written as people type them; case, accents,
/// punctuation and emoji make no difference.
///
/// Left out on purpose: a bare "NÃO QUERO" or "NO QUIERO", which answers the campaign's question
/// (renew? no) rather than asks for no more messages, and "QUERO CANCELAR", which is usually
/// about the plan.
pub(crate) const OPT_OUT_WORDS: &[&str] = &[
    // Portuguese
    "PARAR",
    "PARE",
    "PARA",
    // "Pára", the verb as Portugal and Brazil wrote it before 2009; "Pará" is a state.
    "PÁRA",
    "SAIR",
    "CANCELAR",
    "DESCADASTRAR",
    "DESCADASTRE",
    "DESCADASTRO",
    "REMOVER",
    "ME REMOVA",
    "ME REMOVA DA LISTA",
    "ME TIRA DA LISTA",
    "ME TIRE DA LISTA",
    "SAIR DA LISTA",
    "QUERO SAIR",
    "QUERO PARAR",
    "QUERO PARAR DE RECEBER",
    "QUERO DESCADASTRAR",
    "PARAR DE RECEBER",
    "NÃO QUERO MAIS",
    "NÃO QUERO MAIS RECEBER",
    "NÃO QUERO RECEBER",
    "NÃO QUERO RECEBER MAIS",
    "NÃO QUERO MAIS MENSAGENS",
    "NÃO ENVIE MAIS",
    "NÃO MANDE MAIS",
    "PARE DE ENVIAR",
    "PARE DE MANDAR MENSAGEM",
    "PARE DE MANDAR MENSAGENS",
    "PARE DE ME MANDAR MENSAGEM",
    "PARE DE ME MANDAR MENSAGENS",
    // Spanish
    "BAJA",
    "DAR DE BAJA",
    "DARME DE BAJA",
    "DETENER",
    "SALIR",
    "NO MÁS",
    "NO QUIERO MÁS",
    "NO QUIERO RECIBIR MÁS",
    "NO ME ENVÍEN MÁS",
    // English: the carriers' standard keywords, and their usual forms
    "STOP",
    "STOP ALL",
    "STOPALL",
    "UNSUBSCRIBE",
    "UNSUBSCRIBE ME",
    "CANCEL",
    "END",
    "QUIT",
    "OPT OUT",
    "OPTOUT",
    "REVOKE",
    "REMOVE ME",
];

/// Upper-case, accents removed, words separated by one space: any character that is not a
/// letter or a digit (punctuation, emoji, spaces) separates words, so `"Pare!!! 🛑"` and
/// `"  pare "` are both `"PARE"`, and `"não-quero   mais."` is `"NAO QUERO MAIS"`. Fullwidth
/// forms read as the ASCII they show (`"ＳＴＯＰ"` is `"STOP"`), and invisible characters (a
/// zero-width space, a soft hyphen) are not there at all (`"st\u{200b}op"` is `"STOP"`).
#[cfg(test)]
fn fold(text: &str) -> String {
    let runs = runs(text);
    let words: Vec<&str> = runs.iter().map(|r| r.text.as_str()).collect();
    words.join(" ")
}

/// What separated a run of letters and digits from the one before it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gap {
    /// The first run.
    Start,
    /// One space, and nothing else.
    Space,
    /// One hyphen, and nothing else: the run goes on the same word.
    Hyphen,
    Other,
}

/// A run of letters and digits, folded (upper-case ASCII for every Latin letter), and as typed
/// (upper-case, its accents kept).
#[derive(Debug)]
struct Run {
    gap: Gap,
    text: String,
    upper: String,
    /// Whether it was typed with an accent.
    accented: bool,
}

impl Run {
    /// The word as a phrase must have it: a word typed without accents may stand for one
    /// with them ("nao" for "NÃO"), but one typed with accents is that word ("Pará", the
    /// state, is not "PARA").
    fn word(&self) -> &str {
        if self.accented {
            &self.upper
        } else {
            &self.text
        }
    }
}

/// The text cut into runs of letters and digits, each folded, with what came before it.
fn runs(text: &str) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    // The separators since the last run: how many, and the first.
    let mut between = (0usize, ' ');
    for c in text.chars().filter_map(visible) {
        // A decomposed accent (a combining mark after its letter) belongs to the letter.
        if is_combining_mark(c) {
            if let Some(run) = out.last_mut().filter(|_| between.0 == 0) {
                run.accented = true;
                let letter = run.upper.pop();
                run.upper
                    .extend(letter.and_then(|l| compose(l, c)).or(letter));
            }
            continue;
        }
        let base = latin_base(c);
        if base.is_none() && !c.is_alphanumeric() {
            between = (between.0 + 1, if between.0 == 0 { c } else { between.1 });
            continue;
        }
        if out.is_empty() || between.0 > 0 {
            let gap = match between {
                _ if out.is_empty() => Gap::Start,
                (1, ' ') => Gap::Space,
                (1, c) if is_hyphen(c) => Gap::Hyphen,
                _ => Gap::Other,
            };
            out.push(Run {
                gap,
                text: String::new(),
                upper: String::new(),
                accented: false,
            });
            between = (0, ' ');
        }
        if let Some(run) = out.last_mut() {
            run.upper.extend(c.to_uppercase());
            match base {
                Some(ascii) => {
                    run.text.push_str(ascii);
                    run.accented = true;
                }
                None => run.text.extend(c.to_uppercase()),
            }
        }
    }
    out
}

/// The character as it reads: a fullwidth form (U+FF01–U+FF5E, and the ideographic space) as
/// its ASCII, and nothing for a character that shows nothing (zero-width spaces and joiners,
/// the word joiner, the byte order mark, the soft hyphen, direction marks), which phones and
/// copy-paste put inside words.
fn visible(c: char) -> Option<char> {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0),
        '\u{3000}' => Some(' '),
        '\u{00AD}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}' => None,
        c => Some(c),
    }
}

/// A hyphen, as a keyboard or an autocorrect writes one inside a word.
fn is_hyphen(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}' | '\u{2011}' | '\u{2013}' | '\u{2212}' | '\u{FE63}'
    )
}

/// The combining diacritical marks (U+0300–U+036F): the accents of text written decomposed.
fn is_combining_mark(c: char) -> bool {
    ('\u{0300}'..='\u{036F}').contains(&c)
}

/// An upper-case vowel, C or N with a combining accent, as the one character it makes (the
/// accents Portuguese and Spanish write).
fn compose(letter: char, mark: char) -> Option<char> {
    let (from, to) = match mark {
        '\u{0301}' => ("AEIOU", "ÁÉÍÓÚ"),
        '\u{0300}' => ("AEIOU", "ÀÈÌÒÙ"),
        '\u{0302}' => ("AEIOU", "ÂÊÎÔÛ"),
        '\u{0303}' => ("AON", "ÃÕÑ"),
        '\u{0308}' => ("AEIOU", "ÄËÏÖÜ"),
        '\u{0327}' => ("C", "Ç"),
        _ => return None,
    };
    let at = from.chars().position(|c| c == letter)?;
    to.chars().nth(at)
}

/// The upper-case ASCII letters of an accented Latin letter, of either case: every letter of
/// Portuguese, Spanish and French, and the ordinal indicators ª and º. Unicode decomposition
/// is not in std; this table covers the languages the opt-out phrases are written in.
fn latin_base(c: char) -> Option<&'static str> {
    Some(match c {
        'á' | 'à' | 'â' | 'ã' | 'ä' | 'å' | 'Á' | 'À' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'ª' => {
            "A"
        }
        'æ' | 'Æ' => "AE",
        'ç' | 'Ç' => "C",
        'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => "E",
        'í' | 'ì' | 'î' | 'ï' | 'Í' | 'Ì' | 'Î' | 'Ï' => "I",
        'ñ' | 'Ñ' => "N",
        'ó' | 'ò' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ó' | 'Ò' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'º' => {
            "O"
        }
        'œ' | 'Œ' => "OE",
        'ú' | 'ù' | 'û' | 'ü' | 'Ú' | 'Ù' | 'Û' | 'Ü' => "U",
        'ý' | 'ÿ' | 'Ý' | 'Ÿ' => "Y",
        _ => return None,
    })
}

/// Whether a reply's text asks never to be messaged again: read as words (see [`fold`]), it
/// is one of `words`, or one of them said again and again (`"stop stop"`). A hyphen inside a
/// word is nothing when the joined word is a word of the phrases (`"UN-SUBSCRIBE"`), and letters
/// spaced out by single spaces are one word (`"S A I R"`). Anything more is a longer message.
pub(crate) fn is_opt_out(text: &str, words: &[String]) -> bool {
    let phrases: Vec<Vec<PhraseWord>> = words
        .iter()
        .map(|w| {
            runs(w)
                .into_iter()
                .map(|r| PhraseWord {
                    bare: r.text,
                    accented: r.upper,
                })
                .collect()
        })
        .filter(|p: &Vec<PhraseWord>| !p.is_empty())
        .collect();
    // A list written with accents is read with them; one written without is read without.
    let accents = phrases.iter().flatten().any(|w| w.bare != w.accented);
    let runs: Vec<Run> = runs(text)
        .into_iter()
        .map(|r| Run {
            accented: r.accented && accents,
            ..r
        })
        .collect();
    readings(&runs, &phrases)
        .iter()
        .any(|r| phrases.iter().any(|p| repeats(r, p)))
}

/// A word of a phrase, as a reply may type it: without accents, or with the phrase's own.
struct PhraseWord {
    bare: String,
    accented: String,
}

impl PhraseWord {
    fn is(&self, word: &str) -> bool {
        word == self.bare || word == self.accented
    }
}

/// The ways a text's runs read as words: one word a run; hyphenated runs joined where that
/// makes a word of `phrases`; and, when the text is only single letters spaced by single
/// spaces, the one word they spell.
fn readings(runs: &[Run], phrases: &[Vec<PhraseWord>]) -> Vec<Vec<String>> {
    let plain = runs.iter().map(|r| r.word().to_string()).collect();
    let mut out = vec![plain, joined(runs, phrases)];
    let letter = |r: &Run| {
        let mut chars = r.text.chars();
        chars.next().is_some_and(char::is_alphabetic) && chars.next().is_none()
    };
    if runs.len() > 1 && runs.iter().all(letter) && runs[1..].iter().all(|r| r.gap == Gap::Space) {
        out.push(vec![runs.iter().map(Run::word).collect()]);
    }
    out
}

/// The runs as words, each hyphenated word (`UN-SUBSCRIBE`) joined when the joined word is a
/// word of `phrases`, and read as its parts otherwise (`NON-STOP` is `NON STOP`).
fn joined(runs: &[Run], phrases: &[Vec<PhraseWord>]) -> Vec<String> {
    let known = |w: &str| phrases.iter().flatten().any(|p| p.is(w));
    let mut words = Vec::with_capacity(runs.len());
    let mut start = 0;
    while start < runs.len() {
        let end = (start + 1..runs.len())
            .find(|&j| runs[j].gap != Gap::Hyphen)
            .unwrap_or(runs.len());
        let parts = &runs[start..end];
        let whole: String = parts.iter().map(Run::word).collect();
        if parts.len() > 1 && known(&whole) {
            words.push(whole);
        } else {
            words.extend(parts.iter().map(|r| r.word().to_string()));
        }
        start = end;
    }
    words
}

/// Whether `words` is `phrase` once or more, and nothing else.
fn repeats(words: &[String], phrase: &[PhraseWord]) -> bool {
    !words.is_empty()
        && words.len().is_multiple_of(phrase.len())
        && words
            .chunks(phrase.len())
            .all(|c| c.iter().zip(phrase).all(|(w, p)| p.is(w)))
}

#[cfg(test)]
mod surrogates {
    use super::*;

    #[test]
    fn a_lone_surrogate_becomes_the_replacement_character() {
        let text = |body: &str| parse(body.as_bytes()).unwrap().text;
        let cut = r#"{"message":{"type":"text","data":{"text":"Oi \ud83d"}}}"#;
        assert_eq!(text(cut).as_deref(), Some("Oi \u{FFFD}"));
        let low = r#"{"message":{"type":"text","data":{"text":"\ude00!"}}}"#;
        assert_eq!(text(low).as_deref(), Some("\u{FFFD}!"));
        let whole = r#"{"message":{"type":"text","data":{"text":"\ud83d\ude00 \\ud83d"}}}"#;
        assert_eq!(text(whole).as_deref(), Some("😀 \\ud83d"));
        assert!(parse(br#"{"a": \ud83d}"#).is_err());
    }
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
    }

    #[test]
    fn only_a_json_object_is_a_delivery() {
        assert!(matches!(
            parse(b"{not json"),
            Err(NotADelivery::Malformed(_))
        ));
        for (body, shape) in [
            (&b"[1,2,3]"[..], "an array"),
            (b"42", "a number"),
            (b"null", "null"),
            (br#""x""#, "a string"),
            (b"true", "a boolean"),
        ] {
            match parse(body) {
                Err(NotADelivery::NotAnObject(s)) => assert_eq!(s, shape),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        let r = parse(br#"{"contact":{"id":"c1"},"message":"odd","other":[1]}"#).unwrap();
        assert_eq!(
            r.contact_id.as_deref(),
            Some("c1"),
            "an odd field loses nothing else"
        );
    }

    #[test]
    fn both_spellings_of_a_field_are_read() {
        let r = parse(
            br#"{"contact":{"id":"c1","phone":"+55 11 1","mobile_phone":"+55 11 2"},"message":{"type":"text","data":{"text":"a"}}}"#,
        )
        .unwrap();
        assert_eq!(r.phone.as_deref(), Some("55112"));
        assert_eq!(r.text.as_deref(), Some("a"));
    }

    #[test]
    fn the_provider_id_or_timestamp_is_found_where_it_may_be() {
        let ids = [
            (&br#"{"message":{"id":"m1","type":"text"}}"#[..], "m1"),
            (br#"{"message":[{"type":"text"},{"message_id":7}]}"#, "7"),
            (br#"{"messages":[{"messageId":"m3"}]}"#, "m3"),
            (br#"{"message_id":"m4","message":[{"type":"text"}]}"#, "m4"),
            (br#"{"id":"m5"}"#, "m5"),
        ];
        for (body, id) in ids {
            let r = parse(body).unwrap();
            assert_eq!(r.message_id.as_deref(), Some(id), "{}", r.raw);
            assert!(r.names_its_message());
        }
        for (body, at) in [
            (&br#"{"timestamp":1767225600}"#[..], "1767225600"),
            (
                br#"{"time":"2026-01-01T00:00:00Z"}"#,
                "2026-01-01T00:00:00Z",
            ),
            (br#"{"message":{"created_at":"t3"}}"#, "t3"),
            (br#"{"createdAt":"t4"}"#, "t4"),
        ] {
            let r = parse(body).unwrap();
            assert_eq!(r.provider_time.as_deref(), Some(at), "{}", r.raw);
            assert!(r.names_its_message());
        }
        let plain =
            parse(br#"{"contact":{"id":"c1"},"message":{"type":"text","data":{"text":"ok"}}}"#)
                .unwrap();
        assert!(
            !plain.names_its_message(),
            "a contact's id is not a message id"
        );
    }

    #[test]
    fn one_message_id_is_one_message_whatever_else_changes() {
        let a = parse(
            br#"{"contact":{"id":"c1"},"message":{"id":"m1","data":{"text":"ok"}},"attempt":1}"#,
        )
        .unwrap();
        let b = parse(
            br#"{"contact":{"id":"c1"},"message":{"id":"m1","data":{"text":"ok"}},"attempt":2}"#,
        )
        .unwrap();
        let c = parse(
            br#"{"contact":{"id":"c1"},"message":{"id":"m2","data":{"text":"ok"}},"attempt":1}"#,
        )
        .unwrap();
        let d = parse(
            br#"{"contact":{"id":"c2"},"message":{"id":"m1","data":{"text":"ok"}},"attempt":1}"#,
        )
        .unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        assert_ne!(
            a.fingerprint, d.fingerprint,
            "an id counts within its contact"
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

    fn defaults() -> Vec<String> {
        OPT_OUT_WORDS.iter().map(|w| w.to_string()).collect()
    }

    /// A phrase as typed without accents; every accented letter of the list must be here.
    fn unaccented(phrase: &str) -> String {
        let plain: String = phrase
            .chars()
            .map(|c| match c {
                'Ã' | 'Á' => 'A',
                'Í' => 'I',
                c => c,
            })
            .collect();
        assert!(plain.is_ascii(), "add the accents of {phrase:?} here");
        plain
    }

    /// A phrase with its accents as combining marks, as some keyboards send them.
    fn decomposed(phrase: &str) -> String {
        phrase
            .replace('Ã', "A\u{303}")
            .replace('Á', "A\u{301}")
            .replace('Í', "I\u{301}")
    }

    /// "Não quero mais": the first letter upper-case, the rest lower.
    fn sentence_case(phrase: &str) -> String {
        let lower = phrase.to_lowercase();
        let mut chars = lower.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_default_phrase_is_an_opt_out_however_it_is_typed() {
        let words = defaults();
        for phrase in OPT_OUT_WORDS {
            let plain = unaccented(phrase);
            for typed in [
                phrase.to_string(),
                phrase.to_lowercase(),
                sentence_case(phrase),
                plain.clone(),
                plain.to_lowercase(),
                decomposed(phrase).to_lowercase(),
                format!("{}!!!", sentence_case(phrase)),
                format!("{}.", plain.to_lowercase()),
                format!("{phrase} 🛑"),
                format!("🙏{}🙏", phrase.to_lowercase()),
                format!("  {phrase}  \n"),
                phrase.replace(' ', " ,  "),
                format!("\"{}\"?!", plain.to_lowercase()),
            ] {
                assert!(is_opt_out(&typed, &words), "{phrase:?} typed as {typed:?}");
            }
        }
    }

    #[test]
    fn the_default_phrases_are_distinct_as_written() {
        for f in OPT_OUT_WORDS.iter().map(|w| fold(w)) {
            assert!(
                !f.is_empty() && f.chars().all(|c| c.is_ascii_uppercase() || c == ' '),
                "{f:?}"
            );
        }
        // Accents tell two apart ("PÁRA", the old spelling of the verb, and "PARA").
        let mut written: Vec<String> = OPT_OUT_WORDS.iter().map(|w| w.to_uppercase()).collect();
        written.sort();
        written.dedup();
        assert_eq!(
            written.len(),
            OPT_OUT_WORDS.len(),
            "a phrase is listed twice"
        );
    }

    #[test]
    fn a_word_typed_with_accents_is_that_word_and_one_without_may_be_any() {
        let words = defaults();
        for yes in [
            "Para",
            "PÁRA",
            "pára!",
            "nao quero mais",
            "Não quero mais",
            "na\u{0303}o quero mais",
            "SAIR",
            "Descadastrar",
        ] {
            assert!(is_opt_out(yes, &words), "{yes:?}");
        }
        // Pará is a state; pàra and párá are no phrase's spelling.
        for no in ["Pará", "PARÁ", "Para\u{0301}", "párá", "saír"] {
            assert!(!is_opt_out(no, &words), "{no:?}");
        }
        // A list written without accents is read without them.
        let plain = vec!["NAO QUERO".to_string()];
        assert!(is_opt_out("Não quero", &plain));
    }

    #[test]
    fn a_phrase_inside_a_longer_message_is_not_an_opt_out() {
        let words = defaults();
        for t in [
            "Parece ótimo",
            "não pare",
            "Quero saber mais",
            "stop by tomorrow",
            "don't stop",
            "stopped",
            "Pare de brincadeira, quero renovar",
            "parar agora?",
            "Sairá amanhã",
            "Não",
            "Não quero",
            "No",
            "Quero",
            "Quero cancelar",
            "Unsubscribe? How?",
            "baja el precio",
            "no más de dos",
            "cancelamento",
            "Stop 2",
            "",
            "   ",
            "🛑",
            "!!!",
        ] {
            assert!(!is_opt_out(t, &words), "{t:?}");
        }
    }

    #[test]
    fn given_words_replace_the_defaults() {
        let words = vec!["chega".to_string(), "Não enche".to_string()];
        for t in ["Chega!", "nao enche", "NÃO ENCHE 😡"] {
            assert!(is_opt_out(t, &words), "{t:?}");
        }
        assert!(!is_opt_out("STOP", &words));
    }

    #[test]
    fn fold_upper_cases_strips_accents_and_splits_on_anything_else() {
        for (text, folded) in [
            ("Pare!!! 🛑", "PARE"),
            ("não quero mais.", "NAO QUERO MAIS"),
            ("  STOP  ", "STOP"),
            ("na\u{303}o-quero...mais", "NAO QUERO MAIS"),
            ("don't", "DON T"),
            ("1ª vez, 2º aviso", "1A VEZ 2O AVISO"),
            ("Œuvre Æther", "OEUVRE AETHER"),
            ("Straße", "STRASSE"),
            ("🛑 !!", ""),
        ] {
            assert_eq!(fold(text), folded, "{text:?}");
        }
        // Every accented letter of Portuguese, Spanish and French, in both cases.
        let letters = "áàâãäçéèêëíìîïñóòôõöúùûüÿæœ";
        for c in letters.chars().chain(letters.to_uppercase().chars()) {
            let f = fold(&c.to_string());
            assert!(
                !f.is_empty() && f.chars().all(|c| c.is_ascii_uppercase()),
                "{c} -> {f:?}"
            );
        }
    }

    #[test]
    fn fullwidth_and_invisible_characters_read_as_the_letters_they_show() {
        let words = defaults();
        for t in [
            "ＳＴＯＰ",
            "ｓｔｏｐ！",
            "ＮÃＯ　ＱＵＥＲＯ　ＭＡＩＳ",
            "st\u{200b}op",
            "S\u{200c}A\u{200d}IR",
            "\u{feff}PARAR",
            "pa\u{2060}re",
            "des\u{ad}cadastrar",
            "\u{200e}stop\u{200f}",
        ] {
            assert!(is_opt_out(t, &words), "{t:?}");
        }
        assert_eq!(fold("ＳＴＯＰ　２"), "STOP 2");
        assert_eq!(fold("st\u{200b}op\u{ad}"), "STOP");
    }

    #[test]
    fn a_hyphen_inside_a_word_is_nothing_when_that_makes_a_phrase_word() {
        let words = defaults();
        for t in [
            "UN-SUBSCRIBE",
            "un-subscribe me",
            "Opt-out",
            "stop-all!",
            "Des-cadastrar",
            "can\u{2010}cel",
            "ＵＮ－ＳＵＢＳＣＲＩＢＥ",
        ] {
            assert!(is_opt_out(t, &words), "{t:?}");
        }
        let given = vec!["chega".to_string()];
        assert!(is_opt_out("che-ga", &given));
        assert!(!is_opt_out("UN-SUBSCRIBE", &given));
    }

    #[test]
    fn letters_spaced_out_spell_a_one_word_phrase() {
        let words = defaults();
        for t in ["S A I R", "s t o p", "P A R E !", "Ｓ Ｔ Ｏ Ｐ", "b a j a"] {
            assert!(is_opt_out(t, &words), "{t:?}");
        }
    }

    #[test]
    fn a_phrase_repeated_is_an_opt_out() {
        let words = defaults();
        for t in [
            "stop stop",
            "STOP! STOP!",
            "Pare, pare, pare",
            "Não quero mais. Não quero mais!",
            "stop-stop",
        ] {
            assert!(is_opt_out(t, &words), "{t:?}");
        }
    }

    /// Only the whole message counts, however it is spelled: politeness around a phrase makes
    /// a longer message too, and two different phrases are not one phrase repeated.
    #[test]
    fn the_spelling_rules_leave_longer_messages_replies() {
        let words = defaults();
        for t in [
            "can you stop by the store?",
            "não pare de mandar ofertas",
            "Stop please",
            "pare por favor",
            "stop stop by tomorrow",
            "stop-loss",
            "non-stop",
            "end-to-end",
            "S A I R agora",
            "P A R E C E",
            "S T O P 2",
            "ＳＴＯＰ ２",
            "stop\u{200b}ped",
            "a b c",
            "para para mim?",
        ] {
            assert!(!is_opt_out(t, &words), "{t:?}");
        }
    }
}
