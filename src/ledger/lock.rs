//! The ledger file itself, however its path is spelt, and the lock that lets one run of a
//! campaign send at a time.
//!
//! The lock belongs to the file, not to a path: a symlink, a hard link, `./a/../` or an absolute
//! path all reach the same inode and so the same lock. On Linux it is an open-file-description
//! lock (`F_OFD_SETLK`) on one byte of the ledger far beyond anything SQLite locks (SQLite's own
//! locks sit near 1 GiB), at an offset derived from the campaign's name, so that two campaigns
//! sharing a ledger can still run side by side. The kernel releases it however the process dies,
//! so a crash never leaves a stale lock.
//!
//! The descriptor is never closed while the process lives: closing any descriptor of a file drops
//! every POSIX lock the process holds on it, SQLite's included.

use std::fs::{File, OpenOptions};
use std::mem::ManuallyDrop;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Exit, Fatal};

/// An open ledger file and the identity (device, inode) it had when opened.
#[derive(Clone)]
pub(crate) struct LedgerFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    file: Arc<ManuallyDrop<File>>,
}

impl std::fmt::Debug for LedgerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerFile({})", self.path.display())
    }
}

impl LedgerFile {
    /// Opens an existing ledger file for locking and watching.
    pub(crate) fn open(path: &Path) -> std::io::Result<LedgerFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let meta = file.metadata()?;
        Ok(LedgerFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            file: Arc::new(ManuallyDrop::new(file)),
        })
    }

    /// Whether the file is still there, under its path, and the same file: `Err` says what
    /// happened to it.
    pub(crate) fn check(&self) -> Result<(), String> {
        let gone = |what: &str| {
            format!(
                "the ledger {} {what} during the run; nothing more was sent — restore the file, or start again with a new ledger (each contact sent so far was recorded in the old one)",
                self.path.display()
            )
        };
        let linked = self.file.metadata().map(|m| m.nlink()).unwrap_or(0);
        if linked == 0 {
            return Err(gone("was deleted"));
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => Ok(()),
            Ok(_) => Err(gone("was replaced by another file")),
            Err(_) => Err(gone("was moved away")),
        }
    }
}

/// Held for the whole run; dropping it releases the lock.
#[derive(Debug)]
pub(crate) enum RunLock {
    /// A byte of the ledger file.
    File(FileLock),
    /// The campaign's advisory lock in the database, held by a session of its own: a killed
    /// run's lock goes with its connection.
    Postgres(Box<PgLock>),
}

#[derive(Debug)]
pub(crate) struct FileLock {
    file: LedgerFile,
    offset: i64,
}

pub(crate) struct PgLock {
    /// The session that holds the lock; dropping it lets the lock go.
    session: super::postgres::Pg,
    /// Held shared, by one of several joined workers.
    pub(crate) joined: bool,
}

impl std::fmt::Debug for PgLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PgLock({}, joined: {})",
            self.session.place(),
            self.joined
        )
    }
}

impl RunLock {
    /// Where the ledger is.
    pub(crate) fn place(&self) -> super::Place {
        match self {
            RunLock::File(l) => super::Place::File(l.file.path.clone()),
            RunLock::Postgres(l) => super::Place::Postgres(Box::new(l.session.place().clone())),
        }
    }

    /// Whether the run is one of several joined workers (`run --join`).
    pub(crate) fn joined(&self) -> bool {
        matches!(self, RunLock::Postgres(l) if l.joined)
    }

    /// The ledger file to watch while the run writes to it, when it is a file.
    pub(crate) fn watch(&self) -> Option<LedgerFile> {
        match self {
            RunLock::File(l) => Some(l.file.clone()),
            RunLock::Postgres(_) => None,
        }
    }
}

/// Takes the campaign's lock on the ledger at `place` (an existing file, or a database), naming
/// the holder if another run has it. `join`: a worker that shares the campaign with others
/// (PostgreSQL only).
pub(crate) fn take_campaign(
    place: &super::Place,
    campaign: &str,
    join: bool,
) -> anyhow::Result<RunLock> {
    let holder = || {
        super::Ledger::open_read(place)
            .ok()
            .flatten()
            .and_then(|l| l.running_pid(campaign))
    };
    match place {
        super::Place::Postgres(target) => Ok(acquire_pg(target, campaign, join, holder)?),
        super::Place::File(path) => {
            if join {
                return Err(Fatal::new(
                    Exit::Usage,
                    format!(
                        "--join needs a PostgreSQL ledger (set {}=postgres://…), where workers on several hosts share one campaign; the ledger {} is a file, which one run at a time uses",
                        super::locate::ENV,
                        path.display()
                    ),
                )
                .into());
            }
            super::refuse_other_than_file(path)?;
            let file = LedgerFile::open(path).map_err(|e| {
                Fatal::new(
                    Exit::CannotRun,
                    format!("cannot open the ledger {}: {e}", path.display()),
                )
            })?;
            Ok(acquire(&file, campaign, holder)?)
        }
    }
}

