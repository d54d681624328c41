//! Strict minijinja rendering: each CSV row becomes a typed `SendRequest`. Rendered strings are
//! placed into the request's fields, never spliced into JSON text, so no cell can inject JSON.

mod confine;
mod constant;
mod filters;
mod lint;
mod row;
mod simple;
pub(crate) mod tags;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value as Json;

use crate::api::{self, SendRequest};
use crate::campaign::locate::Places;
use crate::campaign::{Campaign, RawButton, RawMessage};
use crate::contacts::{Headers, Row};
use crate::error::Problem;
use crate::lookalike::{self, Lookalike};
use crate::phone::{self, LineKind, Region};
use confine::Folder;
use tags::Lex;

/// Names every template may use besides the CSV columns.
const BUILTINS: [&str; 4] = ["row", "row_number", "vars", "campaign"];

/// Where a template's text came from, to report errors at the right file and line.
#[derive(Debug, Clone)]
enum Origin {
    /// Inline in the campaign YAML, at this key path.
    Inline(String),
    /// A file in the templates folder.
    File(PathBuf),
}

/// A string field: a literal or a compiled template's name.
#[derive(Debug, Clone)]
enum Text {
    Literal(String),
    /// A compiled template, and, when it is only text and column substitutions, the same
    /// template as parts that render without the engine.
    Template(String, Option<Arc<[simple::Part]>>),
}

/// A JSON tree whose string leaves are templates (custom fields, session, payload).
#[derive(Debug, Clone)]
enum Tree {
    Leaf(Text),
    Other(Json),
    Map(Vec<(String, Tree)>),
    List(Vec<Tree>),
}

#[derive(Debug, Clone)]
struct ButtonPlan {
    title: Text,
    kind: api::ButtonType,
    value: Text,
}

#[derive(Debug, Clone)]
struct CardPlan {
    title: Text,
    subtitle: Option<Text>,
    image_url: Option<Text>,
    buttons: Vec<ButtonPlan>,
}

#[derive(Debug, Clone)]
enum ItemPlan {
    Text(Text),
    Buttons(Text, Vec<ButtonPlan>),
    Cards(Vec<CardPlan>),
    Media {
        kind: api::MediaKind,
        url: Text,
        name: Option<Text>,
        mime_type: Option<Text>,
    },
    Payload(Tree),
}

/// The rendered request for one row, with its identity.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    pub key: String,
    /// The normalised phone (`contact.mobile_phone` of the request).
    pub phone: Option<String>,
    /// The phone as the row wrote it, and what kind of line it is.
    pub(crate) phone_as_written: Option<String>,
    pub(crate) line: Option<LineKind>,
    pub request: SendRequest,
}

