//! Where the ledger is. Opt-outs, who was messaged and a channel's daily budget belong to the
//! business, not to one campaign file, so every command finds the same ledger the same way:
//! `--ledger`, else `COSMOCAST_LEDGER`, else `$XDG_DATA_HOME/cosmocast/cosmocast.sqlite`
//! (`~/.local/share` when unset). A campaign file never names it.
//!
//! Ledgers used to live beside the campaign file. One still there that is not the ledger in use
//! is refused rather than silently replaced: a run on a fresh ledger would message everyone
//! again, opted-out people included.

use std::fmt;
use std::path::{Path, PathBuf};

use super::postgres::{self, Target};
use crate::error::{Exit, Fatal};

/// The environment variable that names the ledger for every command.
pub(crate) const ENV: &str = "COSMOCAST_LEDGER";
/// The ledger's file name at its default place (and, before, beside each campaign file).
pub(crate) const FILE: &str = "cosmocast.sqlite";

/// How the ledger was chosen, to say so in every message about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Flag,
    Env,
    Default,
}

/// Where a ledger is: an SQLite file, or a PostgreSQL database (`postgres://`).
#[derive(Debug, Clone)]
pub(crate) enum Place {
    File(PathBuf),
    Postgres(Box<Target>),
}

impl Place {
    /// A `--ledger` or `COSMOCAST_LEDGER` value: a `postgres://` URL, else a file's path.
    pub(crate) fn parse(value: &std::ffi::OsStr) -> Result<Place, Fatal> {
        match value.to_str() {
            Some(url) if postgres::is_url(url) => Target::parse(url)
                .map(|t| Place::Postgres(Box::new(t)))
                .map_err(|e| Fatal::new(Exit::Usage, e)),
            Some(url) if postgres::looks_like_a_url(url) => Err(Fatal::new(
                Exit::Usage,
                format!(
                    "the ledger {} is written like a URL, but not a postgres:// one; write postgres://user@host:5432/db (or a file's path)",
                    postgres::without_password(url)
                ),
            )),
            _ => Ok(Place::File(PathBuf::from(value))),
        }
    }

    /// The ledger's file, when it is one.
    pub(crate) fn file(&self) -> Option<&Path> {
        match self {
            Place::File(p) => Some(p),
            Place::Postgres(_) => None,
        }
    }

    /// Whether the ledger may hold something: its file exists, or it is a database (whose
    /// tables a reader finds, or not).
    pub(crate) fn exists(&self) -> bool {
        match self {
            Place::File(p) => p.exists(),
            Place::Postgres(_) => true,
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File(p) => write!(f, "{}", p.display()),
            Place::Postgres(t) => write!(f, "{t}"),
        }
    }
}

/// The ledger a command uses, and how it was chosen.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) place: Place,
    pub(crate) source: Source,
    /// A `--sandbox` rehearsal's ledger, beside the workspace's.
    pub(crate) sandbox: bool,
    /// The workspace's ledger as `--ledger` named it (a database's password hidden).
    flag: Option<String>,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.place)?;
        match (self.sandbox, self.source) {
            (true, _) => write!(f, " (the sandbox rehearsal's)"),
            (false, Source::Flag) => write!(f, " (--ledger)"),
            (false, Source::Env) => write!(f, " ({ENV})"),
            (false, Source::Default) => write!(f, " (the default; set {ENV} to change it)"),
        }
    }
}

/// The workspace's ledger: `flag`, else `COSMOCAST_LEDGER`, else the default data folder.
pub(crate) fn resolve(flag: Option<&Path>) -> Result<Located, Fatal> {
    if let Some(p) = flag {
        let place = Place::parse(p.as_os_str())?;
        return Ok(Located {
            flag: Some(place.to_string()),
            place,
            source: Source::Flag,
            sandbox: false,
        });
    }
    if let Some(v) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        return Ok(Located {
            place: Place::parse(&v)?,
            source: Source::Env,
            sandbox: false,
            flag: None,
        });
    }
    Ok(Located {
        place: Place::File(data_dir()?.join("cosmocast").join(FILE)),
        source: Source::Default,
        sandbox: false,
        flag: None,
    })
}

/// `$XDG_DATA_HOME`, else `~/.local/share` (a relative `XDG_DATA_HOME` is ignored, as the XDG
/// specification says).
fn data_dir() -> Result<PathBuf, Fatal> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return Ok(d);
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share")),
        None => Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "cannot find the default ledger: neither XDG_DATA_HOME nor HOME is set — set {ENV} to the ledger's path (or pass --ledger)"
            ),
        )),
    }
}

impl Located {
    /// The flags that give this ledger to another command (`cosmocast status FILE{flags}`):
    /// `--ledger` when a flag chose it, `--sandbox` for a rehearsal's; none for the
    /// environment's or the default one, which that command finds the same way.
    pub(crate) fn flags(&self) -> String {
        let mut flags = String::new();
        if let Some(f) = &self.flag {
            flags += &format!(" --ledger {f}");
        }
        if self.sandbox {
            flags += " --sandbox";
        }
        flags
    }

