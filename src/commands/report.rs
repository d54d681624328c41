//! `cosmocast report`: one self-contained HTML page of a campaign (funnel, sends over time,
//! failures, replies, the message as a customer sees it). It reads the ledger without writing to
//! it, and writes only the report file.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

use crate::api::{ButtonType, SendRequest};
use crate::audience::{Decision, Resend};
use crate::campaign::{self, Campaign};
use crate::cli::ReportArgs;
use crate::commands::output::{campaign_files, refuse_to_overwrite};
use crate::commands::status::Figures;
use crate::error::Exit;
use crate::ledger::locate::Located;
use crate::ledger::{Ledger, RunRecord, Status};
use crate::plan::{Accounting, Pass, Plan, ledger_for};
use crate::printer::Printer;
use crate::report::{
    self, Bucket, Click, FailureExample, FailureGroup, Funnel, PreviewShown, ReplyBucket,
    ReplyShown, ReplySummary, ReportData, RunMark, SendBucket,
};
use crate::view::phone_shown;

/// How many rows of each kind of failure the report lists.
const EXAMPLES: usize = 5;
/// How many kinds of failure the report shows at most (the rest are in `export`).
const FAILURE_KINDS: usize = 50;
/// How many of the newest replies the report lists.
const LATEST: usize = 10;
/// `updated_at` and `received_at` cut to the minute (`2026-11-26T09:41`) and to the hour.
const MINUTE: usize = 16;
const HOUR: usize = 13;

pub(crate) fn run(args: &ReportArgs, printer: Printer) -> anyhow::Result<Exit> {
    let c = campaign::load(&args.campaign)?;
    let sandbox = args.ledger.sandbox;
    let located = ledger_for(&c, &args.ledger.ledger, sandbox)?;
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(&c, sandbox));
    refuse_to_overwrite(&out, &campaign_files(&c, located.place.file()))?;
    let ledger = Ledger::open_read(&located.place)?;
    // One snapshot for every figure, as `status` reads them, though a run may be writing.
    let _snapshot = ledger
        .as_ref()
        .map(|l| l.db.transaction(crate::ledger::db::Mode::Snapshot))
        .transpose()?;
    let plan = Plan::new(c.clone());
    if let Err(problems) = &plan {
        printer.important(problems);
        printer
            .important("report: the funnel shows only what the ledger recorded (the page says so)");
    }
    let mut data = gather(&c, &located, ledger.as_ref(), plan.as_ref().ok())?;
    data.status_command = format!(
        "cosmocast status {}{} --json",
        args.campaign.display(),
        located.flags()
    );
    let html = report::render(&data).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    super::output::replace(&out, html.as_bytes())?;
    writeln!(printer.stdout(), "report: wrote {}", out.display())?;
    Ok(Exit::Ok)
}

/// `<campaign name>.report.html` beside the campaign file (`.sandbox.report.html` for the
/// rehearsal's ledger, so that it never replaces the real campaign's report).
fn default_output(c: &Campaign, sandbox: bool) -> PathBuf {
    let kind = if sandbox { ".sandbox" } else { "" };
    c.dir.join(format!("{}{kind}.report.html", c.name))
}