/// Compiled templates for one campaign and CSV header.
pub(crate) struct Renderer {
    env: Environment<'static>,
    origins: Vec<(String, Origin)>,
    folder: Option<Folder>,
    /// Templates that ran out of fuel, with the row where they first did: a runaway template
    /// is not rendered again, so that `check` over a long file stops within seconds.
    runaway: Mutex<HashMap<String, u64>>,
    campaign_file: PathBuf,
    campaign_places: Places,
    headers: Arc<Headers>,
    vars: Value,
    name: Value,
    channel: api::Channel,
    /// `contacts.country`: the region of phones written without a country code.
    region: Option<Region>,
    destination: api::Destination,
    key: Option<Text>,
    filter: Option<Text>,
    contact_id: Option<Text>,
    external_id: Option<Text>,
    first_name: Option<Text>,
    last_name: Option<Text>,
    mobile_phone: Option<Text>,
    custom: Vec<(String, Tree)>,
    session: Option<Tree>,
    items: Vec<ItemPlan>,
    /// The process's secrets long enough to look for in cells (`redact::long_secrets`): a row
    /// that holds one is never sent, nor its cells shown.
    secrets: Vec<String>,
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// The `digits` filter: keeps 0-9 only.
fn digits(value: String) -> String {
    value.chars().filter(char::is_ascii_digit).collect()
}

/// The work one render may do, in minijinja's fuel: about one instruction, or 64 bytes of text
/// made. A message template takes tens to a few thousand; this leaves room for loops over a
/// few hundred items, while a runaway loop stops within milliseconds and has made at most
/// `FUEL * 64` bytes (12.8 MB).
pub(crate) const FUEL: u64 = 200_000;

/// The longest text one template may render, in bytes: 64 KiB, above every channel's limit
/// (a 4,096-character text is at most 16 KiB), so the request's own checks speak first for
/// anything a channel could take.
pub(crate) const OUTPUT_MAX: usize = 64 * 1024;

/// The environment, loading `{% include %}`d templates from the campaign's template folder.
fn with_loader(mut env: Environment<'static>, folder: Option<&Folder>) -> Environment<'static> {
    if let Some(f) = folder {
        env.set_loader(f.clone().loader());
    }
    env
}

/// Builds the strict environment every campaign uses. The `phone` filter reads a number with
/// the campaign's `contacts.country`, as `contact.mobile_phone` is read.
fn environment(region: Option<Region>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_filter("digits", digits);
    env.add_filter("money", filters::money);
    env.add_filter("amount", filters::amount);
    env.add_filter("date", filters::date);
    env.add_filter(
        "phone",
        move |value: String| -> Result<String, minijinja::Error> {
            phone::normalise(&value, region.as_ref())
                .map(|p| p.digits)
                .map_err(|e| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("the phone filter: {e} — {}", e.hint()),
                    )
                })
        },
    );
    env.set_fuel(Some(FUEL));
    // Keeps a syntax error's source and span, to name a look-alike character there.
    env.set_debug(true);
    env
}

struct Compiler<'a> {
    env: Environment<'static>,
    origins: Vec<(String, Origin)>,
    campaign: &'a Campaign,
    headers: &'a Headers,
    problems: Vec<Problem>,
    folder: Option<Folder>,
    /// Templates named by loaded files and not yet loaded, with the file that names them.
    references: Vec<(PathBuf, confine::Reference)>,
}

