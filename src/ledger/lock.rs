//! One run per campaign and ledger: an exclusive OS lock on a file beside the ledger. The kernel
//! releases it when the process dies, however it dies, so a crash never leaves a stale lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Exit, Fatal};

/// Held for the whole run; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

/// The lock file for a campaign in a ledger: `<ledger>.<campaign>.lock`.
pub fn lock_path(ledger: &Path, campaign: &str) -> PathBuf {
    let mut name = ledger.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{campaign}.lock"));
    ledger.with_file_name(name)
}

/// Takes the lock at once or fails naming the process that holds it.
pub fn acquire(ledger: &Path, campaign: &str) -> Result<RunLock, Fatal> {
    let path = lock_path(ledger, campaign);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            Fatal::new(
                Exit::CannotRun,
                format!("cannot open the lock file {}: {e}", path.display()),
            )
        })?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = write!(file, "{}", std::process::id());
            let _ = file.flush();
            Ok(RunLock { _file: file, path })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("process {holder}")
            };
            Err(Fatal::new(
                Exit::CannotRun,
                format!(
                    "campaign {campaign:?} is already running in {who} (lock {}); this run sent nothing — wait for it to finish",
                    path.display()
                ),
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Fatal::new(
            Exit::CannotRun,
            format!("cannot lock {}: {e}", path.display()),
        )),
    }
}
