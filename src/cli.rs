//! The command line (clap types only); the README's Commands section documents each command.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::flags::parse_duration;
use crate::printer::ProgressMode;

#[derive(Debug, Parser)]
#[command(
    name = "cosmocast",
    version,
    about = "Personalised messaging campaigns through the CosmoBots Send Message API, resumable at any point."
)]
pub struct Cli {
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Csv,
    Jsonl,
}

/// The ledger's help, shared by every command that uses one.
const LEDGER_HELP: &str = "The ledger: a file, or a PostgreSQL database (postgres://user@host:port/db) [default: $COSMOCAST_LEDGER, else $XDG_DATA_HOME/cosmocast/cosmocast.sqlite]";

#[derive(Debug, Clone, Args)]
pub(crate) struct LedgerArg {
    #[arg(long, value_name = "PATH", help = LEDGER_HELP)]
    pub ledger: Option<PathBuf>,
}

/// The ledger a reading command uses.
#[derive(Debug, Args)]
pub(crate) struct LedgerChoice {
    #[arg(long, value_name = "PATH", help = LEDGER_HELP)]
    pub ledger: Option<PathBuf>,
    /// Read the sandbox rehearsal's ledger (cosmocast.sandbox.sqlite beside the ledger).
    #[arg(long)]
    pub sandbox: bool,
}

/// Where and how `export` and `replies` write.
#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Read everything, render every row, validate every request; send nothing.
    Check(CheckArgs),
    /// Show rows' messages as the customer will read them (default: the first 3 rows).
    Preview(PreviewArgs),
    /// Send what the ledger does not already hold; resumable at any point.
    Run(RunArgs),
    /// Counts by state, recent errors, and what the next run would do.
    Status(StatusArgs),
    /// One self-contained HTML report: funnel, sends over time, failures, replies, the message.
    Report(ReportArgs),
    /// One line per contact: key, row, state, ids, error.
    Export(ExportArgs),
    /// Send row N's messages to one test phone; recorded apart, never the contact's send.
    Test(TestArgs),
    /// Receive CosmoBots webhook posts (replies, clicks) at /webhook/<$COSMOCAST_WEBHOOK_SECRET>.
    Listen(ListenArgs),
    /// The replies received for a campaign.
    Replies(RepliesArgs),
    /// The ledger's suppression list: phones that no campaign messages.
    Optouts(OptoutsArgs),
    /// A local stand-in for the CosmoBots send endpoint.
    Sandbox(crate::sandbox::options::Options),
    /// Print the campaign file's JSON Schema, for editors (a copy is campaign.schema.json).
    Schema,
}

