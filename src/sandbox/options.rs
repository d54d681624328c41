//! The sandbox's command-line options: where it listens, how it answers, and the faults it can
//! inject. `cosmocast sandbox` parses them; `run --sandbox` builds a `Config` directly.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::api::Channel;

use crate::flags::parse_duration;

/// `cosmocast sandbox`'s options.
#[derive(Debug, Clone, Args)]
pub(crate) struct Options {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub config: Config,
}

/// How the sandbox answers: `cosmocast sandbox`'s options but the address. `run --sandbox` builds
/// one from `Default`, which is every option off (no reply, no fault, validation on).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct Config {
    /// Accept only this token (default: any non-empty token).
    #[arg(long, env = "COSMOCAST_SANDBOX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Channel kind to validate against: whatsapp, rcs and apple require mobile_phone.
    #[arg(long, value_enum, default_value = "other")]
    pub channel: Channel,
    /// Fixed latency added to every answer, e.g. 50ms.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    pub latency: std::time::Duration,
    /// Random extra latency up to this much, e.g. 20ms.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    pub jitter: std::time::Duration,
    /// Fraction of requests answered as queued ({"id": ...}) instead of sent.
    #[arg(long, default_value_t = 0.0)]
    pub queue_rate: f64,
    /// Skip validation and answer every request as sent (for benchmarks).
    #[arg(long)]
    pub no_validate: bool,
    /// Append one JSON line per accepted request to this file.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    // The base URL, as given; the path's secret is added from `SECRET_VAR` when the sandbox starts.
    /// Post simulated replies (text, button clicks, opt-outs) to the `cosmocast listen` at this
    /// base URL, e.g. http://127.0.0.1:8788; the path's secret comes from
    /// $COSMOCAST_WEBHOOK_SECRET, never from the command line.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Fraction of sent contacts that reply through --webhook.
    #[arg(long, default_value_t = 0.3, value_name = "P")]
    pub reply_rate: f64,
    #[command(flatten)]
    pub faults: Faults,
}

/// Injected faults, each a fraction of requests (0 to 1), for rehearsals and tests.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct Faults {
    /// Answer 429 with Retry-After (nothing is accepted).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fail_429: f64,
    /// The Retry-After a 429 carries, in seconds.
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    pub retry_after: u64,
    /// Answer 503 (nothing is accepted).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fail_503: f64,
    /// Refuse every contact's first attempt with 503.
    #[arg(long)]
    pub first_attempt_503: bool,
    /// Accept the request, then answer 500.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fail_500_after: f64,
    /// Accept the request, then hang for --hang-for before answering.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub hang_after: f64,
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub hang_for: std::time::Duration,
    /// Accept the request, then reset the connection without answering.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub reset_after: f64,
    /// Answer, then close the connection (`Connection: close`), as a load balancer may.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub close_after: f64,
}
