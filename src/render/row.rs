//! One row through the compiled templates: each text by the engine-free path when it has one,
//! else by minijinja within its fuel, bounded in length; every problem placed at the row's line
//! of the contact file. A row is rendered whole, so that it reports every reason it cannot be
//! sent at once.

use std::cell::OnceCell;
use std::path::Path;
use std::sync::Arc;

use minijinja::ErrorKind;
use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use serde_json::{Map, Value as Json};

use super::simple::render_parts;
use super::{
    BUILTINS, ButtonPlan, FUEL, ItemPlan, OUTPUT_MAX, Rendered, Renderer, RowError, Text, Tree,
    confine, filters, location, template_problem,
};
use crate::api::{self, Button, Card, Contact, MessageItem, SendRequest};
use crate::contacts::{Headers, Row};
use crate::error::{Kind, Problem};
use crate::phone::{self, Phone};

/// One row being rendered: the row, its file, the problems found so far, and its template
/// context, made on first use (rows whose templates are all simple never need one).
struct Ctx<'r> {
    row: &'r Row,
    csv: &'r Path,
    value: OnceCell<Value>,
    problems: Vec<Problem>,
}

impl<'r> Ctx<'r> {
    fn new(row: &'r Row, csv: &'r Path) -> Self {
        Ctx {
            row,
            csv,
            value: OnceCell::new(),
            problems: Vec::new(),
        }
    }

    fn push(&mut self, problem: RowProblem) {
        self.problems.push(problem.place(self.csv, self.row));
    }

    /// `value`, when the row had no problem.
    fn done<T>(self, value: T) -> Result<T, RowError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(RowError {
                problems: self.problems,
            })
        }
    }
}

/// A row's phone: as written, and as read.
struct PhoneRead {
    written: String,
    phone: Phone,
}

impl Renderer {
    /// Whether `contacts.where` keeps this row in the campaign (true when there is no filter).
    pub(crate) fn included(&self, row: &Row, csv: &Path) -> Result<bool, RowError> {
        let Some(filter) = &self.filter else {
            return Ok(true);
        };
        let mut ctx = Ctx::new(row, csv);
        let out = self.text(&mut ctx, filter);
        ctx.done(out == "1")
    }

    /// Only the row's key (None when it renders empty), without rendering the request: what
    /// a resumed run needs for rows the ledger already settles.
    pub(crate) fn key(&self, row: &Row, csv: &Path) -> Result<Option<String>, RowError> {
        if let Some(e) = RowError::secret(row, csv, &self.secrets) {
            return Err(e);
        }
        let mut ctx = Ctx::new(row, csv);
        let key = self.derive_key(&mut ctx, |ctx| {
            let phone = self.phone(ctx).map(|p| p.phone.digits);
            (phone, self.opt_text(ctx, &self.external_id))
        });
        // A key read from bytes that could not be decoded names nobody.
        let undecodable = row.undecodable.is_some();
        Ok(ctx
            .done(key)?
            .filter(|k| !(undecodable && k.contains('\u{FFFD}'))))
    }

    /// Renders one row into its request, or every reason it cannot be sent.
    pub(crate) fn render(&self, row: &Row, csv: &Path) -> Result<Rendered, RowError> {
        if let Some(e) = RowError::undecodable(row) {
            return Err(e);
        }
        if let Some(e) = RowError::secret(row, csv, &self.secrets) {
            return Err(e);
        }
        let mut ctx = Ctx::new(row, csv);
        let read = self.phone(&mut ctx);
        let contact = self.contact(&mut ctx, read.as_ref().map(|r| r.phone.digits.clone()));
        let session = self
            .session
            .as_ref()
            .and_then(|s| self.tree(&mut ctx, s))
            .and_then(|s| match s {
                Json::Object(m) if m.contains_key("id") => Some(api::Session(m)),
                _ => None,
            });
        let message = self.items.iter().map(|i| self.item(&mut ctx, i)).collect();
        let key = self.derive_key(&mut ctx, |_| {
            (contact.mobile_phone.clone(), contact.external_id.clone())
        });
        let request = SendRequest {
            destination: self.destination,
            contact,
            session,
            message,
        };
        match self.checked(&mut ctx, &request, key) {
            Some(key) => {
                let (phone_as_written, line) = read.map(|r| (r.written, r.phone.line)).unzip();
                Ok(Rendered {
                    key,
                    phone: request.contact.mobile_phone.clone(),
                    phone_as_written,
                    line,
                    request,
                })
            }
            None => Err(RowError {
                problems: ctx.problems,
            }),
        }
    }

