//! The checked campaign: every key of the YAML parsed, validated and located, with paths resolved
//! against the campaign file's folder. Templates are compiled later, by `render`.

pub(crate) mod bounds;
pub(crate) mod locate;
pub(crate) mod raw;
pub(crate) mod schema;
pub(crate) mod shape;
pub(crate) mod system;
pub(crate) mod window;
pub(crate) mod yaml;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::api::{Channel, Destination};
use crate::error::{Problem, Problems};
use crate::lookalike;
use crate::phone::Region;
use locate::{Places, Spot};
pub(crate) use raw::{RawButton, RawMessage};
use window::Window;

/// The API endpoint used when the campaign names none.
pub(crate) const DEFAULT_URL: &str = "https://api.cosmobots.io/messages/v1/send";

/// A value read from the environment; the value itself never reaches a log or an output.
#[derive(Clone)]
pub(crate) struct EnvValue {
    /// The variable's name, shown in messages instead of the value.
    pub var: Option<String>,
    pub value: Option<String>,
}

impl std::fmt::Debug for EnvValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvValue({:?}, <redacted>)", self.var)
    }
}

impl EnvValue {
    /// Where the value comes from, for messages: `$COSMOBOTS_TOKEN`.
    pub(crate) fn origin(&self) -> String {
        match &self.var {
            Some(v) => format!("${v}"),
            None => "the campaign file".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Api {
    pub url: url::Url,
    pub token: EnvValue,
    pub channel_id: EnvValue,
    pub channel: Channel,
    pub timeout: Duration,
    /// Unique people messaged through the channel id in any rolling 24 hours, at most.
    pub daily_limit: Option<u32>,
}

/// One `contacts.exclude` list: a file, and the column read (`None`: one cell a line).
#[derive(Debug, Clone)]
pub(crate) struct Exclusion {
    pub file: PathBuf,
    pub column: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Contacts {
    pub file: PathBuf,
    pub delimiter: Option<u8>,
    /// `None` is UTF-8 (read as bytes, so a bad byte is an error with its line).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    pub key: Option<String>,
    pub filter: Option<String>,
    pub exclude: Vec<Exclusion>,
    /// Whoever any campaign of the ledger messaged this recently is deferred.
    pub cooldown: Option<Duration>,
    /// The region of phones written without a country code (`contacts.country`).
    pub(crate) country: Option<Region>,
    /// Whether a phone already messaged under another key is skipped as a duplicate.
    pub unique_phone: bool,
}

/// The `contact:` block: every field a template source.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContactSpec {
    pub id: Option<String>,
    pub external_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub mobile_phone: Option<String>,
    pub custom: Vec<(String, Value)>,
}

/// A request ceiling: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    pub count: u32,
    pub per: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct SendSettings {
    pub concurrency: usize,
    pub rate: Option<Rate>,
    pub retries: u32,
    pub backoff: Duration,
    /// The longest `Retry-After` waited out; a longer one stops the run.
    pub max_wait: Duration,
    pub max_consecutive_failures: u32,
    pub window: Option<Window>,
}

#[derive(Debug, Clone)]
pub(crate) struct Campaign {
    /// The campaign file as given on the command line.
    pub file: PathBuf,
    /// The folder relative paths are resolved against.
    pub dir: PathBuf,
    /// The YAML text as read.
    pub source: String,
    /// Where each key path is written, to locate later messages.
    pub(crate) places: Places,
    pub name: String,
    pub api: Api,
    pub contacts: Contacts,
    pub vars: Map<String, Value>,
    pub destination: Destination,
    pub contact: ContactSpec,
    pub session: Option<Map<String, Value>>,
    pub messages: Vec<RawMessage>,
    pub templates_dir: Option<PathBuf>,
    pub send: SendSettings,
}

impl Campaign {
    /// The template files the messages name (`template:`), in the templates folder.
    pub(crate) fn template_files(&self) -> Vec<PathBuf> {
        let Some(dir) = &self.templates_dir else {
            return Vec::new();
        };
        self.messages
            .iter()
            .filter_map(|m| match m {
                RawMessage::Text { template, .. } | RawMessage::Buttons { template, .. } => {
                    template.as_deref()
                }
                _ => None,
            })
            .map(|name| dir.join(name))
            .collect()
    }

    /// A problem located at a key path of the campaign file.
    pub(crate) fn problem_at(&self, path: &str, message: impl Into<String>) -> Problem {
        Problem::new(&self.file, self.places.line_of(path), message)
    }
}

/// Reads and checks a campaign file; every problem found is returned together. A file out of
/// bounds (see `bounds`) is refused before it is read.
pub(crate) fn load(file: &Path) -> Result<Campaign, Problems> {
    match bounds::read(file) {
        Ok(source) => parse(file, source),
        Err(e) => Err(Problems {
            list: vec![Problem::new(file, None, e.to_string()).hint(e.hint())],
        }),
    }
}

/// Checks campaign text as if read from `file` (relative paths resolve against its folder).
pub(crate) fn parse(file: &Path, source: String) -> Result<Campaign, Problems> {
    let read = yaml::read(&source).map_err(|r| Problems {
        list: refused(file, &source, r),
    })?;
    // A look-alike character is often why the rest goes wrong: it comes first.
    let mut problems = Problems {
        list: read.lookalikes.iter().map(|l| l.problem(file)).collect(),
    };
    let raw: raw::RawCampaign = match serde_yaml::from_str(&source) {
        Ok(r) => r,
        Err(e) => {
            problems.list.extend(shape_problems(file, &read, &e));
            return Err(problems);
        }
    };
    // Kept as written (possibly empty) so that messages show paths the way the user typed them.
    let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let c = Checker {
        file,
        places: &read.places,
        problems: &mut problems,
    };
    let campaign = c.check(raw, dir, source);
    match campaign {
        Some(c) if problems.is_empty() => Ok(c),
        _ => Err(problems),
    }
}

/// The key written at `at` (a mapping's `key:`), as the parser's mark of a repeated key
/// points to it.
fn key_at(source: &str, at: locate::Pos) -> Option<String> {
    let line = source.lines().nth(at.line.checked_sub(1)?)?;
    let rest: String = line.chars().skip(at.column.checked_sub(1)?).collect();
    let key = rest.split_once(':')?.0.trim().trim_matches(['"', '\'']);
    (!key.is_empty()).then(|| key.to_string())
}

/// A file the YAML reader refuses, as problems. The look-alikes on the lines where the parser
/// stopped come first: they are often why it stopped.
fn refused(file: &Path, source: &str, refusal: yaml::Refusal) -> Vec<Problem> {
    match refusal {
        yaml::Refusal::TooDeep { line } => vec![
            Problem::new(
                file,
                Some(line),
                format!(
                    "the YAML nests deeper than {} levels here",
                    yaml::MAX_NESTING
                ),
            )
            .hint("a campaign nests a few levels; check the brackets and the indentation"),
        ],
        yaml::Refusal::Documents { line } => vec![
            Problem::new(
                file,
                Some(line),
                "a second YAML document starts here; a campaign file holds one",
            )
            .hint("remove this `---` line and what follows it, or give that campaign a file of its own"),
        ],
        yaml::Refusal::Content { at, info } => vec![
            Problem::new(
                file,
                Some(at.line),
                match key_at(source, at) {
                    Some(key) => format!("the key `{key}` is written twice in this mapping"),
                    None => info,
                },
            )
            .at(Some(at.column))
            .hint("a key may appear once in a mapping: keep one of them (the other is above this line)"),
        ],
        yaml::Refusal::Aliases { at } => vec![
            Problem::new(
                file,
                Some(at.line),
                "the aliases (`*name`) up to here expand to more than 100,000 values",
            )
            .at(Some(at.column))
            .hint("a campaign needs no aliases: write the values out where they are used"),
        ],
        yaml::Refusal::Syntax { at, info } => {
            let found = at;
            let at = within(source, at);
            let lines = at.line.saturating_sub(1)..=at.line;
            let mut list: Vec<Problem> = lookalike::find(source)
                .iter()
                .filter(|l| lines.contains(&l.line))
                .map(|l| l.problem(file))
                .collect();
            // The parser stops at the end of the line before a tab that indents the next one:
            // the problem is the tab's.
            let (at, hint) = match indenting_tab(source, at) {
                Some(tab) => (
                    tab,
                    format!(
                        "YAML indents with spaces, never tabs: replace the tab at the start of line {} with spaces",
                        tab.line
                    ),
                ),
                // Found past the last line: something opened above runs to the end.
                None if found != at => (
                    at,
                    "the file ends before a `[`, `{` or quote opened above is closed: close it".into(),
                ),
                None => (at, syntax_hint(source, at)),
            };
            list.push(
                Problem::new(file, Some(at.line), info)
                    .at(Some(at.column))
                    .hint(hint),
            );
            list
        }
    }
}

/// `at`, or the end of the last line where the parser's mark is past it (an error found at the
/// end of a file that ends with a line break): no message names a line the file does not have.
fn within(source: &str, at: locate::Pos) -> locate::Pos {
    match source.lines().enumerate().last() {
        Some((i, last)) if at.line > i + 1 => locate::Pos {
            line: i + 1,
            column: last.chars().count() + 1,
        },
        _ => at,
    }
}

/// The tab that indents line `at` or the next, where a YAML syntax error at `at` is found.
fn indenting_tab(source: &str, at: locate::Pos) -> Option<locate::Pos> {
    let lines = source.lines().skip(at.line.saturating_sub(1)).take(2);
    lines.enumerate().find_map(|(n, l)| {
        let column = l
            .chars()
            .take_while(|c| c.is_whitespace())
            .position(|c| c == '\t')?;
        Some(locate::Pos {
            line: at.line + n,
            column: column + 1,
        })
    })
}

/// What to do about a YAML syntax error at `at` (no tab indents the lines around it), read from
/// the text around it: a quote this line opens and never closes, or else the usual suspects.
fn syntax_hint(source: &str, at: locate::Pos) -> String {
    let line = source.lines().nth(at.line.saturating_sub(1)).unwrap_or("");
    let rest: Vec<char> = line.chars().skip(at.column.saturating_sub(1)).collect();
    if let Some(&q) = rest.first().filter(|q| matches!(q, '"' | '\''))
        && !rest[1..].contains(&q)
    {
        return format!("the {q} that opens here is not closed on this line: close it");
    }
    "check the indentation of this line and the one above it, and quote values that contain `: ` or start with `{`".into()
}

/// Every shape problem of a file serde refused, and the problems of the values around them, in
/// line order. When the schema finds nothing, serde's own message speaks.
fn shape_problems(file: &Path, read: &yaml::Read, e: &serde_yaml::Error) -> Vec<Problem> {
    let misfits = shape::misfits(&read.json);
    let mut list: Vec<Problem> = misfits
        .iter()
        .map(|m| misfit_problem(file, &read.places, m))
        .collect();
    list.extend(read.odd_keys.iter().map(|(path, at)| {
        let at_path = if path.is_empty() {
            String::new()
        } else {
            format!("{path}: ")
        };
        Problem::new(
            file,
            Some(at.line),
            format!("{at_path}a list or mapping is used as a key"),
        )
        .at(Some(at.column))
        .hint("write the key as a name; the campaign format is in README.md")
    }));
    if list.is_empty() {
        // serde_yaml names the line and column in its message.
        return vec![
            Problem::new(file, None, e.to_string())
                .hint("fix the value there; the campaign format is in README.md"),
        ];
    }
    // The rest of the file is checked too, in the same pass: the values that fit.
    let lines: Vec<Option<usize>> = list.iter().map(|p| p.line).collect();
    list.extend(
        values_around_misfits(file, read, &misfits)
            .into_iter()
            .filter(|p| !lines.contains(&p.line)),
    );
    list.sort_by_key(|p| p.line.unwrap_or(0));
    list
}

/// The problems of the values that fit, in a file with shape problems: the document without its
/// misfits (unknown keys and ill-typed values taken out) is checked as a campaign.
fn values_around_misfits(
    file: &Path,
    read: &yaml::Read,
    misfits: &[shape::Misfit],
) -> Vec<Problem> {
    let mut doc = read.json.clone();
    // From the last, so that removing a list's item leaves earlier paths as they were.
    for m in misfits.iter().rev() {
        let (path, meant) = match &m.kind {
            // A typo of a known key is read as the key it most likely meant.
            shape::Kind::UnknownKey { key, known } => {
                (locate::join(&m.path, key), closest(key, known).cloned())
            }
            shape::Kind::MissingKey { .. } => continue,
            _ => (m.path.clone(), None),
        };
        remove_path(&mut doc, &path, meant);
    }
    let Ok(raw) = serde_json::from_value::<raw::RawCampaign>(doc) else {
        return Vec::new();
    };
    let mut problems = Problems::default();
    let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let c = Checker {
        file,
        places: &read.places,
        problems: &mut problems,
    };
    let _ = c.check(raw, dir, String::new());
    problems.list
}

/// Takes the value at `path` (`send.concurrency`, `messages[0].txt`) out of `doc`; a mapping's
/// value goes under the key `meant` instead, when it is given and not taken.
fn remove_path(doc: &mut Value, path: &str, meant: Option<String>) {
    let mut steps: Vec<Result<&str, usize>> = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            steps.push(Ok(key));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse::<usize>() {
                steps.push(Err(i));
            }
        }
    }
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut node = doc;
    for step in parents {
        let next = match (step, node) {
            (Ok(k), Value::Object(m)) => m.get_mut(*k),
            (Err(i), Value::Array(v)) => v.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return,
        }
    }
    match (last, node) {
        (Ok(k), Value::Object(m)) => {
            let value = m.remove(*k);
            if let (Some(v), Some(meant)) = (value, meant)
                && !m.contains_key(meant.as_str())
            {
                m.insert(meant, v);
            }
        }
        (Err(i), Value::Array(v)) if *i < v.len() => {
            v.remove(*i);
        }
        _ => {}
    }
}

/// Words and locates one misfit as serde would word it, with a hint.
fn misfit_problem(file: &Path, places: &Places, m: &shape::Misfit) -> Problem {
    use shape::Kind;
    let at = |path: &str| match path {
        "" => String::new(),
        p => format!("{p}: "),
    };
    let (spot_path, spot, message, hint) = match &m.kind {
        // Where state lives is the deployment's choice, not a campaign edit's.
        Kind::UnknownKey { key, .. } if m.path.is_empty() && key == "ledger" => (
            key.clone(),
            Spot::Key,
            "`ledger` cannot be set in a campaign file: the ledger belongs to the workspace, shared by every campaign, `listen` and the suppression list".to_string(),
            format!(
                "remove the line; to choose the ledger for every command set {} (or pass --ledger)",
                crate::ledger::locate::ENV
            ),
        ),
        Kind::UnknownKey { key, known } => (
            locate::join(&m.path, key),
            Spot::Key,
            format!(
                "{}unknown field `{key}`, expected {}",
                at(&m.path),
                shape::one_of(known)
            ),
            suggest(key, known),
        ),
        Kind::MissingKey { key, values } => (
            m.path.clone(),
            Spot::Key,
            format!("{}missing field `{key}`", at(&m.path)),
            if values.is_empty() {
                "add the key; the campaign format is in README.md".to_string()
            } else {
                format!("add `{key}:` with one of: {}", values.join(", "))
            },
        ),
        Kind::WrongType {
            found,
            expected,
            example,
        } => {
            let key = m.path.rsplit('.').next().filter(|k| !k.ends_with(']'));
            let hint = match (key, example) {
                (Some(key), Some(example)) => format!(
                    "fix the value, e.g. `{key}: {example}`; the campaign format is in README.md"
                ),
                _ => "fix the value; the campaign format is in README.md".to_string(),
            };
            (
                m.path.clone(),
                Spot::Value,
                format!("{}invalid type: {found}, expected {expected}", at(&m.path)),
                hint,
            )
        }
        Kind::OutOfRange { found, expected } => (
            m.path.clone(),
            Spot::Value,
            format!("{}invalid value: {found}, expected {expected}", at(&m.path)),
            "fix the value; the campaign format is in README.md".to_string(),
        ),
        Kind::UnknownValue { value, values } => (
            m.path.clone(),
            Spot::Value,
            format!(
                "{}unknown variant `{value}`, expected {}",
                at(&m.path),
                shape::one_of(values)
            ),
            suggest(value, values),
        ),
    };
    let (line, column) = match places.position(&spot_path, spot) {
        Some((line, column)) => (Some(line), column),
        None => (Some(1), None),
    };
    Problem::new(file, line, message).at(column).hint(hint)
}

/// "did you mean `x`?" when one candidate is close to the typo, else the list of candidates.
fn suggest(typo: &str, candidates: &[String]) -> String {
    match closest(typo, candidates) {
        Some(c) => format!("did you mean `{c}`?"),
        None => format!("valid here: {}", candidates.join(", ")),
    }
}

/// The candidate a typo most likely meant, when one is close enough.
pub(crate) fn closest<'a>(typo: &str, candidates: &'a [String]) -> Option<&'a String> {
    let (d, c) = candidates
        .iter()
        .map(|c| (strsim::levenshtein(typo, c), c))
        .min()?;
    (d <= typo.len().max(3) / 2 + 1).then_some(c)
}

