//! One file per subcommand, plus what they share: loading a campaign with its contact file and
//! templates, and the pre-flight scan that renders every row.

pub mod check;
pub mod export;
pub mod listen;
pub mod preview;
pub mod replies;
pub mod run;
pub mod sandbox;
pub mod schema;
pub mod status;
pub mod test;

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audience::{Audience, Verdict, load_exclusions};
use crate::campaign::{self, Campaign};
use crate::contacts::ContactReader;
use crate::error::{Problem, Problems};
use crate::ledger::KnownMap;
use crate::render::Renderer;
use crate::send::feed::Resend;

/// A campaign ready to render: checked file, compiled templates, exclusion lists.
pub struct Loaded {
    pub campaign: Campaign,
    pub audience: Arc<Audience>,
}

fn open_contacts(c: &Campaign) -> Result<ContactReader, Problems> {
    if !c.contacts.file.is_file() {
        // Point at the campaign line that names the file: that is what the user must fix.
        let p = c
            .problem_at(
                "contacts.file",
                format!(
                    "the contact file {} does not exist",
                    c.contacts.file.display()
                ),
            )
            .hint("fix `contacts.file`; paths are relative to the campaign file's folder");
        return Err(Problems { list: vec![p] });
    }
    ContactReader::open(&c.contacts.file, c.contacts.delimiter, c.contacts.encoding)
        .map_err(|p| Problems { list: vec![p] })
}

impl Loaded {
    /// Opens the contact file afresh (each pass streams it from the start).
    pub fn reader(&self) -> Result<ContactReader, Problems> {
        open_contacts(&self.campaign)
    }

    /// About how many rows the contact file holds (a little over, to size tables once).
    pub fn estimated_rows(&self) -> usize {
        crate::contacts::estimate_rows(&self.campaign.contacts.file) * 21 / 20
    }
}

/// Loads the campaign, opens the CSV, compiles every template and reads the exclusion lists.
pub fn load(path: &Path) -> Result<Loaded, Problems> {
    let campaign = campaign::load(path)?;
    let reader = open_contacts(&campaign)?;
    let renderer = Renderer::new(&campaign, reader.headers.clone());
    let exclude = load_exclusions(&campaign);
    let (renderer, exclude) = match (renderer, exclude) {
        (Ok(r), Ok(e)) => (r, e),
        (r, e) => {
            let mut list = r.err().unwrap_or_default();
            list.extend(e.err().unwrap_or_default());
            return Err(Problems { list });
        }
    };
    let audience = Arc::new(Audience::new(Arc::new(renderer), exclude));
    Ok(Loaded { campaign, audience })
}

/// The ledger a sandbox rehearsal uses, beside the campaign file.
pub const SANDBOX_LEDGER: &str = "cosmocast.sandbox.sqlite";

/// The ledger a command uses: `--ledger`, else the sandbox's with `--sandbox`, else the campaign's.
pub fn ledger_path(campaign: &Campaign, flag: &Option<PathBuf>, sandbox: bool) -> PathBuf {
    match flag {
        Some(p) => p.clone(),
        None if sandbox => campaign.dir.join(SANDBOX_LEDGER),
        None => campaign.ledger.clone(),
    }
}

/// What the pre-flight scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub rows: u64,
    pub contacts: u64,
    pub duplicates: u64,
    pub filtered: u64,
    pub excluded: u64,
    pub invalid_rows: u64,
    /// Kept problems (the first ones); `problem_count` has them all.
    pub problems: Vec<Problem>,
    pub problem_count: u64,
}

/// How many problems a scan keeps; the rest are only counted.
const KEEP: usize = 200;

/// Reads and renders every row once, as `check` and the pre-flight of `run` do. With `resend`
/// (for `run`; `known` then holds the ledger's keys), rows the ledger already settles are only
/// keyed, not rendered: they are not sent again, so their requests need no validation. `known`
/// also records the first row of each key, to find duplicates.
pub fn scan(
    loaded: &Loaded,
    mut known: KnownMap,
    resend: Option<Resend>,
) -> Result<Scan, Problems> {
    let mut reader = loaded.reader()?;
    let csv = reader.path().to_path_buf();
    let mut scan = Scan::default();
    let keep = |scan: &mut Scan, p: Problem| {
        scan.problem_count += 1;
        if scan.problems.len() < KEEP {
            scan.problems.push(p);
        }
    };
    for row in reader.by_ref() {
        scan.rows += 1;
        let row = match row {
            Ok(row) => row,
            Err(p) => {
                scan.invalid_rows += 1;
                keep(&mut scan, p);
                continue;
            }
        };
        if let Some(resend) = resend
            && let Some(key) = loaded.audience.settled_key(&row, &csv, &known, resend)
        {
            match known.first_sighting(&key, row.number) {
                Ok(_) => scan.contacts += 1,
                Err(_) => scan.duplicates += 1,
            }
            continue;
        }
        match loaded.audience.classify(&row, &csv) {
            Verdict::Filtered => scan.filtered += 1,
            Verdict::Invalid(e) => {
                scan.invalid_rows += 1;
                for p in e.problems {
                    keep(&mut scan, p);
                }
            }
            Verdict::Excluded(r) | Verdict::OptedOut(r) | Verdict::Ready(r)
                if known.first_sighting(&r.key, row.number).is_err() =>
            {
                scan.duplicates += 1;
            }
            Verdict::Excluded(_) | Verdict::OptedOut(_) => scan.excluded += 1,
            Verdict::Ready(_) => scan.contacts += 1,
        }
    }
    Ok(scan)
}

/// Problems about the environment a real send needs (token, channel id).
pub fn environment_problems(c: &Campaign) -> Vec<Problem> {
    let mut out = Vec::new();
    for (key, v) in [
        ("api.token", &c.api.token),
        ("api.channel_id", &c.api.channel_id),
    ] {
        if v.value.is_none()
            && let Some(var) = &v.var
        {
            out.push(c.problem_at(key, format!("the environment variable {var} is not set")).hint(format!(
                "export {var}=... before running (the value is in the CosmoBots console: Integrations → API)"
            )));
        }
    }
    out
}

/// Where `export` and `replies` write: the file given with `-o`, else stdout; buffered.
pub fn output(
    path: &Option<PathBuf>,
) -> anyhow::Result<std::io::BufWriter<Box<dyn std::io::Write>>> {
    let sink: Box<dyn std::io::Write> = match path {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    Ok(std::io::BufWriter::new(sink))
}

/// Waits for SIGINT or SIGTERM (the servers stop on either).
pub async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