    /// The contact of the request: the phone already read, then the other fields in order.
    fn contact(&self, ctx: &mut Ctx<'_>, phone: Option<String>) -> Contact {
        let external_id = self.opt_text(ctx, &self.external_id);
        Contact {
            id: self
                .opt_text(ctx, &self.contact_id)
                .unwrap_or_else(|| "new_contact".into()),
            external_id,
            first_name: self.opt_text(ctx, &self.first_name),
            last_name: self.opt_text(ctx, &self.last_name),
            mobile_phone: phone,
            custom: self
                .custom
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), self.tree(ctx, v)?)))
                .collect::<Map<_, _>>(),
        }
    }

    fn item(&self, ctx: &mut Ctx<'_>, item: &ItemPlan) -> MessageItem {
        match item {
            ItemPlan::Text(t) => MessageItem::Text(api::TextData {
                text: self.text(ctx, t),
            }),
            ItemPlan::Buttons(t, b) => MessageItem::Buttons(api::ButtonsData {
                text: self.text(ctx, t),
                buttons: self.buttons(ctx, b),
            }),
            ItemPlan::Cards(cards) => MessageItem::Cards(api::CardsData {
                cards: cards
                    .iter()
                    .map(|c| Card {
                        title: self.text(ctx, &c.title),
                        subtitle: self.opt_text(ctx, &c.subtitle),
                        image_url: self.opt_text(ctx, &c.image_url),
                        buttons: self.buttons(ctx, &c.buttons),
                    })
                    .collect(),
            }),
            ItemPlan::Media {
                kind,
                url,
                name,
                mime_type,
            } => MessageItem::Media(api::MediaData {
                kind: *kind,
                url: self.text(ctx, url),
                name: self.opt_text(ctx, name),
                mime_type: self.opt_text(ctx, mime_type),
            }),
            ItemPlan::Payload(tree) => MessageItem::Payload(match self.tree(ctx, tree) {
                Some(Json::Object(m)) => m,
                _ => Map::new(),
            }),
        }
    }

    /// The key of a row whose fields all rendered, once its request keeps the channel's rules
    /// and the key is not empty; else `None`, the problems saying why.
    fn checked(
        &self,
        ctx: &mut Ctx<'_>,
        request: &SendRequest,
        key: Option<String>,
    ) -> Option<String> {
        if !ctx.problems.is_empty() {
            return None;
        }
        for v in api::validate(request, self.channel) {
            ctx.push(RowProblem {
                message: format!("`{}` {}", v.field, v.message),
                hint: Some("fix the cell or the template that fills it".into()),
                kind: Kind::Field,
            });
        }
        if !ctx.problems.is_empty() {
            return None;
        }
        if key.is_none() {
            ctx.push(RowProblem {
                message: "the contact key is empty".into(),
                hint: Some(
                    "every row needs the key (`contacts.key`, else the phone, else external_id)"
                        .into(),
                ),
                kind: Kind::Key,
            });
        }
        key
    }

    /// The row's phone read with libphonenumber's rules; a cell that is no valid number is a
    /// problem of the row, located and with what to do.
    fn phone(&self, ctx: &mut Ctx<'_>) -> Option<PhoneRead> {
        let written = self.opt_text(ctx, &self.mobile_phone)?;
        match phone::normalise(&written, self.region.as_ref()) {
            Ok(phone) => Some(PhoneRead { written, phone }),
            Err(err) => {
                ctx.push(RowProblem {
                    message: format!("{err} (contact.mobile_phone)"),
                    kind: Kind::Phone,
                    hint: Some(err.hint()),
                });
                None
            }
        }
    }

    /// A contact's identity: `contacts.key`, else the normalised phone, else external_id.
    /// `fallback` gives (phone, external_id) and runs only when there is no key template. Spaces
    /// around it are not part of it: a cell padded by an edit (`C1 `) is the same contact.
    fn derive_key(
        &self,
        ctx: &mut Ctx<'_>,
        fallback: impl FnOnce(&mut Ctx<'_>) -> (Option<String>, Option<String>),
    ) -> Option<String> {
        match &self.key {
            Some(k) => Some(self.text(ctx, k)),
            None => {
                let (phone, external_id) = fallback(ctx);
                phone.or(external_id)
            }
        }
        .map(|k| match k.trim() {
            t if t.len() == k.len() => k,
            t => t.to_string(),
        })
        .filter(|k| !k.is_empty())
    }

    fn text(&self, ctx: &mut Ctx<'_>, t: &Text) -> String {
        let (name, simple) = match t {
            Text::Literal(s) => return s.clone(),
            Text::Template(name, simple) => (name, simple),
        };
        let fast = simple
            .as_deref()
            .and_then(|parts| render_parts(parts, &ctx.row.record));
        match fast.map_or_else(|| self.engine(ctx, name), Ok) {
            Ok(out) => self.bounded(ctx, name, out),
            Err(problem) => {
                ctx.push(problem);
                String::new()
            }
        }
    }

    fn opt_text(&self, ctx: &mut Ctx<'_>, t: &Option<Text>) -> Option<String> {
        t.as_ref()
            .map(|t| self.text(ctx, t))
            .filter(|s| !s.trim().is_empty())
    }

    fn tree(&self, ctx: &mut Ctx<'_>, t: &Tree) -> Option<Json> {
        match t {
            Tree::Leaf(text) => Some(Json::String(self.text(ctx, text))).filter(|v| v != ""),
            Tree::Other(v) => Some(v.clone()),
            Tree::Map(m) => Some(Json::Object(
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), self.tree(ctx, v)?)))
                    .collect(),
            )),
            Tree::List(l) => Some(Json::Array(
                l.iter().filter_map(|v| self.tree(ctx, v)).collect(),
            )),
        }
    }

    fn buttons(&self, ctx: &mut Ctx<'_>, b: &[ButtonPlan]) -> Vec<Button> {
        b.iter()
            .map(|b| Button {
                title: self.text(ctx, &b.title),
                kind: b.kind,
                value: self.text(ctx, &b.value),
            })
            .collect()
    }

    /// Renders template `name` with minijinja, within its fuel; a runaway template is not
    /// rendered again.
    fn engine(&self, ctx: &Ctx<'_>, name: &str) -> Result<String, RowProblem> {
        let runaway = || self.runaway.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&first) = runaway().get(name) {
            return Err(RowProblem {
                message: format!(
                    "template {} was not rendered: it ran out of its rendering budget at row {first}",
                    self.named(&self.origin(name), None)
                ),
                kind: Kind::Template,
                hint: Some(format!(
                    "fix the template (see row {first}'s problem), then check again"
                )),
            });
        }
        let value = ctx.value.get_or_init(|| self.context(ctx.row));
        let outer = match self.env.get_template(name).and_then(|t| t.render(value)) {
            Ok(out) => return Ok(out),
            Err(e) => e,
        };
        // The error may have arisen in a template this one includes, imports or extends: the
        // include's error ("error in …") carries that template's own, with its name and line.
        let e = innermost(&outer);
        let origin = self.origin(e.name().unwrap_or(name));
        if e.kind() == ErrorKind::OutOfFuel {
            runaway().entry(name.to_string()).or_insert(ctx.row.number);
            return Err(RowProblem {
                message: format!(
                    "template {} ran out of its rendering budget ({FUEL} steps)",
                    self.named(&origin, e.line())
                ),
                kind: Kind::Template,
                hint: Some(
                    "a loop runs too long, or text grows inside one; a message needs no more than a few thousand steps"
                        .into(),
                ),
            });
        }
        if let Some(cell) = filters::unreadable_cell(e) {
            return Err(RowProblem {
                message: format!("{cell} ({})", self.named(&origin, e.line())),
                kind: Kind::Cell,
                hint: Some("fix the cell in the contact file, or, if the column is written this way throughout, the template (see the message)".into()),
            });
        }
        let at = template_problem(&origin, &self.campaign_file, &self.campaign_places, e);
        // A name computed at render time that the folder refuses.
        let refused = confine::refusal(e)
            .or_else(|| confine::refusal(&outer))
            .zip(self.folder.as_ref())
            .map(|(r, f)| r.hint(f.dir()));
        let undefined = (e.kind() == ErrorKind::UndefinedError).then(|| {
            "a name the template uses is no column of this row, key of `vars:` or built-in: fix its spelling, then check again".to_string()
        });
        Err(RowProblem {
            message: format!("{} ({})", at.message, location(&at)),
            kind: Kind::Template,
            hint: refused.or(undefined),
        })
    }

    /// `out` when it fits in `OUTPUT_MAX`, else a problem naming the template, row and limit.
    fn bounded(&self, ctx: &mut Ctx<'_>, name: &str, out: String) -> String {
        if out.len() <= OUTPUT_MAX {
            return out;
        }
        ctx.push(RowProblem {
            message: format!(
                "template {} rendered {} bytes, over the {} KiB one text may hold",
                self.named(&self.origin(name), None),
                out.len(),
                OUTPUT_MAX / 1024
            ),
            kind: Kind::Template,
            hint: Some(
                "shorten the template or what it repeats; no channel takes a text this long".into(),
            ),
        });
        String::new()
    }

    /// The template context of a row.
    fn context(&self, row: &Row) -> Value {
        Value::from_object(RowContext {
            headers: self.headers.clone(),
            record: row.record.clone(),
            number: row.number,
            vars: self.vars.clone(),
            campaign: self.name.clone(),
        })
    }
}

