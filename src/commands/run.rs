//! `cosmocast run`: pre-flight, then sends what the ledger does not already hold, with bounded
//! concurrency, a progress display and a summary; resumable at any point. The steps:
//! `RunSettings` → `preflight` → `window_deadline` → `Endpoint` → `Held` → `send` → `summary`.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::endpoint::Endpoint;
use super::environment_problems;
use crate::audience::Resend;
use crate::campaign::window;
use crate::cli::RunArgs;
use crate::error::{Exit, Fatal, Problems};
use crate::ledger::Ledger;
use crate::ledger::locate::Located;
use crate::ledger::writer::Writer;
use crate::plan::{Pass, Plan, Scan, ledger_for};
use crate::printer::Printer;
use crate::progress;
use crate::send::deliver::Policy;
use crate::send::feed::{self, FeedOptions, Work};
use crate::send::{Report, Settings, Stats, dispatch};
use held::{Claim, Held};

/// A rehearsal answers with a realistic delay (40-120 ms), so it paces and looks like the real run.
const REHEARSAL_LATENCY: (Duration, Duration) =
    (Duration::from_millis(40), Duration::from_millis(80));

mod held;
pub(super) mod identity;
mod keeper;
mod summary;

/// What `run` was asked to do, checked once from its arguments: the loaded campaign, its
/// ledger, and the flags as the steps use them.
struct RunSettings {
    plan: Plan,
    located: Located,
    resend: Resend,
    sandbox: bool,
    dry_run: bool,
    skip_invalid: bool,
    accept_change: bool,
    limit: Option<u64>,
    progress: progress::Mode,
    json: bool,
    /// `--join`: one of several workers on the campaign (a PostgreSQL ledger).
    join: bool,
    printer: Printer,
    /// Cancelled by the first stop signal while sending (`Signals`).
    stop: CancellationToken,
}

impl RunSettings {
    fn new(args: RunArgs, printer: Printer) -> anyhow::Result<RunSettings> {
        let plan = Plan::load(&args.campaign)?;
        let located = ledger_for(&plan.campaign, &args.ledger.ledger, args.sandbox)?;
        Ok(RunSettings {
            plan,
            located,
            resend: Resend {
                failed: args.retry_failed,
                unknown: args.resend_unknown,
            },
            sandbox: args.sandbox,
            dry_run: args.dry_run,
            join: args.join,
            skip_invalid: args.skip_invalid,
            accept_change: args.accept_change,
            limit: args.limit,
            progress: printer.progress(args.progress),
            json: args.json,
            printer,
            stop: CancellationToken::new(),
        })
    }
}

