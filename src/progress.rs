//! Progress while a run sends: an indicatif bar on a terminal, a plain line every 10 s otherwise
//! (cron, CI, a pipe), or nothing. All of it goes to stderr; stdout keeps the summary.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::ledger::Status;
use crate::send::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Auto,
    Bar,
    Plain,
    None,
}

impl Mode {
    /// `auto` is a bar on a terminal and plain lines elsewhere.
    pub fn resolve(self, quiet: bool) -> Mode {
        match self {
            _ if quiet => Mode::None,
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Bar,
            Mode::Auto => Mode::Plain,
            m => m,
        }
    }
}

/// How often a plain line is printed.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

fn counts(stats: &Stats) -> String {
    let mut s = format!(
        "sent {} queued {} failed {} unknown {} skipped {}",
        stats.get(Status::Sent),
        stats.get(Status::Queued),
        stats.get(Status::Failed),
        stats.get(Status::Unknown),
        stats.get(Status::Skipped),
    );
    let already = stats.already.load(std::sync::atomic::Ordering::Relaxed);
    if already > 0 {
        s.push_str(&format!(" done-before {already}"));
    }
    let filtered = stats.filtered.load(std::sync::atomic::Ordering::Relaxed);
    if filtered > 0 {
        s.push_str(&format!(" filtered {filtered}"));
    }
    s
}

/// Starts the display; cancel `done` to stop it, then await the handle.
pub fn start(
    mode: Mode,
    campaign: String,
    total: u64,
    stats: Arc<Stats>,
    done: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match mode {
            Mode::None | Mode::Auto => done.cancelled().await,
            Mode::Bar => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} eta {eta:<4} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(campaign);
                let start = Instant::now();
                let draw = || {
                    bar.set_position(stats.done());
                    let rate = stats.requests() as f64 / start.elapsed().as_secs_f64().max(0.1);
                    bar.set_message(format!("{} — {rate:.0}/s", counts(&stats)));
                };
                loop {
                    draw();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = done.cancelled() => break,
                    }
                }
                // The last frame shows the final counts, not those of the last tick.
                draw();
                bar.finish();
            }
            Mode::Plain => {
                let start = Instant::now();
                let mut last = 0u64;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(PLAIN_EVERY) => {}
                        _ = done.cancelled() => break,
                    }
                    let n = stats.done();
                    let rate = (n - last.min(n)) as f64 / PLAIN_EVERY.as_secs_f64();
                    last = n;
                    let pct = if total > 0 {
                        n as f64 * 100.0 / total as f64
                    } else {
                        100.0
                    };
                    eprintln!(
                        "cosmocast: {campaign}: {n}/{total} ({pct:.1}%) {} — {rate:.0}/s, {}s elapsed",
                        counts(&stats),
                        start.elapsed().as_secs()
                    );
                }
            }
        }
    })
}
