//! The campaign report: one self-contained HTML page (inline CSS and SVG, no script, nothing
//! loaded from anywhere) rendered from plain figures that the ledger's queries fill in.

use jiff::Timestamp;
use jiff::tz::Offset;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};
use serde::Serialize;

use crate::api::{Button, MessageItem, SendRequest};
use crate::view::{self, PhoneShown};

mod chart;

/// Everything the report shows. Timestamps are RFC 3339; the page shows every time in the UTC
/// offset `generated_at` carries (pass local time with its offset to get local times).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReportData {
    pub campaign: String,
    pub generated_at: String,
    pub ledger: String,
    /// The `status --json` command line whose counts the page shows.
    pub status_command: String,
    /// Sentences the reader should see first (no ledger yet, an older ledger…).
    pub notes: Vec<String>,
    pub funnel: Funnel,
    /// The width of each entry of `sends`.
    pub bucket: Bucket,
    /// Contacts by state per bucket, by the time their state was last set; empty buckets may be
    /// left out.
    pub sends: Vec<SendBucket>,
    pub runs: Vec<RunMark>,
    /// Whether a run holds the campaign now (`status`'s `run_at_work`), when it can be told.
    pub run_at_work: Option<bool>,
    /// Most frequent first.
    pub failures: Vec<FailureGroup>,
    pub replies: ReplySummary,
    pub preview: Option<PreviewShown>,
}

/// Where every CSV row ended up; the figures of `status --json` (`skipped_by_reason` split out).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Funnel {
    pub rows: u64,
    /// Left out by `contacts.where`.
    pub filtered: u64,
    pub excluded: u64,
    pub opted_out: u64,
    pub duplicate: u64,
    pub invalid: u64,
    /// Rows whose cells are all empty.
    pub blank: u64,
    /// Waiting for a cool-down or the channel's daily limit.
    pub deferred: u64,
    /// How many wait for which, when the rows are known: `(cool-down, daily limit)`.
    pub deferred_by: Option<(u64, u64)>,
    pub sent: u64,
    pub queued: u64,
    pub failed: u64,
    pub unknown: u64,
    /// In flight, or left so by a run that was killed.
    pub sending: u64,
    /// Rows the next run would send for the first time.
    pub not_yet_sent: u64,
    /// Contacts the ledger holds whose rows are gone from the file (not among the rows; the
    /// sends over time count them).
    pub not_in_file: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Bucket {
    #[default]
    Minute,
    Hour,
}

