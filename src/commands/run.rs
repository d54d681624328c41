//! `cosmocast run`: pre-flight check, then sends what the ledger does not already hold, with
//! bounded concurrency, a progress display and a summary; resumable at any point.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Loaded, environment_problems, ledger_path, load, scan};
use crate::cli::RunArgs;
use crate::error::{Exit, Fatal, Problems};
use crate::ledger::writer::Writer;
use crate::ledger::{KnownMap, Ledger, Status, lock};
use crate::send::client::Client;
use crate::send::feed::{self, Resend, Work};
use crate::send::{self, Report, Settings, Stats, Stop, window};
use crate::{progress, sandbox};

/// The token and channel id the built-in sandbox accepts when the environment has none.
const SANDBOX_SECRET: &str = "sandbox";

pub async fn run(args: RunArgs, quiet: bool) -> anyhow::Result<Exit> {
    let loaded = load(&args.campaign)?;
    let c = &loaded.campaign;

    let resend = Resend {
        failed: args.retry_failed,
        unknown: args.resend_unknown,
    };
    let ledger_file = ledger_path(c, &args.ledger.ledger, args.sandbox);
    // Pre-flight: every row that may be sent renders and validates before anything is sent.
    // Rows an existing ledger already settles are only keyed (a refused run creates no ledger).
    // (Sized for the file's rows: the pre-flight marks each key's first row in it.)
    let rows = loaded.estimated_rows();
    let early = if ledger_file.exists() {
        Ledger::open(&ledger_file)?.known(&c.name, rows)?
    } else {
        KnownMap::with_capacity(rows)
    };
    let s = scan(&loaded, early, Some(resend))?;
    if s.problem_count > 0 && !args.skip_invalid {
        eprintln!("{}", Problems { list: s.problems });
        if s.problem_count > KEEP_NOTE {
            eprintln!("({} problems in all)", s.problem_count);
        }
        eprintln!(
            "run refused to start: fix the rows above, or pass --skip-invalid to record them as skipped"
        );
        return Ok(Exit::CannotRun);
    }
    if !args.sandbox && !args.dry_run {
        let env = environment_problems(c);
        if !env.is_empty() {
            return Err(Problems { list: env }.into());
        }
    }
    if args.dry_run {
        return dry_run(&loaded, &args, resend, quiet).await;
    }
    if args.resend_unknown && !quiet {
        eprintln!(
            "note: --resend-unknown sends again to contacts whose earlier request may have arrived; they may get the message twice"
        );
    }

    let mut sandbox_server = None;
    let (url, token, channel_id) = if args.sandbox {
        // A rehearsal answers with a realistic delay, so it paces and looks like the real run.
        let cfg = sandbox::Config {
            channel: c.api.channel,
            latency: Duration::from_millis(40),
            jitter: Duration::from_millis(80),
            ..Default::default()
        };
        let sb = sandbox::start(cfg, "127.0.0.1:0".parse()?, CancellationToken::new()).await?;
        let url = reqwest::Url::parse(&sb.url())?;
        sandbox_server = Some(sb);
        // The rehearsal never carries the real credentials, even when they are set.
        (url, SANDBOX_SECRET.to_string(), SANDBOX_SECRET.to_string())
    } else {
        let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
        (
            c.api.url.clone(),
            or_empty(&c.api.token.value),
            or_empty(&c.api.channel_id.value),
        )
    };

    // Outside the send window nothing is sent; inside it, the run stops when it closes.
    let deadline = match &c.send.window {
        None => None,
        Some(w) => match w.state(jiff::Timestamp::now()) {
            window::State::Closed { opens } => {
                if let Some(sb) = sandbox_server {
                    sb.shutdown().await;
                }
                let when = opens
                    .map(|t| w.describe(t))
                    .unwrap_or_else(|| "never (no day is allowed)".into());
                eprintln!(
                    "outside the send window: nothing was sent; it next opens {when} — run the same command again then"
                );
                return Ok(Exit::WorkRemains);
            }
            window::State::Open { closes } => {
                let left = jiff::Timestamp::now().duration_until(closes);
                let left = Duration::try_from(left).unwrap_or_default();
                Some(std::time::Instant::now() + left)
            }
        },
    };
    let _lock = lock::acquire(&ledger_file, &c.name)?;
    let ledger = Ledger::open(&ledger_file)?;
    ledger.ensure_campaign(&c.name)?;
    let recovered = ledger.recover_sending(&c.name)?;
    if recovered > 0 && !quiet {
        eprintln!(
            "note: {recovered} contacts were being sent when an earlier run stopped; they are now `unknown` (see `cosmocast status`, or `run --resend-unknown`)"
        );
    }
    // Room for every row's key, so the table never grows (and doubles) mid-run.
    let known = ledger.known(&c.name, usize::try_from(s.rows).unwrap_or(0))?;
    let writer = Writer::start(&ledger_file, &c.name)?;
    let client = Client::new(
        url,
        (&token, &c.api.token.origin()),
        (&channel_id, &c.api.channel_id.origin()),
        c.api.timeout,
        c.send.concurrency,
    )?;

    let (tx, rx) = feed::channel();
    let reader = loaded.reader()?;
    // Phones that replied with an opt-out word (`listen`) are never messaged again.
    let audience = Arc::new(loaded.audience.with_opt_outs(ledger.opt_outs()?));
    let skip_invalid = args.skip_invalid;
    let feeder = tokio::task::spawn_blocking(move || {
        feed::feed(reader, audience, known, resend, skip_invalid, tx)
    });

    let stats = Arc::new(Stats::default());
    let cancel = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(cancel.clone(), quiet));
    let shown = CancellationToken::new();
    let mode = args.progress.resolve(quiet);
    let display = progress::start(mode, c.name.clone(), s.rows, stats.clone(), shown.clone());

    let settings = Settings {
        concurrency: c.send.concurrency,
        retries: c.send.retries,
        backoff: c.send.backoff,
        max_consecutive_failures: c.send.max_consecutive_failures,
        limit: args.limit,
        rate: c.send.rate,
        deadline,
        drain: c.api.timeout + Duration::from_secs(5),
    };
    // The dispatcher runs on the runtime's workers, beside the requests it starts: every
    // finished request wakes it, and a wake within the runtime costs less than one across
    // threads to this one.
    let report = tokio::spawn(send::dispatch(
        client,
        writer.handle(),
        rx,
        settings,
        stats.clone(),
        cancel.clone(),
    ))
    .await
    .map_err(|e| anyhow::anyhow!("the dispatcher stopped: {e}"))?;
    shown.cancel();
    let _ = display.await;
    signals.abort();
    let _ = feeder.await;
    writer.finish()?;
    if let Some(sb) = sandbox_server {
        sb.shutdown().await;
    }

    summarise(
        &ledger,
        &loaded,
        &report,
        &stats,
        &ledger_file,
        s.rows,
        args.json,
        quiet,
    )
}

