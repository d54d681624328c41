//! `cosmocast run`: pre-flight, then sends what the ledger does not already hold, with bounded
//! concurrency, a progress display and a summary; resumable at any point. The steps:
//! `preflight` → `endpoint` → `open_ledger` → `send` → `summary`.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::endpoint::Endpoint;
use super::environment_problems;
use crate::audience::Resend;
use crate::campaign::window;
use crate::cli::RunArgs;
use crate::error::{Exit, Fatal, Problems};
use crate::ledger::Ledger;
use crate::ledger::Place;
use crate::ledger::locate::Located;
use crate::ledger::lock::{self, RunLock};
use crate::ledger::writer::Writer;
use crate::plan::{Plan, Scan, ledger_for};
use crate::progress;
use crate::send::deliver::Policy;
use crate::send::feed::{self, FeedOptions, Work};
use crate::send::{Report, Settings, Stats, dispatch};

/// A rehearsal answers with a realistic delay (40-120 ms), so it paces and looks like the real run.
const REHEARSAL_LATENCY: (Duration, Duration) =
    (Duration::from_millis(40), Duration::from_millis(80));

mod identity;
mod keeper;
mod summary;

pub(crate) async fn run(args: RunArgs, quiet: bool) -> anyhow::Result<Exit> {
    let plan = Plan::load(&args.campaign)?;
    let resend = Resend {
        failed: args.retry_failed,
        unknown: args.resend_unknown,
    };
    let located = ledger_for(&plan.campaign, &args.ledger.ledger, args.sandbox)?;
    let ledger_file = located.place.clone();
    // A second run of the campaign on the same ledger stops here, before it reads a thing
    // (and --join on a ledger file, which cannot share a campaign).
    let locked = if args.dry_run || !ledger_file.exists() && !args.join {
        None
    } else {
        Some(lock::take_campaign(
            &ledger_file,
            &plan.campaign.name,
            args.join,
        )?)
    };
    let (scan, identity) = match preflight(&plan, &ledger_file, resend, &args, quiet)? {
        Ok(found) => found,
        Err(exit) => return Ok(exit),
    };
    if args.dry_run {
        return dry_run(&plan, &ledger_file, resend, &args, quiet).await;
    }
    if args.resend_unknown && !quiet {
        eprintln!(
            "note: --resend-unknown sends again to contacts whose earlier request may have arrived; they may get the message twice"
        );
    }
    // Outside the send window nothing is sent; a campaign with nothing left to send is done.
    let deadline = match window_deadline(&plan, &scan) {
        Ok(d) => d,
        Err(exit) => return Ok(exit),
    };
    let endpoint = Endpoint::start(&plan, args.sandbox, REHEARSAL_LATENCY).await?;
    located.prepare_folder()?;
    let held = open_ledger(&plan, &located, locked, identity, quiet)?;
    let result = send(
        &plan, &args, &held, &endpoint, resend, &scan, deadline, quiet,
    )
    .await;
    endpoint.stop().await;
    let report = result?;
    let exit = match summary::print(&plan, &held, &report, &args, quiet) {
        Ok(exit) => exit,
        // The ledger is gone: the summary cannot be read from it, the reason is all there is.
        Err(_) if let Some(stop @ crate::send::Stop::Ledger(_)) = &report.stop => {
            eprintln!("error: {}", crate::text::printable(&stop.message()));
            return Ok(Exit::CannotRun);
        }
        Err(e) => return Err(e),
    };
    held.ledger.end_run(
        held.run_id,
        report.stop.as_ref().map(|s| s.reason()),
        exit.code(),
        report.requests,
    )?;
    Ok(exit)
}

/// Every row that may be sent renders and validates before anything is sent; rows the ledger
/// already settles are only keyed; the campaign's identity is compared with the recorded one.
/// Reads the ledger, if there is one, and writes nothing.
fn preflight(
    plan: &Plan,
    ledger_file: &Place,
    resend: Resend,
    args: &RunArgs,
    quiet: bool,
) -> anyhow::Result<Result<(Scan, identity::Decision), Exit>> {
    let ledger = Ledger::open_read(ledger_file)?;
    let scan = plan.scan(plan.decider(ledger.as_ref(), resend)?)?;
    if let Some(note) = ledger
        .as_ref()
        .and_then(|l| crate::plan::finished_note(&plan.campaign, l, &scan))
        && !quiet
    {
        eprintln!("note: {note}");
    }
    // A runaway template fails every row after it: --skip-invalid would skip them all.
    if scan.problem_count > 0 && (!args.skip_invalid || scan.runaway) {
        let shown = scan.problems.len() as u64;
        let problems = Problems {
            list: scan.problems.clone(),
        };
        eprintln!("{}", crate::text::printable_lines(&problems.to_string()));
        if scan.problem_count > shown {
            eprintln!("({} problems in all)", scan.problem_count);
        }
        eprintln!(
            "{}",
            if scan.runaway {
                "run refused to start: a template ran out of its rendering budget; fix it (--skip-invalid cannot skip a template's fault)"
            } else {
                "run refused to start: fix the rows above, or pass --skip-invalid to send the others (the invalid rows are left out, and sent by a later run once fixed)"
            }
        );
        return Ok(Err(Exit::CannotRun));
    }
    if !args.sandbox && !args.dry_run {
        let env = environment_problems(&plan.campaign);
        if !env.is_empty() {
            return Err(Problems { list: env }.into());
        }
    }
    let identity = identity::check(
        plan,
        ledger.as_ref(),
        &scan,
        args.sandbox,
        args.accept_change,
    )?;
    Ok(Ok((scan, identity)))
}

