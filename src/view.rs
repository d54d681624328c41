//! One request as the customer reads it: chat bubbles on a terminal, or as an HTML fragment.

use serde::Serialize;

use crate::api::{
    Button, ButtonType, Card, Destination, MediaData, MediaKind, MessageItem, SendRequest,
};
use crate::render::Rendered;

/// The phone a request goes to: as the CSV wrote it, and the digits the API receives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PhoneShown {
    pub as_written: String,
    pub normalised: String,
}

/// The row's phone as the contact file wrote it and as the API receives it.
pub(crate) fn phone_shown(r: &Rendered) -> Option<PhoneShown> {
    Some(PhoneShown {
        as_written: r.phone_as_written.clone()?,
        normalised: r.phone.clone()?,
    })
}

/// The narrowest a terminal view gets; narrower widths are treated as this.
const MIN_WIDTH: usize = 16;

/// The request as plain lines that fit `width` columns, one bubble per message item.
pub(crate) fn terminal(req: &SendRequest, phone: Option<&PhoneShown>, width: usize) -> String {
    let width = width.max(MIN_WIDTH);
    let mut out = Vec::new();
    out.extend(wrap(&header(req, phone), width));
    if req.destination != Destination::Contact {
        let note = format!(
            "(destination {}: these items go to the {0}, not straight to the customer)",
            destination_name(req.destination)
        );
        out.extend(wrap(&note, width));
    }
    for item in &req.message {
        out.push(String::new());
        push_item(&mut out, item, width);
    }
    if req.message.is_empty() {
        out.push("(no message items)".into());
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// One message item as bubbles, buttons under them, or a note.
fn push_item(out: &mut Vec<String>, item: &MessageItem, width: usize) {
    match item {
        MessageItem::Text(t) => bubble(out, None, std::slice::from_ref(&t.text), width),
        MessageItem::Buttons(b) => {
            bubble(out, None, std::slice::from_ref(&b.text), width);
            button_row(out, &b.buttons, width);
        }
        MessageItem::Cards(c) => {
            for (i, card) in c.cards.iter().enumerate() {
                if i > 0 {
                    out.push(String::new());
                }
                let label = match c.cards.len() {
                    1 => "card".to_string(),
                    n => format!("card {} of {n}", i + 1),
                };
                bubble(out, Some(&label), &card_lines(card), width);
                button_row(out, &card.buttons, width);
            }
        }
        MessageItem::Media(m) => bubble(out, Some(media_name(m.kind)), &media_lines(m), width),
        MessageItem::Payload(p) => {
            let json = serde_json::to_string(p).unwrap_or_default();
            out.extend(wrap(&format!("(data for the bot: {json})"), width));
        }
    }
}

fn header(req: &SendRequest, phone: Option<&PhoneShown>) -> String {
    match addressee(req, phone) {
        (Some(name), number) => format!("to {name} · {number}"),
        (None, number) => format!("to {number}"),
    }
}

/// The contact's name, if the request gives one, and the number as written → as sent.
fn addressee(req: &SendRequest, phone: Option<&PhoneShown>) -> (Option<String>, String) {
    let c = &req.contact;
    let name = [c.first_name.as_deref(), c.last_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let number = match (phone, &c.mobile_phone) {
        (Some(p), _) if p.as_written.trim() != p.normalised => {
            format!("{} → {}", p.as_written.trim(), p.normalised)
        }
        (Some(p), _) => p.normalised.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => format!("contact {}", c.id),
    };
    ((!name.is_empty()).then_some(name), number)
}

fn destination_name(d: Destination) -> &'static str {
    match d {
        Destination::Contact => "contact",
        Destination::Bot => "bot",
        Destination::Desk => "desk",
    }
}

fn media_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image",
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
        MediaKind::Document => "document",
    }
}

fn card_lines(card: &Card) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(url) = &card.image_url {
        lines.push(format!("[image: {url}]"));
    }
    lines.push(card.title.clone());
    lines.extend(card.subtitle.clone());
    lines
}