/// The most retries a contact may have: more only hammers an API that keeps failing.
const MAX_RETRIES: u32 = 20;

/// A year: far beyond any sensible timeout or backoff; longer durations are mistakes.
const LONGEST: f64 = 365.0 * 86_400.0;

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds, up to a year.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let secs = duration_secs(s)?;
    (0.0..=LONGEST)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

/// The seconds a duration's text says, however many.
fn duration_secs(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return None,
    };
    Some(secs)
}

/// Parses `20/s`, `100/min`, `5000/h`.
pub(crate) fn parse_rate(s: &str) -> Option<Rate> {
    let (n, unit) = s.trim().split_once('/')?;
    let count: u32 = n.trim().parse().ok()?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return None,
    };
    (count > 0).then_some(Rate { count, per })
}

/// `${NAME}` → `NAME`.
fn env_ref(s: &str) -> Option<&str> {
    let name = s.trim().strip_prefix("${")?.strip_suffix('}')?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

/// URL text as written, for a message, with any `user:password@` masked as `***@`. The text
/// may not parse as a URL (that is often why it is shown), so this reads the text itself:
/// everything from the scheme's `//` (or the start) to the last `@` goes, since a password
/// may hold `/`, `?`, `#` or spaces. An `@` further on (in a path) masks more than it must,
/// never less.
pub(crate) fn masked_url_text(text: &str) -> String {
    let start = text.find("//").map_or(0, |i| i + 2);
    match text[start..].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_string(),
    }
}