/// When the run must stop for the send window, or the exit when it may not start now.
fn window_deadline(plan: &Plan, scan: &Scan) -> Result<Option<std::time::Instant>, Exit> {
    let Some(w) = &plan.campaign.send.window else {
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
            eprintln!(
                "outside the send window: nothing was sent; it next opens {when} — run the same command again then"
            );
            Err(Exit::WorkRemains)
        }
    }
}

/// The ledger, held for the run: the campaign's lock on its file (watched), and this run's
/// record. Fields drop in order: the connection closes before the lock and the file are let go.
struct Held {
    ledger: Ledger,
    located: Located,
    /// Contacts an earlier, killed run left `sending`, recorded `unknown` by this one.
    recovered: usize,
    /// The fingerprint of the channel id, whose daily budget the claims spend.
    channel: String,
    run_id: i64,
    lock: RunLock,
}

fn open_ledger(
    plan: &Plan,
    located: &Located,
    locked: Option<RunLock>,
    identity: identity::Decision,
    quiet: bool,
) -> anyhow::Result<Held> {
    let join = locked.as_ref().is_some_and(RunLock::joined);
    let name = &plan.campaign.name;
    let place = &located.place;
    let ledger = Ledger::open_write(place)?;
    let lock = match locked {
        Some(lock) => lock,
        // A new ledger: created first, then locked (a second run creating it too finds the lock).
        None => lock::take_campaign(place, name, join)?,
    };
    ledger.ensure_campaign(name)?;
    if let identity::Decision::Record(id, note) = identity {
        ledger.record_identity(name, &id)?;
        if let Some(note) = note
            && !quiet
        {
            eprintln!("note: {note}");
        }
    }
    let channel = crate::plan::channel_of(&plan.campaign, located.sandbox);
    ledger.declare_limit(&channel, name, plan.campaign.api.daily_limit)?;
    // Alone on the campaign, every unfinished run is dead; joined, those whose lease ran out.
    // Their claims count as this run's: it is the one that found them and tells of them.
    let recovered = ledger.recover_dead(name, !lock.joined())?;
    if let Some(note) = crate::plan::other_file_note(&plan.campaign, &ledger)
        && !quiet
    {
        eprintln!("note: {note}");
    }
    let run_id = ledger.start_run(
        name,
        &crate::plan::campaign_file(&plan.campaign),
        &crate::plan::messages_fingerprint(&plan.campaign),
        lock.joined(),
    )?;
    if recovered > 0 && !quiet {
        eprintln!(
            "note: {} being sent when an earlier run stopped {} now `unknown` (see `cosmocast status`, or `run --resend-unknown`)",
            crate::text::count(recovered as u64, "contact"),
            if recovered == 1 { "is" } else { "are" }
        );
    }
    Ok(Held {
        ledger,
        located: located.clone(),
        recovered,
        channel,
        run_id,
        lock,
    })
}

/// What a run ends with: the dispatcher's report and this run's counts.
pub(crate) struct Ran {
    pub(crate) report: Report,
    pub(crate) stats: Arc<Stats>,
    pub(crate) requests: u64,
    /// Contacts to send whose phone is a landline on a mobile-only channel (a warning).
    pub(crate) landlines: u64,
    /// When the first contact deferred by its cool-down may be sent (Unix seconds).
    pub(crate) deferred_until: Option<i64>,
    pub(crate) ledger: Located,
}

impl std::ops::Deref for Ran {
    type Target = Report;
    fn deref(&self) -> &Report {
        &self.report
    }
}

