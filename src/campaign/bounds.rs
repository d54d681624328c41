//! What a campaign file may be before anything parses it: a regular file (not a device, a FIFO
//! or a folder, which would never end or never start) of at most [`MAX_CAMPAIGN_BYTES`], nested
//! at most [`MAX_NESTING`] levels deep. A campaign is a page of YAML; a file far past these
//! bounds is a mistake or an attack, and is refused at once, naming the bound, instead of
//! being read into memory or handed to the YAML parser's recursion.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest campaign file read (1 MiB): the longest real campaigns are a few KiB.
pub(crate) const MAX_CAMPAIGN_BYTES: u64 = 1024 * 1024;

/// The deepest nesting of YAML collections read; a campaign needs six or so.
pub(crate) const MAX_NESTING: usize = 64;

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

/// The first line where the YAML nests deeper than [`MAX_NESTING`], found by a scan that
/// counts rather than parses: open flow brackets (`[`, `{`) outside quotes and comments, block
/// levels by indentation, and each `- ` that starts an entry on the same line. Block scalars
/// (`|`, `>`) are text and skipped. It may count more than a parser would (a bracket inside a
/// multi-line quoted string), never less on a file that nests.
pub(crate) fn too_deep(source: &str) -> Option<usize> {
    let mut levels: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // The indentation of the key whose block scalar is being skipped.
    let mut scalar_of: Option<usize> = None;
    for (n, line) in source.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if let Some(key) = scalar_of {
            if body.is_empty() || indent > key {
                continue;
            }
            scalar_of = None;
        }
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        if flow == 0 {
            while levels.last().is_some_and(|&l| l > indent) {
                levels.pop();
            }
            if levels.last() != Some(&indent) {
                levels.push(indent);
            }
            let mut rest = body;
            let mut entries = 0;
            while let Some(r) = rest.strip_prefix("- ") {
                entries += 1;
                rest = r.trim_start_matches(' ');
            }
            if levels.len() + entries > MAX_NESTING {
                return Some(n + 1);
            }
        }
        let (depth, opens_scalar) = scan_flow(body, flow);
        if depth.1 > MAX_NESTING {
            return Some(n + 1);
        }
        flow = depth.0;
        if opens_scalar && flow == 0 {
            scalar_of = Some(indent);
        }
    }
    None
}

/// One line's flow brackets from depth `flow`: (the depth at its end, the deepest on it), and
/// whether the line ends by opening a block scalar (`key: |`).
fn scan_flow(line: &str, mut flow: usize) -> ((usize, usize), bool) {
    let mut deepest = flow;
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut last_token = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if prev == ' ' || prev == '\t' => break,
                '"' | '\'' if matches!(prev, ' ' | '\t' | ':' | '[' | '{' | ',' | '-') => {
                    quote = Some(c)
                }
                '[' | '{' => {
                    flow += 1;
                    deepest = deepest.max(flow);
                }
                ']' | '}' => flow = flow.saturating_sub(1),
                _ => {}
            },
        }
        if quote.is_none() {
            if c.is_whitespace() {
                if !last_token.is_empty() {
                    last_token.clear();
                }
            } else {
                last_token.push(c);
            }
        }
        prev = c;
    }
    let opens_scalar = quote.is_none()
        && last_token.starts_with(['|', '>'])
        && last_token[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '+' || c == '-');
    ((flow, deepest), opens_scalar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_campaigns_are_shallow() {
        let yaml = "version: 1\ncontacts:\n  exclude:\n    - { file: a.csv, column: Phone }\nmessages:\n  - type: text\n    text: |\n      Hi {{ name }} [\n        {{{{\n  - type: buttons\n    buttons: [{ title: \"[[[\", type: url, value: '{{{' }]\n# [[[[[[[[\n";
        assert_eq!(too_deep(yaml), None);
    }

    #[test]
    fn deep_flow_and_deep_blocks_are_found_at_their_line() {
        let flow = format!("a: 1\nb: {}", "[".repeat(100_000));
        assert_eq!(too_deep(&flow), Some(2));
        let mut blocks = String::new();
        for i in 0..70 {
            blocks.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert_eq!(too_deep(&blocks), Some(MAX_NESTING + 1));
        let dashes = format!("x:\n{}1\n", "- ".repeat(70));
        assert_eq!(too_deep(&dashes), Some(2));
        assert_eq!(too_deep(&format!("x: {}", "[".repeat(64))), None);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(2 * 1024 * 1024), "2.0 MiB");
        assert_eq!(size(1000), "1 KiB");
    }
}
