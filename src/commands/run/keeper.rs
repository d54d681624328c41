//! What a run keeps up while it sends, on a connection of its own: its lease (renewed every
//! `RENEW`) and, for a joined worker, the claims of workers that died (taken for `unknown` once
//! their lease ran out) and how many workers share the campaign's rate (counted every `TICK`). A
//! ledger database that goes away stops the run, naming it: a joined worker notices within
//! `TICK`, a run alone at its next renewal (or its writer's next commit, sooner while it sends).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ledger::db::DbError;
use crate::ledger::workers::{Lease, RENEW};
use crate::ledger::{Ledger, Place};

/// How often the workers sharing the rate are counted: a worker that joins is seen by the
/// others within this time, the only moment they may pass the rate together.
const TICK: Duration = Duration::from_millis(200);

/// The run this keeper keeps.
pub(super) struct Run<'a> {
    pub(super) place: &'a Place,
    pub(super) campaign: &'a str,
    pub(super) id: i64,
    /// One of several workers (`run --join`): only then are there others to count or to take
    /// over from, so a run alone only renews its lease.
    pub(super) joined: bool,
    /// A joined worker's own view of its lease, renewed with the ledger's (its senders stop
    /// once it runs out).
    pub(super) lease: Option<Arc<Lease>>,
}

pub(super) struct Keeper {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Option<String>>,
    /// Contacts of workers that died, taken for `unknown` by this one.
    taken_over: Arc<AtomicUsize>,
}

impl Keeper {
    /// Starts keeping `run`; `workers` is kept to the number of live workers, and `cancel` is
    /// cancelled if the ledger's database goes away.
    pub(super) fn start(
        run: &Run<'_>,
        workers: Arc<AtomicU32>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Keeper> {
        let ledger = Ledger::open_write(run.place)?;
        if run.joined {
            workers.store(count(&ledger, run.campaign)?, Ordering::Relaxed);
        }
        let (stop, stopped) = mpsc::channel();
        let (campaign, id, joined) = (run.campaign.to_string(), run.id, run.joined);
        let lease = run.lease.clone();
        let place = run.place.to_string();
        let taken_over = Arc::new(AtomicUsize::new(0));
        let tally = taken_over.clone();
        let thread = std::thread::Builder::new()
            .name("run-keeper".into())
            .spawn(move || {
                let workers = joined.then_some((workers.as_ref(), tally.as_ref()));
                let lost = keep(
                    &ledger,
                    (&campaign, id),
                    workers,
                    lease.as_deref(),
                    &stopped,
                )?;
                cancel.cancel();
                Some(crate::ledger::workers::lost(&place, &lost))
            })?;
        Ok(Keeper {
            stop,
            thread,
            taken_over,
        })
    }

    /// Stops keeping; returns why the database was lost, if it was, and how many contacts of
    /// workers that died this one recorded `unknown` (they count as this run's: exit 3).
    pub(super) fn finish(self) -> (Option<String>, usize) {
        let _ = self.stop.send(());
        let lost = self.thread.join().ok().flatten();
        (lost, self.taken_over.load(Ordering::Relaxed))
    }
}

fn count(ledger: &Ledger, campaign: &str) -> Result<u32, DbError> {
    Ok(u32::try_from(ledger.live_workers(campaign)?)
        .unwrap_or(u32::MAX)
        .max(1))
}

/// The keeper's loop; returns the error that lost the database, or `None` once told to stop.
/// `workers`: the count a joined worker keeps (counted every `TICK`, dead workers' claims taken
/// over at each renewal, and tallied); a run alone has none, and wakes only to renew its lease.
fn keep(
    ledger: &Ledger,
    run: (&str, i64),
    workers: Option<(&AtomicU32, &AtomicUsize)>,
    lease: Option<&Lease>,
    stopped: &mpsc::Receiver<()>,
) -> Option<String> {
    let (campaign, id) = run;
    let tick_len = if workers.is_some() { TICK } else { RENEW };
    let renew_every = u64::try_from(RENEW.as_millis() / tick_len.as_millis())
        .unwrap_or(1)
        .max(1);
    for tick in 1u64.. {
        match stopped.recv_timeout(tick_len) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return None,
        }
        let result = (|| -> anyhow::Result<()> {
            if let Some((workers, _)) = workers {
                workers.store(count(ledger, campaign)?, Ordering::Relaxed);
            }
            if tick % renew_every == 0 {
                ledger.renew_lease(id)?;
                if let Some(lease) = lease {
                    lease.renewed();
                }
                if let Some((_, taken_over)) = workers {
                    let n = ledger.recover_dead(campaign, false)?;
                    taken_over.fetch_add(n, Ordering::Relaxed);
                }
            }
            Ok(())
        })();
        // A busy moment (SQLite's lock held past its timeout) is tried again at the next tick;
        // a database that is gone stops the run.
        if let Err(e) = result
            && e.downcast_ref::<DbError>().is_some_and(DbError::is_lost)
        {
            return Some(e.to_string());
        }
    }
    None
}