/// `cosmocast check`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    pub campaign: PathBuf,
    #[command(flatten)]
    pub ledger: LedgerChoice,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cosmocast preview`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct PreviewArgs {
    pub campaign: PathBuf,
    /// Row number (1 = the first data row); repeat for several.
    #[arg(long = "row", value_name = "N")]
    pub rows: Vec<u64>,
    /// Print the bare request bodies as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Write the rows as chat bubbles to this HTML file (self-contained, loads nothing).
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    pub html: Option<PathBuf>,
}

/// `cosmocast status`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    pub campaign: PathBuf,
    #[command(flatten)]
    pub ledger: LedgerChoice,
    #[arg(long)]
    pub json: bool,
}

/// `cosmocast report`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    pub campaign: PathBuf,
    #[command(flatten)]
    pub ledger: LedgerChoice,
    /// The report file (default: <campaign name>.report.html beside the campaign file).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `cosmocast export`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    pub campaign: PathBuf,
    #[command(flatten)]
    pub ledger: LedgerChoice,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `cosmocast test`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    pub campaign: PathBuf,
    /// The test phone, with country code.
    #[arg(long, value_name = "PHONE")]
    pub to: String,
    /// Row number (1 = the first data row).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub row: u64,
    #[command(flatten)]
    pub ledger: LedgerArg,
    /// Send to the built-in sandbox instead of the API.
    #[arg(long)]
    pub sandbox: bool,
}

/// `cosmocast listen`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    #[command(flatten)]
    pub addr: ListenOn,
    #[command(flatten)]
    pub ledger: ListenLedger,
    /// Replies that are exactly one of these words opt the phone out (comma-separated;
    /// default: pt/es/en phrases such as PARE, BAJA, STOP; case, accents, punctuation ignored).
    #[arg(long, value_delimiter = ',', value_name = "WORDS")]
    pub opt_out_words: Option<Vec<String>>,
    /// A reply is tied to a campaign that messaged the contact at most this long ago.
    #[arg(long, value_parser = parse_duration, default_value = "7d")]
    pub horizon: std::time::Duration,
    #[command(flatten)]
    pub country: CountryArg,
}

/// `cosmocast replies`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct RepliesArgs {
    pub campaign: PathBuf,
    #[command(flatten)]
    pub ledger: LedgerChoice,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Where `listen` listens, and how much it lets clients hold.
#[derive(Debug, Clone, Args)]
pub(crate) struct ListenOn {
    #[arg(long, default_value = "127.0.0.1:8788")]
    pub addr: SocketAddr,
    /// Requests served at once; more wait for a slot. Up to four times as many connections may
    /// be still sending their request head; beyond that, new ones are closed at once.
    #[arg(long, value_name = "N", default_value_t = crate::webhook::MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Connections one address (an IPv6 /64) may keep open for the whole header timeout before
    /// sending a complete request head; its others must send theirs within 1 s or are closed.
    /// Raise it behind a proxy that forwards connections before their head (a TLS proxy that
    /// reads the head first needs no change).
    #[arg(long, value_name = "N", default_value_t = crate::webhook::gate::MAX_PENDING_PER_ADDR,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_pending_per_addr: u32,
    /// How long a client may take to send its request head, or leave its body stalled (tests
    /// use a short one).
    #[arg(long, hide = true, value_parser = parse_duration)]
    pub read_timeout: Option<std::time::Duration>,
}

/// The ledger `listen` stores replies in.
#[derive(Debug, Clone, Args)]
pub(crate) struct ListenLedger {
    #[arg(long = "ledger", value_name = "PATH", help = LEDGER_HELP)]
    pub path: Option<PathBuf>,
    /// Start a new ledger at --ledger (or $COSMOCAST_LEDGER) if there is none (its folder must
    /// exist); the default ledger needs no --create.
    #[arg(long)]
    pub create: bool,
}

/// `cosmocast optouts`: the suppression list every campaign of the ledger skips.
#[derive(Debug, Args)]
pub(crate) struct OptoutsArgs {
    #[arg(long, value_name = "PATH", help = LEDGER_HELP, global = true)]
    pub ledger: Option<PathBuf>,
    /// The sandbox rehearsal's list (in cosmocast.sandbox.sqlite beside the ledger), which
    /// `run --sandbox` and `check --sandbox` read.
    #[arg(long, global = true)]
    pub sandbox: bool,
    #[command(subcommand)]
    pub action: OptoutsAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OptoutsAction {
    /// The phones on the list (and, with --json, the ones taken off it).
    List(OptoutsListArgs),
    /// Put phones on the list by hand (after a phone call, say).
    Add(OptoutsAddArgs),
    /// Take phones off the list (a person who opted back in); kept in the history.
    Remove(OptoutsRemoveArgs),
    /// Import a list (a CRM export, another provider's list) from one column of a CSV file.
    Import(OptoutsImportArgs),
}

/// `cosmocast optouts list`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct OptoutsListArgs {
    /// One JSON document: the list and the history of removals.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV: phone, source, added_at, campaign, note.
    #[arg(long)]
    pub csv: bool,
}

/// `cosmocast optouts add`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct OptoutsAddArgs {
    /// Phones, written any way (`+55 11 98765-4321`, or national with --country).
    #[arg(required = true, value_name = "PHONE")]
    pub phones: Vec<String>,
    #[command(flatten)]
    pub country: CountryArg,
    /// Why, kept with the entry.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// `cosmocast optouts remove`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct OptoutsRemoveArgs {
    #[arg(required = true, value_name = "PHONE")]
    pub phones: Vec<String>,
    #[command(flatten)]
    pub country: CountryArg,
    /// Why, kept in the history.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// `cosmocast optouts import`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct OptoutsImportArgs {
    pub file: PathBuf,
    /// The header of the column that holds the phones.
    #[arg(long, value_name = "NAME")]
    pub column: String,
    #[command(flatten)]
    pub country: CountryArg,
    /// The CSV's delimiter: `,`, `;`, `tab` or `|` [default: detected]
    #[arg(long, value_name = "C")]
    pub delimiter: Option<String>,
    /// The file's encoding, e.g. windows-1252 [default: utf-8]
    #[arg(long, value_name = "E")]
    pub encoding: Option<String>,
    /// Kept with every entry imported.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct CountryArg {
    /// The region of phones written without a country code (ISO 3166-1 alpha-2, e.g. BR).
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
}

impl CountryArg {
    /// The region `--country` names, if any; one libphonenumber does not know is refused.
    pub(crate) fn region(&self) -> Result<Option<crate::phone::Region>, crate::error::Fatal> {
        match &self.country {
            None => Ok(None),
            Some(code) => crate::phone::Region::parse(code).map(Some).ok_or_else(|| {
                crate::error::Fatal::new(
                    crate::error::Exit::Usage,
                    format!("--country {code:?} is not a region libphonenumber knows: give an ISO 3166-1 alpha-2 code such as BR, PT or US"),
                )
            }),
        }
    }
}

/// `cosmocast run`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    pub campaign: PathBuf,
    #[command(flatten)]
    pub ledger: LedgerArg,
    /// Also send the contacts recorded as failed.
    #[arg(long)]
    pub retry_failed: bool,
    /// Also send the contacts recorded as unknown (they may receive the message twice).
    #[arg(long)]
    pub resend_unknown: bool,
    /// Send at most N contacts in this run.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Render and print the requests as JSON lines; send nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run against the built-in sandbox API, with its own ledger (cosmocast.sandbox.sqlite
    /// beside the ledger).
    #[arg(long)]
    pub sandbox: bool,
    /// Send the valid rows and leave the invalid ones out (counted `invalid`, never recorded:
    /// the next run judges them again) instead of refusing to start.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Record a changed key template or API endpoint as the campaign's new identity and go on
    /// (without it such a run refuses to start).
    #[arg(long)]
    pub accept_change: bool,
    /// auto: a bar on a terminal, a plain line every 10 s otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Start the campaign, or join the workers already sending it, on any host: the workers
    /// split the contacts and share send.rate (needs a PostgreSQL ledger).
    #[arg(long, conflicts_with = "dry_run")]
    pub join: bool,
}
