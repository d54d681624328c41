//! Streams the contact CSV one record at a time: delimiter detection, a UTF-8 BOM ignored, headers
//! required and unique, every record tagged with its line in the file. Memory stays flat.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::Problem;

/// The CSV's header row, with a name → column index map for template lookups.
#[derive(Debug)]
pub struct Headers {
    pub names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Headers {
    /// Headers from names already known to be distinct (a later duplicate would win).
    #[cfg(test)]
    pub(crate) fn from_names(names: Vec<String>) -> Headers {
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Headers { names, index }
    }

    pub fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// One data row: its 1-based row number and the line of the file it starts on.
#[derive(Debug, Clone)]
pub struct Row {
    pub number: u64,
    pub line: u64,
    pub record: csv::StringRecord,
}

/// Counts the newlines the CSV parser reads, so a record's byte offset maps to its line in the
/// file (the csv crate's own line count skips blank lines). Only the newlines between the
/// parser's position and its read-ahead are kept, so memory stays flat.
#[derive(Debug, Default)]
struct Newlines {
    /// Line ends not yet passed by a record start: (first, last byte of the terminator).
    pending: VecDeque<(u64, u64)>,
    last: u8,
    /// Newlines before `pending[0]`.
    passed: u64,
    /// Bytes read so far.
    read: u64,
}

impl Newlines {
    /// The 1-based line of the first non-blank line at or after byte `offset` (the parser puts
    /// a record's start before the blank lines it skips).
    fn line_of(&mut self, mut offset: u64) -> u64 {
        while let Some(&(term, nl)) = self.pending.front() {
            if nl < offset {
                self.pending.pop_front();
                self.passed += 1;
            } else if term == offset || nl == offset {
                offset = nl + 1;
            } else {
                break;
            }
        }
        self.passed + 1
    }
}

struct Counting<R> {
    inner: R,
    lines: Arc<Mutex<Newlines>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let base = l.read;
        // A line ends with \n, \r\n, or a lone \r (as the csv parser reads them).
        for (i, &b) in buf[..n].iter().enumerate() {
            let at = base + i as u64;
            match b {
                b'\r' => l.pending.push_back((at, at)),
                b'\n' if l.last == b'\r' => {
                    if let Some(back) = l.pending.back_mut() {
                        back.1 = at;
                    }
                }
                b'\n' => l.pending.push_back((at, at)),
                _ => {}
            }
            l.last = b;
        }
        l.read += n as u64;
        Ok(n)
    }
}

pub use encoding_rs::Encoding;

/// Decodes a stream in `encoding` to UTF-8; bytes it cannot decode become U+FFFD, which the
/// reader reports with their line.
pub fn decoding_reader<R: Read + Send>(source: R, encoding: &'static Encoding) -> impl Read + Send {
    encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .build(source)
}

pub struct ContactReader {
    path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    pub headers: Arc<Headers>,
    rows: u64,
    done: bool,
    record: csv::StringRecord,
    lines: Arc<Mutex<Newlines>>,
    /// A declared non-UTF-8 encoding: undecodable bytes show up as U+FFFD.
    encoding: Option<&'static encoding_rs::Encoding>,
}

/// Counts candidate delimiters outside quotes on the first line and picks the most frequent.
pub fn detect_delimiter(first_line: &[u8]) -> u8 {
    let mut quoted = false;
    let mut counts = [0usize; 3];
    for &b in first_line {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], 2 - i)).unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        [b',', b';', b'\t'][best]
    }
}

fn describe(name: &str) -> String {
    if name.is_empty() {
        "an empty header".into()
    } else {
        format!("the header {name:?}")
    }
}

/// Roughly how many rows a contact file holds, from its size and the length of its first lines
/// (0 when unknown): enough to size tables once instead of growing them row by row.
pub fn estimate_rows(path: &Path) -> usize {
    use std::io::Read;
    let Ok(mut file) = File::open(path) else {
        return 0;
    };
    let size = file.metadata().map_or(0, |m| m.len());
    let mut head = vec![0u8; 64 * 1024];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    let lines = head[..filled]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        .max(1);
    usize::try_from(size.saturating_mul(lines as u64) / filled.max(1) as u64).unwrap_or(0)
}