fn media_lines(m: &MediaData) -> Vec<String> {
    let mut lines: Vec<String> = m.name.iter().cloned().collect();
    lines.push(match &m.mime_type {
        Some(mime) => format!("{} ({mime})", m.url),
        None => m.url.clone(),
    });
    lines
}

/// A bubble: `label` in its top border, `paragraphs` wrapped inside, as wide as its text.
fn bubble(out: &mut Vec<String>, label: Option<&str>, paragraphs: &[String], width: usize) {
    let inner = width - 4;
    let lines: Vec<String> = paragraphs.iter().flat_map(|p| wrap(p, inner)).collect();
    let label = label.map_or(String::new(), |l| {
        format!(" {} ", clip(&clean(l), inner - 2))
    });
    let label_w = text_width(&label);
    let w = lines.iter().map(|l| text_width(l)).max().unwrap_or(0);
    let w = w.max(label_w.saturating_sub(1)).max(1);
    let (lead, fill) = match label_w {
        0 => ("", w + 2),
        _ => ("─", w + 1 - label_w),
    };
    out.push(format!("╭{lead}{label}{}╮", "─".repeat(fill)));
    for line in lines {
        out.push(format!("│ {line}{} │", " ".repeat(w - text_width(&line))));
    }
    out.push(format!("╰{}╯", "─".repeat(w + 2)));
}

/// Buttons under a bubble, `[ Yes ]  [ See plans → https://… ]`, as many to a line as fit.
fn button_row(out: &mut Vec<String>, buttons: &[Button], width: usize) {
    let mut line = String::new();
    for b in buttons {
        let title = clean(&b.title);
        let shown = match b.kind {
            ButtonType::Url => format!("[ {title} → {} ]", clean(&b.value)),
            ButtonType::Text | ButtonType::Payload => format!("[ {title} ]"),
        };
        if !line.is_empty() && text_width(&line) + 2 + text_width(&shown) > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str("  ");
        }
        line.push_str(&shown);
    }
    if !line.is_empty() {
        out.extend(wrap(&line, width));
    }
}

