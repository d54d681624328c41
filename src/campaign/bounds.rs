//! What a campaign file may be before anything parses it: a regular file (not a device, a FIFO
//! or a folder, which would never end or never start) of at most [`MAX_CAMPAIGN_BYTES`]. A
//! campaign is a page of YAML; a file far past this bound is a mistake or an attack, and is
//! refused at once, naming the bound, instead of being read into memory. (Its nesting is
//! bounded by the YAML reader, `yaml.rs`, as it parses.)

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest campaign file read (1 MiB): the longest real campaigns are a few KiB.
pub(crate) const MAX_CAMPAIGN_BYTES: u64 = 1024 * 1024;

/// Why a campaign file is not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("cannot read the campaign file: {0}")]
    Unreadable(std::io::Error),
    #[error(
        "the campaign file is {0}, not a regular file (a campaign file is a regular file of at most 1 MiB)"
    )]
    NotAFile(&'static str),
    #[error("the campaign file is over the limit of 1 MiB (it holds {0})")]
    TooLarge(String),
    #[error("the campaign file is not UTF-8 text")]
    NotUtf8,
}

impl Refusal {
    pub(crate) fn hint(&self) -> &'static str {
        match self {
            Refusal::Unreadable(_) => "check the path",
            Refusal::NotAFile(_) | Refusal::TooLarge(_) => {
                "name the campaign's YAML file; contacts belong in `contacts.file`"
            }
            Refusal::NotUtf8 => "save the file as UTF-8",
        }
    }
}

/// What kind of thing a path that is not a regular file is.
fn kind(t: std::fs::FileType) -> Option<&'static str> {
    Some(if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    })
}

/// `2.0 MiB`, `512 KiB`.
fn size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

fn judge(meta: &std::fs::Metadata) -> Result<(), Refusal> {
    if let Some(k) = kind(meta.file_type()) {
        return Err(Refusal::NotAFile(k));
    }
    if meta.len() > MAX_CAMPAIGN_BYTES {
        return Err(Refusal::TooLarge(size(meta.len())));
    }
    Ok(())
}

/// Reads a campaign file within its bounds. The path is looked at before it is opened (opening
/// a FIFO waits for a writer), opened without blocking in case it was swapped meanwhile, looked
/// at again, and read no further than one byte past the limit (a file may grow as it is read).
pub(crate) fn read(file: &Path) -> Result<String, Refusal> {
    judge(&std::fs::metadata(file).map_err(Refusal::Unreadable)?)?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(Refusal::Unreadable)?;
    judge(&f.metadata().map_err(Refusal::Unreadable)?)?;
    let mut bytes = Vec::new();
    f.take(MAX_CAMPAIGN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Refusal::Unreadable)?;
    if bytes.len() as u64 > MAX_CAMPAIGN_BYTES {
        return Err(Refusal::TooLarge(format!(
            "more than {}",
            size(MAX_CAMPAIGN_BYTES)
        )));
    }
    String::from_utf8(bytes).map_err(|_| Refusal::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(2 * 1024 * 1024), "2.0 MiB");
        assert_eq!(size(1000), "1 KiB");
    }
}