impl ContactReader {
    /// Opens the file and reads its header row. `encoding` `None` is UTF-8.
    pub fn open(
        path: &Path,
        delimiter: Option<u8>,
        encoding: Option<&'static encoding_rs::Encoding>,
    ) -> Result<Self, Problem> {
        let file = File::open(path).map_err(|e| {
            Problem::new(path, None, format!("cannot open the contact file: {e}")).hint(
                "check `contacts.file` in the campaign; paths are relative to the campaign file",
            )
        })?;
        let source: Box<dyn Read + Send> = match encoding {
            None => Box::new(file),
            Some(enc) => Box::new(decoding_reader(file, enc)),
        };
        Self::from_reader(path, source, delimiter, encoding)
    }

    /// Reads contacts from any byte stream; `label` names it in messages.
    pub fn from_reader(
        label: &Path,
        source: Box<dyn Read + Send>,
        delimiter: Option<u8>,
        encoding: Option<&'static encoding_rs::Encoding>,
    ) -> Result<Self, Problem> {
        let path = label;
        let mut buf = BufReader::with_capacity(256 * 1024, source);
        let head = buf
            .fill_buf()
            .map_err(|e| Problem::new(path, None, format!("cannot read: {e}")))?;
        let bom = head.starts_with(b"\xEF\xBB\xBF");
        let delimiter =
            delimiter.unwrap_or_else(|| detect_delimiter(if bom { &head[3..] } else { head }));
        if bom {
            buf.consume(3);
        }
        let lines = Arc::new(Mutex::new(Newlines::default()));
        let counting = Counting {
            inner: buf,
            lines: lines.clone(),
        };
        let reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(false)
            .from_reader(Box::new(counting) as Box<dyn Read + Send>);
        let mut this = ContactReader {
            path: path.to_path_buf(),
            reader,
            headers: Arc::new(Headers {
                names: vec![],
                index: HashMap::new(),
            }),
            rows: 0,
            done: false,
            record: csv::StringRecord::new(),
            lines,
            encoding,
        };
        let names: Vec<String> = match this.reader.headers() {
            Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
            Err(e) => return Err(this.csv_problem(&e)),
        };
        if names.iter().all(|n| n.is_empty()) {
            return Err(
                Problem::new(path, Some(1), "the file has no header row").hint(
                    "the first line must name the columns, e.g. `customer_id,first_name,phone`",
                ),
            );
        }
        let mut index = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                return Err(Problem::new(
                    path,
                    Some(1),
                    format!("column {} has an empty header", i + 1),
                )
                .at(Some(i + 1))
                .hint("give every column a name in the first line"));
            }
            if let Some(first) = index.insert(n.clone(), i) {
                return Err(Problem::new(
                    path,
                    Some(1),
                    format!(
                        "{} appears twice (columns {} and {})",
                        describe(n),
                        first + 1,
                        i + 1
                    ),
                )
                .at(Some(i + 1))
                .hint("rename one of them"));
            }
        }
        this.headers = Arc::new(Headers { names, index });
        Ok(this)
    }

    /// Data rows read so far, bad ones included: the number of the row just read.
    pub fn rows_read(&self) -> u64 {
        self.rows
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn line_at(&self, pos: Option<&csv::Position>) -> Option<u64> {
        let pos = pos?;
        Some(
            self.lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .line_of(pos.byte()),
        )
    }

    fn csv_problem(&self, e: &csv::Error) -> Problem {
        let line = self.line_at(e.position()).map(|l| l as usize);
        match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => Problem::new(
                &self.path,
                line,
                format!("this row has {len} fields, the header has {expected_len}"),
            )
            .hint("check for a missing or extra delimiter, or quote cells that contain one"),
            csv::ErrorKind::Utf8 { err, .. } => Problem::new(
                &self.path,
                line,
                format!("field {} is not valid UTF-8", err.field() + 1),
            )
            .hint("save it as UTF-8 (Excel: \"CSV UTF-8\"), or declare its encoding, e.g. `encoding: windows-1252` under `contacts`"),
            csv::ErrorKind::Io(err) => {
                Problem::new(&self.path, line, format!("cannot read: {err}"))
            }
            _ => Problem::new(&self.path, line, format!("{e}")),
        }
    }

    /// The next data row; a malformed row is a located problem, and reading can go on after it.
    pub fn next_row(&mut self) -> Option<Result<Row, Problem>> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                self.rows += 1;
                let line = self.line_at(self.record.position()).unwrap_or(0);
                if let Some(enc) = self.encoding
                    && let Some(field) = self.record.iter().position(|f| f.contains('\u{FFFD}'))
                {
                    return Some(Err(Problem::new(
                        &self.path,
                        Some(line as usize),
                        format!(
                            "field {} holds bytes that are not valid {}",
                            field + 1,
                            enc.name()
                        ),
                    )
                    .hint(
                        "check `contacts.encoding`: declare the encoding the file was saved in",
                    )));
                }
                // The next record starts with this one's sizes: growing an empty one from
                // nothing reallocated its buffers several times a row.
                let next = csv::StringRecord::with_capacity(
                    self.record.as_slice().len(),
                    self.record.len(),
                );
                Some(Ok(Row {
                    number: self.rows,
                    line,
                    record: std::mem::replace(&mut self.record, next),
                }))
            }
            Err(e) => {
                self.rows += 1;
                let p = self.csv_problem(&e);
                // An I/O error ends the file; a bad row does not.
                self.done = matches!(e.kind(), csv::ErrorKind::Io(_));
                Some(Err(p))
            }
        }
    }
}

