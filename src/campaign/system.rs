//! Templates, contacts and exclusion lists are the user's files. Under /proc, /sys and /dev lie
//! the machine's own: `templates: /proc/self` with `template: environ` renders the process
//! environment, token included, into every customer's message. A path that leads there is
//! refused however it is spelt: directly, with `..`, or through symbolic links, which are
//! followed to where they really lead (also when they end in something that is not a file on
//! disk, like /dev/stdin's pipe, where `canonicalize` gives up).

use std::path::{Component, Path, PathBuf};

/// The folders whose files are the system's state and devices, not data.
const ROOTS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// More links than the kernel follows (40) is a loop.
const MAX_LINKS: usize = 40;

/// Where a path leads, when that is inside a system folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemPath {
    /// The system folder: `/proc`, `/sys` or `/dev`.
    pub(crate) root: &'static str,
    /// The path it leads to.
    pub(crate) real: PathBuf,
}

/// Why `path` is no regular file to read, in words that follow its name ("is a folder"), or
/// `None` when it is one. A pipe is refused before it is opened: opening one blocks until
/// something writes to it, and reading it never ends.
pub(crate) fn not_a_file(path: &Path) -> Option<&'static str> {
    match (std::fs::symlink_metadata(path), std::fs::metadata(path)) {
        (Err(_), _) => Some("does not exist"),
        (Ok(_), Err(_)) => Some("is a link to a file that does not exist"),
        (_, Ok(m)) if m.is_dir() => Some("is a folder"),
        (_, Ok(m)) if !m.is_file() => Some("is no regular file (a pipe, socket or device)"),
        _ => None,
    }
}

/// Where `path` leads, if it (or a link on the way) lies in /proc, /sys or /dev.
pub(crate) fn system_path(path: &Path) -> Option<SystemPath> {
    let mut current = normalise(&std::path::absolute(path).ok()?);
    for _ in 0..MAX_LINKS {
        if let Some(found) = in_root(&current) {
            return Some(found);
        }
        if let Ok(real) = std::fs::canonicalize(&current) {
            return in_root(&real);
        }
        // A link whose end cannot be resolved, or a file that does not exist: follow one link
        // by hand, from the real folder it lies in.
        let parent = current.parent()?;
        let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
        match std::fs::read_link(&current) {
            Ok(target) => current = normalise(&parent.join(target)),
            Err(_) => return in_root(&parent.join(current.file_name()?)),
        }
    }
    None
}

fn in_root(path: &Path) -> Option<SystemPath> {
    let root = ROOTS.into_iter().find(|r| path.starts_with(r))?;
    Some(SystemPath {
        root,
        real: path.to_path_buf(),
    })
}

/// `.` and `..` resolved by the letter, so that `/tmp/../proc` is seen as /proc before any
/// link is read.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_folders_are_found_however_the_path_is_spelt() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("self");
        std::os::unix::fs::symlink("/proc/self", &link).unwrap();
        let stdin = tmp.path().join("in.csv");
        std::os::unix::fs::symlink("/dev/stdin", &stdin).unwrap();
        let chain = tmp.path().join("chain.csv");
        std::os::unix::fs::symlink(&stdin, &chain).unwrap();
        for (path, root) in [
            (PathBuf::from("/proc/self"), "/proc"),
            (PathBuf::from("/sys/kernel"), "/sys"),
            (PathBuf::from("/dev/stdin"), "/dev"),
            (
                tmp.path().join("../../../../../../proc/self/environ"),
                "/proc",
            ),
            (link.clone(), "/proc"),
            (link.join("environ"), "/proc"),
            (stdin, "/dev"),
            (chain, "/dev"),
        ] {
            let found = system_path(&path).unwrap_or_else(|| panic!("{}", path.display()));
            assert_eq!(found.root, root, "{}", path.display());
        }
    }

    #[test]
    fn other_folders_and_missing_files_are_not_system_ones() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("templates")).unwrap();
        let procs = tmp.path().join("proc");
        std::fs::create_dir(&procs).unwrap();
        for path in [
            tmp.path().join("templates"),
            tmp.path().join("missing.csv"),
            tmp.path().join("missing/dir/x.csv"),
            procs,
            PathBuf::from("/procfs-like"),
            PathBuf::from("relative/contacts.csv"),
        ] {
            assert_eq!(system_path(&path), None, "{}", path.display());
        }
    }
}
