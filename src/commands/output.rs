//! Where commands write: stdout, or a file replaced whole. Exports, replies, reports and
//! previews hold phones and replies, so a file is written owner-only (0600, whatever the umask)
//! to a temporary file beside its target and renamed over the target once complete: a reader
//! never sees half a file, a failed write leaves the old file as it was and nothing beside it,
//! and a symlink planted at the target is replaced, never written through.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::campaign::Campaign;
use crate::error::{Exit, Fatal};

/// Stdout, whose write errors say they are stdout's (a full disk, a closed descriptor) in one
/// line. They keep their kind: a closed pipe stays `BrokenPipe`, which `main.rs` maps to exit 0.
pub(crate) struct Stdout(io::StdoutLock<'static>);

pub(crate) fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

fn stdout_failed(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write to stdout: {e}"))
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(stdout_failed)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(stdout_failed)
    }
}

/// A file written in place of `target`. Dropped without [`Replacement::commit`] (an error on
/// the way), the temporary file is deleted and the target left as it was.
pub(crate) struct Replacement {
    file: BufWriter<File>,
    /// `None` for a stream the user named, written through.
    temp: Option<PathBuf>,
    target: PathBuf,
    committed: bool,
}

/// A target the user named as a stream (`/dev/stdout`, `/dev/fd/63` from `>(gzip)`, a named
/// pipe): it is written through, never replaced. A symlink planted elsewhere is no stream.
fn is_stream(target: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    target.starts_with("/dev")
        || target.starts_with("/proc/self/fd")
        || std::fs::symlink_metadata(target).is_ok_and(|m| {
            let t = m.file_type();
            t.is_fifo() || t.is_char_device()
        })
}

impl Replacement {
    /// Creates the temporary file (`.NAME.XXXXXXXX.tmp`, mode 0600) in the target's folder,
    /// so that the rename stays on one file system. `create_new` (O_EXCL) never opens a file
    /// or symlink already there.
    pub(crate) fn create(target: &Path) -> io::Result<Replacement> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let cannot = |e: io::Error| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", target.display()))
        };
        let replacement = |file, temp| Replacement {
            file: BufWriter::new(file),
            temp,
            target: target.to_path_buf(),
            committed: false,
        };
        if is_stream(target) {
            let file = OpenOptions::new()
                .write(true)
                .open(target)
                .map_err(cannot)?;
            return Ok(replacement(file, None));
        }
        for _ in 0..100 {
            let temp = dir.join(format!(".{name}.{:08x}.tmp", fastrand::u32(..)));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
            {
                Ok(file) => return Ok(replacement(file, Some(temp))),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(cannot(e)),
            }
        }
        Err(cannot(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary name beside it",
        )))
    }

    /// Writes out what is buffered, syncs it to disk and renames it over the target.
    pub(crate) fn commit(mut self) -> io::Result<()> {
        self.flush()?;
        if let Some(temp) = &self.temp {
            self.file
                .get_ref()
                .sync_all()
                .and_then(|()| std::fs::rename(temp, &self.target))
                .map_err(|e| failed(&self.target, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Replacement {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.as_ref().filter(|_| !self.committed) {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// `cannot write TARGET: why`, in one line: the temporary file's name would only confuse. The
/// kind is kept.
fn failed(target: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write {}: {e}", target.display()))
}

impl Write for Replacement {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf).map_err(|e| failed(&self.target, e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush().map_err(|e| failed(&self.target, e))
    }
}

/// Writes `content` as the whole of `target`.
pub(crate) fn replace(target: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = Replacement::create(target)?;
    file.write_all(content)?;
    file.commit()
}

/// Where `export` and `replies` write: the file given with `-o`, else stdout; buffered.
pub(crate) enum Output {
    Stdout(BufWriter<Stdout>),
    File(Replacement),
}

impl Output {
    pub(crate) fn open(path: Option<&Path>) -> io::Result<Output> {
        Ok(match path {
            Some(p) => Output::File(Replacement::create(p)?),
            None => Output::Stdout(BufWriter::new(stdout())),
        })
    }

    /// Ends the output: stdout is flushed, a file put in place.
    pub(crate) fn finish(self) -> io::Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush(),
            Output::File(f) => f.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(f) => f.flush(),
        }
    }
}

/// The files a campaign's commands read: the campaign file, its contacts, its exclusion lists,
/// its templates and the ledger file with SQLite's journals beside it (`-wal`, `-shm`,
/// `-journal`: writing over one breaks the ledger a listener is writing); no ledger file on
/// PostgreSQL.
pub(crate) fn campaign_files(c: &Campaign, ledger: Option<&Path>) -> Vec<PathBuf> {
    let mut files = vec![c.file.clone(), c.contacts.file.clone()];
    files.extend(c.contacts.exclude.iter().map(|e| e.file.clone()));
    // A templates folder of its own is the campaign's whole (any file in it may be included);
    // one shared with the campaign file (`templates: .`) only for the files the messages name.
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match &c.templates_dir {
        Some(t) if !real(&c.dir).starts_with(real(t)) => files.push(t.clone()),
        _ => files.extend(c.template_files()),
    }
    if let Some(ledger) = ledger {
        files.push(ledger.to_path_buf());
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut sibling = ledger.as_os_str().to_owned();
            sibling.push(suffix);
            files.push(sibling.into());
        }
    }
    files
}

/// Refuses an output path that names one of the files a command reads, or a file in the
/// templates folder (any of them may be a template or included by one): a slip of `-o` must
/// not destroy the campaign, its contacts, its templates or its ledger.
pub(crate) fn refuse_to_overwrite(out: &Path, inputs: &[PathBuf]) -> anyhow::Result<()> {
    let Ok(target) = std::fs::canonicalize(out) else {
        return Ok(());
    };
    if inputs.iter().any(|p| {
        std::fs::canonicalize(p)
            .is_ok_and(|p| p == target || (p.is_dir() && target.starts_with(&p)))
    }) {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "{} is one of the campaign's own files — give another output file with -o",
                out.display()
            ),
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_replacement_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.csv");
        std::fs::write(&target, "old").unwrap();
        let mut f = Replacement::create(&target).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        drop(f);
        assert_eq!(listing(dir.path()), ["out.csv"]);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        replace(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(listing(dir.path()), ["out.csv"]);
    }

    #[test]
    fn a_stream_is_written_through_never_replaced() {
        replace(Path::new("/dev/null"), b"x").unwrap();
        use std::os::unix::fs::FileTypeExt;
        let t = std::fs::symlink_metadata("/dev/null").unwrap().file_type();
        assert!(t.is_char_device());
    }

    #[test]
    fn a_target_that_is_a_folder_is_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        let err = replace(&dir.path().join("out"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("cannot write"), "{err:#}");
        assert_eq!(listing(dir.path()), ["out"]);
    }
}
