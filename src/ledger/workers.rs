//! Runs as workers: each renews a lease while it lives, and a claim names the run that made it.
//! One run holds a campaign alone (its lock exclusive), or several workers share it (`run
//! --join` on a PostgreSQL ledger, the lock shared). Either way a run whose lease ran out is
//! dead: its `sending` claims may have been sent, so they become `unknown`, and it is marked
//! killed. A run that holds the campaign alone knows every other run is dead.

use std::time::Duration;

use super::db::{Mode, Sql, args};
use super::{DbResult, Ledger, now};

/// How long a run's lease lasts unless renewed.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// How often a run renews its lease (and looks for dead workers).
pub(crate) const RENEW: Duration = Duration::from_secs(10);

/// What a run says when the ledger's database at `place` went away (`why`).
pub(crate) fn lost(place: &dyn std::fmt::Display, why: &str) -> String {
    format!(
        "lost the ledger's database {place} ({why}); nothing more was sent — contacts whose answer could not be recorded are `unknown` to the next run, which resumes once the database is back"
    )
}

/// How long before its lease runs out a joined worker stops sending: the others take a dead
/// worker's claims over once its lease has run out, at their next look.
const FENCE_MARGIN: Duration = Duration::from_secs(5);

/// A joined worker's hold on its claims, as its own clock sees it: its lease as last renewed,
/// less a margin. A worker frozen past it (SIGSTOP, a suspended machine) may find its claims
/// taken over, and sent again by another run: it must not send them itself.
#[derive(Debug)]
pub(crate) struct Lease {
    base: std::time::Instant,
    /// Milliseconds after `base` until which the claims are this worker's.
    until: std::sync::atomic::AtomicU64,
}

impl Lease {
    /// A lease taken now.
    pub(crate) fn new() -> Lease {
        let lease = Lease {
            base: std::time::Instant::now(),
            until: std::sync::atomic::AtomicU64::new(0),
        };
        lease.renewed();
        lease
    }

    /// The lease was renewed just now.
    pub(crate) fn renewed(&self) {
        let until = self.base.elapsed() + LEASE - FENCE_MARGIN;
        self.until.store(
            u64::try_from(until.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Whether the claims are still this worker's to send.
    pub(crate) fn holds(&self) -> bool {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        now < self.until.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// How late a renewal may be before the run stops counting among those sharing the rate.
const SHARE_GRACE: Duration = Duration::from_secs(5);

/// When a lease taken now ends.
pub(crate) fn lease_end() -> String {
    let at = jiff::Timestamp::now() + LEASE;
    super::format_utc(at.as_second(), at.subsec_millisecond().unsigned_abs())
}

/// When a dead run was last alive: the latest of its last renewal (its lease's end less a
/// lease), the last claim or outcome it wrote (`last_write`), and its start.
pub(crate) fn died_at(
    started_at: &str,
    lease_until: Option<&str>,
    last_write: Option<String>,
) -> String {
    let renewed = lease_until
        .and_then(super::parse_utc)
        .map(|until| super::format_utc(until - LEASE.as_secs() as i64, 0));
    [renewed, last_write]
        .into_iter()
        .flatten()
        .filter(|at| at.as_str() > started_at)
        .max()
        .unwrap_or_else(|| started_at.to_string())
}

/// The last claim or outcome a run wrote, as a column of a query over `runs r` (`?1` the
/// campaign), read only for a run with no end recorded.
pub(crate) const LAST_WRITE: &str = "CASE WHEN r.ended_at IS NULL THEN
    (SELECT MAX(c.updated_at) FROM contacts c WHERE c.campaign = ?1 AND c.run_id = r.id) END";

/// This machine's name, to tell workers apart in `runs`.
pub(crate) fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Ledger {
    /// Takes the claims of the campaign's dead runs for interrupted (`unknown`) and marks those
    /// runs killed; returns how many contacts it changed. `alone`: this run holds the campaign
    /// alone, so every unfinished run is dead; otherwise only those whose lease ran out.
    pub(crate) fn recover_dead(&self, campaign: &str, alone: bool) -> anyhow::Result<usize> {
        let ts = now();
        let tx = self.db.transaction(Mode::Write)?;
        // A dead run ended at its last sign of life: its last renewal (its lease's end less a
        // lease), the last claim or outcome it wrote, or its start; never later than it died.
        // Read before its claims are taken over below, which stamps them with now.
        let dead: Vec<(i64, String, Option<String>, Option<String>)> = tx.rows(
            &format!(
                "SELECT r.id, r.started_at, r.lease_until, {LAST_WRITE}
                 FROM runs r
                 WHERE r.campaign = ?1 AND r.ended_at IS NULL
                   AND (?3 = 1 OR r.lease_until IS NULL OR r.lease_until < ?2)"
            ),
            args![campaign, ts, alone],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let recovered = tx.execute(
            "UPDATE contacts SET status = 'unknown', reason = 'interrupted',
                error = 'the run stopped while this request may have been on its way', updated_at = ?2
             WHERE campaign = ?1 AND status = 'sending'
               AND (?3 = 1 OR run_id IS NULL OR run_id IN (
                    SELECT id FROM runs WHERE campaign = ?1 AND ended_at IS NULL
                    AND (lease_until IS NULL OR lease_until < ?2)))",
            args![campaign, ts, alone],
        )?;
        for (id, started_at, lease_until, last_write) in dead {
            tx.execute(
                "UPDATE runs SET ended_at = ?2, stopped = 'killed' WHERE id = ?1",
                args![id, died_at(&started_at, lease_until.as_deref(), last_write)],
            )?;
        }
        tx.commit()?;
        Ok(recovered as usize)
    }

    /// Renews the run's lease.
    pub(crate) fn renew_lease(&self, run_id: i64) -> DbResult<()> {
        self.db.execute(
            "UPDATE runs SET lease_until = ?2 WHERE id = ?1",
            args![run_id, lease_end()],
        )?;
        Ok(())
    }

    /// The campaign's `sending` contacts whose run is no longer alive (killed, its lease run
    /// out): the next run, or a joined worker's next look, records them `unknown`.
    pub(crate) fn orphaned_sending(&self, campaign: &str) -> DbResult<u64> {
        self.db.value(
            "SELECT COUNT(*) FROM contacts c WHERE c.campaign = ?1 AND c.status = 'sending'
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = c.run_id
                   AND r.ended_at IS NULL AND r.lease_until >= ?2)",
            args![campaign, super::now()],
        )
    }

    /// How many runs of the campaign share its rate now, this one included: those that renewed
    /// their lease on time. A live run's lease always ends at least `LEASE - RENEW` from now, so
    /// a run whose renewal is `SHARE_GRACE` overdue stops counting, well before its lease runs
    /// out: the survivors of a dead worker take up its share of the rate within 15 s, not 30.
    pub(crate) fn live_workers(&self, campaign: &str) -> DbResult<u64> {
        let renewed = jiff::Timestamp::now() + (LEASE - RENEW - SHARE_GRACE);
        let renewed = super::format_utc(renewed.as_second(), 0);
        self.db.value(
            "SELECT COUNT(*) FROM runs WHERE campaign = ?1 AND ended_at IS NULL AND lease_until >= ?2",
            args![campaign, renewed],
        )
    }
}