impl Compiler<'_> {
    /// Compiles an inline template found at `path` in the campaign file.
    fn inline(&mut self, path: &str, source: &str) -> Text {
        if !is_template(source) {
            return Text::Literal(source.to_string());
        }
        self.add(
            path.to_string(),
            source.to_string(),
            Origin::Inline(path.to_string()),
        )
    }

    fn opt(&mut self, path: &str, source: Option<&String>) -> Option<Text> {
        source.map(|s| self.inline(path, s))
    }

    /// Compiles a template file from the templates folder (`template:` at key `path`).
    fn file(&mut self, path: &str, name: &str) -> Text {
        let Some(folder) = self.folder.clone() else {
            self.problems.push(
                self.campaign
                    .problem_at(path, format!("template {name:?} needs a templates folder, and none was found"))
                    .hint("create a folder named `templates` beside the campaign, or set `templates:`"),
            );
            return Text::Literal(String::new());
        };
        // Refused here too, to point at the campaign line rather than at the loader.
        if let Err(r) = folder.resolve(name) {
            self.problems.push(
                self.campaign
                    .problem_at(path, r.to_string())
                    .hint(r.hint(folder.dir())),
            );
            return Text::Literal(String::new());
        }
        match self.load(&folder, name, true) {
            Some(source) => self.compiled(name.to_string(), &source),
            None => Text::Literal(String::new()),
        }
    }

    /// Loads and compiles a template file through the environment's loader, once; checks it
    /// (look-alikes, the variables it uses, as a campaign's template with `columns`, else as an
    /// included one) and queues the templates it
    /// names for `follow`. Its source, or `None` when it cannot be used.
    fn load(&mut self, folder: &Folder, name: &str, columns: bool) -> Option<String> {
        let loaded = self.env.get_template(name).map(|t| t.source().to_string());
        if self.origins.iter().any(|(n, _)| n == name) {
            return loaded.ok();
        }
        let file = folder.shown(name);
        let origin = Origin::File(file.clone());
        // Noted, so that a second use is not checked or reported again.
        self.origins.push((name.to_string(), origin.clone()));
        let (source, error) = match loaded {
            Ok(source) => (source, None),
            Err(e) => (e.template_source().unwrap_or("").to_string(), Some(e)),
        };
        let found = lookalike::in_template(&source);
        for l in &found {
            self.problems.push(l.problem(&file));
        }
        if let Some(e) = error {
            self.compile_error(&origin, &source, &e, &found);
            return None;
        }
        self.check_names(name, &source, &origin, !columns);
        self.check_vars(name, &source, &origin);
        self.lint(&source, &origin);
        let named = confine::references(&source);
        self.references
            .extend(named.into_iter().rev().map(|r| (file.clone(), r)));
        Some(source)
    }

    /// Loads the templates the loaded files name in include, import, from and extends tags,
    /// and those they name in turn, so that a refused, missing or broken one is a problem
    /// before any row. Runs once every template of the campaign is compiled: a file the
    /// campaign also names in `template:` is then checked as such (its columns too).
    fn follow(&mut self) {
        let Some(folder) = self.folder.clone() else {
            return;
        };
        while let Some((file, r)) = self.references.pop() {
            if self.origins.iter().any(|(n, _)| *n == r.name) {
                continue;
            }
            match folder.resolve(&r.name) {
                Ok(_) => {
                    self.load(&folder, &r.name, false);
                }
                Err(refusal) if r.optional && refusal.is_missing() => {}
                Err(refusal)
                    if refusal.is_missing()
                        && r.others.iter().any(|o| folder.resolve(o).is_ok()) => {}
                Err(refusal) => self.problems.push(
                    Problem::new(
                        &file,
                        Some(r.line),
                        format!("`{{% {} %}}`: {refusal}", r.keyword),
                    )
                    .hint(refusal.hint(folder.dir())),
                ),
            }
        }
    }

    /// Reports a template that does not compile. The look-alike characters `found` in it were
    /// reported on their own; one of them stands for the syntax error when that is where the
    /// parser stopped.
    fn compile_error(
        &mut self,
        origin: &Origin,
        source: &str,
        e: &minijinja::Error,
        found: &[lookalike::Lookalike],
    ) {
        let at = lookalike_at(source, e);
        if at.as_ref().is_some_and(|l| found.contains(l)) {
            return;
        }
        let mut p = template_problem(origin, &self.campaign.file, &self.campaign.places, e);
        if let Some(l) = at {
            p.message = format!("{}; column {} holds {l}", p.message, l.column);
        }
        self.problems.push(p);
    }

    fn add(&mut self, name: String, source: String, origin: Origin) -> Text {
        if self.origins.iter().any(|(n, _)| *n == name) {
            return self.compiled(name, &source);
        }
        match self.env.add_template_owned(name.clone(), source.clone()) {
            Ok(()) => {
                self.check_names(&name, &source, &origin, false);
                self.check_vars(&name, &source, &origin);
                self.lint(&source, &origin);
                self.origins.push((name.clone(), origin));
                self.compiled(name, &source)
            }
            Err(e) => {
                // An inline template's look-alikes were reported with the campaign file's.
                self.compile_error(&origin, &source, &e, &[]);
                Text::Literal(String::new())
            }
        }
    }

    fn compiled(&self, name: String, source: &str) -> Text {
        let simple = simple::parts(source, self.headers);
        Text::Template(name, simple)
    }

    /// Finds variables the template uses that are neither columns nor built-ins. In a template
    /// that another includes (`included`), the including one may set the name or loop over it,
    /// so only a name no other template of the campaign mentions is reported.
    fn check_names(&mut self, name: &str, source: &str, origin: &Origin, included: bool) {
        let Ok(t) = self.env.get_template(name) else {
            return;
        };
        let used: BTreeSet<String> = t.undeclared_variables(false).into_iter().collect();
        for var in used {
            if self.headers.get(&var).is_some()
                || BUILTINS.contains(&var.as_str())
                || self.env.globals().any(|(g, _)| g == var)
                || (included && self.mentioned_elsewhere(name, &var))
            {
                continue;
            }
            let (file, line) = self.word_place(source, &var, origin);
            let columns = self.headers.listing();
            let near = self
                .headers
                .nearest(&var)
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            self.problems.push(
                Problem::new(
                    file,
                    line,
                    format!("the template uses `{var}`, which is not a column of the contact file"),
                )
                .hint(format!(
                    "{near}columns are: {columns}; use `row[\"...\"]` for headers with spaces, `vars.NAME` for constants"
                )),
            );
        }
    }

    /// The file and line where a template names `word` (its first line when it cannot be
    /// found): the template file's own, or the campaign file's for an inline template.
    fn word_place(&self, source: &str, word: &str, origin: &Origin) -> (PathBuf, Option<usize>) {
        let offset = find_word_line(source, word).unwrap_or(1);
        match origin {
            Origin::File(f) => (f.clone(), Some(offset)),
            Origin::Inline(path) => (
                self.campaign.file.clone(),
                inline_line(&self.campaign.places, path, Some(offset)),
            ),
        }
    }

    /// Whether a template of the campaign other than `name` names `var` in a tag.
    fn mentioned_elsewhere(&self, name: &str, var: &str) -> bool {
        self.origins
            .iter()
            .filter(|(n, _)| n != name)
            .filter_map(|(n, _)| self.env.get_template(n).ok())
            .any(|t| find_word_line(t.source(), var).is_some())
    }

    /// Finds `vars.NAME` where the campaign's `vars:` has no `NAME`: every row would fail on
    /// it, so it is the template's problem, found once. An included template is checked too
    /// (`vars` is the same in every template).
    fn check_vars(&mut self, name: &str, source: &str, origin: &Origin) {
        let Ok(t) = self.env.get_template(name) else {
            return;
        };
        let defined: Vec<String> = self.campaign.vars.keys().cloned().collect();
        let missing: BTreeSet<String> = t
            .undeclared_variables(true)
            .into_iter()
            .filter_map(|v| {
                let rest = v.strip_prefix("vars.")?;
                let key = rest.split('.').next().unwrap_or(rest);
                (!self.campaign.vars.contains_key(key)).then(|| key.to_string())
            })
            .collect();
        for key in missing {
            let (file, line) = self.word_place(source, &key, origin);
            let hint = match crate::campaign::closest(&key, &defined) {
                Some(near) => format!("did you mean `vars.{near}`?"),
                None if defined.is_empty() => {
                    "the campaign has no `vars:`; add the key there, or fix the name".into()
                }
                None => format!(
                    "`vars:` defines: {}",
                    api::truncate(&defined.join(", "), 300)
                ),
            };
            self.problems.push(
                Problem::new(
                    file,
                    line,
                    format!("the template uses `vars.{key}`, which the campaign's `vars:` does not define"),
                )
                .hint(hint),
            );
        }
    }

    /// Reports what the syntax tree shows wrong in every branch (see `lint`), each once, at
    /// its template line.
    fn lint(&mut self, source: &str, origin: &Origin) {
        for f in lint::lint(&self.env, source, self.headers) {
            let problem = match origin {
                Origin::File(file) => Problem::new(file, Some(f.line), f.message),
                Origin::Inline(path) => Problem::new(
                    &self.campaign.file,
                    inline_line(&self.campaign.places, path, Some(f.line)),
                    format!("`{path}`: {}", f.message),
                ),
            };
            self.problems.push(problem.hint(f.hint));
        }
    }

    fn tree(&mut self, path: &str, v: &Json) -> Tree {
        match v {
            Json::String(s) => Tree::Leaf(self.inline(path, s)),
            Json::Object(m) => Tree::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.tree(&format!("{path}.{k}"), v)))
                    .collect(),
            ),
            Json::Array(a) => Tree::List(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| self.tree(&format!("{path}[{i}]"), v))
                    .collect(),
            ),
            other => Tree::Other(other.clone()),
        }
    }

    fn buttons(&mut self, path: &str, buttons: &[RawButton]) -> Vec<ButtonPlan> {
        buttons
            .iter()
            .enumerate()
            .map(|(i, b)| ButtonPlan {
                title: self.inline(&format!("{path}[{i}].title"), &b.title),
                kind: b.kind,
                value: self.inline(&format!("{path}[{i}].value"), &b.value),
            })
            .collect()
    }

    fn text_or_template(
        &mut self,
        at: &str,
        template: &Option<String>,
        text: &Option<String>,
    ) -> Text {
        match (template, text) {
            (Some(t), _) => self.file(&format!("{at}.template"), t),
            (None, Some(t)) => self.inline(&format!("{at}.text"), t),
            (None, None) => Text::Literal(String::new()),
        }
    }

    fn item(&mut self, i: usize, m: &RawMessage) -> ItemPlan {
        let at = format!("messages[{i}]");
        match m {
            RawMessage::Text { template, text } => {
                ItemPlan::Text(self.text_or_template(&at, template, text))
            }
            RawMessage::Buttons {
                template,
                text,
                buttons,
            } => {
                let t = self.text_or_template(&at, template, text);
                ItemPlan::Buttons(t, self.buttons(&format!("{at}.buttons"), buttons))
            }
            RawMessage::Cards { cards } => ItemPlan::Cards(
                cards
                    .iter()
                    .enumerate()
                    .map(|(j, c)| {
                        let cat = format!("{at}.cards[{j}]");
                        CardPlan {
                            title: self.inline(&format!("{cat}.title"), &c.title),
                            subtitle: self.opt(&format!("{cat}.subtitle"), c.subtitle.as_ref()),
                            image_url: self.opt(&format!("{cat}.image_url"), c.image_url.as_ref()),
                            buttons: self.buttons(&format!("{cat}.buttons"), &c.buttons),
                        }
                    })
                    .collect(),
            ),
            RawMessage::Media {
                media,
                url,
                name,
                mime_type,
            } => ItemPlan::Media {
                kind: *media,
                url: self.inline(&format!("{at}.url"), url),
                name: self.opt(&format!("{at}.name"), name.as_ref()),
                mime_type: self.opt(&format!("{at}.mime_type"), mime_type.as_ref()),
            },
            RawMessage::Payload { payload } => ItemPlan::Payload(
                self.tree(&format!("{at}.payload"), &Json::Object(payload.clone())),
            ),
        }
    }
}