/// Columns a character takes on a terminal: wide CJK and emoji take two, marks none.
fn char_width(c: char) -> usize {
    match u32::from(c) {
        0x0300..=0x036F | 0x200B..=0x200F | 0x20D0..=0x20FF | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F680..=0x1F6FF
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

fn text_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Text safe to print: tabs become spaces, and control and bidi-override characters (which
/// could move the cursor or reorder what follows) become `�`.
fn clean(s: &str) -> String {
    s.replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\n' => '\n',
            '\t' => ' ',
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// Cuts `s` to at most `width` columns, on a character boundary.
fn clip(s: &str, width: usize) -> String {
    let mut used = 0;
    s.chars()
        .take_while(|c| {
            used += char_width(*c);
            used <= width
        })
        .collect()
}

/// Wraps `text` to `width` columns at spaces, breaking a word only when it alone is wider.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in clean(text).split('\n') {
        let mut line = String::new();
        for (i, word) in para.split(' ').enumerate() {
            let sep = usize::from(i > 0);
            if text_width(&line) + sep + text_width(word) <= width {
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(word);
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let mut rest = word;
            while text_width(rest) > width {
                let piece = clip(rest, width)
                    .len()
                    .max(rest.chars().next().map_or(1, char::len_utf8));
                lines.push(rest[..piece].to_string());
                rest = &rest[piece..];
            }
            line.push_str(rest);
        }
        lines.push(line);
    }
    lines
}

/// Styles for [`bubbles_html`]: inline them in any page that shows bubbles.
pub(crate) const BUBBLES_CSS: &str = include_str!("report/bubbles.css");

/// The request as an HTML fragment: a phone-like chat column, every value escaped, nothing
/// loaded from anywhere (an image is a placeholder box holding its URL as text).
pub(crate) fn bubbles_html(req: &SendRequest, phone: Option<&PhoneShown>) -> String {
    let (name, number) = addressee(req, phone);
    let name = name.map_or(String::new(), |n| {
        format!("<div class=\"chat-name\">{}</div>", esc(&n))
    });
    let mut h = format!(
        "<div class=\"chat\"><div class=\"chat-head\">{name}<div class=\"chat-phone\">to {}</div></div>",
        esc(&number)
    );
    if req.destination != Destination::Contact {
        let d = destination_name(req.destination);
        h += &format!(
            "<p class=\"chat-note\">Destination {d}: these items go to the {d}, not straight to the customer.</p>"
        );
    }
    h += "<div class=\"chat-body\">";
    for item in &req.message {
        h += &item_html(item);
    }
    if req.message.is_empty() {
        h += "<p class=\"payload\">(no message items)</p>";
    }
    h + "</div></div>"
}

fn item_html(item: &MessageItem) -> String {
    match item {
        MessageItem::Text(t) => format!("<div class=\"bubble\">{}</div>", esc(&t.text)),
        MessageItem::Buttons(b) => format!(
            "<div class=\"bubble\">{}</div>{}",
            esc(&b.text),
            buttons_html(&b.buttons)
        ),
        MessageItem::Cards(c) => {
            let cards: String = c.cards.iter().map(card_html).collect();
            format!("<div class=\"cards\">{cards}</div>")
        }
        MessageItem::Media(m) => {
            let name = m.name.as_deref().map_or(String::new(), |n| {
                format!("<div class=\"media-name\">{}</div>", esc(n))
            });
            let mime = m.mime_type.as_deref().map_or(String::new(), |t| {
                format!("<div class=\"muted\">{}</div>", esc(t))
            });
            format!(
                "<div class=\"bubble media\">{}{name}{mime}</div>",
                placeholder(media_name(m.kind), &m.url)
            )
        }
        MessageItem::Payload(p) => format!(
            "<p class=\"payload\">data for the bot: <code>{}</code></p>",
            esc(&serde_json::to_string(p).unwrap_or_default())
        ),
    }
}

fn card_html(card: &Card) -> String {
    let image = card
        .image_url
        .as_deref()
        .map_or(String::new(), |u| placeholder("image", u));
    let subtitle = card.subtitle.as_deref().map_or(String::new(), |s| {
        format!("<div class=\"muted\">{}</div>", esc(s))
    });
    format!(
        "<div class=\"card\">{image}<div class=\"card-text\"><div class=\"card-title\">{}</div>{subtitle}</div>{}</div>",
        esc(&card.title),
        buttons_html(&card.buttons)
    )
}

/// A grey box standing in for an image, video, audio or document: its kind and its URL as text.
fn placeholder(kind: &str, url: &str) -> String {
    format!(
        "<div class=\"ph\"><span class=\"ph-kind\">{kind}</span><span class=\"ph-url\">{}</span></div>",
        esc(url)
    )
}

fn buttons_html(buttons: &[Button]) -> String {
    if buttons.is_empty() {
        return String::new();
    }
    let pills: String = buttons
        .iter()
        .map(|b| match b.kind {
            ButtonType::Url => format!(
                "<span class=\"btn url\">{} ↗<span class=\"btn-link\">{}</span></span>",
                esc(&b.title),
                esc(&b.value)
            ),
            ButtonType::Text | ButtonType::Payload => {
                format!("<span class=\"btn\">{}</span>", esc(&b.title))
            }
        })
        .collect();
    format!("<div class=\"btns\">{pills}</div>")
}

/// A whole page of chats for `preview --html`: each `(heading, fragment)` under its heading.
pub(crate) fn bubbles_page(title: &str, chats: &[(String, String)]) -> String {
    let body: String = chats
        .iter()
        .map(|(heading, fragment)| {
            format!("<section><h2>{}</h2>{fragment}</section>", esc(heading))
        })
        .collect();
    // Side by side where the screen is wide enough, to compare rows at a glance.
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>body{{font:16px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;margin:1rem;color:#0b0c0c}}main{{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}}section{{flex:0 1 362px;min-width:0}}h2{{font-size:1rem;overflow-wrap:anywhere}}{BUBBLES_CSS}</style></head><body><h1>{0}</h1><main>{body}</main></body></html>\n",
        esc(title)
    )
}

/// Escapes text for HTML element content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
