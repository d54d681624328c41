//! Progress while a run sends: an indicatif bar on a terminal, a plain timestamped line every
//! 10 s otherwise (cron, CI, a pipe), or nothing. All of it goes to stderr; stdout keeps the
//! summary. The total and the time left count only what this run will send, and the rate is
//! measured over the last few seconds, so a resumed run does not look nearly done.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::campaign::Rate;
use crate::ledger::Status;
use crate::printer::log;
use crate::send::Stats;
use crate::text::count;

pub(crate) use crate::printer::ProgressMode as Mode;

/// What the run is about to do, for the first line.
pub(crate) struct Plan {
    pub(crate) campaign: String,
    pub(crate) rows: u64,
    /// Contacts this run will send (within `--limit`).
    pub(crate) to_send: u64,
    /// Contacts the ledger already settles.
    pub(crate) settled: u64,
    /// The other rows not to send, by why (`opted out`, `excluded`, `invalid`…): only those
    /// that hold any are named.
    pub(crate) left_out: Vec<(&'static str, u64)>,
    pub(crate) rate: Option<Rate>,
    pub(crate) concurrency: usize,
    pub(crate) window: Option<String>,
    /// The ledger, as every command names it.
    pub(crate) ledger: String,
}

impl Plan {
    /// `welcome: 120 contacts to send, 123 rows, 3 already settled, concurrency 8, rate 20/s`
    fn describe(&self) -> String {
        let mut parts = vec![
            format!(
                "{}: {} to send",
                self.campaign,
                count(self.to_send, "contact")
            ),
            count(self.rows, "row"),
            format!("{} already settled", self.settled),
        ];
        parts.extend(
            self.left_out
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(why, n)| format!("{n} {why}")),
        );
        parts.push(format!("concurrency {}", self.concurrency));
        if let Some(r) = self.rate {
            let unit = match r.per.as_secs() {
                1 => "s",
                60 => "min",
                _ => "h",
            };
            parts.push(format!("rate {}/{unit}", r.count));
        }
        if let Some(w) = &self.window {
            parts.push(format!("window {w}"));
        }
        if !self.ledger.is_empty() {
            parts.push(format!("ledger {}", self.ledger));
        }
        parts.join(", ")
    }
}

/// How often a plain line is printed.
pub(crate) const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// Overrides `PLAIN_EVERY` in milliseconds; undocumented, so that tests see several lines in
/// a short run.
const PLAIN_EVERY_VAR: &str = "COSMOCAST_PROGRESS_EVERY_MS";

/// `PLAIN_EVERY`, unless the environment asks for another interval (at least 10 ms).
fn plain_every() -> Duration {
    std::env::var(PLAIN_EVERY_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(PLAIN_EVERY, |ms| Duration::from_millis(ms.max(10)))
}

/// The span the rate is measured over.
const RATE_SPAN: Duration = Duration::from_secs(10);

/// Requests settled at recent instants, to measure the rate over the last `RATE_SPAN`.
struct Recent {
    samples: VecDeque<(Instant, u64)>,
}

impl Recent {
    fn new() -> Recent {
        Recent {
            samples: VecDeque::from([(Instant::now(), 0)]),
        }
    }

    /// Notes the count now; returns requests per second over the span.
    fn rate(&mut self, done: u64) -> f64 {
        let now = Instant::now();
        self.samples.push_back((now, done));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_SPAN)
        {
            self.samples.pop_front();
        }
        let (t0, n0) = self.samples.front().copied().unwrap_or((now, done));
        let secs = now.duration_since(t0).as_secs_f64();
        if secs < 0.5 {
            return 0.0;
        }
        done.saturating_sub(n0) as f64 / secs
    }
}

/// `1h02m`, `3m20s`, `45s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Time left at `rate`, or `?` while there is no rate yet.
fn eta(left: u64, rate: f64) -> String {
    if left == 0 {
        "0s".into()
    } else if rate <= 0.0 {
        "?".into()
    } else {
        human(Duration::from_secs_f64(left as f64 / rate))
    }
}

/// The outcome counts worth showing, most important first.
fn counts(stats: &Stats) -> String {
    let mut parts = vec![format!("sent {}", stats.get(Status::Sent))];
    for (label, n) in [
        ("queued", stats.get(Status::Queued)),
        ("failed", stats.get(Status::Failed)),
        ("unknown", stats.get(Status::Unknown)),
        ("skipped", stats.get(Status::Skipped)),
        ("filtered", stats.filtered.load(Ordering::Relaxed)),
        ("retries", stats.retries.load(Ordering::Relaxed)),
    ] {
        if n > 0 {
            parts.push(format!("{label} {n}"));
        }
    }
    parts.join(" ")
}