/// The line of `source` where a tag first names variable `word` (not as an attribute, a
/// filter or a string; text that happens to hold the word does not count).
fn find_word_line(source: &str, word: &str) -> Option<usize> {
    let read = tags::read(source);
    let at = read.tags().find_map(|tag| {
        let mut before = None;
        tag.tokens.iter().find_map(|t| {
            let after = before.replace(&t.kind);
            let names = t.kind == Lex::Ident(word) && !matches!(after, Some(Lex::Dot | Lex::Pipe));
            names.then_some(t.at.start)
        })
    })?;
    Some(read.line(at))
}

/// The campaign line of line `n` of an inline template: a block scalar (`text: |`) starts on the
/// line after its key.
fn inline_line(places: &Places, path: &str, n: Option<usize>) -> Option<usize> {
    let key_line = places.line_of(path)?;
    let block = places.get(path).is_some_and(|p| p.block);
    Some(match n {
        Some(n) if block => key_line + n,
        _ => key_line,
    })
}

/// The look-alike character where a syntax error stopped the parser, if there is one: within
/// the error's span when minijinja gives one, else on its line.
fn lookalike_at(source: &str, e: &minijinja::Error) -> Option<Lookalike> {
    if e.kind() != ErrorKind::SyntaxError {
        return None;
    }
    let found = lookalike::find(source);
    let Some(range) = e.range() else {
        let line = e.line()?;
        return found.into_iter().find(|l| l.line == line);
    };
    let position = |mut offset: usize| {
        // A span may end inside a multi-byte character (the look-alike itself).
        while !source.is_char_boundary(offset.min(source.len())) {
            offset -= 1;
        }
        let before = source.get(..offset)?;
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        Some((line, column))
    };
    let start = position(range.start)?;
    let end = position(range.end)?.max(start);
    found
        .into_iter()
        .find(|l| (start..=end).contains(&(l.line, l.column)))
}