/// The template context of one row: columns by header, plus the built-ins.
#[derive(Debug)]
struct RowContext {
    headers: Arc<Headers>,
    record: csv::StringRecord,
    number: u64,
    vars: Value,
    campaign: Value,
}

impl Object for RowContext {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        if let Some(i) = self.headers.get(key) {
            return self.record.get(i).map(Value::from);
        }
        match key {
            "row" => Some(Value::from_object(RowMap(self.clone()))),
            "row_number" => Some(Value::from(self.number)),
            "vars" => Some(self.vars.clone()),
            "campaign" => Some(self.campaign.clone()),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Value> = self
            .headers
            .names
            .iter()
            .map(|n| Value::from(n.as_str()))
            .collect();
        keys.extend(BUILTINS.iter().map(|b| Value::from(*b)));
        Enumerator::Values(keys)
    }
}

/// `row["Header With Spaces"]`: the columns only.
#[derive(Debug)]
struct RowMap(Arc<RowContext>);

impl Object for RowMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let i = self.0.headers.get(key.as_str()?)?;
        self.0.record.get(i).map(Value::from)
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.0
                .headers
                .names
                .iter()
                .map(|n| Value::from(n.as_str()))
                .collect(),
        )
    }
}

/// What went wrong rendering a row, before it is placed at the row's line.
struct RowProblem {
    message: String,
    hint: Option<String>,
    kind: Kind,
}

impl RowProblem {
    fn place(self, csv: &Path, row: &Row) -> Problem {
        let p = Problem::new(
            csv,
            Some(row.line as usize),
            format!("row {}: {}", row.number, self.message),
        );
        Problem {
            hint: self.hint,
            ..p.kind(self.kind)
        }
    }
}

/// The error where it arose, under the errors of the templates that include it.
fn innermost(e: &minijinja::Error) -> &minijinja::Error {
    let mut at = e;
    while let Some(inner) =
        std::error::Error::source(at).and_then(|s| s.downcast_ref::<minijinja::Error>())
    {
        at = inner;
    }
    at
}