impl ContactReader {
    /// Whether the file cannot be read any further (an I/O error ended it): the error just
    /// returned is the file's, not a row's.
    pub(crate) fn broken(&self) -> bool {
        self.done
    }
}

/// A contact file's size and modification time, to tell whether it changed between two reads.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    path: PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Snapshot {
    pub(crate) fn take(path: &Path) -> std::io::Result<Snapshot> {
        let m = std::fs::metadata(path)?;
        Ok(Snapshot {
            path: path.to_path_buf(),
            len: m.len(),
            modified: m.modified().ok(),
        })
    }

    /// What changed since the snapshot, if anything.
    pub(crate) fn changed(&self) -> Option<String> {
        match std::fs::metadata(&self.path) {
            Err(e) => Some(format!("it can no longer be read: {e}")),
            Ok(m) if m.len() != self.len => Some(format!(
                "its size went from {} to {} bytes",
                self.len,
                m.len()
            )),
            Ok(m) if m.modified().ok() != self.modified => Some("it was modified".to_string()),
            Ok(_) => None,
        }
    }
}

impl Iterator for ContactReader {
    type Item = Result<Row, Problem>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.next_row()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn csv_file(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    #[test]
    fn detects_delimiters() {
        assert_eq!(detect_delimiter(b"a;b;c\n1,2;3;4"), b';');
        assert_eq!(detect_delimiter(b"a\tb\n"), b'\t');
        assert_eq!(detect_delimiter(b"\"x;y\",b,c\n"), b',');
        assert_eq!(detect_delimiter(b"single\n"), b',');
    }

    #[test]
    fn reads_rows_with_bom_and_lines() {
        let f = csv_file(b"\xEF\xBB\xBFid;name\n1;\"Ana\nMaria\"\n\n2;Bo\r\n\r\n\r\n3;Cy\n");
        let mut r = ContactReader::open(f.path(), None, None).unwrap();
        assert_eq!(r.headers.names, vec!["id", "name"]);
        let rows: Vec<Row> = r.by_ref().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[2].number, rows[2].line), (3, 8));
        assert_eq!((rows[0].number, rows[0].line), (1, 2));
        assert_eq!(&rows[0].record[1], "Ana\nMaria");
        assert_eq!((rows[1].number, rows[1].line), (2, 5));
    }

    #[test]
    fn old_mac_line_ends_count_as_lines() {
        let f = csv_file(b"id,name\r1,Ana\r\r2,Bo\r");
        let rows: Vec<Row> = ContactReader::open(f.path(), None, None)
            .unwrap()
            .map(|x| x.unwrap())
            .collect();
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 4]);
    }

    #[test]
    fn ragged_rows_are_located() {
        let f = csv_file(b"a,b\n1,2\n3\n4,5\n");
        let r = ContactReader::open(f.path(), None, None).unwrap();
        let out: Vec<_> = r.collect();
        assert_eq!(out.len(), 3);
        let p = out[1].as_ref().unwrap_err();
        assert_eq!(p.line, Some(3));
        assert!(p.message.contains("1 fields"), "{p}");
        assert!(out[2].is_ok());
    }

    #[test]
    fn duplicate_headers_are_refused() {
        let f = csv_file(b"a,b,a\n1,2,3\n");
        let p = ContactReader::open(f.path(), None, None).err().unwrap();
        assert!(p.to_string().contains("appears twice"), "{p}");
    }
}