/// Places a minijinja error at its file and line.
fn template_problem(
    origin: &Origin,
    campaign_file: &Path,
    campaign_places: &Places,
    e: &minijinja::Error,
) -> Problem {
    let detail = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    match origin {
        Origin::File(f) => Problem::new(f, e.line(), format!("template error: {detail}")),
        Origin::Inline(path) => Problem::new(
            campaign_file,
            inline_line(campaign_places, path, e.line()),
            format!("template error in `{path}`: {detail}"),
        ),
    }
    .hint("fix the template; minijinja follows Jinja2 syntax")
}

/// A row that cannot become a valid request: every reason, located.
#[derive(Debug, Clone)]
pub(crate) struct RowError {
    pub problems: Vec<Problem>,
}

impl RowError {
    /// A row with a cell that holds one of `secrets` (the API token, say: the contact file is a
    /// credentials file, or a symlink to one) is never sent, nor is the cell shown.
    pub(crate) fn secret(row: &Row, csv: &Path, secrets: &[String]) -> Option<RowError> {
        if secrets.is_empty() {
            return None;
        }
        let cell = row
            .record
            .iter()
            .position(|cell| secrets.iter().any(|s| cell.contains(s.as_str())))?;
        Some(RowError {
            problems: vec![
                Problem::new(
                    csv,
                    Some(row.line as usize),
                    format!(
                        "row {}: column {} holds a secret of this process (the API token, the channel id or the ledger's password); the row is not sent",
                        row.number,
                        cell + 1
                    ),
                )
                .hint("is `contacts.file` a credentials file, or a link to one? Point it at the contact list"),
            ],
        })
    }

