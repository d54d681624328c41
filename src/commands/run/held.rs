//! The ledger as a run holds it: the campaign's lock (on the file, or in the database), and
//! this run's record.
//!
//! The lock is taken as early as the ledger allows. An existing file or a database is locked
//! before the pre-flight reads it, so a second run of the campaign stops before it reads a thing;
//! a missing file can be locked only once it exists, and the run creates it only when it goes
//! ahead (a run that refuses to start creates nothing). Both go through `Claim`.

use crate::ledger::locate::Located;
use crate::ledger::lock::{self, RunLock};
use crate::ledger::{Ledger, NewRun};

use super::RunSettings;
use super::identity::Decision;

/// The campaign's lock on its ledger, once the ledger exists.
pub(super) struct Claim(Option<RunLock>);

impl Claim {
    /// Locks an existing ledger for the run (a dry run, which writes nothing, takes no lock);
    /// `--join` asks at once, so that on a ledger file it is refused before anything is made.
    pub(super) fn early(s: &RunSettings) -> anyhow::Result<Claim> {
        if s.dry_run || !s.located.place.exists() && !s.join {
            return Ok(Claim(None));
        }
        Ok(Claim(Some(take(s)?)))
    }

    /// The lock, taken now if the file did not exist when the run started.
    fn take(self, s: &RunSettings) -> anyhow::Result<RunLock> {
        match self.0 {
            Some(lock) => Ok(lock),
            None => take(s),
        }
    }
}

/// Takes the campaign's lock, naming the holder if another run has it.
fn take(s: &RunSettings) -> anyhow::Result<RunLock> {
    lock::take_campaign(&s.located.place, &s.plan.campaign.name, s.join)
}

/// The ledger, held for the run: the campaign's lock on its file (watched), and this run's
/// record. Fields drop in order: the connection closes before the lock and the file are let go.
pub(super) struct Held {
    pub(super) ledger: Ledger,
    pub(super) located: Located,
    /// Contacts an earlier, killed run left `sending`, recorded `unknown` by this one.
    pub(super) recovered: usize,
    /// The fingerprint of the channel id, whose daily budget the claims spend.
    pub(super) channel: String,
    pub(super) run_id: i64,
    pub(super) lock: RunLock,
}

impl Held {
    /// Opens the ledger to write (a new one is created, then locked), records the campaign's
    /// identity as the pre-flight decided, and starts this run's record.
    pub(super) fn open(s: &RunSettings, claim: Claim, identity: Decision) -> anyhow::Result<Held> {
        let ledger = Ledger::open_write(&s.located.place)?;
        let lock = claim.take(s)?;
        let name = &s.plan.campaign.name;
        ledger.ensure_campaign(name)?;
        if let Decision::Record(id, note) = identity {
            ledger.record_identity(name, &id)?;
            if let Some(note) = note {
                s.printer.info(format_args!("note: {note}"));
            }
        }
        let channel = crate::plan::channel_of(&s.plan.campaign, s.located.sandbox);
        ledger.declare_limit(&channel, name, s.plan.campaign.api.daily_limit)?;
        let (run_id, recovered) = begin(s, &ledger, &channel, lock.joined())?;
        Ok(Held {
            ledger,
            located: s.located.clone(),
            recovered,
            channel,
            run_id,
            lock,
        })
    }
}

/// Records `unknown` what dead runs left `sending` and closes them (alone on the campaign,
/// every unfinished run is dead; joined, those whose lease ran out), then starts this run: the
/// run id, and how many it recovered.
fn begin(
    s: &RunSettings,
    ledger: &Ledger,
    channel: &str,
    joined: bool,
) -> anyhow::Result<(i64, usize)> {
    let c = &s.plan.campaign;
    // These count as this run's: it is the one that found them and tells of them.
    let recovered = ledger.recover_dead(&c.name, !joined)?;
    if let Some(note) = crate::plan::other_file_note(c, ledger) {
        s.printer.info(format_args!("note: {note}"));
    }
    let run_id = ledger.start_run(&NewRun {
        campaign: &c.name,
        file: &crate::plan::campaign_file(c),
        messages: &crate::plan::messages_fingerprint(c),
        channel,
        joined,
    })?;
    if recovered > 0 {
        s.printer.info(format_args!(
            "note: {} being sent when an earlier run stopped {} now `unknown` (see `cosmocast status`, or `run --resend-unknown`)",
            crate::text::count(recovered as u64, "contact"),
            if recovered == 1 { "is" } else { "are" }
        ));
    }
    Ok((run_id, recovered))
}