#[allow(clippy::too_many_arguments)]
async fn send(
    plan: &Plan,
    args: &RunArgs,
    held: &Held,
    endpoint: &Endpoint,
    resend: Resend,
    scan: &Scan,
    deadline: Option<std::time::Instant>,
    quiet: bool,
) -> anyhow::Result<Ran> {
    let c = &plan.campaign;
    // The ledger as this run holds it: its states, and the phones that opted out (`listen`).
    let decider = plan.feed_decider(
        &held.ledger,
        resend,
        Arc::new(scan.phone_duplicates.clone()),
        scan.rows,
    )?;
    let writer = Writer::start(&held.lock, &c.name, held.run_id, Some(held.channel.clone()))?;
    let client = endpoint.client(plan)?;
    let (tx, rx) = feed::channel();
    let reader = plan.reader()?;
    let opts = FeedOptions {
        skip_invalid: args.skip_invalid,
        snapshot: plan.snapshot.clone(),
    };
    let feeder = tokio::task::spawn_blocking(move || feed::feed(reader, decider, opts, tx));

    let stats = Arc::new(Stats::default());
    let cancel = CancellationToken::new();
    let workers = Arc::new(std::sync::atomic::AtomicU32::new(1));
    let keeper = keeper::Keeper::start(
        &keeper::Run {
            place: &held.lock.place(),
            campaign: &c.name,
            id: held.run_id,
        },
        workers.clone(),
        cancel.clone(),
    )?;
    let signals = tokio::spawn(watch_signals(cancel.clone(), quiet));
    let shown = CancellationToken::new();
    let mode = args.progress.resolve(quiet);
    let will_send = args.limit.map_or(scan.sends(), |l| l.min(scan.sends()));
    let display = progress::start(
        mode,
        progress::Plan {
            campaign: c.name.clone(),
            rows: scan.rows,
            to_send: will_send,
            settled: scan.settled,
            rate: c.send.rate,
            concurrency: c.send.concurrency,
            window: c.send.window.as_ref().map(|w| w.to_string()),
            ledger: held.located.place.to_string(),
        },
        stats.clone(),
        shown.clone(),
    );
    let settings = Settings {
        concurrency: c.send.concurrency,
        policy: Policy {
            retries: c.send.retries,
            backoff: c.send.backoff,
            max_wait: c.send.max_wait,
        },
        max_consecutive_failures: c.send.max_consecutive_failures,
        limit: args.limit,
        rate: c.send.rate,
        deadline,
        drain: c.api.timeout + Duration::from_secs(5),
        url: crate::campaign::shown_url(&endpoint.url),
        workers,
    };
    // The dispatcher runs on the runtime's workers, beside the requests it starts.
    let wiring = dispatch::Wiring {
        client,
        writer: writer.handle(),
        stats: stats.clone(),
        cancel: cancel.clone(),
    };
    let report = tokio::spawn(dispatch::dispatch(wiring, rx, settings)).await;
    shown.cancel();
    let _ = display.await;
    signals.abort();
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
    if let Some(lost) = keeper.finish() {
        report.stop = Some(crate::send::Stop::Ledger(lost));
    }
    let requests = stats.requests();
    Ok(Ran {
        report,
        stats,
        requests,
        landlines: scan.landlines,
        deferred_until: scan.deferred_until,
        ledger: held.located.clone(),
    })
}

/// First SIGINT/SIGTERM: stop claiming and drain. Second: leave at once.
async fn watch_signals(cancel: CancellationToken, quiet: bool) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    for n in 0.. {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if n > 0 {
            eprintln!(
                "\ncosmocast: stopped at once; requests in flight will show as `unknown` next time"
            );
            std::process::exit(Exit::WorkRemains.code());
        }
        if !quiet {
            eprintln!(
                "\ncosmocast: stopping; requests in flight finish first (signal again: quit now)"
            );
        }
        cancel.cancel();
    }
}

/// Everything but the HTTP call and the ledger writes: the would-be requests as JSON lines.
async fn dry_run(
    plan: &Plan,
    ledger_file: &Place,
    resend: Resend,
    args: &RunArgs,
    quiet: bool,
) -> anyhow::Result<Exit> {
    let ledger = Ledger::open_read(ledger_file)?;
    let decider = plan.decider(ledger.as_ref(), resend)?;
    drop(ledger);
    let (tx, mut rx) = feed::channel();
    let reader = plan.reader()?;
    let opts = FeedOptions {
        skip_invalid: args.skip_invalid,
        snapshot: plan.snapshot.clone(),
    };
    let feeder = tokio::task::spawn_blocking(move || feed::feed(reader, decider, opts, tx));
    let mut out = std::io::BufWriter::new(super::output::stdout());
    let mut would = 0u64;
    while let Some(w) = rx.next().await {
        match w {
            Work::Send(job) => {
                if args.limit.is_some_and(|l| would >= l) {
                    break;
                }
                would += 1;
                out.write_all(&job.body)?;
                out.write_all(b"\n")?;
            }
            Work::Broken(e) => return Err(Fatal::new(Exit::CannotRun, e.to_string()).into()),
            Work::End => break,
            Work::Done(_)
            | Work::Record(_)
            | Work::Filtered(_)
            | Work::Deferred(_)
            | Work::Invalid(_)
            | Work::Blank(_) => {}
        }
    }
    out.flush()?;
    drop(rx);
    let _ = feeder.await;
    if !quiet {
        eprintln!(
            "dry run: {} would be sent; nothing was sent or written",
            crate::text::count(would, "request")
        );
    }
    Ok(Exit::Ok)
}