    /// A row with a cell that could not be decoded cannot be sent, whatever its templates say.
    pub(crate) fn undecodable(row: &Row) -> Option<RowError> {
        let problem = row.undecodable.as_deref()?;
        Some(RowError {
            problems: vec![problem.clone()],
        })
    }
}

impl Renderer {
    /// Compiles every template of the campaign against the CSV's headers.
    pub(crate) fn new(campaign: &Campaign, headers: Arc<Headers>) -> Result<Self, Vec<Problem>> {
        let folder = campaign.templates_dir.as_deref().map(Folder::new);
        let region = campaign.contacts.country;
        let mut c = Compiler {
            env: with_loader(environment(region), folder.as_ref()),
            origins: Vec::new(),
            campaign,
            headers: &headers,
            problems: Vec::new(),
            folder: folder.clone(),
            references: Vec::new(),
        };
        let spec = &campaign.contact;
        let key = campaign
            .contacts
            .key
            .as_ref()
            .map(|k| c.inline("contacts.key", k));
        // `where` is an expression; as the condition of an `if` it reuses the template machinery.
        let filter = campaign
            .contacts
            .filter
            .as_ref()
            .map(|w| c.inline("contacts.where", &format!("{{% if {w} %}}1{{% endif %}}")));
        let contact_id = c.opt("contact.id", spec.id.as_ref());
        let external_id = c.opt("contact.external_id", spec.external_id.as_ref());
        let first_name = c.opt("contact.first_name", spec.first_name.as_ref());
        let last_name = c.opt("contact.last_name", spec.last_name.as_ref());
        let mobile_phone = c.opt("contact.mobile_phone", spec.mobile_phone.as_ref());
        let custom = spec
            .custom
            .iter()
            .map(|(k, v)| (k.clone(), c.tree(&format!("contact.custom.{k}"), v)))
            .collect();
        let session = campaign
            .session
            .as_ref()
            .map(|s| c.tree("session", &Json::Object(s.clone())));
        let items = campaign
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| c.item(i, m))
            .collect();
        c.follow();
        if !c.problems.is_empty() {
            return Err(c.problems);
        }
        let renderer = Renderer {
            env: c.env,
            origins: c.origins,
            folder,
            runaway: Mutex::new(HashMap::new()),
            campaign_file: campaign.file.clone(),
            campaign_places: campaign.places.clone(),
            headers,
            vars: Value::from(minijinja::value::Serde(&campaign.vars)),
            name: Value::from(campaign.name.as_str()),
            channel: campaign.api.channel,
            region,
            destination: campaign.destination,
            key,
            filter,
            contact_id,
            external_id,
            first_name,
            last_name,
            mobile_phone,
            custom,
            session,
            items,
            secrets: crate::redact::long_secrets(),
        };
        let constant = renderer.constant_problems(campaign);
        if constant.is_empty() {
            Ok(renderer)
        } else {
            Err(constant)
        }
    }

    /// Whether a template ran out of its fuel: it is not rendered again, so every later row
    /// would fail with it — no row's fault, and nothing to skip row by row.
    pub(crate) fn ran_away(&self) -> bool {
        !self
            .runaway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Where template `name` came from: the campaign file at a key path, or a file.
    fn origin(&self, name: &str) -> Origin {
        if let Some((_, o)) = self.origins.iter().find(|(n, _)| n == name) {
            return o.clone();
        }
        match &self.folder {
            Some(f) => Origin::File(f.shown(name)),
            None => Origin::Inline(name.to_string()),
        }
    }

    /// A template in a message, at its line when known: `templates/renewal.txt.j2:3`, or
    /// `` `messages[0].text` (campaign.yaml:18) ``.
    fn named(&self, origin: &Origin, line: Option<usize>) -> String {
        match origin {
            Origin::File(f) => location(&Problem::new(f, line, "")),
            Origin::Inline(path) => format!(
                "`{path}` ({})",
                location(&Problem::new(
                    &self.campaign_file,
                    inline_line(&self.campaign_places, path, line),
                    ""
                ))
            ),
        }
    }
}