pub(crate) async fn run(args: RunArgs, printer: Printer) -> anyhow::Result<Exit> {
    let json = args.json.then(|| args.campaign.clone());
    let result = steps(args, printer).await;
    // `--json` gives one object however the run ends: one that could not start too.
    if let (Some(file), Err(e)) = (json, &result) {
        let problems: Vec<String> = e
            .downcast_ref::<Problems>()
            .map(|p| p.list.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let exit = crate::error::exit_of(e);
        let reason = match exit {
            Exit::Busy => "locked",
            _ if !problems.is_empty() => "problems",
            _ => "cannot_run",
        };
        refused_json(
            &file.display().to_string(),
            exit,
            reason,
            &e.to_string(),
            &problems,
        );
    }
    result
}

/// The `--json` object of a run that did not start: its exit code, why, and the problems.
fn refused_json(file: &str, exit: Exit, reason: &str, message: &str, problems: &[String]) {
    let object = serde_json::json!({
        "file": file,
        "exit_code": exit.code(),
        "stopped": {"reason": reason, "message": message},
        "problems": problems,
        // Another run holds the campaign, it was interrupted before it sent, or its ledger went
        // away: the campaign is not done.
        "work_remains": exit == Exit::Busy || exit == Exit::WorkRemains || reason == "ledger",
    });
    // A closed stdout loses the object, not the exit code.
    let _ = writeln!(std::io::stdout().lock(), "{object}");
}

/// The run's steps: settings, the lock, the pre-flight, the window, sending, the summary.
async fn steps(args: RunArgs, printer: Printer) -> anyhow::Result<Exit> {
    let s = RunSettings::new(args, printer)?;
    // Watched from the start: a signal during the pre-flight stops the run before it sends.
    let signals = Signals::watch(&s)?;
    // A second run of the campaign on the same ledger file stops here, before it reads a thing.
    let claim = Claim::early(&s)?;
    let (scan, identity) = match preflight(&s)? {
        Ok(found) => found,
        Err(exit) => return Ok(exit),
    };
    if s.dry_run {
        return dry_run(&s).await;
    }
    if s.resend.unknown {
        printer.info(
            "note: --resend-unknown sends again to contacts whose earlier request may have arrived; they may get the message twice",
        );
    }
    if scan.rows == 0 {
        printer.info(format_args!(
            "warning: {}",
            crate::plan::no_rows_warning(&s.plan.campaign)
        ));
    }
    if scan.held_back > 0 {
        printer.info(format_args!(
            "note: {} that --retry-failed or --resend-unknown would send again {} not sent: filtered out, excluded or on the suppression list now",
            crate::text::count(scan.held_back, "contact"),
            if scan.held_back == 1 { "is" } else { "are" }
        ));
    }
    // Outside the send window nothing is sent; a campaign with nothing left to send is done.
    let deadline = match window_deadline(&s, &scan) {
        Ok(d) => d,
        Err(exit) => return Ok(exit),
    };
    let endpoint = Endpoint::start(&s.plan, s.sandbox, REHEARSAL_LATENCY).await?;
    s.located.prepare_folder()?;
    let held = Held::open(&s, claim, identity)?;
    // From here a signal drains the run: this run's record is open, and the summary ends it.
    signals.sending();
    let result = send(&s, &held, &endpoint, &scan, deadline).await;
    endpoint.stop().await;
    let mut report = result?;
    let exit = match summary::print(&s, &held, &mut report) {
        Ok(exit) => exit,
        // The ledger is gone: the summary cannot be read from it, the reason is all there is.
        Err(_) if let Some(stop @ crate::send::Stop::Ledger(_)) = &report.stop => {
            s.printer.important(format_args!(
                "error: {}",
                crate::text::printable(&stop.message())
            ));
            if s.json {
                let file = s.plan.campaign.file.display().to_string();
                refused_json(&file, Exit::CannotRun, "ledger", &stop.message(), &[]);
            }
            return Ok(Exit::CannotRun);
        }
        Err(e) => return Err(e),
    };
    // The summary is out and every outcome recorded: a run whose end cannot be noted keeps its
    // exit code (and `--json` its one object).
    if let Err(e) = held.ledger.end_run(
        held.run_id,
        report.stop.as_ref().map(|s| s.reason()),
        exit.code(),
        report.requests,
    ) {
        s.printer.important(format_args!(
            "warning: the run's end could not be noted in the ledger's runs: {e}"
        ));
    }
    Ok(exit)
}

/// Every row that may be sent renders and validates before anything is sent; rows the ledger
/// already settles are only keyed; the campaign's identity is compared with the recorded one.
/// Reads the ledger, if there is one, and writes nothing.
fn preflight(s: &RunSettings) -> anyhow::Result<Result<(Scan, identity::Decision), Exit>> {
    let plan = &s.plan;
    let ledger = Ledger::open_read(&s.located.place)?;
    let scan = plan.scan(plan.decider(ledger.as_ref(), s.resend, Pass::Scan)?)?;
    if let Some(note) = ledger.as_ref().and_then(|l| {
        crate::plan::finished_note(&plan.campaign, l, &scan)
            .or_else(|| crate::plan::renamed_note(&plan.campaign, l))
            .or_else(|| crate::plan::edited_note(&plan.campaign, l))
    }) {
        s.printer.info(format_args!("note: {note}"));
    }
    // A runaway template fails every row after it: --skip-invalid would skip them all.
    if scan.problem_count > 0 && (!s.skip_invalid || scan.runaway) {
        refuse(s.printer, &scan);
        if s.json {
            let problems: Vec<String> = scan.problems.iter().map(ToString::to_string).collect();
            refused_json(
                &plan.campaign.file.display().to_string(),
                Exit::CannotRun,
                "problems",
                &format!(
                    "{} found; nothing was sent",
                    crate::text::count(scan.problem_count, "problem")
                ),
                &problems,
            );
        }
        return Ok(Err(Exit::CannotRun));
    }
    if !s.sandbox && !s.dry_run {
        let env = environment_problems(&plan.campaign);
        if !env.is_empty() {
            return Err(Problems { list: env }.into());
        }
    }
    let identity = identity::check(s, ledger.as_ref(), &scan)?;
    Ok(Ok((scan, identity)))
}

/// The problems that keep the run from starting, and what to do.
fn refuse(printer: Printer, scan: &Scan) {
    let shown = scan.problems.len() as u64;
    let problems = Problems {
        list: scan.problems.clone(),
    };
    printer.important(crate::text::printable_lines(&problems.to_string()));
    if scan.problem_count > shown {
        printer.important(format_args!("({} problems in all)", scan.problem_count));
    }
    printer.important(if scan.runaway {
        "run refused to start: a template ran out of its rendering budget; fix it (--skip-invalid cannot skip a template's fault)"
    } else {
        "run refused to start: fix the rows above, or pass --skip-invalid to send the others (the invalid rows are left out, and sent by a later run once fixed)"
    });
}

/// When the run must stop for the send window, or the exit when it may not start now.
fn window_deadline(s: &RunSettings, scan: &Scan) -> Result<Option<std::time::Instant>, Exit> {
    let Some(w) = &s.plan.campaign.send.window else {
        return Ok(None);
    };
    match w.state(jiff::Timestamp::now()) {
        window::State::Open { closes } => {
            let left = jiff::Timestamp::now().duration_until(closes);
            let left = Duration::try_from(left).unwrap_or_default();
            Ok(Some(std::time::Instant::now() + left))
        }
        // Nothing to send: the run only records what needs no request, window or not.
        window::State::Closed { .. } if scan.sends() == 0 => Ok(None),
        window::State::Closed { opens } => {
            let when = opens
                .map(|t| w.describe(t))
                .unwrap_or_else(|| "never (no day is allowed)".into());
            let message = format!(
                "outside the send window: nothing was sent; it next opens {when} — run the same command again then"
            );
            s.printer.important(&message);
            if s.json {
                // `--json` always gives one object, however the run ends.
                let summary = serde_json::json!({
                    "campaign": s.plan.campaign.name,
                    "exit_code": Exit::WorkRemains.code(),
                    "stopped": {"reason": "window", "message": message},
                    "work_remains": true,
                    "window_opens": opens.map(|t| t.to_string()),
                });
                let _ = writeln!(crate::commands::output::stdout(), "{summary}");
            }
            Err(Exit::WorkRemains)
        }
    }
}

/// What a run ends with: the dispatcher's report and this run's counts.
pub(crate) struct Ran {
    pub(crate) report: Report,
    pub(crate) stats: Arc<Stats>,
    pub(crate) requests: u64,
    /// Contacts to send whose phone is a landline on a mobile-only channel (a warning).
    pub(crate) landlines: u64,
    /// The contact file's lines of the first of them.
    pub(crate) landline_lines: Vec<usize>,
    /// When the first contact deferred by its cool-down may be sent (Unix seconds).
    pub(crate) deferred_until: Option<i64>,
    pub(crate) ledger: Located,
    /// Contacts a joined worker that died left `sending`, recorded `unknown` by this run.
    pub(crate) taken_over: usize,
}

impl std::ops::Deref for Ran {
    type Target = Report;
    fn deref(&self) -> &Report {
        &self.report
    }
}

/// The display while the run sends: a bar, plain lines or nothing (`RunSettings::progress`).
fn show_progress(
    s: &RunSettings,
    held: &Held,
    scan: &Scan,
    stats: Arc<Stats>,
    done: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let c = &s.plan.campaign;
    // Past the channel's daily limit, contacts wait for a later run.
    let left = s
        .plan
        .budget_left(Some(&held.ledger), s.sandbox)
        .unwrap_or(None);
    let sends = scan.sends() - scan.over_budget(left);
    let will_send = s.limit.map_or(sends, |l| l.min(sends));
    let plan = progress::Plan {
        campaign: c.name.clone(),
        rows: scan.rows,
        to_send: will_send,
        settled: scan.settled,
        left_out: vec![
            ("blank", scan.blank),
            ("filtered out", scan.filtered),
            ("excluded", scan.excluded),
            ("opted out", scan.opted_out),
            ("duplicate", scan.duplicates + scan.same_phone),
            ("invalid", scan.invalid),
            ("deferred", scan.deferred),
        ],
        rate: c.send.rate,
        concurrency: c.send.concurrency,
        window: c.send.window.as_ref().map(|w| w.to_string()),
        ledger: held.located.place.to_string(),
    };
    progress::start(s.progress, plan, stats, done)
}

/// The dispatcher's settings: the campaign's `send:` section, `--limit` and the window's end.
fn dispatch_settings(
    s: &RunSettings,
    endpoint: &Endpoint,
    deadline: Option<std::time::Instant>,
    workers: Arc<std::sync::atomic::AtomicU32>,
) -> Settings {
    let c = &s.plan.campaign;
    Settings {
        workers,
        joined: s.join,
        lease: None,
        concurrency: c.send.concurrency,
        policy: Policy {
            retries: c.send.retries,
            backoff: c.send.backoff,
            max_wait: c.send.max_wait,
        },
        max_consecutive_failures: c.send.max_consecutive_failures,
        limit: s.limit,
        rate: c.send.rate,
        deadline,
        drain: c.api.timeout + Duration::from_secs(5),
        url: crate::campaign::shown_url(&endpoint.url),
    }
}

/// The feed (CSV reader → decider) on a blocking thread, and the channel it fills.
fn start_feed(
    s: &RunSettings,
    ledger: Option<&Ledger>,
    pass: Pass,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, feed::Inbox)> {
    let plan = &s.plan;
    let decider = plan.decider(ledger, s.resend, pass)?;
    let (tx, rx) = feed::channel();
    let reader = plan.reader()?;
    let opts = FeedOptions {
        skip_invalid: s.skip_invalid,
        snapshot: plan.snapshot.clone(),
    };
    let feeder = tokio::task::spawn_blocking(move || feed::feed(reader, decider, opts, tx));
    Ok((feeder, rx))
}

/// Sends through the dispatcher what the feed hands it, with the progress display and the
/// signal watch beside it; the ledger's writer records every outcome.
async fn send(
    s: &RunSettings,
    held: &Held,
    endpoint: &Endpoint,
    scan: &Scan,
    deadline: Option<std::time::Instant>,
) -> anyhow::Result<Ran> {
    // The ledger as this run holds it: its states, and the phones that opted out (`listen`).
    let pass = Pass::Feed {
        rows: scan.rows,
        phone_duplicates: Arc::new(scan.phone_duplicates.clone()),
    };
    let (feeder, rx) = start_feed(s, Some(&held.ledger), pass)?;
    let writer = Writer::start(
        &held.lock,
        &s.plan.campaign.name,
        held.run_id,
        Some(held.channel.clone()),
        s.plan.campaign.contacts.cooldown,
    )?;
    let client = endpoint.client(&s.plan)?;
    let stats = Arc::new(Stats::default());
    let cancel = s.stop.clone();
    let workers = Arc::new(std::sync::atomic::AtomicU32::new(1));
    let lease = held
        .lock
        .joined()
        .then(|| Arc::new(crate::ledger::workers::Lease::new()));
    let keeper = keeper::Keeper::start(
        &keeper::Run {
            place: &held.lock.place(),
            campaign: &s.plan.campaign.name,
            id: held.run_id,
            joined: held.lock.joined(),
            lease: lease.clone(),
        },
        workers.clone(),
        cancel.clone(),
    )?;
    let shown = CancellationToken::new();
    let display = show_progress(s, held, scan, stats.clone(), shown.clone());
    // The dispatcher runs on the runtime's workers, beside the requests it starts.
    let wiring = dispatch::Wiring {
        client,
        writer: writer.handle(),
        stats: stats.clone(),
        cancel,
    };
    let mut settings = dispatch_settings(s, endpoint, deadline, workers);
    settings.lease = lease;
    let report = tokio::spawn(dispatch::dispatch(wiring, rx, settings)).await;
    shown.cancel();
    let _ = display.await;
    let mut report = report.map_err(|e| anyhow::anyhow!("the dispatcher stopped: {e}"))?;
    // A feed that panicked closed its channel without its end: the dispatcher stopped the run
    // for it (`Stop::Feed`).
    let _ = feeder.await;
    if let Err(e) = writer.finish()
        && report.stop.is_none()
    {
        report.stop = Some(crate::send::Stop::Ledger(e.to_string()));
    }
    // The database went away: that is why the run stopped, whatever else it saw since.
    let (lost, taken_over) = keeper.finish();
    if let Some(lost) = lost {
        report.stop = Some(crate::send::Stop::Ledger(lost));
    }
    let requests = stats.requests();
    Ok(Ran {
        report,
        stats,
        requests,
        landlines: scan.landlines,
        landline_lines: scan
            .warnings
            .iter()
            .filter_map(|w| w.line)
            .take(5)
            .collect(),
        deferred_until: scan.deferred_until,
        ledger: held.located.clone(),
        taken_over,
    })
}

/// The run's stop signals: SIGINT, SIGTERM, and SIGHUP unless the run was started with it
/// ignored (`nohup`). Before sending, the first one ends the run at once: nothing was claimed,
/// so nothing is owed. While sending, the first stops claiming and drains; a second leaves at
/// once.
struct Signals {
    sending: Arc<AtomicBool>,
    watch: tokio::task::JoinHandle<()>,
}

impl Signals {
    fn watch(s: &RunSettings) -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = match hangup_ignored() {
            true => None,
            false => Some(signal(SignalKind::hangup())?),
        };
        let sending = Arc::new(AtomicBool::new(false));
        let (token, started, printer) = (s.stop.clone(), sending.clone(), s.printer);
        let json = s.json.then(|| s.plan.campaign.file.display().to_string());
        let watch = tokio::spawn(async move {
            for n in 0.. {
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hangup => {}
                }
                if !started.load(Ordering::SeqCst) {
                    const BEFORE: &str = "interrupted before sending; nothing was sent";
                    printer.important(format_args!("\ncosmocast: {BEFORE}"));
                    if let Some(file) = &json {
                        refused_json(file, Exit::WorkRemains, "interrupted", BEFORE, &[]);
                    }
                    std::process::exit(Exit::WorkRemains.code());
                }
                if n > 0 {
                    printer.important(
                        "\ncosmocast: stopped at once; requests in flight will show as `unknown` next time",
                    );
                    std::process::exit(Exit::WorkRemains.code());
                }
                printer.info(
                    "\ncosmocast: stopping; requests in flight finish first (signal again: quit now)",
                );
                token.cancel();
            }
        });
        Ok(Signals { sending, watch })
    }

    /// The run holds its record and sends from now on.
    fn sending(&self) {
        self.sending.store(true, Ordering::SeqCst);
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// What the channel's daily limit leaves a dry run: the phones that hold a slot already, and
/// the budget in file order.
struct DryBudget {
    budget: crate::plan::Budget,
    holders: crate::audience::SlotHolders,
}

impl DryBudget {
    fn of(s: &RunSettings, ledger: Option<&Ledger>) -> anyhow::Result<DryBudget> {
        let left = s.plan.budget_left(ledger, s.sandbox)?;
        let holders = match (ledger, left) {
            (Some(l), Some(_)) => s.plan.slot_holders(l)?,
            _ => Default::default(),
        };
        Ok(DryBudget {
            budget: crate::plan::Budget::new(left),
            holders,
        })
    }

    /// Whether a contact at `phone` would be sent, taking its slot.
    fn admits(&mut self, phone: Option<&str>) -> bool {
        self.budget.admits(self.holders.hold(phone))
    }
}

/// Whether this process was started with SIGHUP ignored, as `nohup` starts a command: a closed
/// terminal must then not stop the run.
fn hangup_ignored() -> bool {
    // SAFETY: a null new action only reads the current one into `old`, a zeroed sigaction.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Everything but the HTTP call and the ledger writes: the would-be requests as JSON lines.
async fn dry_run(s: &RunSettings) -> anyhow::Result<Exit> {
    let ledger = Ledger::open_read(&s.located.place)?;
    let (feeder, mut rx) = start_feed(s, ledger.as_ref(), Pass::Scan)?;
    // The channel's daily limit holds back what a run's claims would find past it: a phone
    // holding a slot already costs nothing more.
    let mut budget = DryBudget::of(s, ledger.as_ref())?;
    drop(ledger);
    let mut out = std::io::BufWriter::new(super::output::stdout());
    let mut would = 0u64;
    while let Some(w) = rx.next().await {
        match w {
            Work::Send(job) => {
                if s.limit.is_some_and(|l| would >= l) {
                    break;
                }
                if !budget.admits(job.phone.as_deref()) {
                    continue;
                }
                would += 1;
                out.write_all(&job.body)?;
                out.write_all(b"\n")?;
            }
            Work::Broken(e) => return Err(Fatal::new(Exit::CannotRun, e.to_string()).into()),
            Work::End => break,
            Work::Done(_) | Work::Record(_) | Work::Filtered(_) | Work::Deferred(_) => {}
        }
    }
    out.flush()?;
    drop(rx);
    let _ = feeder.await;
    s.printer.info(format_args!(
        "dry run: {} would be sent; nothing was sent or written",
        crate::text::count(would, "request")
    ));
    let held = budget.budget.held();
    if held > 0 {
        s.printer.info(format_args!(
            "note: {} past the channel's daily limit would wait for a later run (exit 4)",
            crate::text::count(held, "contact")
        ));
    }
    let window = s.plan.campaign.send.window.as_ref();
    if let Some(closed) = window.and_then(|w| w.closed_note(jiff::Timestamp::now())) {
        s.printer.info(format_args!(
            "note: {closed}: a run now would send nothing and exit 4"
        ));
    }
    Ok(Exit::Ok)
}