/// Every figure of the page; `plan` is `None` when the contact file or a template cannot be read.
fn gather(
    c: &Campaign,
    located: &Located,
    ledger: Option<&Ledger>,
    plan: Option<&Plan>,
) -> anyhow::Result<ReportData> {
    let name = &c.name;
    let file = &located.place;
    let mut notes = Vec::new();
    // Whether a run holds the campaign now, as `status` tells it: a run without an end is then
    // at work, else it was killed.
    let at_work = ledger.and_then(|l| super::status::run_at_work(file, l, name));
    let rows = match plan.map(|p| p.account(ledger, located.sandbox)) {
        Some(Ok(rows)) => Some(rows),
        Some(Err(e)) => {
            notes.push(format!("The contact file cannot be read now ({e}): the funnel shows only what the ledger recorded."));
            None
        }
        None => {
            notes.push("The contact file or a template cannot be read now (cosmocast check names the problems): the funnel shows only what the ledger recorded.".into());
            None
        }
    };
    let figures = match ledger {
        Some(l) => Some(Figures::read(l, name, FAILURE_KINDS)?),
        None => None,
    };
    notes.extend(ledger_notes(c, file, ledger)?);
    // Why contacts wait for the daily limit, and until when.
    if rows
        .as_ref()
        .is_some_and(|r| r.deferred_for(crate::plan::DAILY_LIMIT) > 0)
        && let Some(b) = crate::plan::budget_note(c, ledger, located.sandbox)
    {
        notes.push(format!("The channel's {}.", b.spent));
    }
    if let Some(p) = plan.filter(|p| super::run::identity::differs(p, located.sandbox, ledger))
        && let Ok(scan) = super::status::next_run(p, ledger)
        && let Some(note) = super::run::identity::refusal_note(p, located.sandbox, ledger, &scan)
    {
        notes.push(format!("Note: {note}."));
    }
    if let Some(r) = rows.as_ref().filter(|r| r.not_in_file > 0) {
        notes.push(format!(
            "The ledger also holds {} whose rows are no longer in the contact file; they are not among the rows below.",
            crate::text::count(r.not_in_file, "contact")
        ));
    }
    let funnel = funnel(figures.as_ref(), rows.as_ref());
    let (bucket, sends) = match ledger {
        Some(l) => sends(l, name)?,
        None => (Bucket::Minute, Vec::new()),
    };
    let preview = plan.and_then(|p| first_preview(p, ledger));
    let titles = preview
        .as_ref()
        .map(|p| button_titles(&p.request))
        .unwrap_or_default();
    let replies = match (ledger, &figures) {
        (Some(l), Some(f)) => replies(l, name, f, &titles)?,
        _ => ReplySummary::default(),
    };
    Ok(ReportData {
        campaign: name.clone(),
        generated_at: local_now(),
        ledger: whole_path(file),
        status_command: String::new(),
        notes,
        funnel,
        bucket,
        sends,
        runs: match ledger {
            Some(l) => runs(&l.runs(name)?, at_work),
            None => Vec::new(),
        },
        run_at_work: at_work,
        failures: match (ledger, &figures, plan) {
            // The file's own failed and unknown contacts, as the funnel counts them (a second
            // pass over the file, made only when the ledger holds any).
            (Some(_), Some(f), _) if f.errors.is_empty() => Vec::new(),
            (Some(l), Some(_), Some(p)) if rows.is_some() => failures_in_file(p, l, name)?,
            (Some(l), Some(f), _) => failures(l, name, f)?,
            _ => Vec::new(),
        },
        replies,
        preview,
    })
}

/// The ledger as the page names it: a file by its whole path, since a page is read away from
/// the shell and folder that wrote it.
fn whole_path(file: &crate::ledger::Place) -> String {
    match file {
        crate::ledger::Place::File(p) => std::path::absolute(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string(),
        place => place.to_string(),
    }
}

/// What the report notes of the ledger: none yet, no record of the campaign, the ledger's own
/// notes, messages edited since runs sent them, and a file that sent under another name.
fn ledger_notes(
    c: &Campaign,
    file: &crate::ledger::Place,
    ledger: Option<&Ledger>,
) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    match ledger {
        None => notes.push(format!(
            "No ledger at {}: the campaign has not run yet. The funnel shows what its first run would do.",
            file
        )),
        Some(l) => {
            if !l.has_campaign(&c.name)? {
                notes.push("The ledger has no record of this campaign: it has not run with this ledger yet.".into());
            }
            notes.extend(l.notes.iter().map(|n| format!("Note: {n}.")));
            let edited = crate::plan::edited_note(c, l);
            for note in edited.into_iter().chain(crate::plan::renamed_note(c, l)) {
                notes.push(format!("Note: {note}."));
            }
        }
    }
    Ok(notes)
}

