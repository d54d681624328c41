//! The pre-flight, built once and consumed by every command: the checked campaign, its contact
//! file (opened to read the header, and its size and time noted), the compiled templates and
//! the exclusion lists; and the scan that decides every row before anything is sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audience::{Audience, Decider, Decision, SkipReason, load_exclusions};
use crate::campaign::{self, Campaign};
use crate::contacts::{ContactReader, Snapshot};
use crate::error::{Problem, Problems};
use crate::ledger::Status;
use crate::render::Renderer;

/// The ledger a sandbox rehearsal uses, beside the campaign file.
pub(crate) const SANDBOX_LEDGER: &str = "cosmocast.sandbox.sqlite";

/// A campaign ready to render: checked file, compiled templates, exclusion lists.
pub(crate) struct Plan {
    pub(crate) campaign: Campaign,
    pub(crate) audience: Arc<Audience>,
    /// The contact file as it was when the plan was made.
    pub(crate) snapshot: Snapshot,
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

impl Plan {
    /// Loads the campaign, opens the CSV, compiles every template and reads the exclusion lists.
    pub(crate) fn load(path: &Path) -> Result<Plan, Problems> {
        let campaign = campaign::load(path)?;
        let snapshot = Snapshot::take(&campaign.contacts.file).ok();
        let reader = open_contacts(&campaign)?;
        let snapshot = match snapshot {
            Some(s) => s,
            None => Snapshot::take(reader.path()).map_err(|e| Problems {
                list: vec![Problem::new(
                    reader.path(),
                    None,
                    format!("cannot read the contact file: {e}"),
                )],
            })?,
        };
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
        Ok(Plan {
            campaign,
            audience,
            snapshot,
        })
    }

    /// Opens the contact file afresh (each pass streams it from the start).
    pub(crate) fn reader(&self) -> Result<ContactReader, Problems> {
        open_contacts(&self.campaign)
    }

    /// About how many rows the contact file holds (a little over, to size tables once).
    pub(crate) fn estimated_rows(&self) -> usize {
        crate::contacts::estimate_rows(&self.campaign.contacts.file) * 21 / 20
    }

    /// Reads and decides every row once, as `check`, the pre-flight of `run` and `status` do.
    pub(crate) fn scan(&self, mut decider: Decider) -> Result<Scan, Problems> {
        let mut reader = self.reader()?;
        let csv = reader.path().to_path_buf();
        let mut scan = Scan::default();
        while let Some(row) = reader.next() {
            scan.rows += 1;
            let row = match row {
                Ok(row) => row,
                Err(p) => {
                    scan.invalid += 1;
                    scan.keep(p);
                    if reader.failed() {
                        break;
                    }
                    continue;
                }
            };
            match decider.decide(&row, &csv) {
                Decision::Filtered => scan.filtered += 1,
                Decision::Invalid { problems, .. } => {
                    scan.invalid += 1;
                    for p in problems {
                        scan.keep(p);
                    }
                }
                Decision::Duplicate { .. } => scan.duplicates += 1,
                Decision::Skip { reason, .. } => match reason {
                    SkipReason::Excluded => scan.excluded += 1,
                    SkipReason::OptedOut => scan.opted_out += 1,
                },
                Decision::Settled => scan.settled += 1,
                Decision::Send { prior, .. } => match prior {
                    None => scan.to_send += 1,
                    Some(Status::Failed) => scan.failed_again += 1,
                    Some(_) => scan.unknown_again += 1,
                },
            }
        }
        Ok(scan)
    }
}

/// The ledger a command uses: `--ledger`, else the sandbox's with `--sandbox`, else the campaign's.
pub(crate) fn ledger_path(campaign: &Campaign, flag: &Option<PathBuf>, sandbox: bool) -> PathBuf {
    match flag {
        Some(p) => p.clone(),
        None if sandbox => campaign.dir.join(SANDBOX_LEDGER),
        None => campaign.ledger.clone(),
    }
}

/// Every row accounted for, as the pre-flight found them.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct Scan {
    pub(crate) rows: u64,
    /// Left out by `contacts.where`.
    pub(crate) filtered: u64,
    pub(crate) excluded: u64,
    pub(crate) opted_out: u64,
    /// Rows whose key came earlier in the file.
    pub(crate) duplicates: u64,
    /// Rows that cannot be sent.
    pub(crate) invalid: u64,
    /// Contacts the ledger already settles.
    pub(crate) settled: u64,
    /// Contacts never sent, to send now.
    pub(crate) to_send: u64,
    /// Failed contacts sent again (`--retry-failed`).
    pub(crate) failed_again: u64,
    /// Unknown contacts sent again (`--resend-unknown`).
    pub(crate) unknown_again: u64,
    /// Kept problems (the first ones); `problem_count` has them all.
    #[serde(skip)]
    pub(crate) problems: Vec<Problem>,
    pub(crate) problem_count: u64,
}

/// How many problems a scan keeps; the rest are only counted.
const KEEP: usize = 200;

impl Scan {
    fn keep(&mut self, p: Problem) {
        self.problem_count += 1;
        if self.problems.len() < KEEP {
            self.problems.push(p);
        }
    }

    /// Contacts this run would send a request to.
    pub(crate) fn sends(&self) -> u64 {
        self.to_send + self.failed_again + self.unknown_again
    }
}
