//! Tests of the terminal and HTML views of a request.

use super::*;
use crate::api::{ButtonsData, CardsData, Contact, MessageItem, TextData};
use serde_json::json;

fn button(title: &str, kind: ButtonType, value: &str) -> Button {
    Button {
        title: title.into(),
        kind,
        value: value.into(),
    }
}

/// A request with one item of every kind.
pub(crate) fn rich() -> (SendRequest, PhoneShown) {
    let card = |title: &str, sub: &str, img: &str, b: Vec<Button>| Card {
        title: title.into(),
        subtitle: Some(sub.into()),
        image_url: Some(img.into()),
        buttons: b,
    };
    let req = SendRequest {
        destination: Destination::Contact,
        contact: Contact {
            id: "new_contact".into(),
            first_name: Some("Ana".into()),
            last_name: Some("Souza".into()),
            mobile_phone: Some("5511987654321".into()),
            ..Default::default()
        },
        session: None,
        message: vec![
            MessageItem::Text(TextData {
                text:
                    "Olá Ana,\n\nSeu cartão Gold está pronto: 2% de cashback em todas as compras."
                        .into(),
            }),
            MessageItem::Buttons(ButtonsData {
                text: "Renew now?".into(),
                buttons: vec![
                    button("Yes", ButtonType::Payload, "renew-yes"),
                    button("See plans", ButtonType::Url, "https://example.com/plans"),
                ],
            }),
            MessageItem::Cards(CardsData {
                cards: vec![
                    card(
                        "Gold",
                        "2% cashback",
                        "https://cdn.example.com/gold.png",
                        vec![button("Choose Gold", ButtonType::Payload, "gold")],
                    ),
                    card(
                        "Platinum",
                        "3% cashback, lounge access",
                        "https://cdn.example.com/platinum.png",
                        vec![],
                    ),
                ],
            }),
            MessageItem::Media(MediaData {
                kind: MediaKind::Image,
                url: "https://cdn.example.com/gold.png".into(),
                name: Some("Your gold card".into()),
                mime_type: Some("image/png".into()),
            }),
            MessageItem::Payload(
                json!({"tier": "gold", "campaign": "renewal"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        ],
    };
    let phone = PhoneShown {
        as_written: "+55 11 98765-4321".into(),
        normalised: "5511987654321".into(),
    };
    (req, phone)
}

#[test]
fn a_rich_request_on_a_terminal() {
    let (req, phone) = rich();
    let out = terminal(&req, Some(&phone), 48);
    insta::assert_snapshot!(out, @r#"
    to Ana Souza · +55 11 98765-4321 → 5511987654321

    ╭─────────────────────────────────────────────╮
    │ Olá Ana,                                    │
    │                                             │
    │ Seu cartão Gold está pronto: 2% de cashback │
    │ em todas as compras.                        │
    ╰─────────────────────────────────────────────╯

    ╭────────────╮
    │ Renew now? │
    ╰────────────╯
    [ Yes ]
    [ See plans → https://example.com/plans ]

    ╭─ card 1 of 2 ─────────────────────────────╮
    │ [image: https://cdn.example.com/gold.png] │
    │ Gold                                      │
    │ 2% cashback                               │
    ╰───────────────────────────────────────────╯
    [ Choose Gold ]

    ╭─ card 2 of 2 ─────────────────────────╮
    │ [image:                               │
    │ https://cdn.example.com/platinum.png] │
    │ Platinum                              │
    │ 3% cashback, lounge access            │
    ╰───────────────────────────────────────╯

    ╭─ image ──────────────────────────────────────╮
    │ Your gold card                               │
    │ https://cdn.example.com/gold.png (image/png) │
    ╰──────────────────────────────────────────────╯

    (data for the bot:
    {"campaign":"renewal","tier":"gold"})
    "#);
}

#[test]
fn every_line_fits_the_width() {
    let (req, phone) = rich();
    for width in [16, 20, 33, 48, 80] {
        for line in terminal(&req, Some(&phone), width).lines() {
            assert!(text_width(line) <= width, "{width}: {line:?}");
        }
    }
}

#[test]
fn wrapping_breaks_at_spaces_and_only_long_words_inside() {
    assert_eq!(
        wrap("Your gold card is ready", 10),
        ["Your gold", "card is", "ready"]
    );
    assert_eq!(wrap("abcdefghijkl xy", 5), ["abcde", "fghij", "kl xy"]);
    assert_eq!(wrap("a\n\nb", 5), ["a", "", "b"]);
    // Multi-byte and wide characters are never split; a wide one counts two columns.
    assert_eq!(wrap("ããããããã", 3), ["ããã", "ããã", "ã"]);
    assert_eq!(wrap("日本語テキスト", 5), ["日本", "語テ", "キス", "ト"]);
    assert_eq!(wrap("x\u{1b}[2Jy", 10), ["x\u{FFFD}[2Jy"]);
}

#[test]
fn the_phone_header_shows_the_digits_sent() {
    let (mut req, phone) = rich();
    assert!(
        terminal(&req, Some(&phone), 80)
            .starts_with("to Ana Souza · +55 11 98765-4321 → 5511987654321\n")
    );
    req.contact.first_name = None;
    req.contact.last_name = None;
    assert!(terminal(&req, None, 80).starts_with("to 5511987654321\n"));
    req.destination = Destination::Bot;
    assert!(terminal(&req, None, 80).contains("destination bot"));
}

#[test]
fn html_escapes_every_value_and_loads_nothing() {
    let (mut req, phone) = rich();
    req.message.push(MessageItem::Text(TextData {
        text: "<script>alert(1)</script> & \"q\" 'a'".into(),
    }));
    if let MessageItem::Buttons(b) = &mut req.message[1] {
        b.buttons[1].value = "https://x.example/\"><img onerror=alert(1)>".into();
    }
    let html = bubbles_html(&req, Some(&phone));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot; &#39;a&#39;"));
    assert!(html.contains("https://x.example/&quot;&gt;&lt;img onerror=alert(1)&gt;"));
    for bad in ["<script", "<img", "src=", "href=", "<a ", "url("] {
        assert!(!html.contains(bad), "{bad} in {html}");
        assert!(!BUBBLES_CSS.contains(bad), "{bad} in the CSS");
    }
    for shown in [
        "Seu cartão Gold",
        "See plans",
        "https://cdn.example.com/platinum.png",
        "Your gold card",
        "image/png",
        "renewal",
        "+55 11 98765-4321 → 5511987654321",
    ] {
        assert!(html.contains(shown), "{shown} missing");
    }
}

#[test]
fn a_page_of_chats_escapes_its_headings() {
    let (req, phone) = rich();
    let page = bubbles_page(
        "<b>preview</b>",
        &[("row 1 <i>".into(), bubbles_html(&req, Some(&phone)))],
    );
    assert!(page.contains("<title>&lt;b&gt;preview&lt;/b&gt;</title>"));
    assert!(page.contains("<h2>row 1 &lt;i&gt;</h2>"));
    assert!(page.contains("<div class=\"chat\">"));
}