impl Bucket {
    /// Minutes for a campaign whose sends span up to six hours, hours beyond.
    pub(crate) fn for_span(seconds: i64) -> Bucket {
        if seconds <= 6 * 3600 {
            Bucket::Minute
        } else {
            Bucket::Hour
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Bucket::Minute => 60,
            Bucket::Hour => 3600,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SendBucket {
    pub start: String,
    pub sent: u64,
    pub queued: u64,
    pub failed: u64,
    pub unknown: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunMark {
    pub started_at: String,
    /// None while the run goes on, or when it left no end (killed).
    pub ended_at: Option<String>,
    /// How it ended, one word: finished, interrupted, limit, window, failed, running.
    pub ended: String,
    /// None when the run left no count: killed (or still running).
    pub requests: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct FailureGroup {
    /// `failed` or `unknown`.
    pub status: String,
    pub reason: String,
    /// The reason in plain words (empty when there are none to add).
    pub meaning: String,
    pub count: u64,
    /// The first few rows (by row number) of the group.
    pub examples: Vec<FailureExample>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct FailureExample {
    pub row_number: u64,
    pub key: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ReplySummary {
    pub replies: u64,
    pub contacts_replied: u64,
    /// The campaign's contacts reached (sent or queued) in the ledger, and how many replied.
    pub reached: u64,
    pub replied_reached: u64,
    /// `replied_reached` over `reached`, 0 to 1.
    pub reply_rate: f64,
    pub opt_outs: u64,
    /// Most clicked first; `button` is the payload, or the title when there is none.
    pub clicks: Vec<Click>,
    /// The width of each entry of `series`.
    pub bucket: Bucket,
    pub series: Vec<ReplyBucket>,
    /// The last few replies, newest first.
    pub latest: Vec<ReplyShown>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Click {
    /// The payload (or title) the reply carried: what `status` counts clicks under.
    pub button: String,
    /// What the customer tapped: the button's title where the campaign's message has a button
    /// with this payload, else `button`.
    pub label: String,
    pub count: u64,
    /// The campaign's message has no button that replies with it (an older message's, or
    /// text typed to look like one).
    pub foreign: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ReplyBucket {
    pub start: String,
    /// Every reply, clicks and opt-outs included.
    pub replies: u64,
    pub clicks: u64,
    pub opt_outs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReplyShown {
    pub received_at: String,
    /// The contact's key (or phone when the reply matched no key).
    pub contact: String,
    pub text: String,
    /// The button's payload when the reply is a click.
    pub button: Option<String>,
    pub opted_out: bool,
}

/// One row's request, shown as chat bubbles.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PreviewShown {
    pub row_number: u64,
    pub request: SendRequest,
    pub phone: Option<PhoneShown>,
}

const PAGE: &str = "report.html.j2";

/// The whole page.
pub(crate) fn render(data: &ReportData) -> Result<String, Error> {
    let off = offset_of(&data.generated_at);
    let send_series = SEND_SERIES.map(|(class, name)| Series {
        class,
        name,
        one: name,
    });
    let sends = data
        .sends
        .iter()
        .map(|b| {
            Ok((
                seconds(&b.start)?,
                vec![b.sent, b.queued, b.failed, b.unknown],
            ))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let runs = data
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| run_span(i, r, off))
        .collect::<Result<Vec<_>, Error>>()?;
    let replies = data
        .replies
        .series
        .iter()
        .map(|b| {
            let other = b.replies.saturating_sub(b.clicks + b.opt_outs);
            Ok((seconds(&b.start)?, vec![b.clicks, b.opt_outs, other]))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let reply_series = REPLY_SERIES.map(|(class, name, one)| Series { class, name, one });
    let both = |points: &[(i64, Vec<u64>)], series: &[Series], base: Bucket, runs: &[RunSpan]| {
        let data = chart::TimeData {
            points,
            series,
            base: base.seconds(),
            runs,
        };
        [WIDE, NARROW].map(|layout| chart::time_chart(&data, layout, off))
    };
    let preview = data
        .preview
        .as_ref()
        .map(|p| Value::from_safe_string(view::bubbles_html(&p.request, p.phone.as_ref())));
    let generated = match data.generated_at.parse::<Timestamp>() {
        Ok(t) => clock(t.as_second(), off, "%-d %B %Y, %H:%M"),
        Err(_) => data.generated_at.clone(),
    };
    let page = Page {
        d: data,
        generated,
        offset: offset_name(off),
        send_charts: both(&sends, &send_series, data.bucket, &runs),
        send_series,
        reply_charts: both(&replies, &reply_series, data.replies.bucket, &[]),
        reply_series,
        preview_html: preview,
        preview_buttons: data
            .preview
            .as_ref()
            .map_or(Vec::new(), |p| buttons_of(&p.request)),
        bubbles_css: Value::from_safe_string(view::BUBBLES_CSS.to_string()),
        css: Value::from_safe_string(include_str!("report.css").to_string()),
    };
    environment(off)?.get_template(PAGE)?.render(Serde(&page))
}

/// What the page template sees: the data, and what is drawn from it.
#[derive(Serialize)]
struct Page<'a> {
    d: &'a ReportData,
    /// `generated_at` for people.
    generated: String,
    offset: String,
    send_charts: [Option<chart::TimeChart>; 2],
    send_series: [Series; 4],
    reply_charts: [Option<chart::TimeChart>; 2],
    reply_series: [Series; 3],
    /// Already escaped by `view::bubbles_html`.
    preview_html: Option<Value>,
    preview_buttons: Vec<&'a Button>,
    bubbles_css: Value,
    css: Value,
}

/// Every button of a request, in order, to say what each one does.
pub(crate) fn buttons_of(req: &SendRequest) -> Vec<&Button> {
    req.message
        .iter()
        .flat_map(|item| match item {
            MessageItem::Buttons(b) => b.buttons.iter().collect(),
            MessageItem::Cards(c) => c.cards.iter().flat_map(|c| &c.buttons).collect(),
            _ => Vec::new(),
        })
        .collect()
}

const SEND_SERIES: [(&str, &str); 4] = [
    ("sent", "sent"),
    ("queued", "queued"),
    ("failed", "failed"),
    ("unknown", "unknown"),
];
/// Each reply series: its class, its name, and its name for one ("1 opt-out").
const REPLY_SERIES: [(&str, &str, &str); 3] = [
    ("click", "button clicks", "button click"),
    ("optout", "opt-outs", "opt-out"),
    ("reply", "other replies", "other reply"),
];

/// The two drawings of each time chart: the page shows the narrow one on a phone.
const WIDE: chart::Layout = chart::Layout {
    width: 720.0,
    height: 250.0,
    max_bars: 120,
    max_ticks: 8,
};
const NARROW: chart::Layout = chart::Layout {
    width: 360.0,
    height: 220.0,
    max_bars: 48,
    max_ticks: 4,
};

#[derive(Debug, Clone, Copy, Serialize)]
struct Series {
    class: &'static str,
    name: &'static str,
    /// The name after a count of one.
    one: &'static str,
}

/// A run as the sends chart marks it.
struct RunSpan {
    start: i64,
    end: Option<i64>,
    label: String,
    title: String,
}

fn run_span(i: usize, r: &RunMark, off: Offset) -> Result<RunSpan, Error> {
    let start = seconds(&r.started_at)?;
    let end = r.ended_at.as_deref().map(seconds).transpose()?;
    let until = end.map_or("no end recorded".to_string(), |e| clock(e, off, "%H:%M:%S"));
    let requests = match r.requests {
        Some(n) => format!("{} {}", thousands(n), crate::text::plural(n, "request")),
        None => "requests not counted".to_string(),
    };
    Ok(RunSpan {
        start,
        end,
        label: format!("run {}", i + 1),
        title: format!(
            "run {}: {} – {until}, {}, {requests}",
            i + 1,
            clock(start, off, "%b %-d %H:%M:%S"),
            r.ended
        ),
    })
}

fn environment(off: Offset) -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?,
    );
    // The `.html.j2` names turn on HTML auto-escaping for every value the templates print.
    env.add_template(PAGE, include_str!("report.html.j2"))?;
    env.add_template("charts.html.j2", include_str!("charts.html.j2"))?;
    env.add_filter("num", thousands);
    env.add_filter("plural", |n: u64, word: String| {
        crate::text::plural(n, &word)
    });
    env.add_filter("pct", percent);
    env.add_filter("trunc", |s: String, n: usize| truncate(&s, n));
    env.add_filter("when", move |s: String| match s.parse::<Timestamp>() {
        Ok(t) => clock(t.as_second(), off, "%b %-d, %H:%M"),
        Err(_) => s,
    });
    Ok(env)
}

fn seconds(rfc3339: &str) -> Result<i64, Error> {
    match rfc3339.parse::<Timestamp>() {
        Ok(t) => Ok(t.as_second()),
        Err(e) => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("report: {rfc3339:?} is not an RFC 3339 time ({e})"),
        )),
    }
}

/// The UTC offset of an RFC 3339 time (UTC when it has none that can be read).
fn offset_of(rfc3339: &str) -> Offset {
    jiff::fmt::temporal::Pieces::parse(rfc3339)
        .ok()
        .and_then(|p| p.offset())
        .map_or(Offset::UTC, |o| o.to_numeric_offset())
}

fn offset_name(off: Offset) -> String {
    let s = off.seconds();
    if s == 0 {
        return "UTC".into();
    }
    let sign = if s < 0 { '−' } else { '+' };
    format!("UTC{sign}{:02}:{:02}", s.abs() / 3600, s.abs() % 3600 / 60)
}

/// `secs` in the page's offset, formatted with strftime `fmt`.
fn clock(secs: i64, off: Offset, fmt: &str) -> String {
    match Timestamp::from_second(secs) {
        Ok(t) => off.to_datetime(t).strftime(fmt).to_string(),
        Err(_) => secs.to_string(),
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `0.1234` → `12.3%`; a rate too small to show at one decimal still shows as above zero.
fn percent(rate: f64) -> String {
    match rate * 100.0 {
        p if p <= 0.0 || p.is_nan() => "0%".into(),
        p if p < 0.1 => "<0.1%".into(),
        p if (p - p.round()).abs() < 0.05 => format!("{}%", p.round()),
        p => format!("{p:.1}%"),
    }
}

/// At most `max` characters of `s`, with `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests;