fn location(p: &Problem) -> String {
    match p.line {
        Some(l) => format!("{}:{l}", p.file.display()),
        None => p.file.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let mut env = environment(None);
        for (name, source) in [
            (
                "loops",
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            ),
            (
                "growth",
                "{% set s = 'xxxxxxxxxx' %}{% for i in range(100000) %}{% set s = s ~ s %}{% endfor %}{{ s }}",
            ),
            (
                "output",
                "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
            ),
        ] {
            env.add_template_owned(name, source).unwrap();
            let e = env.get_template(name).unwrap().render(()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::OutOfFuel, "{name}: {e}");
        }
        // A template that loops over a few hundred items fits.
        env.add_template_owned(
            "fits",
            "{% for i in range(500) %}{{ i | string | upper }} {% endfor %}",
        )
        .unwrap();
        assert!(env.get_template("fits").unwrap().render(()).is_ok());
    }

    #[test]
    fn a_syntax_error_names_the_look_alike_where_the_parser_stopped() {
        let env = environment(None);
        let at = |source: &str| {
            let e = env.template_from_str(source).unwrap_err();
            lookalike_at(source, &e).map(|l| (l.line, l.column, l.ch))
        };
        assert_eq!(at("Olá\n{{ plan | default(“basic”) }}"), Some((2, 19, '“')));
        assert_eq!(at("{{ first_name\u{00A0}}}"), Some((1, 14, '\u{00A0}')));
        // Elsewhere on the line, or with no look-alike at all, there is nothing to name.
        assert_eq!(at("“Olá” {{ x }"), None);
        assert_eq!(at("{% if %}"), None);
    }

    #[test]
    fn a_variable_is_found_inside_tags_only() {
        assert_eq!(
            find_word_line("Dear customer,\nthanks {{ customer }}", "customer"),
            Some(2)
        );
        assert_eq!(
            find_word_line("{% if plan %}\n{{ plans }}{% endif %}", "plan"),
            Some(1)
        );
        assert_eq!(
            find_word_line("a\nb {{ x.plan }}\n{{ plan }}", "plan"),
            Some(3)
        );
        assert_eq!(find_word_line("no tags plan", "plan"), None);
    }

    #[test]
    fn block_scalars_count_from_the_next_line() {
        let places = |yaml: &str| crate::campaign::yaml::read(yaml).expect("YAML").places;
        let yaml = "messages:\n  - type: text\n    text: |\n      Hi\n      {{ oops }\n";
        assert_eq!(
            inline_line(&places(yaml), "messages[0].text", Some(2)),
            Some(5)
        );
        let yaml = "messages:\n  - type: text\n    text: \"Hi {{ oops }\"\n";
        assert_eq!(
            inline_line(&places(yaml), "messages[0].text", Some(1)),
            Some(3)
        );
    }
}