/// Now, in this machine's time zone, as RFC 3339 with its offset.
fn local_now() -> String {
    jiff::ZonedDateTime::now()
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Where every row ended up: the accounting of `status` (every row in one bucket), or, when
/// the contact file cannot be read now, what the ledger recorded.
fn funnel(f: Option<&Figures>, rows: Option<&Accounting>) -> Funnel {
    let state = |s| f.map_or(0, |f| f.get(s));
    let skipped = |reason: &str| {
        f.and_then(|f| f.skipped.iter().find(|(r, _)| r == reason))
            .map_or(0, |(_, n)| *n)
    };
    match rows {
        Some(a) => {
            let reason = |r: &str| a.skipped_by_reason.get(r).copied().unwrap_or(0);
            Funnel {
                rows: a.rows,
                filtered: a.filtered,
                excluded: reason("excluded"),
                opted_out: reason("opted_out"),
                duplicate: reason("duplicate"),
                invalid: a.invalid,
                blank: a.blank,
                deferred: a.deferred,
                deferred_by: Some((
                    a.deferred_for(crate::plan::COOLDOWN),
                    a.deferred_for(crate::plan::DAILY_LIMIT),
                )),
                sent: a.sent,
                queued: a.queued,
                failed: a.failed,
                unknown: a.unknown,
                sending: a.sending,
                not_yet_sent: a.pending,
                not_in_file: a.not_in_file,
            }
        }
        None => {
            let mut funnel = Funnel {
                excluded: skipped("excluded"),
                opted_out: skipped("opted_out"),
                duplicate: skipped("duplicate"),
                sent: state(Status::Sent),
                queued: state(Status::Queued),
                failed: state(Status::Failed),
                unknown: state(Status::Unknown),
                sending: state(Status::Sending),
                ..Funnel::default()
            };
            funnel.rows = Status::ALL
                .iter()
                .filter(|s| **s != Status::Skipped)
                .map(|s| state(*s))
                .sum::<u64>()
                + f.map_or(0, |f| f.skipped.iter().map(|(_, n)| n).sum());
            funnel
        }
    }
}

/// `2026-11-26T09:41` (or `…T09`) as RFC 3339.
fn bucket_start(prefix: &str) -> String {
    match prefix.len() {
        HOUR => format!("{prefix}:00:00Z"),
        _ => format!("{prefix}:00Z"),
    }
}

/// The bucket for the time from the first to the last of `minutes` (in time order).
fn bucket_for<'a>(mut minutes: impl DoubleEndedIterator<Item = &'a str>) -> Bucket {
    let secs = |m: Option<&str>| {
        m.and_then(|m| bucket_start(m).parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second())
    };
    let first = secs(minutes.next());
    let last = secs(minutes.next_back());
    match (first, last) {
        (Some(a), Some(b)) => Bucket::for_span(b - a),
        _ => Bucket::Minute,
    }
}

/// Rows counted per minute (in time order) summed into the campaign's buckets: per minute, or
/// per hour for a long campaign. `at` gives a row's minute, `new` a bucket from its start, and
/// `add` adds a row to its bucket.
fn per_bucket<R, B>(
    rows: &[R],
    at: impl Fn(&R) -> &str,
    new: impl Fn(String) -> B,
    add: impl Fn(&mut B, &R),
) -> (Bucket, Vec<B>) {
    let bucket = bucket_for(rows.iter().map(&at));
    let width = if bucket == Bucket::Hour { HOUR } else { MINUTE };
    let mut by: BTreeMap<&str, B> = BTreeMap::new();
    for r in rows {
        let at = at(r);
        let key = at.get(..width).unwrap_or(at);
        add(by.entry(key).or_insert_with(|| new(bucket_start(key))), r);
    }
    (bucket, by.into_values().collect())
}