/// RFC 3339, to the second, UTC.
fn stamp() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Starts the display; cancel `done` to stop it, then await the handle.
pub(crate) fn start(
    mode: Mode,
    plan: Plan,
    stats: Arc<Stats>,
    done: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match mode {
            Mode::None | Mode::Auto => done.cancelled().await,
            Mode::Bar => bar(plan, &stats, &done).await,
            Mode::Plain => plain(plan, &stats, &done).await,
        }
    })
}

/// The campaign's name cut to fit beside the bar.
fn short(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// Breaks `text` after its commas so that no line is wider than `width` (a terminal wraps
/// mid-word otherwise).
fn fit(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for (i, part) in text.split(", ").enumerate() {
        let piece = if i == 0 {
            part.to_string()
        } else {
            format!(", {part}")
        };
        if !line.is_empty() && line.chars().count() + piece.chars().count() > width {
            lines.push(std::mem::take(&mut line));
            line = format!("  {part}");
        } else {
            line.push_str(&piece);
        }
    }
    lines.push(line);
    lines.join("\n")
}

async fn bar(plan: Plan, stats: &Stats, done: &CancellationToken) {
    let width = console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, cols)| usize::from(cols));
    log!("{}", fit(&format!("cosmocast: {}", plan.describe()), width));
    let bar = ProgressBar::with_draw_target(Some(plan.to_send), ProgressDrawTarget::stderr());
    // `wide_msg` takes what the line has left and is cut to fit, so the line never wraps.
    bar.set_style(
        ProgressStyle::with_template("{prefix:.bold} [{bar:20.cyan/blue}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(short(&plan.campaign, 16));
    let mut recent = Recent::new();
    let draw = |recent: &mut Recent| {
        let n = stats.requests();
        bar.set_position(n.min(plan.to_send));
        let rate = recent.rate(n);
        let waiting = stats
            .asked_left()
            .map(|d| format!(" · waiting {}s (API asked)", d.as_secs().max(1)))
            .unwrap_or_default();
        bar.set_message(format!(
            "{rate:.0}/s {} left · {}{waiting}",
            eta(plan.to_send.saturating_sub(n), rate),
            counts(stats)
        ));
    };
    loop {
        draw(&mut recent);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = done.cancelled() => break,
        }
    }
    // The last frame shows the real counts, whether the run finished or was stopped.
    draw(&mut recent);
    bar.abandon();
}

async fn plain(plan: Plan, stats: &Stats, done: &CancellationToken) {
    let name = plan.campaign.clone();
    let total = plan.to_send;
    log!("{} cosmocast: {}", stamp(), plan.describe());
    let mut recent = Recent::new();
    let every = plain_every();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = done.cancelled() => break,
        }
        let n = stats.requests();
        let rate = recent.rate(n);
        let pct = if total > 0 {
            n as f64 * 100.0 / total as f64
        } else {
            100.0
        };
        let mut line = format!(
            "{} cosmocast: {name}: {n}/{total} ({pct:.1}%) — {} — {rate:.1}/s, {} left",
            stamp(),
            counts(stats),
            eta(total.saturating_sub(n), rate)
        );
        if let Some(left) = stats.asked_left() {
            line.push_str(&format!("; waiting {}s (API asked)", left.as_secs().max(1)));
        }
        if let Some((reason, times, error)) = stats.take_top_error() {
            line.push_str(&format!(
                "; most frequent error: {reason} ×{times}: {}",
                crate::text::printable(&crate::api::truncate(&error, 160))
            ));
        }
        log!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_left_read_well() {
        assert_eq!(eta(0, 0.0), "0s");
        assert_eq!(eta(10, 0.0), "?");
        assert_eq!(eta(100, 10.0), "10s");
        assert_eq!(eta(2000, 10.0), "3m20s");
        assert_eq!(eta(36_000, 10.0), "1h00m");
    }

    #[test]
    fn the_first_line_names_the_rows_left_out_and_why() {
        let plan = Plan {
            campaign: "late".into(),
            rows: 300,
            to_send: 296,
            settled: 0,
            left_out: vec![("excluded", 0), ("opted out", 4)],
            rate: None,
            concurrency: 4,
            window: None,
            ledger: String::new(),
        };
        assert_eq!(
            plan.describe(),
            "late: 296 contacts to send, 300 rows, 0 already settled, 4 opted out, concurrency 4"
        );
    }

    #[test]
    fn a_long_first_line_breaks_after_a_comma() {
        let text = "cosmocast: welcome-2026-12: 120 contacts to send, 121 rows, 0 already settled, concurrency 8, rate 20/s";
        let fitted = fit(text, 80);
        assert!(fitted.lines().all(|l| l.chars().count() <= 80), "{fitted}");
        assert_eq!(fitted.lines().count(), 2, "{fitted}");
        assert!(
            fitted
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("  concurrency 8"),
            "{fitted}"
        );
        assert_eq!(fit("short", 80), "short");
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(short("welcome", 16), "welcome");
        assert_eq!(
            short("renewal-2026-12-brazil-south", 16).chars().count(),
            16
        );
    }
}