/// Takes the campaign's advisory lock in the PostgreSQL ledger: exclusively for a run, shared
/// for a worker that joins (`run --join`); says who holds it when it is taken.
pub(crate) fn acquire_pg(
    target: &super::postgres::Target,
    campaign: &str,
    join: bool,
    holder: impl FnOnce() -> Option<i64>,
) -> Result<RunLock, Fatal> {
    use super::db::Sql;
    let cannot = |e: String| Fatal::new(Exit::CannotRun, e);
    let session = super::postgres::Pg::connect(target).map_err(cannot)?;
    let key = campaign_key(target, campaign);
    let sql = if join {
        "SELECT pg_try_advisory_lock_shared(?1)"
    } else {
        "SELECT pg_try_advisory_lock(?1)"
    };
    let taken: bool = session.value(sql, super::args![key]).map_err(|e| {
        cannot(format!(
            "cannot lock campaign {campaign:?} in the ledger {target}: {e}"
        ))
    })?;
    if taken {
        return Ok(RunLock::Postgres(Box::new(PgLock {
            session,
            joined: join,
        })));
    }
    let who = match holder() {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_string(),
    };
    // Joined workers hold the lock shared: a plain run may join them. A plain run holds it
    // alone: nothing can join it.
    let workers = !join
        && session
            .value::<bool>("SELECT pg_try_advisory_lock_shared(?1)", super::args![key])
            .is_ok_and(|shared| {
                shared
                    && session
                        .value::<bool>("SELECT pg_advisory_unlock_shared(?1)", super::args![key])
                        .is_ok()
            });
    let how = if join {
        "a run without --join holds it; wait for it to finish, or start every worker with --join"
    } else if workers {
        "joined workers are sending it; wait for them to finish, or start this one with --join to share the work"
    } else {
        "another run without --join holds it; wait for it to finish (runs started with --join can share a campaign, a plain run cannot)"
    };
    Err(Fatal::new(
        Exit::Busy,
        format!(
            "campaign {campaign:?} is already running in {who} on the ledger {target}; this run did nothing — {how}"
        ),
    ))
}

/// The campaign's advisory lock key in a PostgreSQL ledger (its schema's).
fn campaign_key(target: &super::postgres::Target, campaign: &str) -> i64 {
    super::postgres::Target::lock_key(&format!(
        "campaign {} {campaign}",
        target.schema.as_deref().unwrap_or("public")
    ))
}

/// Whether a run (or a joined worker) holds the campaign's lock now, read through `ledger`, the
/// ledger at `place`; `None` when it cannot be told. The lock is only read, never taken, so a
/// read-only command may ask. A process that dies loses its lock at once: on a file the kernel
/// drops it, on PostgreSQL the session ends.
pub(crate) fn held(place: &super::Place, ledger: &super::Ledger, campaign: &str) -> Option<bool> {
    use super::db::Sql;
    match place {
        super::Place::File(path) => held_on_file(path, campaign),
        // A bigint advisory key shows in `pg_locks` as its high and low halves.
        super::Place::Postgres(target) => ledger
            .db
            .value(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = ?1)",
                super::args![campaign_key(target, campaign)],
            )
            .ok(),
    }
}