/// A URL for messages: scheme, host, port and path, never a user name or password.
pub(crate) fn shown_url(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

struct Checker<'a> {
    file: &'a Path,
    places: &'a Places,
    problems: &'a mut Problems,
}

impl Checker<'_> {
    fn at(&mut self, path: &str, message: impl Into<String>, hint: impl Into<String>) {
        let line = self.places.line_of(path);
        self.problems
            .push(Problem::new(self.file, line, message).hint(hint));
    }

    /// A secret the campaign names by its environment variable (`${NAME}`, or `default_var`
    /// when the key is absent), never by its value.
    fn env(&mut self, path: &str, given: Option<&str>, default_var: &str) -> EnvValue {
        let given = given.unwrap_or("").trim();
        let var = if given.is_empty() {
            default_var
        } else if let Some(v) = env_ref(given) {
            v
        } else {
            if given.contains("${") {
                self.at(
                    path,
                    format!("`{path}` is not a valid ${{VAR}} reference"),
                    "write it as ${NAME}, with letters, digits and _ only",
                );
            } else {
                self.at(
                    path,
                    format!(
                        "`{path}` holds a literal secret, which the campaign file must not contain"
                    ),
                    format!(
                        "write `{path}: ${{{default_var}}}` and export {default_var} in the environment"
                    ),
                );
            }
            return EnvValue {
                var: None,
                value: None,
            };
        };
        let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty());
        // Hidden from every message from now on: a file the campaign names could hold it.
        if let Some(v) = &value {
            crate::redact::register(v.trim());
        }
        EnvValue {
            var: Some(var.to_string()),
            value,
        }
    }

    fn check(mut self, raw: raw::RawCampaign, dir: PathBuf, source: String) -> Option<Campaign> {
        let name = self.version_and_name(raw.version, raw.name);
        let api = self.api(&raw.api);
        let contacts = self.contacts(raw.contacts, &dir);
        self.messages(&raw.messages);
        let templates_dir = self.templates(raw.templates, &dir, &raw.messages);
        let send = self.send(raw.send);
        let contact = self.contact(raw.contact, contacts.as_ref());
        Some(Campaign {
            file: self.file.to_path_buf(),
            dir,
            source,
            places: self.places.clone(),
            name,
            api: api?,
            contacts: contacts?,
            vars: raw.vars,
            destination: raw.destination.unwrap_or(Destination::Contact),
            contact,
            session: raw.session,
            messages: raw.messages,
            templates_dir,
            send,
        })
    }

    /// `version` must be 1; `name` is required and fit for the ledger.
    fn version_and_name(&mut self, version: Option<u32>, name: Option<String>) -> String {
        match version {
            Some(1) => {}
            Some(v) => self.at(
                "version",
                format!("version {v} is not supported"),
                "use `version: 1`",
            ),
            None => self.problems.push(
                Problem::new(self.file, Some(1), "the key `version` is missing")
                    .hint("add `version: 1` at the top"),
            ),
        }
        let name = name.unwrap_or_default();
        if name.is_empty() {
            self.problems.push(
                Problem::new(self.file, Some(1), "the key `name` is missing")
                    .hint("add a name such as `name: renewal-2026-12`"),
            );
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            self.at(
                "name",
                format!("the name {name:?} may hold only a-z, 0-9, '.', '_' and '-'"),
                "rename it, e.g. `renewal-2026-12`",
            );
        }

        name
    }

    /// `api:`: the URL (https, or http to loopback; no credentials in it), the `${VAR}`
    /// references, the channel and the timeout.
    fn api(&mut self, raw: &raw::RawApi) -> Option<Api> {
        let url_text = raw.url.as_deref().unwrap_or(DEFAULT_URL);
        let url = match url::Url::parse(url_text) {
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                self.at(
                    "api.url",
                    "the URL carries a user name or password: a secret in the campaign file, and not how CosmoBots authenticates".to_string(),
                    "remove the `user:password@` part; the API takes the token from api.token",
                );
                None
            }
            Ok(u) if u.scheme() == "https" => Some(u),
            Ok(u) if u.scheme() == "http" && is_loopback(&u) => Some(u),
            Ok(u) if u.scheme() == "http" => {
                self.at(
                    "api.url",
                    format!(
                        "plain http to {} would send the token unencrypted",
                        u.host_str().unwrap_or("?")
                    ),
                    "use https://, or http:// only to 127.0.0.1 or localhost",
                );
                None
            }
            Ok(_) | Err(_) => {
                self.at(
                    "api.url",
                    format!("{:?} is not an http(s) URL", masked_url_text(url_text)),
                    "write a full URL such as https://api.cosmobots.io/messages/v1/send",
                );
                None
            }
        };
        let token = self.env("api.token", raw.token.as_deref(), "COSMOBOTS_TOKEN");
        let channel_id = self.env(
            "api.channel_id",
            raw.channel_id.as_deref(),
            "COSMOBOTS_CHANNEL_ID",
        );
        let timeout = raw
            .timeout
            .as_ref()
            .and_then(|t| {
                let min = Duration::from_millis(10);
                self.duration("api.timeout", t, min, "`30s` or `500ms`")
            })
            .unwrap_or(Duration::from_secs(30));

        // A credential pasted into the URL is printed and recorded with it (the endpoint is the
        // campaign's identity): it goes in a header, from the environment, only.
        if let Some(u) = &url {
            for (v, var) in [(&token, "api.token"), (&channel_id, "api.channel_id")] {
                if v.value
                    .as_deref()
                    .is_some_and(|s| s.trim().len() >= 8 && u.as_str().contains(s.trim()))
                {
                    self.at(
                        "api.url",
                        format!("the URL holds the value of `{var}`, which a URL is printed and recorded with"),
                        "take it out of the URL: cosmocast sends the token and the channel id as headers, from the environment",
                    );
                }
            }
        }
        if raw.daily_limit == Some(0) {
            self.at(
                "api.daily_limit",
                "a daily limit of 0 lets nobody be messaged, in this campaign or any other on the channel",
                "give the channel's tier (250, 1000, 10000, 100000), or remove `daily_limit` for no limit",
            );
        }
        Some(Api {
            url: url?,
            token,
            channel_id,
            channel: raw.channel.unwrap_or_default(),
            timeout,
            daily_limit: raw.daily_limit,
        })
    }

    /// `contacts:`: the file, its delimiter and encoding, the phones' country and the rest.
    fn contacts(&mut self, raw: Option<raw::RawContacts>, dir: &Path) -> Option<Contacts> {
        let Some(c) = raw else {
            self.problems.push(
                Problem::new(self.file, Some(1), "the key `contacts` is missing")
                    .hint("add `contacts:` with `file: your.csv`"),
            );
            return None;
        };
        let delimiter = c.delimiter.as_deref().and_then(|d| self.delimiter(d));
        let encoding = c
            .encoding
            .as_deref()
            .and_then(|label| self.encoding(label.trim()));
        let cooldown = c.cooldown.as_ref().and_then(|d| {
            // A cool-down is hours or days: `24` alone is more likely meant as hours than as
            // the seconds a bare number means elsewhere, so it needs its unit.
            let text = d.as_text();
            if text.trim().parse::<f64>().is_ok() {
                self.at(
                    "contacts.cooldown",
                    format!("`contacts.cooldown: {}` has no unit", text.trim()),
                    format!(
                        "write it with one: `{0}h` for hours, `{0}d` for days (`{0}s` if seconds are meant)",
                        text.trim()
                    ),
                );
                return None;
            }
            self.duration(
                "contacts.cooldown",
                d,
                Duration::from_nanos(1),
                "`24h` or `7d`",
            )
        });
        let country = c
            .country
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        let country = country.and_then(|code| self.country(code));
        let exclude = c
            .exclude
            .iter()
            .enumerate()
            .map(|(i, e)| self.exclusion(i, e, dir))
            .collect();
        Some(Contacts {
            file: self.own_file("contacts.file", "the contacts file", dir.join(&c.file)),
            delimiter,
            encoding,
            key: c.key.filter(|k| !k.trim().is_empty()),
            filter: c.filter.filter(|k| !k.trim().is_empty()),
            exclude,
            cooldown,
            country,
            unique_phone: c.unique_phone,
        })
    }

    /// `contacts.delimiter`: one character.
    fn delimiter(&mut self, d: &str) -> Option<u8> {
        let found = crate::contacts::delimiter(d);
        if found.is_none() {
            self.at(
                "contacts.delimiter",
                format!("delimiter {d:?} is not one character"),
                "use \",\", \";\" or tab",
            );
        }
        found
    }

    /// `contacts.encoding`: a WHATWG label; `None` is UTF-8.
    fn encoding(&mut self, label: &str) -> Option<&'static encoding_rs::Encoding> {
        match crate::contacts::encoding(label) {
            Ok(e) => e,
            Err(label) => {
                self.at(
                    "contacts.encoding",
                    format!("{label:?} is not an encoding cosmocast knows"),
                    "use utf-8, windows-1252, iso-8859-1, utf-16le, shift_jis ... (WHATWG labels)",
                );
                None
            }
        }
    }

    /// The duration at `path`, at least `min`; `None` (reported, with `example` in the hint)
    /// when it is not one.
    fn duration(
        &mut self,
        path: &str,
        d: &raw::Scalar,
        min: Duration,
        example: &str,
    ) -> Option<Duration> {
        let text = d.as_text();
        let parsed = parse_duration(&text).filter(|d| *d >= min);
        if parsed.is_none() {
            match duration_secs(&text) {
                Some(secs) if secs > LONGEST => self.at(
                    path,
                    format!("{text:?} is longer than a year"),
                    format!("write a shorter one, e.g. {example}"),
                ),
                Some(0.0) => self.at(
                    path,
                    format!("{text:?} is no time at all"),
                    format!("write e.g. {example}, or leave the key out"),
                ),
                Some(_) if !min.is_zero() => self.at(
                    path,
                    format!("{text:?} is shorter than {min:?}"),
                    format!("write e.g. {example}"),
                ),
                _ => self.at(
                    path,
                    format!("{text:?} is not a duration"),
                    format!("write e.g. {example}"),
                ),
            }
        }
        parsed
    }

    /// `contacts.country`: a two-letter region libphonenumber knows.
    fn country(&mut self, code: &str) -> Option<Region> {
        if !(code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic())) {
            self.at(
                "contacts.country",
                format!("{code:?} is not a two-letter region code"),
                "write an ISO 3166-1 alpha-2 code such as BR, PT or US",
            );
            return None;
        }
        let region = Region::parse(code);
        if region.is_none() {
            self.at(
                "contacts.country",
                format!(
                    "{:?} is not a region libphonenumber has phone numbers for",
                    code.to_ascii_uppercase()
                ),
                "write the ISO 3166-1 alpha-2 code of the numbers' country, such as BR, PT or US",
            );
        }
        region
    }

    /// `contacts.exclude[i]`: a file, and the column read.
    fn exclusion(&mut self, i: usize, e: &raw::RawExclude, dir: &Path) -> Exclusion {
        let key = format!("contacts.exclude[{i}]");
        let (file, column) = match e {
            raw::RawExclude::File(f) => (f, None),
            raw::RawExclude::Column(c) => (&c.file, Some(c.column.clone())),
        };
        Exclusion {
            file: self.own_file(&key, "the exclusion list", dir.join(file)),
            column,
        }
    }

    /// Each message item has its text one way: `template` or `text`.
    fn messages(&mut self, messages: &[RawMessage]) {
        if messages.is_empty() {
            self.problems.push(
                Problem::new(self.file, self.places.line_of("messages").or(Some(1)), "the campaign has no `messages`")
                    .hint("add at least one item, e.g. `- type: text` with `text: \"Hello {{ first_name }}\"`"),
            );
        }
        for (i, m) in messages.iter().enumerate() {
            let at = format!("messages[{i}]");
            match m {
                RawMessage::Text { template, text }
                | RawMessage::Buttons { template, text, .. } => match (template, text) {
                    (Some(_), Some(_)) => self.at(
                        &at,
                        format!("{at} has both `template` and `text`"),
                        "keep one of them",
                    ),
                    (None, None) => self.at(
                        &at,
                        format!("{at} has neither `template` nor `text`"),
                        "add `text: \"...\"` or `template: file.txt.j2`",
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }

    /// The templates folder: the one named, which must exist, else the nearest `templates`.
    fn templates(
        &mut self,
        templates: Option<PathBuf>,
        dir: &Path,
        messages: &[RawMessage],
    ) -> Option<PathBuf> {
        match templates {
            Some(t) => {
                let p = dir.join(t);
                if !p.is_dir() {
                    self.at(
                        "templates",
                        format!("the templates folder {} does not exist", p.display()),
                        "create it or fix the path",
                    );
                }
                Some(self.own_file("templates", "the templates folder", p))
            }
            None => {
                let found = find_templates_dir(dir)?;
                Some(self.own_file(&template_key(messages), "the templates folder", found))
            }
        }
    }

    /// `path`, after refusing it (at `key`) when it leads into /proc, /sys or /dev.
    fn own_file(&mut self, key: &str, what: &str, path: PathBuf) -> PathBuf {
        if let Some(found) = system::system_path(&path) {
            let shown = path.display();
            let leads = if found.real == path {
                format!("{what} {shown} is in {}", found.root)
            } else {
                format!(
                    "{what} {shown} leads to {}, in {}",
                    found.real.display(),
                    found.root
                )
            };
            self.at(
                key,
                format!("{leads}, which holds the system's own files, not campaign data"),
                "name a file or folder of your own (copy what you need out of there first)",
            );
        }
        path
    }

    /// `send:`: concurrency, the rate ceiling, retries, backoff, the longest wait and the window.
    fn send(&mut self, send: raw::RawSend) -> SendSettings {
        let concurrency = send.concurrency.unwrap_or(4);
        if !(1..=1024).contains(&concurrency) {
            self.at(
                "send.concurrency",
                format!("concurrency {concurrency} is out of range"),
                "use 1 to 1024",
            );
        }
        let rate = send.rate.as_deref().and_then(|r| {
            let parsed = parse_rate(r);
            if parsed.is_none() {
                self.at(
                    "send.rate",
                    format!("{r:?} is not a rate"),
                    "write N/s, N/min or N/h, e.g. `20/s`",
                );
            }
            parsed
        });
        let (backoff, max_wait) = (send.backoff.as_ref(), send.max_wait.as_ref());
        let backoff = backoff
            .and_then(|b| self.duration("send.backoff", b, Duration::ZERO, "`1s` or `250ms`"))
            .unwrap_or(Duration::from_secs(1));
        let max_wait = max_wait
            .and_then(|w| self.duration("send.max_wait", w, Duration::ZERO, "`5m` or `90s`"))
            .unwrap_or(Duration::from_secs(300));
        let window = send.window.as_ref().and_then(|w| {
            match Window::parse(&w.days, &w.from, &w.until, w.timezone.as_deref()) {
                Ok(w) => Some(w),
                Err(problems) => {
                    for (path, message, hint) in problems {
                        self.at(&path, message, hint);
                    }
                    None
                }
            }
        });

        let retries = send.retries.unwrap_or(4);
        if retries > MAX_RETRIES {
            self.at(
                "send.retries",
                format!("retries {retries} is out of range"),
                format!("use 0 to {MAX_RETRIES}: each retry waits twice as long as the one before, up to 60s, so {MAX_RETRIES} already span several minutes"),
            );
        }
        SendSettings {
            concurrency,
            rate,
            retries,
            backoff,
            max_wait,
            max_consecutive_failures: send.max_consecutive_failures.unwrap_or(50),
            window,
        }
    }

    /// `contact:`, and a key to tell contacts apart.
    fn contact(&mut self, raw: raw::RawContact, contacts: Option<&Contacts>) -> ContactSpec {
        let contact = ContactSpec {
            id: raw.id,
            external_id: raw.external_id,
            first_name: raw.first_name,
            last_name: raw.last_name,
            mobile_phone: raw.mobile_phone,
            custom: raw.custom.into_iter().collect(),
        };
        if contacts.is_some_and(|c| c.key.is_none())
            && contact.mobile_phone.is_none()
            && contact.external_id.is_none()
        {
            self.problems.push(
                Problem::new(self.file, self.places.line_of("contacts"), "no contact key: set `contacts.key`, `contact.mobile_phone` or `contact.external_id`")
                    .hint("the key identifies a contact so a run never messages it twice"),
            );
        }

        contact
    }
}

/// Where a templates folder found, not named, is placed in messages: at the first item that
/// reads a template.
fn template_key(messages: &[RawMessage]) -> String {
    let reads = |m: &RawMessage| {
        matches!(
            m,
            RawMessage::Text {
                template: Some(_),
                ..
            } | RawMessage::Buttons {
                template: Some(_),
                ..
            }
        )
    };
    match messages.iter().position(reads) {
        Some(i) => format!("messages[{i}].template"),
        None => "messages".into(),
    }
}

/// The nearest folder named `templates` at or above the campaign's folder.
fn find_templates_dir(dir: &Path) -> Option<PathBuf> {
    let here = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let start = std::fs::canonicalize(here).unwrap_or_else(|_| here.to_path_buf());
    let found = start
        .ancestors()
        .map(|d| d.join("templates"))
        .find(|d| d.is_dir())?;
    // Show it relative to the working directory when it lies below it.
    let cwd = std::env::current_dir().ok();
    Some(
        match cwd.as_deref().and_then(|c| found.strip_prefix(c).ok()) {
            Some(rel) => rel.to_path_buf(),
            None => found,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(
            parse_rate("20/s"),
            Some(Rate {
                count: 20,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(parse_rate("0/s"), None);
        assert_eq!(parse_rate("5/day"), None);
    }

    #[test]
    fn suggests_from_a_list() {
        let known = ["concurrency", "rate"].map(String::from);
        assert_eq!(suggest("concurency", &known), "did you mean `concurrency`?");
        assert_eq!(suggest("speed", &known), "valid here: concurrency, rate");
    }

    #[test]
    fn a_daily_limit_of_zero_is_refused_at_its_line() {
        let file = Path::new("c.yaml");
        let text = |limit: u32| {
            format!(
                "version: 1\nname: x\napi:\n  daily_limit: {limit}\ncontacts:\n  file: c.csv\n  key: k\nmessages:\n  - type: text\n    text: hi\n"
            )
        };
        let c = parse(file, text(250)).expect("a valid campaign");
        assert_eq!(c.api.daily_limit, Some(250));
        let err = parse(file, text(0)).expect_err("a limit nobody fits under");
        assert!(
            err.list[0]
                .to_string()
                .starts_with("c.yaml:4: a daily limit of 0 lets nobody be messaged"),
            "{err}"
        );
    }

    #[test]
    fn a_cooldown_of_zero_says_so() {
        let text = "version: 1\nname: x\ncontacts:\n  file: c.csv\n  cooldown: 0s\nmessages:\n  - type: text\n    text: hi\n";
        let err = parse(Path::new("c.yaml"), text.into()).expect_err("no time at all");
        let said = err.list[0].to_string();
        assert!(
            said.starts_with("c.yaml:5: \"0s\" is no time at all"),
            "{said}"
        );
        assert!(said.contains("or leave the key out"), "{said}");
    }

    #[test]
    fn an_error_at_the_end_of_the_file_names_its_last_line() {
        let text = "version: 1\nname: x\nmessages: [\n";
        let err = parse(Path::new("c.yaml"), text.into()).expect_err("a list never closed");
        let said = err.list.last().unwrap().to_string();
        assert!(said.starts_with("c.yaml:3:12: "), "{said}");
        assert!(said.contains("the file ends before a `[`"), "{said}");
    }

    #[test]
    fn country_is_two_letters_upper_cased() {
        let file = Path::new("c.yaml");
        let text = |country: &str| {
            format!(
                "version: 1\nname: x\ncontacts:\n  file: c.csv\n  country: {country}\n  key: k\nmessages:\n  - type: text\n    text: hi\n"
            )
        };
        let c = parse(file, text("br")).expect("a valid campaign");
        assert_eq!(c.contacts.country.map(|r| r.code()), Some("BR"));
        assert!(c.contacts.unique_phone);
        let err = parse(file, text("BRA")).expect_err("three letters");
        assert!(
            err.list[0]
                .to_string()
                .starts_with("c.yaml:5: \"BRA\" is not a two-letter region code"),
            "{err}"
        );
    }

    #[test]
    fn every_shape_problem_is_reported_at_once() {
        let source = "version: 1\nnmae: x\ncontacts:\n  file: c.csv\n  delimeter: \";\"\nsend:\n  concurrency: many\n";
        let err = parse(Path::new("c.yaml"), source.to_string()).expect_err("five problems");
        let lines: Vec<String> = err.list.iter().map(|p| p.to_string()).collect();
        // The three shape problems, and what the rest of the file lacks, in one pass.
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(lines[0].contains("has no `messages`"), "{}", lines[0]);
        assert!(
            lines[1].starts_with("c.yaml:2:1: unknown field `nmae`"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("did you mean `name`?"), "{}", lines[1]);
        assert!(lines[2].contains("no contact key"), "{}", lines[2]);
        assert!(
            lines[3].starts_with("c.yaml:5:3: contacts: unknown field `delimeter`"),
            "{}",
            lines[3]
        );
        assert!(
            lines[4].starts_with("c.yaml:7:16: send.concurrency: invalid type: string \"many\", expected a whole number"),
            "{}",
            lines[4]
        );
    }

    #[test]
    fn a_url_never_shows_its_user_or_password() {
        for (text, shown) in [
            (
                "https://bob:hunter2@api.example.com/send",
                "https://***@api.example.com/send",
            ),
            ("https://bob:hun/ter?2#x@host/p", "https://***@host/p"),
            ("htps://bob:hunter 2@host", "htps://***@host"),
            ("bob:hunter2@host/send", "***@host/send"),
            ("https:bob:hunter2@host", "***@host"),
            ("https://:hunter2@@host", "https://***@host"),
            (
                "https://api.example.com/send",
                "https://api.example.com/send",
            ),
            ("api.cosmobots.io/send", "api.cosmobots.io/send"),
            ("", ""),
        ] {
            assert_eq!(masked_url_text(text), shown, "{text:?}");
        }
    }

    #[test]
    fn a_url_that_does_not_parse_is_shown_without_its_password() {
        let yaml = "version: 1\nname: x\napi:\n  url: \"https://bob:hunter2@api.cosmobots.io:99999/send\"\ncontacts:\n  file: c.csv\n  key: k\nmessages:\n  - type: text\n    text: hi\n";
        let err = parse(Path::new("c.yaml"), yaml.to_string()).expect_err("not a URL");
        let shown = err.to_string();
        assert!(
            shown.contains(
                "c.yaml:4: \"https://***@api.cosmobots.io:99999/send\" is not an http(s) URL"
            ),
            "{shown}"
        );
        assert!(!shown.contains("hunter"), "{shown}");
    }

    #[test]
    fn look_alikes_in_the_yaml_and_in_where_are_problems_at_their_column() {
        let yaml = "version: 1\nname: x\ncontacts:\n  file: c.csv\n  key: “{{ customer_id }}”\n  where: \"opt_in == ‘yes’\"\nmessages:\n  - type: text\n    text: Olá “Ana”\n";
        let err = parse(Path::new("c.yaml"), yaml.to_string()).expect_err("look-alikes");
        let lines: Vec<String> = err.list.iter().map(|p| p.to_string()).collect();
        let starts: Vec<&str> = lines
            .iter()
            .map(|l| l.split(" looks like").next().unwrap_or(""))
            .collect();
        assert_eq!(
            starts,
            [
                "c.yaml:5:8: U+201C LEFT DOUBLE QUOTATION MARK “",
                "c.yaml:5:26: U+201D RIGHT DOUBLE QUOTATION MARK ”",
                "c.yaml:6:21: U+2018 LEFT SINGLE QUOTATION MARK ‘",
                "c.yaml:6:25: U+2019 RIGHT SINGLE QUOTATION MARK ’",
            ],
            "{lines:#?}"
        );
        // Smart quotes in a message are prose, and a block `where` is placed on its own line.
        let yaml = "version: 1\nname: x\ncontacts:\n  file: c.csv\n  key: k\n  where: >-\n    plan == 'a'\n    or opt_in == “yes”\nmessages:\n  - type: text\n    text: Olá “Ana”\n";
        let err = parse(Path::new("c.yaml"), yaml.to_string()).expect_err("look-alikes");
        let at: Vec<String> = err
            .list
            .iter()
            .map(|p| format!("{:?}:{:?}", p.line, p.column))
            .collect();
        assert_eq!(at, ["Some(8):Some(18)", "Some(8):Some(22)"]);
    }

    #[test]
    fn env_refs() {
        assert_eq!(env_ref("${COSMOBOTS_TOKEN}"), Some("COSMOBOTS_TOKEN"));
        assert_eq!(env_ref("abc"), None);
        assert_eq!(env_ref("${A B}"), None);
    }
}