/// Contacts by the state they ended in, per minute (per hour for a long campaign).
fn sends(l: &Ledger, name: &str) -> anyhow::Result<(Bucket, Vec<SendBucket>)> {
    let rows = l.outcomes_over_time(name, MINUTE)?;
    Ok(per_bucket(
        &rows,
        |(at, _, _)| at,
        |start| SendBucket {
            start,
            ..Default::default()
        },
        |b, (_, status, n)| match Status::parse(status) {
            Some(Status::Sent) => b.sent += n,
            Some(Status::Queued) => b.queued += n,
            Some(Status::Failed) => b.failed += n,
            _ => b.unknown += n,
        },
    ))
}

fn runs(records: &[RunRecord], at_work: Option<bool>) -> Vec<RunMark> {
    records
        .iter()
        .map(|r| {
            // A killed run ended at its last renewal (the ledger's `runs`); it wrote no count
            // of requests, which a run writes as it ends.
            let killed = r.stopped.as_deref() == Some("killed");
            RunMark {
                started_at: r.started_at.clone(),
                ended_at: r.ended_at.clone(),
                ended: how_it_ended(r, at_work).into(),
                requests: (r.ended_at.is_some() && !killed).then_some(r.requests),
            }
        })
        .collect()
}

/// The `runs.stopped` word (or its absence) as a marketer would say it; `at_work`: whether a
/// run holds the campaign now (no run without an end is alive when none does).
fn how_it_ended(r: &RunRecord, at_work: Option<bool>) -> &'static str {
    if r.ended_at.is_none() {
        return match at_work {
            Some(false) => "killed (the next run records what it was sending as unknown)",
            _ => "still running, or killed",
        };
    }
    match r.stopped.as_deref() {
        None if r.exit_code == Some(3) => "finished, some failed or unknown",
        None => "finished",
        Some("interrupted") => "interrupted",
        Some("limit") => "--limit reached",
        Some("window") => "outside the send window",
        Some("unauthorized") => "stopped: credentials refused",
        Some("unreachable") => "stopped: API unreachable",
        Some("failure_streak") => "stopped: too many failures in a row",
        Some("ledger") => "stopped: ledger lost",
        Some("feed") => "stopped: contact file unreadable",
        Some("daily_limit") => "channel's daily limit reached",
        Some("retry_after") => "stopped: the API asked to wait",
        Some("killed") => "killed",
        Some(_) => "stopped",
    }
}

/// The failures of the contacts in the file now (`Plan::failures_in_file`), each kind with
/// its first examples at their rows now.
fn failures_in_file(plan: &Plan, l: &Ledger, name: &str) -> anyhow::Result<Vec<FailureGroup>> {
    let kinds = plan.failures_in_file(l, name, (FAILURE_KINDS, EXAMPLES))?;
    Ok(kinds
        .into_iter()
        .map(|k| group(k.status, k.reason, k.count, examples(k.first)))
        .collect())
}

/// Examples of a kind of failure from (row, key, error).
fn examples(rows: Vec<(u64, String, String)>) -> Vec<FailureExample> {
    rows.into_iter()
        .map(|(row_number, key, error)| FailureExample {
            row_number,
            key,
            error,
        })
        .collect()
}

fn group(
    status: String,
    reason: String,
    count: u64,
    examples: Vec<FailureExample>,
) -> FailureGroup {
    FailureGroup {
        status,
        meaning: meaning(&reason),
        reason: if reason.is_empty() {
            "no reason recorded".into()
        } else {
            reason
        },
        count,
        examples,
    }
}

/// The failures as the ledger holds them, when the contact file cannot be read.
fn failures(l: &Ledger, name: &str, f: &Figures) -> anyhow::Result<Vec<FailureGroup>> {
    f.errors
        .iter()
        .map(|e| {
            let rows = l.error_rows(name, &e.status, &e.reason, EXAMPLES)?;
            Ok(group(
                e.status.clone(),
                e.reason.clone(),
                e.count,
                examples(rows),
            ))
        })
        .collect()
}