/// The file's lock, read with `F_OFD_GETLK`. The descriptor stays open, as every one of this
/// module: closing it would drop SQLite's locks on the file.
#[cfg(target_os = "linux")]
fn held_on_file(path: &Path, campaign: &str) -> Option<bool> {
    use std::os::fd::AsRawFd;
    let file = ManuallyDrop::new(File::open(path).ok()?);
    let mut fl = one_byte(offset(campaign), libc::F_WRLCK as libc::c_short);
    // SAFETY: a valid descriptor and a valid `flock` for the duration of the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    (r == 0).then_some(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Elsewhere the lock is a file of its own, which cannot be read without taking it.
#[cfg(not(target_os = "linux"))]
fn held_on_file(_path: &Path, _campaign: &str) -> Option<bool> {
    None
}

/// Where a campaign's lock byte sits: far beyond SQLite's locks (around 2^30).
fn offset(campaign: &str) -> i64 {
    let hash = campaign.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (1i64 << 40) + i64::from(hash)
}

/// An open-file-description lock of `kind` on the one byte at `offset`.
#[cfg(target_os = "linux")]
fn one_byte(offset: i64, kind: libc::c_short) -> libc::flock {
    // SAFETY: `flock` is plain data and zeroed is a valid value (`l_pid` must be 0 for an
    // open-file-description lock).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset;
    fl.l_len = 1;
    fl
}

#[cfg(target_os = "linux")]
fn fcntl_lock(file: &File, offset: i64, kind: libc::c_short) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let fl = one_byte(offset, kind);
    // SAFETY: a valid descriptor and a valid `flock` for the duration of the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// Takes the campaign's lock on the ledger file at once, or says who holds it (`holder` is asked
/// only then: the ledger records each run's process id).
pub(crate) fn acquire(
    file: &LedgerFile,
    campaign: &str,
    holder: impl FnOnce() -> Option<i64>,
) -> Result<RunLock, Fatal> {
    let offset = offset(campaign);
    let taken = take(file, offset).map_err(|e| {
        Fatal::new(
            Exit::CannotRun,
            format!("cannot lock the ledger {}: {e}", file.path.display()),
        )
    })?;
    if taken {
        return Ok(RunLock::File(FileLock {
            file: file.clone(),
            offset,
        }));
    }
    let who = match holder() {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_string(),
    };
    Err(Fatal::new(
        Exit::Busy,
        format!(
            "campaign {campaign:?} is already running in {who} on this ledger ({}); this run did nothing — wait for it to finish",
            file.path.display()
        ),
    ))
}

#[cfg(target_os = "linux")]
fn take(file: &LedgerFile, offset: i64) -> std::io::Result<bool> {
    fcntl_lock(&file.file, offset, libc::F_WRLCK as libc::c_short)
}

/// Elsewhere: a lock file beside the real file (symlinks and `..` resolved; hard links are not
/// told apart there).
#[cfg(not(target_os = "linux"))]
fn take(file: &LedgerFile, offset: i64) -> std::io::Result<bool> {
    let real = std::fs::canonicalize(&file.path)?;
    let mut name = real.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{offset}.lock"));
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(real.with_file_name(name))?;
    match lock.try_lock() {
        Ok(()) => {
            std::mem::forget(lock);
            Ok(true)
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        let _ = fcntl_lock(&self.file.file, self.offset, libc::F_UNLCK as libc::c_short);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_one_file_shares_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("l.sqlite");
        std::fs::write(&real, b"").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("alias.sqlite")).unwrap();
        std::fs::hard_link(&real, dir.path().join("hard.sqlite")).unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        let held = acquire(&LedgerFile::open(&real).unwrap(), "c", || None).unwrap();
        for other in ["alias.sqlite", "hard.sqlite", "a/../l.sqlite"] {
            let f = LedgerFile::open(&dir.path().join(other)).unwrap();
            let err = acquire(&f, "c", || Some(42)).unwrap_err();
            assert!(err.message.contains("process 42"), "{other}: {err}");
            // Another campaign on the same ledger is free to run.
            drop(acquire(&f, "other", || None).unwrap());
        }
        drop(held);
        acquire(
            &LedgerFile::open(&dir.path().join("hard.sqlite")).unwrap(),
            "c",
            || None,
        )
        .unwrap();
    }

    #[test]
    fn a_deleted_or_replaced_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.sqlite");
        std::fs::write(&p, b"x").unwrap();
        let f = LedgerFile::open(&p).unwrap();
        assert!(f.check().is_ok());
        std::fs::remove_file(&p).unwrap();
        assert!(f.check().unwrap_err().contains("was deleted"));
        let f2 = {
            std::fs::write(&p, b"y").unwrap();
            LedgerFile::open(&p).unwrap()
        };
        std::fs::rename(&p, dir.path().join("moved.sqlite")).unwrap();
        assert!(f2.check().unwrap_err().contains("moved away"));
        std::fs::write(&p, b"z").unwrap();
        assert!(f2.check().unwrap_err().contains("replaced"));
    }
}
