//! A field written with no variable (`title: "Quero renovar meu plano"`) is the same for every
//! row: it is checked once against the API's rules, and what breaks one is a problem of the
//! campaign file at its line, reported once, not once per row against the contact file.

use minijinja::context;
use serde_json::Map;

use super::{ButtonPlan, CardPlan, ItemPlan, Renderer, Text, confine};
use crate::api::{self, Button, Card, Contact, MessageItem, SendRequest};
use crate::campaign::{Campaign, RawMessage};
use crate::error::Problem;

/// What a field that varies by row holds in the probe: a value every rule accepts (an http URL
/// short enough for any title), so that only the constant fields can break one.
const STAND_IN: &str = "https://x.io";

/// A constant field of the probe: its path in the request and in the campaign file.
struct Field {
    request: String,
    yaml: String,
}

/// One request made of the campaign's constant fields, the others standing in.
struct Probe<'r> {
    renderer: &'r Renderer,
    fields: Vec<Field>,
}

impl Probe<'_> {
    /// Notes a field that does not depend on the row, such as how many buttons an item has.
    fn fixed(&mut self, request: String, yaml: String) {
        self.fields.push(Field { request, yaml });
    }

    fn text(&mut self, t: &Text, request: String, yaml: String) -> String {
        match self.renderer.constant(t) {
            Some(value) => {
                self.fixed(request, yaml);
                value
            }
            None => STAND_IN.into(),
        }
    }

    fn opt(&mut self, t: &Option<Text>, request: String, yaml: String) -> Option<String> {
        let t = t.as_ref()?;
        Some(self.text(t, request, yaml)).filter(|s| !s.trim().is_empty())
    }

    fn buttons(&mut self, buttons: &[ButtonPlan], request: &str, yaml: &str) -> Vec<Button> {
        self.fixed(request.to_string(), yaml.to_string());
        buttons
            .iter()
            .enumerate()
            .map(|(j, b)| Button {
                title: self.text(
                    &b.title,
                    format!("{request}[{j}].title"),
                    format!("{yaml}[{j}].title"),
                ),
                kind: b.kind,
                value: self.text(
                    &b.value,
                    format!("{request}[{j}].value"),
                    format!("{yaml}[{j}].value"),
                ),
            })
            .collect()
    }

    fn card(&mut self, c: &CardPlan, request: &str, yaml: &str) -> Card {
        Card {
            title: self.text(
                &c.title,
                format!("{request}.title"),
                format!("{yaml}.title"),
            ),
            subtitle: self.opt(
                &c.subtitle,
                format!("{request}.subtitle"),
                format!("{yaml}.subtitle"),
            ),
            image_url: self.opt(
                &c.image_url,
                format!("{request}.image_url"),
                format!("{yaml}.image_url"),
            ),
            buttons: self.buttons(
                &c.buttons,
                &format!("{request}.buttons"),
                &format!("{yaml}.buttons"),
            ),
        }
    }

    /// Message item `i` (`raw` as the campaign writes it, for the key of its text).
    fn item(&mut self, i: usize, item: &ItemPlan, raw: Option<&RawMessage>) -> MessageItem {
        let request = format!("message[{i}].data");
        let yaml = format!("messages[{i}]");
        let text_key = match raw {
            Some(
                RawMessage::Text {
                    template: Some(_), ..
                }
                | RawMessage::Buttons {
                    template: Some(_), ..
                },
            ) => "template",
            _ => "text",
        };
        let text = |p: &mut Self, t: &Text| {
            p.text(t, format!("{request}.text"), format!("{yaml}.{text_key}"))
        };
        match item {
            ItemPlan::Text(t) => MessageItem::Text(api::TextData {
                text: text(self, t),
            }),
            ItemPlan::Buttons(t, b) => MessageItem::Buttons(api::ButtonsData {
                text: text(self, t),
                buttons: self.buttons(b, &format!("{request}.buttons"), &format!("{yaml}.buttons")),
            }),
            ItemPlan::Cards(cards) => {
                self.fixed(format!("{request}.cards"), format!("{yaml}.cards"));
                MessageItem::Cards(api::CardsData {
                    cards: cards
                        .iter()
                        .enumerate()
                        .map(|(j, c)| {
                            self.card(
                                c,
                                &format!("{request}.cards[{j}]"),
                                &format!("{yaml}.cards[{j}]"),
                            )
                        })
                        .collect(),
                })
            }
            ItemPlan::Media {
                kind,
                url,
                name: _,
                mime_type: _,
            } => MessageItem::Media(api::MediaData {
                kind: *kind,
                url: self.text(url, format!("{request}.url"), format!("{yaml}.url")),
                name: None,
                mime_type: None,
            }),
            ItemPlan::Payload(_) => MessageItem::Payload(Map::new()),
        }
    }
}

impl Renderer {
    /// The text of a field that is the same for every row: a literal, or a template that reads
    /// nothing but `vars` and `campaign` and names no other template. `None` when it varies.
    fn constant(&self, t: &Text) -> Option<String> {
        let name = match t {
            Text::Literal(s) => return Some(s.clone()),
            Text::Template(name, _) => name,
        };
        let template = self.env.get_template(name).ok()?;
        let reads_row = template
            .undeclared_variables(false)
            .iter()
            .any(|v| v != "vars" && v != "campaign");
        if reads_row || !confine::references(template.source()).is_empty() {
            return None;
        }
        template
            .render(context! { vars => self.vars.clone(), campaign => self.name.clone() })
            .ok()
    }

    /// The API's rules broken by fields that no row changes, each at its campaign line.
    pub(super) fn constant_problems(&self, campaign: &Campaign) -> Vec<Problem> {
        let mut probe = Probe {
            renderer: self,
            fields: Vec::new(),
        };
        let message = self
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| probe.item(i, item, campaign.messages.get(i)))
            .collect();
        let request = SendRequest {
            destination: self.destination,
            contact: Contact {
                id: "new_contact".into(),
                external_id: None,
                first_name: None,
                last_name: None,
                mobile_phone: Some("5511999990001".into()),
                custom: Map::new(),
            },
            session: None,
            message,
        };
        let mut problems: Vec<Problem> = api::validate(&request, self.channel)
            .into_iter()
            .filter_map(|v| {
                let field = probe.fields.iter().find(|f| f.request == v.field)?;
                Some(
                    campaign
                        .problem_at(&field.yaml, format!("`{}` {}", field.yaml, v.message))
                        .hint("it is written in the campaign file, the same for every row: fix it there"),
                )
            })
            .collect();
        // Not a fault of every row: the campaign names no phone at all.
        if self.mobile_phone.is_none() && self.channel.requires_phone() {
            problems.push(
                campaign
                    .problem_at(
                        "contact",
                        format!(
                            "the campaign has no `contact.mobile_phone`, and {} reaches each contact by phone",
                            self.channel.name()
                        ),
                    )
                    .hint("add it under `contact:`, naming the column that holds the phone: `mobile_phone: \"{{ phone }}\"`"),
            );
        }
        problems
    }
}