/// A failure's recorded reason (see `send::retry::Reason::code`) in a marketer's words.
fn meaning(reason: &str) -> String {
    let http = reason
        .strip_prefix("http_")
        .and_then(|s| s.parse::<u16>().ok());
    match (reason, http) {
        (_, Some(401 | 403)) => "the API refused the credentials".into(),
        (_, Some(404)) => "the API address was not found".into(),
        (_, Some(429)) => "the API asked to slow down, and the retries ran out".into(),
        (_, Some(s @ 400..=499)) => format!("the API refused the request (HTTP {s})"),
        (_, Some(s @ 500..=599)) => format!("the API failed (HTTP {s})"),
        (_, Some(s)) => format!("the API answered HTTP {s}"),
        ("connect", _) => "the API could not be reached".into(),
        ("timeout", _) => "no answer in time".into(),
        ("connection", _) => "the connection broke before the answer".into(),
        ("interrupted", _) => "the run stopped while the request was on its way".into(),
        ("api_error", _) => "the API answered with an error".into(),
        ("unrecognised_answer", _) => "the API's answer could not be read".into(),
        ("answer_too_large", _) => "the API's answer was too large to read".into(),
        _ => String::new(),
    }
}

/// Payload → title of the payload buttons of a request.
fn button_titles(req: &SendRequest) -> HashMap<&str, &str> {
    report::buttons_of(req)
        .into_iter()
        .filter(|b| b.kind == ButtonType::Payload)
        .map(|b| (b.value.as_str(), b.title.as_str()))
        .collect()
}

fn replies(
    l: &Ledger,
    name: &str,
    f: &Figures,
    titles: &HashMap<&str, &str>,
) -> anyhow::Result<ReplySummary> {
    let stats = &f.replies;
    let mut clicks: Vec<Click> = stats
        .clicks
        .iter()
        .map(|(button, count)| Click {
            button: button.clone(),
            label: titles
                .get(button.as_str())
                .unwrap_or(&button.as_str())
                .to_string(),
            count: *count,
            foreign: !titles.is_empty() && !titles.contains_key(button.as_str()),
        })
        .collect();
    clicks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.button.cmp(&b.button)));
    let rows = l.replies_over_time(name, MINUTE)?;
    let (bucket, series) = per_bucket(
        &rows,
        |r| &r.at,
        |start| ReplyBucket {
            start,
            ..Default::default()
        },
        |b, r| {
            b.replies += r.replies;
            b.clicks += r.clicks;
            b.opt_outs += r.opt_outs;
        },
    );
    let latest = l
        .latest_replies(name, LATEST)?
        .into_iter()
        .map(|r| ReplyShown {
            received_at: r.received_at,
            contact: crate::text::without_bidi_controls(
                &r.contact_key
                    .or(r.phone)
                    .unwrap_or_else(|| "unknown contact".into()),
            )
            .into_owned(),
            // A reply's bidirectional controls would reorder what the page shows of it.
            text: crate::text::without_bidi_controls(&r.text.unwrap_or_default()).into_owned(),
            button: r.payload,
            opted_out: r.opted_out,
        })
        .collect();
    Ok(ReplySummary {
        replies: stats.replies,
        contacts_replied: stats.contacts_replied,
        reached: stats.reached,
        replied_reached: stats.replied_reached,
        reply_rate: stats.reply_rate,
        opt_outs: stats.opt_outs,
        clicks,
        bucket,
        series,
        latest,
    })
}