/// How many problems `run` prints before it only counts them.
const KEEP_NOTE: u64 = 200;

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
                "\ncosmocast: stopping — letting requests in flight finish (signal again to quit at once)"
            );
        }
        cancel.cancel();
    }
}

async fn dry_run(
    loaded: &Loaded,
    args: &RunArgs,
    resend: Resend,
    quiet: bool,
) -> anyhow::Result<Exit> {
    let c = &loaded.campaign;
    let ledger_file = ledger_path(c, &args.ledger.ledger, args.sandbox);
    // Read what the ledger holds, if it exists; write nothing.
    let (known, opt_outs) = if ledger_file.exists() {
        let ledger = Ledger::open(&ledger_file)?;
        (
            ledger.known(&c.name, loaded.estimated_rows())?,
            ledger.opt_outs()?,
        )
    } else {
        Default::default()
    };
    let (tx, mut rx) = feed::channel();
    let reader = loaded.reader()?;
    let audience = Arc::new(loaded.audience.with_opt_outs(opt_outs));
    let skip_invalid = args.skip_invalid;
    let feeder = tokio::task::spawn_blocking(move || {
        feed::feed(reader, audience, known, resend, skip_invalid, tx)
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
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
            Work::Broken(msg) => return Err(Fatal::new(Exit::CannotRun, msg).into()),
            Work::Done(_) | Work::Record(_) | Work::Filtered => {}
        }
    }
    out.flush()?;
    drop(rx);
    let _ = feeder.await;
    if !quiet {
        eprintln!("dry run: {would} requests would be sent; nothing was sent or written");
    }
    Ok(Exit::Ok)
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    ledger: &Ledger,
    loaded: &Loaded,
    report: &Report,
    stats: &Stats,
    ledger_file: &std::path::Path,
    rows: u64,
    json_out: bool,
    quiet: bool,
) -> anyhow::Result<Exit> {
    let c = &loaded.campaign;
    let counts = ledger.counts(&c.name)?;
    let get = |s: Status| counts.get(&s).copied().unwrap_or(0);
    // (A second pass over the campaign's rows only when there is something to break down.)
    let skipped = if get(Status::Skipped) > 0 {
        ledger.skipped_by_reason(&c.name)?
    } else {
        Vec::new()
    };
    let this_run = stats.requests();
    let secs = report.elapsed.as_secs_f64().max(0.001);
    let exit = match &report.stop {
        Some(Stop::Unauthorized(_) | Stop::FailureStreak(_) | Stop::Broken(_)) => Exit::CannotRun,
        _ if report.work_remains => Exit::WorkRemains,
        _ if get(Status::Failed) + get(Status::Unknown) > 0 => Exit::Incomplete,
        _ => Exit::Ok,
    };
    if json_out {
        let stop = report.stop.as_ref().map(|s| format!("{s:?}"));
        println!(
            "{}",
            json!({
                "campaign": c.name,
                "rows": rows,
                "sent": get(Status::Sent),
                "queued": get(Status::Queued),
                "failed": get(Status::Failed),
                "unknown": get(Status::Unknown),
                "skipped": get(Status::Skipped),
                "skipped_by_reason": skipped.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "this_run": { "requests": this_run, "retries": stats.retries.load(std::sync::atomic::Ordering::Relaxed), "seconds": secs },
                "stopped": stop,
                "work_remains": report.work_remains,
                "exit_code": exit.code(),
                "ledger": ledger_file.display().to_string(),
            })
        );
    } else if !quiet {
        let skipped_detail = if skipped.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                skipped
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        println!(
            "{}: {rows} rows — sent {}, queued {}, failed {}, unknown {}, skipped {}{skipped_detail}",
            c.name,
            get(Status::Sent),
            get(Status::Queued),
            get(Status::Failed),
            get(Status::Unknown),
            get(Status::Skipped),
        );
        println!(
            "this run: {this_run} contacts in {secs:.1}s ({:.1}/s), {} retries; ledger {}",
            this_run as f64 / secs,
            stats.retries.load(std::sync::atomic::Ordering::Relaxed),
            ledger_file.display()
        );
    }
    // The exact command line, so that copying it resumes with the same flags.
    let again = std::env::args().collect::<Vec<_>>().join(" ");
    let status_cmd = if ledger_file == c.ledger {
        format!("cosmocast status {}", c.file.display())
    } else {
        format!(
            "cosmocast status {} --ledger {}",
            c.file.display(),
            ledger_file.display()
        )
    };
    match &report.stop {
        Some(Stop::Unauthorized(e)) => eprintln!(
            "error: the API refused the credentials ({e}); check {} and {} — nothing more was sent",
            c.api.token.origin(),
            c.api.channel_id.origin()
        ),
        Some(Stop::FailureStreak(n)) => eprintln!(
            "error: stopped after {n} contacts failed in a row (send.max_consecutive_failures); see `{status_cmd}` for the errors"
        ),
        Some(Stop::Broken(msg)) => eprintln!("error: the run stopped: {msg}"),
        Some(Stop::Interrupted) if !quiet => {
            eprintln!("interrupted: run `{again}` to continue where this run stopped")
        }
        Some(Stop::Limit) if !quiet => eprintln!("--limit reached: run `{again}` to send the rest"),
        Some(Stop::Window) if !quiet => {
            let next = c
                .send
                .window
                .as_ref()
                .and_then(|w| match w.state(jiff::Timestamp::now()) {
                    window::State::Closed { opens: Some(t) } => Some(w.describe(t)),
                    _ => None,
                });
            eprintln!(
                "the send window closed: run `{again}` when it opens again{}",
                next.map(|n| format!(" ({n})")).unwrap_or_default()
            )
        }
        _ => {}
    }
    if report.abandoned > 0 {
        eprintln!(
            "warning: {} requests were still in flight; they will show as `unknown`",
            report.abandoned
        );
    }
    if exit == Exit::Incomplete && !quiet {
        let mut next = Vec::new();
        if get(Status::Failed) > 0 {
            next.push("`run --retry-failed` sends the failed ones again");
        }
        if get(Status::Unknown) > 0 {
            next.push(
                "`run --resend-unknown` sends the unknown ones again (they may get the message twice)",
            );
        }
        eprintln!(
            "some contacts failed or are unknown: `{status_cmd}` shows why; {}",
            next.join("; ")
        );
    }
    Ok(exit)
}