    /// The ledger of a `--sandbox` rehearsal, beside this one: `cosmocast.sqlite` →
    /// `cosmocast.sandbox.sqlite`, or the database's `cosmocast_sandbox` schema, so a
    /// rehearsal never touches the production ledger.
    pub(crate) fn sandbox(&self) -> Located {
        let place = match &self.place {
            Place::File(path) => {
                let stem = path
                    .file_stem()
                    .map_or_else(|| "cosmocast".into(), |s| s.to_string_lossy().into_owned());
                Place::File(path.with_file_name(format!("{stem}.sandbox.sqlite")))
            }
            Place::Postgres(t) => Place::Postgres(Box::new(t.sandbox())),
        };
        Located {
            place,
            source: self.source,
            sandbox: true,
            flag: self.flag.clone(),
        }
    }

    /// Creates the default ledger's folder (owner-only) for a command that writes; a folder
    /// named with `--ledger` or `COSMOCAST_LEDGER` must exist already, so that a typo does not
    /// grow a tree of folders.
    pub(crate) fn prepare_folder(&self) -> anyhow::Result<()> {
        let Some(dir) = self
            .place
            .file()
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty())
        else {
            return Ok(());
        };
        if self.source != Source::Default || dir.is_dir() {
            return Ok(());
        }
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the ledger's folder {}: {e} — create it, or set {ENV} to a ledger elsewhere",
                    dir.display()
                )
            })
    }

    /// Refuses a ledger at the old default place (`cosmocast.sqlite` in `folder`) that is not
    /// this one: the contacts and opt-outs it records would be ignored.
    pub(crate) fn refuse_stray(&self, folder: &Path) -> Result<(), Fatal> {
        let old = folder.join(FILE);
        if !old.is_file() || self.place.file().is_some_and(|p| same_file(&old, p)) {
            return Ok(());
        }
        let shown = old
            .canonicalize()
            .unwrap_or_else(|_| old.clone())
            .display()
            .to_string();
        let mut message = format!(
            "{shown} is a ledger at the old default place, but the ledger in use is {self}.\n\
             \x20 Running on it would ignore whom {shown} records as messaged or opted out, and message them again.\n\
             \x20 To go on with the old ledger, point every command at it: export {ENV}={shown} (or pass --ledger {shown})."
        );
        if let Some(path) = self.place.file().filter(|p| !p.exists() && !self.sandbox) {
            message.push_str(&format!(
                "\n  Or make it the workspace's ledger: mv {shown} {} (with its -wal and -shm files, if any, while nothing runs).",
                path.display()
            ));
        }
        Err(Fatal::new(Exit::CannotRun, message))
    }
}

/// Whether two paths name one file (however spelt: symlink, hard link, relative).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The ledger of a command that has no campaign file (`listen`, `optouts`), after refusing a
/// ledger left at the old default place in the working folder: run there, the command would keep
/// replies and opt-outs where no campaign reads them.
pub(crate) fn in_working_folder(flag: Option<&Path>) -> Result<Located, Fatal> {
    let workspace = resolve(flag)?;
    if let Ok(here) = std::env::current_dir() {
        workspace.refuse_stray(&here)?;
    }
    Ok(workspace)
}

/// The ledger a campaign's command uses (its rehearsal's with `sandbox`), after refusing a
/// ledger left at the old default place beside the campaign file.
pub(crate) fn for_campaign(
    flag: Option<&Path>,
    campaign_dir: &Path,
    sandbox: bool,
) -> Result<Located, Fatal> {
    let workspace = resolve(flag)?;
    if sandbox {
        // A rehearsal's ledger never held anyone's real state: an old one beside the campaign
        // changes nothing for it.
        return Ok(workspace.sandbox());
    }
    workspace.refuse_stray(campaign_dir)?;
    Ok(workspace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_ledger_sits_beside_the_workspace_one() {
        let l = Located {
            place: Place::File(PathBuf::from("/data/cosmocast/cosmocast.sqlite")),
            source: Source::Default,
            sandbox: false,
            flag: None,
        };
        assert_eq!(
            l.sandbox().place.file().unwrap(),
            PathBuf::from("/data/cosmocast/cosmocast.sandbox.sqlite")
        );
        let l = Located {
            place: Place::File(PathBuf::from("/srv/prod.sqlite")),
            source: Source::Env,
            sandbox: false,
            flag: None,
        };
        assert_eq!(
            l.sandbox().place.file().unwrap(),
            PathBuf::from("/srv/prod.sandbox.sqlite")
        );
    }

    #[test]
    fn a_stray_ledger_is_refused_unless_it_is_the_one_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(FILE);
        std::fs::write(&old, b"").unwrap();
        let elsewhere = Located {
            place: Place::File(dir.path().join("ws/cosmocast.sqlite")),
            source: Source::Default,
            sandbox: false,
            flag: None,
        };
        let err = elsewhere.refuse_stray(dir.path()).unwrap_err();
        assert_eq!(err.exit, Exit::CannotRun);
        assert!(err.message.contains(ENV), "{}", err.message);
        assert!(err.message.contains("mv "), "{}", err.message);
        let same = Located {
            place: Place::File(dir.path().join("./cosmocast.sqlite")),
            source: Source::Env,
            sandbox: false,
            flag: None,
        };
        same.refuse_stray(dir.path()).unwrap();
        let empty = tempfile::tempdir().unwrap();
        elsewhere.refuse_stray(empty.path()).unwrap();
    }
}