/// The first row of the file whose request a customer was or will be sent (row 1 when it
/// is), as the ledger and the file decide it now; only when none is, the first one left out
/// by the suppression list or `contacts.exclude`.
fn first_preview(plan: &Plan, ledger: Option<&Ledger>) -> Option<PreviewShown> {
    let mut decider = plan
        .decider(ledger, Resend::default(), Pass::Recount)
        .ok()?;
    let mut reader = plan.reader().ok()?;
    let csv = reader.path().to_path_buf();
    let mut left_out = None;
    for row in reader.by_ref().flatten() {
        let sent = match decider.decide(&row, &csv) {
            Decision::Send { .. } | Decision::Deferred { .. } => true,
            Decision::Settled { known, .. } => known.status.is_some_and(|s| s != Status::Skipped),
            Decision::Skip { .. } if left_out.is_none() => false,
            _ => continue,
        };
        let Ok(r) = decider.renderer().render(&row, &csv) else {
            continue;
        };
        let shown = PreviewShown {
            row_number: row.number,
            phone: phone_shown(&r),
            request: r.request,
        };
        if sent {
            return Some(shown);
        }
        left_out = Some(shown);
    }
    left_out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Scan;

    #[test]
    fn buckets_name_their_start_and_widen_for_long_campaigns() {
        assert_eq!(bucket_start("2026-11-26T09:41"), "2026-11-26T09:41:00Z");
        assert_eq!(bucket_start("2026-11-26T09"), "2026-11-26T09:00:00Z");
        let minutes = ["2026-11-26T09:41", "2026-11-26T15:41"];
        assert_eq!(bucket_for(minutes.into_iter()), Bucket::Minute);
        let minutes = ["2026-11-26T09:41", "2026-11-26T15:42"];
        assert_eq!(bucket_for(minutes.into_iter()), Bucket::Hour);
        assert_eq!(bucket_for(std::iter::empty()), Bucket::Minute);
    }

    #[test]
    fn a_killed_run_counts_no_requests_and_every_stop_is_named() {
        let record = |ended: bool, stopped: Option<&str>, requests| RunRecord {
            started_at: "2026-12-06T22:39:00Z".into(),
            ended_at: ended.then(|| "2026-12-06T22:40:00Z".into()),
            stopped: stopped.map(Into::into),
            exit_code: Some(4),
            requests,
        };
        let marks = runs(
            &[
                // Closed by the next run, which wrote its last renewal as its end, and no count.
                record(true, Some("killed"), 0),
                record(false, None, 0),
                record(true, Some("daily_limit"), 50),
                record(true, Some("retry_after"), 7),
            ],
            None,
        );
        let shown: Vec<_> = marks
            .iter()
            .map(|m| (m.ended.as_str(), m.requests, m.ended_at.is_some()))
            .collect();
        assert_eq!(
            shown,
            [
                ("killed", None, true),
                ("still running, or killed", None, false),
                ("channel's daily limit reached", Some(50), true),
                ("stopped: the API asked to wait", Some(7), true),
            ]
        );
        // With no run holding the campaign, a run without an end was killed.
        let dead = runs(&[record(false, None, 0)], Some(false));
        assert!(dead[0].ended.starts_with("killed"), "{}", dead[0].ended);
    }

    #[test]
    fn the_funnel_is_the_accounting_and_adds_up_to_the_rows() {
        let figures = Figures {
            counts: [(Status::Sent, 5), (Status::Failed, 1), (Status::Skipped, 4)].into(),
            skipped: vec![("excluded".into(), 2), ("duplicate".into(), 2)],
            errors: Vec::new(),
            replies: Default::default(),
        };
        let mut scan = Scan {
            rows: 15,
            filtered: 1,
            excluded: 1,
            duplicates: 2,
            to_send: 2,
            settled: 8,
            deferred: 1,
            ..Scan::default()
        };
        scan.recorded.sent = 5;
        scan.recorded.failed = 1;
        scan.recorded.excluded = 2;
        let rows = Accounting::of(&scan, 9, None);
        assert_eq!(
            rows.not_in_file, 1,
            "a contact of the ledger is gone from the file"
        );
        let f = funnel(Some(&figures), Some(&rows));
        assert_eq!((f.rows, f.filtered, f.excluded, f.duplicate), (15, 1, 3, 2));
        assert_eq!((f.sent, f.failed, f.not_yet_sent, f.deferred), (5, 1, 2, 1));
        let parts = f.filtered + f.excluded + f.opted_out + f.duplicate + f.invalid + f.blank;
        let parts = parts + f.sent + f.queued + f.failed + f.unknown + f.sending;
        assert_eq!(parts + f.deferred + f.not_yet_sent, f.rows, "{f:?}");
        let from_ledger = funnel(Some(&figures), None);
        assert_eq!(from_ledger.rows, 10);
    }
}
