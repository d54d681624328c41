//! Streams the contact CSV one record at a time: its encoding (declared, or told by a BOM),
//! delimiter detection, headers required and unique, every record tagged with its line in the
//! file, and cells that run on (a stray quote) cut off and reported. Memory stays flat.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Kind, Problem};

/// A cell may hold at most this many characters: WhatsApp's longest text. A longer one is almost
/// always the rest of the file swallowed by a stray quote.
pub(crate) const MAX_CELL_CHARS: u64 = 4096;
/// A quoted cell may span at most this many lines of the file, for the same reason.
pub(crate) const MAX_CELL_LINES: u64 = 10;

/// The most columns a contact file may have: a spreadsheet's own limit (Excel's 16,384).
const MAX_COLUMNS: usize = 16_384;
/// How much of a file is read to tell its encoding and delimiter.
const HEAD: usize = 64 * 1024;

/// The CSV's header row, with a name → column index map for template lookups.
#[derive(Debug)]
pub(crate) struct Headers {
    pub names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Headers {
    /// Headers from names already known to be distinct (a later duplicate would win).
    pub(crate) fn from_names(names: Vec<String>) -> Headers {
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Headers { names, index }
    }

    pub(crate) fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The column `name` may mean: spelt with other capitals, or one or two letters off (a
    /// third of a short name is another word: `plan` is not `phone`).
    pub(crate) fn nearest(&self, name: &str) -> Option<&str> {
        let lower = name.to_lowercase();
        self.names
            .iter()
            .map(|n| (strsim::levenshtein(&lower, &n.to_lowercase()), n))
            .filter(|(d, _)| *d <= (name.chars().count() / 4).clamp(1, 2))
            .min()
            .map(|(_, n)| n.as_str())
    }

    /// The columns, as a message lists them (cut short past 300 bytes).
    pub(crate) fn listing(&self) -> String {
        crate::api::truncate(&self.names.join(", "), 300)
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// One data row: its 1-based row number and the line of the file it starts on.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub number: u64,
    pub line: u64,
    pub record: csv::StringRecord,
    /// Every cell is empty or spaces (Excel's trailing `;;;;` lines): nobody, never sent. Its
    /// record then holds one empty cell a header, whatever the line held.
    pub blank: bool,
    /// Why a cell could not be decoded (a file saved as windows-1252 read as UTF-8): the row
    /// cannot be sent, and its record holds the cells decoded with U+FFFD for the bad bytes,
    /// so that a contact the ledger already holds is still found by its key.
    pub undecodable: Option<Box<Problem>>,
}

/// A line end among the bytes the parser reads, and how many lines of the file end there (more
/// than one where a runaway record's lines were cut out).
#[derive(Debug)]
struct LineEnd {
    first: u64,
    last: u64,
    lines: u64,
}

/// Maps a record's byte offset to its line in the file (the csv crate's own line count skips
/// blank lines). Only the line ends between the parser's position and its read-ahead are kept,
/// so memory stays flat.
#[derive(Debug, Default)]
struct Newlines {
    /// Line ends not yet passed by a record start.
    pending: VecDeque<LineEnd>,
    /// Lines ended before `pending[0]`.
    passed: u64,
}

impl Newlines {
    fn push(&mut self, at: u64, lines: u64) {
        self.pending.push_back(LineEnd {
            first: at,
            last: at,
            lines,
        });
    }

    /// The `\n` of a `\r\n`.
    fn extend(&mut self, at: u64) {
        if let Some(back) = self.pending.back_mut() {
            back.last = at;
        }
    }

    /// The 1-based line of the first non-blank line at or after byte `offset` (the parser puts
    /// a record's start before the blank lines it skips).
    fn line_of(&mut self, mut offset: u64) -> u64 {
        while let Some(end) = self.pending.front() {
            if end.last < offset {
                self.passed += end.lines;
                self.pending.pop_front();
            } else if end.first == offset || end.last == offset {
                offset = end.last + 1;
            } else {
                break;
            }
        }
        self.passed + 1
    }
}

/// A cell as the scanner follows it.
#[derive(Debug, Default, Clone, Copy)]
struct Cell {
    /// 0-based column.
    field: usize,
    quoted: bool,
    /// The line its first byte (the quote, when quoted) is on.
    first_line: u64,
    /// The line it ends on, once it has.
    last_line: u64,
    /// Line ends inside it.
    line_ends: u64,
    chars: u64,
    /// Its quote was closed (an unquoted cell counts as closed when it ends).
    closed: bool,
    /// Lines inside its quote, past the first, that hold a whole record's delimiters: rows a
    /// stray quote swallowed. How many, the first and the last.
    swallowed: u64,
    swallowed_first: u64,
    swallowed_last: u64,
    /// Delimiters inside the quote on the line it closes on.
    closing_delimiters: usize,
}

impl Cell {
    fn runs_away(&self) -> bool {
        self.line_ends >= MAX_CELL_LINES || self.chars > MAX_CELL_CHARS
    }
}

/// A record cut short because a cell ran away, or a quote left open at the end of the file;
/// or a record read whole whose quotes went wrong.
#[derive(Debug)]
struct Runaway {
    /// The parser has read the record once its position reaches this offset.
    ends_at: u64,
    cell: Cell,
    why: Flaw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Too long, or a quote never closed: the record was cut short.
    Cut,
    /// The cell is short enough, but swallowed rows (`Cell::swallowed`).
    Swallowed,
    /// Text follows the cell's closing quote (`"Ana "x" Lima`): the parser keeps it, quote and
    /// all, and reads `Ana x" Lima`.
    AfterQuote,
}

/// What the stream under the parser finds for the reader above it (which reaches it through
/// `csv::Reader::get_mut`): line ends and runaway records, both found as the parser reads ahead.
#[derive(Debug, Default)]
struct Shared {
    newlines: Newlines,
    runaways: VecDeque<Runaway>,
}

/// Where the scanner is in a record (the csv crate's grammar with its defaults: `"` quotes,
/// `""` inside quotes is one `"`, a quote only opens at the start of a cell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    RecordStart,
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` inside quotes: the closing one, or the first of `""`.
    QuoteInQuoted,
}

/// A runaway record being cut out of the stream.
#[derive(Debug)]
struct Cut {
    /// Where the bytes that end the record early go in the parser's stream.
    at: u64,
    len: u64,
    /// Line ends cut out.
    lines: u64,
    /// The runaway cell, once it has ended.
    cell: Option<Cell>,
}

/// Follows the records as the parser will read them, byte by byte, to record line ends and to
/// catch a cell that runs away before the parser has buffered all of it.
#[derive(Debug)]
struct Scanner {
    delimiter: u8,
    state: State,
    field: usize,
    cell: Cell,
    /// The line of the next byte.
    line: u64,
    last: u8,
    cut: Option<Cut>,
    finished: bool,
    /// The delimiters a record holds (the header's), once the header is read; 0 for a file of
    /// one column, where a swallowed row cannot be told from text.
    need: usize,
    header_read: bool,
    /// Delimiters inside the current quoted cell, on its current line.
    line_delimiters: usize,
    /// The record's first cell that swallowed rows.
    swallow: Option<Cell>,
    /// The record's first cell with text after its closing quote.
    after_quote: Option<Cell>,
}

impl Scanner {
    /// A scanner whose first byte is on line `line`.
    fn new(delimiter: u8, line: u64) -> Self {
        Scanner {
            delimiter,
            state: State::RecordStart,
            field: 0,
            cell: Cell::default(),
            line,
            last: 0,
            cut: None,
            finished: false,
            need: 0,
            header_read: false,
            line_delimiters: 0,
            swallow: None,
            after_quote: None,
        }
    }

    /// Moves over one byte, which goes to the parser at offset `at` unless a cut is under way.
    /// Returns the bytes that end the record early when this byte makes its cell run away; the
    /// byte itself is then cut out.
    fn step(&mut self, b: u8, at: u64, shared: &mut Shared) -> Option<&'static [u8]> {
        // A line ends with \n, \r\n, or a lone \r (as the csv parser reads them).
        let line_end = b == b'\r' || (b == b'\n' && self.last != b'\r');
        match &mut self.cut {
            Some(cut) if line_end => cut.lines += 1,
            Some(_) => {}
            None if line_end => shared.newlines.push(at, 1),
            None if b == b'\n' => shared.newlines.extend(at),
            None => {}
        }
        self.last = b;
        let line = self.line;
        if line_end {
            self.line += 1;
        }
        let ends_record = b == b'\r' || b == b'\n';
        match self.state {
            State::RecordStart | State::FieldStart => {
                if b == b'"' {
                    self.open(line, true);
                    self.state = State::Quoted;
                } else if b == self.delimiter {
                    self.field += 1;
                    self.state = State::FieldStart;
                } else if ends_record {
                    // On a blank line the parser waits for the next record.
                    if self.state == State::FieldStart {
                        self.end_record(shared, at);
                    }
                } else {
                    self.open(line, false);
                    self.state = State::Unquoted;
                    return self.grow(b, at);
                }
            }
            State::Unquoted => {
                if b == self.delimiter {
                    self.end_cell(line);
                    self.field += 1;
                    self.state = State::FieldStart;
                } else if ends_record {
                    self.end_cell(line);
                    self.end_record(shared, at);
                } else {
                    self.after_quote(b);
                    return self.grow(b, at);
                }
            }
            State::Quoted => {
                if b == b'"' {
                    self.state = State::QuoteInQuoted;
                } else if line_end {
                    self.cell.line_ends += 1;
                    self.line_delimiters = 0;
                    return self.check(at);
                } else if b == self.delimiter {
                    self.inner_delimiter(line);
                    return self.grow(b, at);
                } else if b != b'\n' {
                    return self.grow(b, at);
                }
            }
            State::QuoteInQuoted => {
                if b == b'"' {
                    self.state = State::Quoted;
                    return self.grow(b, at);
                }
                self.cell.closed = true;
                if b == self.delimiter {
                    self.end_cell(line);
                    self.field += 1;
                    self.state = State::FieldStart;
                } else if ends_record {
                    self.end_cell(line);
                    self.end_record(shared, at);
                } else {
                    // Text after the closing quote belongs to the same cell.
                    self.state = State::Unquoted;
                    self.after_quote(b);
                    return self.grow(b, at);
                }
            }
        }
        None
    }

    /// Byte `b` of an unquoted stretch: in a quoted cell, one after its closing quote. Spaces
    /// there are harmless; anything else is a quote gone wrong.
    fn after_quote(&mut self, b: u8) {
        if self.cell.quoted && !b.is_ascii_whitespace() && self.after_quote.is_none() {
            self.after_quote = Some(self.cell);
        }
    }

    fn open(&mut self, line: u64, quoted: bool) {
        self.line_delimiters = 0;
        self.cell = Cell {
            field: self.field,
            quoted,
            first_line: line,
            last_line: line,
            ..Cell::default()
        };
    }

    fn grow(&mut self, b: u8, at: u64) -> Option<&'static [u8]> {
        // Counts characters, not bytes: UTF-8 continuation bytes are 10xxxxxx.
        if b & 0xC0 != 0x80 {
            self.cell.chars += 1;
        }
        self.check(at)
    }

    /// Starts cutting the record out when its cell has just run away.
    fn check(&mut self, at: u64) -> Option<&'static [u8]> {
        if self.cut.is_some() || !self.cell.runs_away() {
            return None;
        }
        // Inside quotes the parser needs the quote closed before the record can end.
        let end: &'static [u8] = if self.state == State::Quoted {
            b"\"\n"
        } else {
            b"\n"
        };
        self.cut = Some(Cut {
            at,
            len: end.len() as u64,
            lines: 0,
            cell: None,
        });
        Some(end)
    }

    /// A delimiter inside quotes, on `line`: the line swallows a row once it holds as many as
    /// a record, past the quote's first line (where the cell's own record holds them).
    fn inner_delimiter(&mut self, line: u64) {
        if line == self.cell.first_line || self.need == 0 {
            return;
        }
        self.line_delimiters += 1;
        if self.line_delimiters == self.need {
            let c = &mut self.cell;
            c.swallowed += 1;
            if c.swallowed_first == 0 {
                c.swallowed_first = line;
            }
            c.swallowed_last = line;
        }
    }

    fn end_cell(&mut self, line: u64) {
        self.cell.closed = true;
        self.cell.last_line = line;
        self.cell.closing_delimiters = self.line_delimiters;
        if self.cell.swallowed > 0 && self.swallow.is_none() {
            self.swallow = Some(self.cell);
        }
        if let Some(cut) = &mut self.cut
            && cut.cell.is_none()
        {
            cut.cell = Some(self.cell);
        }
    }

    /// The record ends at byte `at` of the parser's stream (when it is not cut short).
    fn end_record(&mut self, shared: &mut Shared, at: u64) {
        if !self.header_read {
            self.header_read = true;
            self.need = self.field;
        }
        // The line a swallowing quote closes on is a row of its own too when, read whole, it
        // holds a record's delimiters: those inside the quote and those after it.
        let delimiters = self.field;
        let swallow = self.swallow.take().map(|mut c| {
            let after = delimiters.saturating_sub(c.field);
            if c.last_line > c.swallowed_last && c.closing_delimiters + after >= self.need {
                c.swallowed += 1;
                c.swallowed_last = c.last_line;
            }
            c
        });
        self.field = 0;
        self.state = State::RecordStart;
        let after_quote = self.after_quote.take();
        if let Some(cut) = self.cut.take() {
            let ends_at = cut.at + cut.len - 1;
            if cut.lines > 0 {
                shared.newlines.push(ends_at, cut.lines);
            }
            shared.runaways.push_back(Runaway {
                ends_at,
                cell: cut.cell.unwrap_or(self.cell),
                why: Flaw::Cut,
            });
        } else if let Some((cell, why)) = swallow
            .map(|c| (c, Flaw::Swallowed))
            .or(after_quote.map(|c| (c, Flaw::AfterQuote)))
        {
            shared.runaways.push_back(Runaway {
                ends_at: at,
                cell,
                why,
            });
        }
    }

    fn cutting(&self) -> bool {
        self.cut.is_some()
    }

    /// The end of the stream, `emitted` bytes having gone to the parser: a cut ends there, and
    /// a quote still open is a runaway too, however short.
    fn finish(&mut self, emitted: u64, shared: &mut Shared) {
        if self.finished {
            return;
        }
        self.finished = true;
        let last_line = if matches!(self.last, b'\r' | b'\n') {
            self.line - 1
        } else {
            self.line
        };
        let open = self.state == State::Quoted;
        match &mut self.cut {
            None if open => {
                self.cell.last_line = last_line;
                shared.runaways.push_back(Runaway {
                    ends_at: emitted,
                    cell: self.cell,
                    why: Flaw::Cut,
                });
            }
            None => {
                // The last record, with no line end after it.
                if matches!(self.state, State::Unquoted | State::QuoteInQuoted) {
                    self.end_cell(last_line);
                }
                if self.swallow.is_some() || self.after_quote.is_some() {
                    self.end_record(shared, emitted);
                }
            }
            Some(cut) => {
                if cut.cell.is_none() {
                    self.cell.closed = !open;
                    self.cell.last_line = last_line;
                    cut.cell = Some(self.cell);
                }
                let at = cut.at;
                self.end_record(shared, at);
            }
        }
    }
}

/// The stream under the CSV parser: passes the bytes on while the scanner follows them, and
/// cuts a runaway record short so the parser never buffers more than a cell's limit of it.
struct Guard {
    inner: BufReader<Box<dyn Read + Send>>,
    scan: Scanner,
    /// What the scanner found, for the reader above the parser (`csv::Reader::get_ref`).
    shared: Shared,
    /// Bytes given to the parser so far.
    emitted: u64,
    /// Bytes that end a runaway record early, still to give.
    end: &'static [u8],
}

impl Guard {
    fn give_end(&mut self, buf: &mut [u8]) -> usize {
        let n = self.end.len().min(buf.len());
        buf[..n].copy_from_slice(&self.end[..n]);
        self.end = &self.end[n..];
        self.emitted += n as u64;
        n
    }
}

impl Read for Guard {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.end.is_empty() {
            return Ok(self.give_end(buf));
        }
        let given = {
            let Guard {
                inner,
                scan,
                shared,
                emitted,
                end,
            } = self;
            let avail = inner.fill_buf()?;
            if avail.is_empty() {
                scan.finish(*emitted, shared);
                return Ok(0);
            }
            let n = avail.len().min(buf.len());
            let mut cut = None;
            for (i, &b) in avail[..n].iter().enumerate() {
                if let Some(bytes) = scan.step(b, *emitted + i as u64, shared) {
                    cut = Some((i, bytes));
                    break;
                }
            }
            let given = cut.map_or(n, |(i, _)| i);
            buf[..given].copy_from_slice(&avail[..given]);
            *emitted += given as u64;
            match cut {
                None => inner.consume(n),
                Some((i, bytes)) => {
                    inner.consume(i + 1);
                    // The rest of the record is read now, so that all about it is known by
                    // the time the parser returns it.
                    cut_out(inner, scan, shared)?;
                    *end = bytes;
                }
            }
            given
        };
        if given == 0 {
            return Ok(self.give_end(buf));
        }
        Ok(given)
    }
}

/// Reads and drops a runaway record's bytes up to its end (or the end of the stream).
fn cut_out(
    inner: &mut BufReader<Box<dyn Read + Send>>,
    scan: &mut Scanner,
    shared: &mut Shared,
) -> std::io::Result<()> {
    while scan.cutting() {
        let avail = inner.fill_buf()?;
        if avail.is_empty() {
            // The parser is yet to read the bytes that end the record.
            let at = scan.cut.as_ref().map_or(0, |c| c.at);
            scan.finish(at, shared);
            break;
        }
        let mut used = 0;
        for &b in avail {
            used += 1;
            scan.step(b, 0, shared);
            if !scan.cutting() {
                break;
            }
        }
        inner.consume(used);
    }
    Ok(())
}

/// Every column named, and each name once.
fn named_once(path: &Path, header_line: usize, names: &[String]) -> Result<(), Problem> {
    if names.iter().all(|n| n.is_empty()) {
        return Err(
            Problem::new(path, Some(header_line), "the file has no header row")
                .hint("the first line must name the columns, e.g. `customer_id,first_name,phone`"),
        );
    }
    let mut index = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(Problem::new(
                path,
                Some(header_line),
                format!("column {} has an empty header", i + 1),
            )
            .at(Some(i + 1))
            .hint("give every column a name in the first line"));
        }
        if let Some(first) = index.insert(n.clone(), i) {
            return Err(Problem::new(
                path,
                Some(header_line),
                format!(
                    "the header {n:?} appears twice (columns {} and {})",
                    first + 1,
                    i + 1
                ),
            )
            .at(Some(i + 1))
            .hint("rename one of them"));
        }
    }
    Ok(())
}

pub(crate) use encoding_rs::Encoding;

/// Decodes a stream in `encoding` to UTF-8; bytes it cannot decode become U+FFFD, which the
/// reader reports with their line. A BOM of that encoding is dropped.
pub(crate) fn decoding_reader<R: Read + Send>(
    source: R,
    encoding: &'static Encoding,
) -> impl Read + Send {
    encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .build(source)
}

/// Reads the start of a stream: up to `max` bytes, or to the end of its first line that is not
/// blank when `line` is set. Returns it and the stream again from the start.
fn read_head(
    mut source: Box<dyn Read + Send>,
    max: usize,
    line: bool,
) -> std::io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 8 * 1024];
    while head.len() < max {
        let want = chunk.len().min(max - head.len());
        let n = match source.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        head.extend_from_slice(&chunk[..n]);
        let blank = blank_lines(&head).0;
        if line && head[blank..].iter().any(|&b| b == b'\n' || b == b'\r') {
            break;
        }
    }
    let again = Cursor::new(head.clone()).chain(source);
    Ok((head, Box::new(again)))
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Characters a contact file or a list may separate its cells with.
pub(crate) const DELIMITERS: &[u8] = b",;\t|";

/// Whether byte `i` of `text` ends a line: `\n`, or a `\r` not followed by `\n` (a file of old
/// Mac line ends). Line numbers of files read as text are counted this way.
pub(crate) fn ends_line(text: &[u8], i: usize) -> bool {
    match text[i] {
        b'\n' => true,
        b'\r' => text.get(i + 1) != Some(&b'\n'),
        _ => false,
    }
}

/// How many lines `text` ends.
fn line_breaks(text: &[u8]) -> usize {
    (0..text.len()).filter(|&i| ends_line(text, i)).count()
}

/// The blank lines a text starts with: their bytes, and how many lines (`\r\n` is one).
fn blank_lines(text: &[u8]) -> (usize, u64) {
    let bytes = text
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    (bytes, line_breaks(&text[..bytes]) as u64)
}

/// The encoding to read a file in, from the start of its bytes: a BOM decides (a UTF-8 BOM, or
/// none with nothing declared, is UTF-8: `None`); else the declared encoding, unless the file is
/// plainly UTF-8, which is a problem rather than a guess.
fn sniff(
    path: &Path,
    head: &[u8],
    declared: Option<&'static Encoding>,
) -> Result<Option<&'static Encoding>, Problem> {
    if let Some((enc, _)) = Encoding::for_bom(head) {
        return Ok((enc != encoding_rs::UTF_8).then_some(enc));
    }
    let Some(enc) = declared else {
        return Ok(None);
    };
    match utf8_word(head) {
        Some((word, line)) => Err(utf8_declared(path, &word, line, enc)),
        None => Ok(Some(enc)),
    }
}

fn utf8_declared(path: &Path, word: &str, line: usize, enc: &'static Encoding) -> Problem {
    Problem::new(
        path,
        Some(line),
        format!(
            "this file is UTF-8 (e.g. {word:?}), but the campaign says it is {}",
            enc.name()
        ),
    )
    .hint("remove `encoding:` under `contacts` (UTF-8 is the default), and check again")
}

/// For a file declared in another encoding whose start is all ASCII (which reads alike in
/// both): whether the whole file is UTF-8 with a non-ASCII character, and the first such word
/// and its line. Read as declared, its `João` would be sent as `JoÃ£o`.
fn utf8_throughout(path: &Path) -> std::io::Result<Option<(String, usize)>> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; HEAD];
    let (mut carry, mut lines, mut found) = (Vec::new(), 0usize, None);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(found.filter(|_| std::str::from_utf8(&carry).is_ok()));
        }
        let mut chunk = std::mem::take(&mut carry);
        chunk.extend_from_slice(&buf[..n]);
        let mut valid = match std::str::from_utf8(&chunk) {
            Ok(_) => chunk.len(),
            // A character cut by the chunk's end goes on in the next.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => return Ok(None),
        };
        // So does a `\r` the next chunk's `\n` may follow: together they end one line.
        if valid == chunk.len() && chunk.ends_with(b"\r") {
            valid -= 1;
        }
        if found.is_none() {
            match utf8_word(&chunk[..valid]) {
                Some((word, line)) => found = Some((word, lines + line)),
                None => lines += line_breaks(&chunk[..valid]),
            }
        }
        carry = chunk[valid..].to_vec();
    }
}

/// A word with a multi-byte character and its line, when `head` is UTF-8 text that holds one:
/// text in a legacy encoding is almost never valid UTF-8 once it has a non-ASCII letter.
fn utf8_word(head: &[u8]) -> Option<(String, usize)> {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // The head may end inside a character.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    let at = text.find(|c: char| !c.is_ascii())?;
    let line = 1 + line_breaks(&text.as_bytes()[..at]);
    Some((word_around(text, at).to_string(), line))
}

/// The word around byte `at` of `text` (at most 40 characters of it), to quote as an example.
fn word_around(text: &str, at: usize) -> String {
    let stop = |c: char| c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '"');
    let start = text[..at]
        .char_indices()
        .rev()
        .find(|&(_, c)| stop(c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let end = text[at..].find(stop).map_or(text.len(), |i| at + i);
    text[start..end].chars().take(40).collect()
}

/// What a cell that is not UTF-8 says when read as windows-1252, when that reads as Latin text
/// (letters with accents, typographic quotes and dashes): Excel's "CSV" on Windows writes it.
fn as_windows_1252(bytes: &[u8]) -> Option<String> {
    let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
    let latin = text
        .chars()
        .filter(|c| !c.is_ascii())
        .all(|c| c.is_alphabetic() || "ªº°€‘’‚“”„–—´·¡¿«»".contains(c));
    let at = text.find(|c: char| !c.is_ascii())?;
    latin.then(|| word_around(&text, at))
}

/// The hint for bytes that are not UTF-8, naming the encoding they look like.
fn not_utf8_hint(bytes: &[u8]) -> String {
    match as_windows_1252(bytes) {
        Some(word) => format!(
            "it looks saved as windows-1252 (read that way it says {word:?}): add `encoding: windows-1252` under `contacts`, or save the file as UTF-8 (Excel: \"CSV UTF-8\")"
        ),
        None => "save it as UTF-8 (Excel: \"CSV UTF-8\"), or declare the encoding it was saved in under `contacts`, e.g. `encoding: shift_jis`".into(),
    }
}

/// A delimiter as a message shows it: `tab`, or the character.
fn shown(d: u8) -> String {
    if d == b'\t' {
        "tab".to_string()
    } else {
        char::from(d).to_string()
    }
}

pub(crate) struct ContactReader {
    path: PathBuf,
    reader: csv::Reader<Guard>,
    pub headers: Arc<Headers>,
    rows: u64,
    done: bool,
    record: csv::ByteRecord,
    /// The encoding the stream was decoded from (not UTF-8): undecodable bytes show up as U+FFFD.
    encoding: Option<&'static encoding_rs::Encoding>,
    /// The header row's line: 2 after Excel's `sep=` line.
    header_line: usize,
}

/// A delimiter as people write it: one ASCII character, or `tab` (also `\t`).
pub(crate) fn delimiter(written: &str) -> Option<u8> {
    match written {
        "\\t" | "\t" | "tab" | "TAB" => Some(b'\t'),
        d if d.len() == 1 && d.is_ascii() => Some(d.as_bytes()[0]),
        _ => None,
    }
}

/// An encoding by its WHATWG label (`windows-1252`, `latin-1`); `None` for UTF-8, the default.
/// A label nobody knows is given back, lower-cased, to be named in the message.
pub(crate) fn encoding(label: &str) -> Result<Option<&'static Encoding>, String> {
    // WHATWG knows "latin1"; people also write "latin-1".
    let label = label
        .trim()
        .to_ascii_lowercase()
        .replace("latin-1", "latin1");
    match Encoding::for_label(label.as_bytes()) {
        Some(e) if e == encoding_rs::UTF_8 => Ok(None),
        Some(e) => Ok(Some(e)),
        None => Err(label),
    }
}

/// Excel's first line `sep=;` (any one character after `sep=`) names the delimiter: that
/// character and the length of the line with its line end, when `head` (past any BOM) starts
/// with one. A `\r` at the end of `head` may be followed by the `\n` of a `\r\n`.
pub(crate) fn sep_line(head: &[u8]) -> Option<(u8, usize)> {
    if !head.get(..4)?.eq_ignore_ascii_case(b"sep=") {
        return None;
    }
    let d = *head.get(4)?;
    if !d.is_ascii() || matches!(d, b'"' | b'\r' | b'\n') {
        return None;
    }
    let len = match &head[5..] {
        [] => 5,
        [b'\r', b'\n', ..] => 7,
        [b'\r' | b'\n', ..] => 6,
        _ => return None,
    };
    Some((d, len))
}

/// Drops the first `n` bytes of a stream, and the `\n` of a `\r\n` when they end with `\r`.
fn skip(buf: &mut BufReader<Box<dyn Read + Send>>, mut n: usize) -> std::io::Result<()> {
    let mut last = 0;
    while n > 0 {
        let avail = buf.fill_buf()?;
        if avail.is_empty() {
            return Ok(());
        }
        let k = avail.len().min(n);
        last = avail[k - 1];
        buf.consume(k);
        n -= k;
    }
    if last == b'\r' && buf.fill_buf()?.first() == Some(&b'\n') {
        buf.consume(1);
    }
    Ok(())
}

/// Counts candidate delimiters outside quotes on the first line and picks the most frequent.
pub(crate) fn detect_delimiter(first_line: &[u8]) -> u8 {
    let mut quoted = false;
    let mut counts = [0usize; 3];
    for &b in first_line {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
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

/// Roughly how many rows a contact file holds, from its size and the length of its first lines
/// (0 when unknown): enough to size tables once instead of growing them row by row.
pub(crate) fn estimate_rows(path: &Path) -> usize {
    let Ok(mut file) = File::open(path) else {
        return 0;
    };
    let size = file.metadata().map_or(0, |m| m.len());
    let mut head = Vec::with_capacity(HEAD);
    let _ = (&mut file).take(HEAD as u64).read_to_end(&mut head);
    let filled = head.len();
    let lines = head.iter().filter(|b| **b == b'\n').count().max(1);
    usize::try_from(size.saturating_mul(lines as u64) / filled.max(1) as u64).unwrap_or(0)
}

impl ContactReader {
    /// Opens the file and reads its header row. `encoding` `None` is UTF-8; a BOM overrides it.
    pub(crate) fn open(
        path: &Path,
        delimiter: Option<u8>,
        encoding: Option<&'static encoding_rs::Encoding>,
    ) -> Result<Self, Problem> {
        let cannot_open = |e: std::io::Error| {
            Problem::new(path, None, format!("cannot open the contact file: {e}")).hint(
                "check `contacts.file` in the campaign; paths are relative to the campaign file",
            )
        };
        if let Some(enc) = encoding.filter(|e| *e != encoding_rs::UTF_8)
            && let Some((word, line)) = utf8_throughout(path).map_err(cannot_open)?
        {
            return Err(utf8_declared(path, &word, line, enc));
        }
        let file = File::open(path).map_err(cannot_open)?;
        Self::from_bytes(path, Box::new(file), delimiter, encoding)
    }

    /// Reads contacts from the bytes of a file, as `open` does: a UTF-16 or UTF-8 BOM decides
    /// the encoding, else `declared` (`None` is UTF-8), which is refused for a file that is
    /// plainly UTF-8. `label` names the stream in messages.
    pub(crate) fn from_bytes(
        label: &Path,
        source: Box<dyn Read + Send>,
        delimiter: Option<u8>,
        declared: Option<&'static encoding_rs::Encoding>,
    ) -> Result<Self, Problem> {
        let (head, source) = read_head(source, HEAD, false)
            .map_err(|e| Problem::new(label, None, format!("cannot read: {e}")))?;
        let encoding = sniff(label, &head, declared)?;
        let source: Box<dyn Read + Send> = match encoding {
            None => source,
            Some(enc) => Box::new(decoding_reader(source, enc)),
        };
        Self::from_reader(label, source, delimiter, encoding)
    }

    /// Reads contacts from a UTF-8 stream (a BOM is skipped); `encoding` is the one it was
    /// decoded from, if any, so that undecodable bytes are reported. `label` names it in
    /// messages.
    pub(crate) fn from_reader(
        label: &Path,
        source: Box<dyn Read + Send>,
        delimiter: Option<u8>,
        encoding: Option<&'static encoding_rs::Encoding>,
    ) -> Result<Self, Problem> {
        let path = label;
        // The first line whole, however the stream comes in pieces (a decoder gives a few
        // bytes at first), to find the delimiter in.
        let (head, source) = read_head(source, HEAD, true)
            .map_err(|e| Problem::new(path, None, format!("cannot read: {e}")))?;
        let bom = if head.starts_with(UTF8_BOM) { 3 } else { 0 };
        // Blank lines above the header (an export's) are passed over, and counted.
        let (blank, blank_lines) = blank_lines(&head[bom..]);
        let first = &head[bom + blank..];
        let sep = sep_line(first);
        // A declared delimiter wins over the file's `sep=` line, which is skipped all the same.
        let declared = delimiter;
        let delimiter = delimiter
            .or(sep.map(|(d, _)| d))
            .unwrap_or_else(|| detect_delimiter(first));
        let mut buf = BufReader::with_capacity(256 * 1024, source);
        skip(&mut buf, bom + blank + sep.map_or(0, |(_, len)| len))
            .map_err(|e| Problem::new(path, None, format!("cannot read: {e}")))?;
        // Lines keep counting the file's own: the `sep=` line is line 1.
        let header_line = 1 + blank_lines + u64::from(sep.is_some());
        let mut shared = Shared::default();
        shared.newlines.passed = header_line - 1;
        let guard = Guard {
            inner: buf,
            scan: Scanner::new(delimiter, header_line),
            shared,
            emitted: 0,
            end: b"",
        };
        let reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            // Row lengths are checked here, after a runaway cell, which cuts its row short.
            .flexible(true)
            .from_reader(guard);
        let mut this = ContactReader {
            path: path.to_path_buf(),
            reader,
            headers: Arc::new(Headers {
                names: vec![],
                index: HashMap::new(),
            }),
            rows: 0,
            done: false,
            record: csv::ByteRecord::new(),
            encoding,
            header_line: header_line as usize,
        };
        let names = this.read_headers()?;
        if let Some(p) = this.delimiter_mismatch(&names, sep.map(|(d, _)| d), declared) {
            return Err(p);
        }
        this.headers = Arc::new(Headers::from_names(names));
        Ok(this)
    }

    /// A header read as one column that holds another delimiter: Excel's `sep=` line (`sep`),
    /// or `contacts.delimiter` (`declared`), names another delimiter than the file uses.
    fn delimiter_mismatch(
        &self,
        names: &[String],
        sep: Option<u8>,
        declared: Option<u8>,
    ) -> Option<Problem> {
        let [only] = names else { return None };
        let said = declared.or(sep)?;
        let &found = DELIMITERS
            .iter()
            .find(|&&d| d != said && only.as_bytes().contains(&d))?;
        Some(if declared.is_some() {
            Problem::new(
                &self.path,
                Some(self.header_line),
                format!(
                    "the header reads as one column, {:?}: its cells are separated by `{}`, but `contacts.delimiter` says `{}`",
                    crate::api::truncate(only, 60),
                    shown(found),
                    shown(said)
                ),
            )
            .hint(format!(
                "remove `delimiter:` under `contacts` (the delimiter is then found by itself), or set it to {:?}",
                shown(found)
            ))
        } else {
            // The `sep=` line is the one above the header.
            Problem::new(
                &self.path,
                Some(self.header_line - 1),
                format!(
                    "this line says `sep={}`, but the header's cells are separated by `{}`",
                    shown(said),
                    shown(found)
                ),
            )
            .hint(format!(
                "fix the line to `sep={}`, or delete it (the delimiter is then found by itself)",
                shown(found)
            ))
        })
    }

    fn read_headers(&mut self) -> Result<Vec<String>, Problem> {
        let raw = match self.reader.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => return Err(self.csv_problem(&e)),
        };
        if let Some(r) = self.take_runaway() {
            return Err(self.runaway_problem(&r));
        }
        let path = &self.path;
        let header_line = self.header_line;
        if raw.as_slice().contains(&0) {
            return Err(utf16_without_mark(path, header_line, raw.as_slice()));
        }
        if raw.len() > MAX_COLUMNS {
            return Err(Problem::new(
                path,
                Some(header_line),
                format!(
                    "the header has {} columns; a contact file may have at most {MAX_COLUMNS}, as many as a spreadsheet holds",
                    raw.len()
                ),
            )
            .hint("check the delimiter, or keep only the columns the campaign uses"));
        }
        let mut names = Vec::with_capacity(raw.len());
        for (i, bytes) in raw.iter().enumerate() {
            match std::str::from_utf8(bytes) {
                Ok(n) => names.push(n.trim().to_string()),
                Err(_) => {
                    return Err(Problem::new(
                        path,
                        Some(header_line),
                        format!("the header of column {} is not valid UTF-8", i + 1),
                    )
                    .hint(not_utf8_hint(bytes)));
                }
            }
        }
        if let Some(enc) = self.encoding
            && let Some(i) = names.iter().position(|n| n.contains('\u{FFFD}'))
        {
            return Err(Problem::new(
                path,
                Some(header_line),
                format!(
                    "the header of column {} holds bytes that are not valid {}",
                    i + 1,
                    enc.name()
                ),
            )
            .hint("check `contacts.encoding`: declare the encoding the file was saved in")
            .kind(Kind::Cell));
        }
        named_once(path, header_line, &names)?;
        Ok(names)
    }

    /// Data rows read so far, bad ones included: the number of the row just read.
    pub(crate) fn rows_read(&self) -> u64 {
        self.rows
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// True once a read error has ended the file: the problem just returned is not a row's.
    pub(crate) fn failed(&self) -> bool {
        self.done
    }

    /// The line the byte at offset `byte` is on.
    fn line_at(&mut self, byte: Option<u64>) -> Option<u64> {
        Some(self.reader.get_mut().shared.newlines.line_of(byte?))
    }

    /// The runaway cell of the record just read, if it has one.
    fn take_runaway(&mut self) -> Option<Runaway> {
        let read = self.reader.position().byte();
        let runaways = &mut self.reader.get_mut().shared.runaways;
        if runaways.front()?.ends_at <= read {
            runaways.pop_front()
        } else {
            None
        }
    }

    /// `column "name"`, or `column 4` past the header's columns.
    fn column(&self, field: usize) -> String {
        match self.headers.names.get(field) {
            Some(name) => format!("column {name:?}"),
            None => format!("column {}", field + 1),
        }
    }

    fn runaway_problem(&self, r: &Runaway) -> Problem {
        let c = &r.cell;
        match r.why {
            Flaw::Swallowed => return self.swallowed_problem(c),
            Flaw::AfterQuote => return self.after_quote_problem(c),
            Flaw::Cut => {}
        }
        let column = self.column(c.field);
        let lines = c.last_line + 1 - c.first_line;
        let stray = "is there a stray \" in it? Close the quote or remove it, and check again";
        let (message, hint) = if c.quoted && !c.closed {
            let message = format!(
                "{column} starts a quoted cell that is never closed: it runs to the end of the file (line {})",
                c.last_line
            );
            (message, stray)
        } else if c.quoted && lines > MAX_CELL_LINES {
            let message = format!(
                "{column} starts a quoted cell that runs {lines} lines (to line {})",
                c.last_line
            );
            (message, stray)
        } else {
            let message = format!(
                "{column} holds {} characters (a cell holds at most {MAX_CELL_CHARS})",
                c.chars
            );
            (
                message,
                "shorten it (a message's text belongs in a template), and check again",
            )
        };
        Problem::new(&self.path, Some(c.first_line as usize), message)
            .hint(hint)
            .kind(Kind::Cell)
    }

    /// A quoted cell with text after its closing quote: shown as the parser reads it.
    fn after_quote_problem(&self, c: &Cell) -> Problem {
        let read = self
            .record
            .get(c.field)
            .map(|v| {
                format!(
                    ", so it reads as `{}`",
                    crate::text::printable(&String::from_utf8_lossy(v))
                )
            })
            .unwrap_or_default();
        Problem::new(
            &self.path,
            Some(c.first_line as usize),
            format!(
                "{} has text after its closing quote{read}",
                self.column(c.field)
            ),
        )
        .hint("a quote inside a quoted cell is written twice (\"Ana \"\"Bia\"\" Lima\", as Excel saves it); fix the quotes or remove them, and check again")
        .kind(Kind::Cell)
    }

    /// A quote that closes a few lines on, after rows that became part of its cell.
    fn swallowed_problem(&self, c: &Cell) -> Problem {
        let rows = if c.swallowed == 1 {
            format!("the row on line {}", c.swallowed_first)
        } else {
            format!(
                "{} rows, on lines {} to {},",
                c.swallowed, c.swallowed_first, c.swallowed_last
            )
        };
        let message = format!(
            "{} opens a quote on line {} that swallows {rows} into this cell (the quote closes on line {})",
            self.column(c.field),
            c.first_line,
            c.last_line
        );
        Problem::new(&self.path, Some(c.first_line as usize), message)
            .hint(format!(
                "fix the stray \" on line {}: remove it, or write it as \"\" to keep it in the text, and check again",
                c.first_line
            ))
            .kind(Kind::Cell)
    }

    fn csv_problem(&mut self, e: &csv::Error) -> Problem {
        let line = self
            .line_at(e.position().map(|p| p.byte()))
            .map(|l| l as usize);
        match e.kind() {
            csv::ErrorKind::Io(err) => {
                Problem::new(&self.path, line, format!("cannot read: {err}"))
            }
            _ => Problem::new(&self.path, line, format!("{e}")),
        }
    }

    /// The next data row; a malformed row is a located problem, and reading can go on after it.
    pub(crate) fn next_row(&mut self) -> Option<Result<Row, Problem>> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                self.rows += 1;
                let line = self
                    .line_at(self.record.position().map(|p| p.byte()))
                    .unwrap_or(0);
                Some(self.checked_row(line))
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

    fn checked_row(&mut self, line: u64) -> Result<Row, Problem> {
        if let Some(r) = self.take_runaway() {
            return Err(self.runaway_problem(&r));
        }
        if self.record.iter().all(|cell| cell.trim_ascii().is_empty()) {
            return Ok(self.blank_row(line));
        }
        let at = Some(line as usize);
        let (len, expected) = (self.record.len(), self.headers.len());
        if len != expected {
            return Err(Problem::new(
                &self.path,
                at,
                format!("this row has {len} fields, the header has {expected}"),
            )
            .hint("check for a missing or extra delimiter, or quote cells that contain one")
            .kind(Kind::Cell));
        }
        // The next record starts with this one's sizes: growing an empty one from nothing
        // reallocated its buffers several times a row.
        let next = csv::ByteRecord::with_capacity(self.record.as_slice().len(), len);
        let bytes = std::mem::replace(&mut self.record, next);
        let (record, undecodable) = match csv::StringRecord::from_byte_record(bytes) {
            Ok(r) => {
                let bad = self
                    .encoding
                    .and_then(|enc| Some((enc, r.iter().position(|f| f.contains('\u{FFFD}'))?)));
                let problem = bad.map(|(enc, field)| {
                    Problem::new(
                        &self.path,
                        at,
                        format!(
                            "{} holds bytes that are not valid {}",
                            self.column(field),
                            enc.name()
                        ),
                    )
                    .hint("check `contacts.encoding`: declare the encoding the file was saved in")
                });
                (r, problem)
            }
            Err(e) => {
                let field = e.utf8_error().field();
                let bytes = e.into_byte_record();
                let hint = not_utf8_hint(bytes.get(field).unwrap_or_default());
                let message = format!("{} is not valid UTF-8", self.column(field));
                let lossy: Vec<_> = bytes.iter().map(String::from_utf8_lossy).collect();
                let problem = Problem::new(&self.path, at, message).hint(hint);
                (csv::StringRecord::from(lossy), Some(problem))
            }
        };
        if record.as_slice().contains('\0')
            && let Some(field) = record.iter().position(|f| f.contains('\0'))
        {
            return Err(Problem::new(
                &self.path,
                at,
                format!("{} holds a NUL character (byte 0)", self.column(field)),
            )
            .hint("the file may be damaged, or saved by a program that writes binary cells: open it in a spreadsheet and save it again as CSV UTF-8")
            .kind(Kind::Cell));
        }
        Ok(Row {
            number: self.rows,
            line,
            record,
            blank: false,
            undecodable: undecodable.map(|p| Box::new(p.kind(Kind::Cell))),
        })
    }

    /// A row of empty cells, as many as the header's, however many its line held.
    fn blank_row(&self, line: u64) -> Row {
        Row {
            number: self.rows,
            line,
            record: vec![""; self.headers.len()].into(),
            blank: true,
            undecodable: None,
        }
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

/// A header holding NUL bytes: every other byte NUL is UTF-16 saved without its byte-order mark
/// (one with its mark is decoded); the first byte NUL says big-endian.
fn utf16_without_mark(path: &Path, line: usize, header: &[u8]) -> Problem {
    let label = if header.first() == Some(&0) {
        "utf-16be"
    } else {
        "utf-16le"
    };
    Problem::new(
        path,
        Some(line),
        "the header holds NUL bytes: the file looks saved as UTF-16 without its byte-order mark",
    )
    .hint(format!(
        "add `encoding: {label}` under `contacts`, or save the file as UTF-8 (Excel: \"CSV UTF-8\")"
    ))
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

    /// A stream that gives one byte a read, as a decoder or a pipe may.
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    /// Every row as `line: cells` or `line: problem`, read whole and a byte at a time (the
    /// two must agree).
    fn read_all(bytes: &[u8], encoding: Option<&'static Encoding>) -> Vec<String> {
        let whole = Box::new(Cursor::new(bytes.to_vec()));
        let trickle = Box::new(Trickle(Cursor::new(bytes.to_vec())));
        let [a, b] =
            [whole as Box<dyn Read + Send>, trickle].map(|source| match ContactReader::from_bytes(
                Path::new("c.csv"),
                source,
                None,
                encoding,
            ) {
                Err(p) => vec![format!("open: {p}")],
                Ok(r) => r
                    .map(|row| match row {
                        Ok(Row {
                            undecodable: Some(p),
                            ..
                        }) => format!("{}: {}", p.line.unwrap_or(0), p.message),
                        Ok(row) => format!(
                            "{}: {}",
                            row.line,
                            row.record.iter().collect::<Vec<_>>().join("|")
                        ),
                        Err(p) => format!("{}: {}", p.line.unwrap_or(0), p.message),
                    })
                    .collect(),
            });
        assert_eq!(a, b, "read whole and a byte at a time");
        a
    }

    fn windows_1252() -> &'static Encoding {
        encoding_rs::WINDOWS_1252
    }

    #[test]
    fn a_late_accent_is_placed_on_its_line_however_lines_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.csv");
        for end in ["\n", "\r", "\r\n"] {
            // A `\r\n` split across the first chunk's end counts once.
            let line = "a".repeat(HEAD - 1);
            let text = format!("{line}{end}x{end}João{end}");
            std::fs::write(&file, text).unwrap();
            assert_eq!(
                utf8_throughout(&file).unwrap(),
                Some(("João".to_string(), 3)),
                "{end:?}"
            );
        }
        std::fs::write(&file, b"a\nJo\xE3o\n").unwrap();
        assert_eq!(utf8_throughout(&file).unwrap(), None, "not UTF-8");
    }

    #[test]
    fn a_header_wider_than_a_spreadsheet_is_refused() {
        let header = |n: usize| {
            (0..n)
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let fits = read_all(format!("{}\n", header(MAX_COLUMNS)).as_bytes(), None);
        assert!(fits.is_empty(), "{fits:?}");
        let wide = read_all(format!("{}\n", header(MAX_COLUMNS + 1)).as_bytes(), None);
        assert_eq!(
            wide,
            [format!(
                "open: c.csv:1: the header has {} columns; a contact file may have at most {MAX_COLUMNS}, as many as a spreadsheet holds — check the delimiter, or keep only the columns the campaign uses",
                MAX_COLUMNS + 1
            )]
        );
    }

    #[test]
    fn detects_delimiters() {
        assert_eq!(detect_delimiter(b"a;b;c\n1,2;3;4"), b';');
        assert_eq!(detect_delimiter(b"a\tb\n"), b'\t');
        assert_eq!(detect_delimiter(b"\"x;y\",b,c\n"), b',');
        assert_eq!(detect_delimiter(b"single\n"), b',');
        assert_eq!(detect_delimiter(b"a;b\r1,2,3,4\r"), b';');
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

    /// `rows` customers after a header, row `stray` (1-based) with a quote before its name.
    fn customers(rows: usize, stray: usize) -> String {
        let mut s = String::from("id,name,phone\n");
        for i in 1..=rows {
            let q = if i == stray { "\"" } else { "" };
            s += &format!("C{i},{q}Ann {i},55119999{i:05}\n");
        }
        s
    }

    #[test]
    fn a_stray_quote_left_open_is_one_bad_row_not_the_rest_of_the_file_in_a_cell() {
        let out = read_all(customers(1000, 2).as_bytes(), None);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], "2: C1|Ann 1|5511999900001");
        assert_eq!(
            out[1],
            "3: column \"name\" starts a quoted cell that is never closed: it runs to the end of the file (line 1001)"
        );
    }

    #[test]
    fn a_runaway_cell_that_closes_lets_the_next_rows_through() {
        let mut csv = customers(30, 2);
        // A second stray quote on line 21 (row 20) closes the first.
        csv = csv.replace("C20,Ann 20", "C20,Ann\" 20");
        let out = read_all(csv.as_bytes(), None);
        assert_eq!(
            out[1],
            "3: column \"name\" starts a quoted cell that runs 19 lines (to line 21)"
        );
        assert_eq!(out[2], "22: C21|Ann 21|5511999900021");
        assert_eq!(out.len(), 12);
        assert_eq!(out[11], "31: C30|Ann 30|5511999900030");
        // The same with \r\n and lone \r line ends.
        for end in ["\r\n", "\r"] {
            let out = read_all(csv.replace('\n', end).as_bytes(), None);
            assert_eq!(out[1].split(':').next(), Some("3"), "{end:?}");
            assert!(
                out[1].contains("19 lines (to line 21)"),
                "{end:?}: {}",
                out[1]
            );
            assert_eq!(out[2], "22: C21|Ann 21|5511999900021", "{end:?}");
        }
    }

    #[test]
    fn a_quoted_cell_of_ten_lines_is_fine_and_of_eleven_is_not() {
        let cell = |lines: usize| vec!["x"; lines].join("\n");
        let csv = format!("id,note\n1,\"{}\"\n2,\"{}\"\n3,ok\n", cell(10), cell(11));
        let out = read_all(csv.as_bytes(), None);
        assert!(out[0].starts_with("2: 1|x\nx"), "{out:?}");
        assert_eq!(
            out[1],
            "12: column \"note\" starts a quoted cell that runs 11 lines (to line 22)"
        );
        assert_eq!(out[2], "23: 3|ok");
    }

    #[test]
    fn a_cell_too_long_is_a_problem_quoted_or_not() {
        let long = "é".repeat(MAX_CELL_CHARS as usize + 1);
        let fits = "é".repeat(MAX_CELL_CHARS as usize);
        let csv = format!(
            "id,note\n1,\"{long}\"\n2,{long}\n3,{fits}\n4,\"a \"\"b\"\" {long}\",x\n5,ok\n"
        );
        let out = read_all(csv.as_bytes(), None);
        assert_eq!(
            out[0],
            "2: column \"note\" holds 4097 characters (a cell holds at most 4096)"
        );
        assert_eq!(
            out[1],
            "3: column \"note\" holds 4097 characters (a cell holds at most 4096)"
        );
        assert_eq!(out[2], format!("4: 3|{fits}"));
        assert!(
            out[3].starts_with("5: column \"note\" holds 4103 characters"),
            "{}",
            out[3]
        );
        assert_eq!(out[4], "6: 5|ok");
    }

    #[test]
    fn a_short_quote_left_open_at_the_end_is_a_problem() {
        let out = read_all(b"id,name\n1,Ana\n2,\"Bo\n", None);
        assert_eq!(out[0], "2: 1|Ana");
        assert_eq!(
            out[1],
            "3: column \"name\" starts a quoted cell that is never closed: it runs to the end of the file (line 3)"
        );
        // A quote that closes on the last byte is fine.
        assert_eq!(read_all(b"id,name\n2,\"Bo\"", None), ["2: 2|Bo"]);
    }

    #[test]
    fn a_runaway_in_the_header_row_is_refused() {
        let out = read_all(b"id,\"name\n1,Ana\n", None);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].starts_with("open: c.csv:1: column 2 starts a quoted cell that is never closed"),
            "{out:?}"
        );
    }

    #[test]
    fn a_runaway_cell_is_cut_before_the_parser_buffers_it() {
        // 20 MB in one unterminated cell: the record handed back holds at most the limit.
        let mut csv = b"id,note\n1,\"".to_vec();
        csv.resize(csv.len() + (20 << 20), b'x');
        let mut r =
            ContactReader::from_bytes(Path::new("c.csv"), Box::new(Cursor::new(csv)), None, None)
                .unwrap();
        let p = r.next().unwrap().unwrap_err();
        assert!(p.message.contains("never closed"), "{p}");
        assert!(
            r.record.as_slice().len() <= 2 * MAX_CELL_CHARS as usize,
            "{}",
            r.record.as_slice().len()
        );
        assert!(r.next().is_none());
    }

    #[test]
    fn excel_sep_line_names_the_delimiter_and_still_counts_as_a_line() {
        for end in ["\n", "\r\n", "\r"] {
            for bom in ["", "\u{FEFF}"] {
                let csv = format!("{bom}sep=;{end}id;name{end}C1;Ana, Maria{end}C2;\"Bo{end}");
                let out = read_all(csv.as_bytes(), None);
                assert_eq!(
                    out,
                    [
                        "3: C1|Ana, Maria",
                        "4: column \"name\" starts a quoted cell that is never closed: it runs to the end of the file (line 4)"
                    ],
                    "{end:?} {bom:?}"
                );
            }
        }
        // A tab, and a header problem on the header's own line.
        assert_eq!(read_all(b"SEP=\t\nid\tname\n1\tAna", None), ["3: 1|Ana"]);
        assert_eq!(
            read_all(b"sep=;\nid;;phone\n", None),
            [
                "open: c.csv:2:2: column 2 has an empty header — give every column a name in the first line"
            ]
        );
        // Only a whole line of `sep=` and one character is one.
        assert_eq!(sep_line(b"sep=;;\n"), None);
        assert_eq!(sep_line(b"sep=\n"), None);
        assert_eq!(sep_line(b"sep=|"), Some((b'|', 5)));
    }

    #[test]
    fn a_sep_line_against_the_header_is_named() {
        let out = read_all(b"sep=,\nCodigo;Nome;Telefone\n1;Ana;5511\n", None);
        assert_eq!(
            out,
            [
                "open: c.csv:1: this line says `sep=,`, but the header's cells are separated by `;` — fix the line to `sep=;`, or delete it (the delimiter is then found by itself)"
            ]
        );
    }

    #[test]
    fn a_declared_delimiter_the_file_does_not_use_is_named() {
        let source = Box::new(Cursor::new(b"sep=;\r\nid;name\r\nC1;Ana\r\n".to_vec()));
        let Err(p) = ContactReader::from_bytes(Path::new("c.csv"), source, Some(b','), None) else {
            panic!("read as one column");
        };
        assert_eq!(
            p.to_string(),
            "c.csv:2: the header reads as one column, \"id;name\": its cells are separated by `;`, but `contacts.delimiter` says `,` — remove `delimiter:` under `contacts` (the delimiter is then found by itself), or set it to \";\""
        );
    }

    #[test]
    fn a_declared_delimiter_wins_over_the_sep_line() {
        let source = Box::new(Cursor::new(b"sep=;\nid,name\n1,Ana\n".to_vec()));
        let mut r =
            ContactReader::from_bytes(Path::new("c.csv"), source, Some(b','), None).unwrap();
        assert_eq!(r.headers.names, ["id", "name"]);
        let row = r.next().unwrap().unwrap();
        assert_eq!((row.line, &row.record[1]), (3, "Ana"));
    }

    #[test]
    fn rows_of_empty_cells_are_blank_and_keep_their_number() {
        let f = csv_file(b"id;name;phone\n1;Ana;5511\n;;\n\n  ; ;\n;\n2;Bo;5512\n;;;;;\n");
        let rows: Vec<Row> = ContactReader::open(f.path(), None, None)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let shown: Vec<_> = rows
            .iter()
            .map(|r| (r.number, r.line, r.blank, r.record.len()))
            .collect();
        assert_eq!(
            shown,
            [
                (1, 2, false, 3),
                (2, 3, true, 3),
                (3, 5, true, 3),
                (4, 6, true, 3),
                (5, 7, false, 3),
                (6, 8, true, 3)
            ]
        );
        assert!(rows[1].record.iter().all(str::is_empty));
    }

    #[test]
    fn text_after_a_closing_quote_is_a_bad_row_and_spaces_there_are_not() {
        let csv = "id;nome;telefone\r\n\
                   1;\"Ana \"Bia\" Lima\";11987654321\r\n\
                   2;\"Ana \"\"Bia\"\" Lima\";11987654322\r\n\
                   3;\"Cy\" ;11987654323\r\n\
                   4;Di \"Bia\";11987654324\r\n\
                   5;Ed;\"11987654325\"x";
        let out = read_all(csv.as_bytes(), None);
        assert_eq!(
            out,
            [
                "2: column \"nome\" has text after its closing quote, so it reads as `Ana Bia\" Lima\"`",
                "3: 2|Ana \"Bia\" Lima|11987654322",
                "4: 3|Cy |11987654323",
                "5: 4|Di \"Bia\"|11987654324",
                "6: column \"telefone\" has text after its closing quote, so it reads as `11987654325x`",
            ]
        );
    }

    #[test]
    fn a_stray_quote_that_closes_a_few_lines_on_is_refused_when_it_swallows_rows() {
        let csv = "id,name,phone,message\n\
                   C1,Ana,5511999990001,Hi\n\
                   C2,Bo,5511999990002,\"Hi Bo\n\
                   C3,Cy,5511999990003,the \"best\" offer\n\
                   C4,Di,5511999990004,Hi\n";
        let out = read_all(csv.as_bytes(), None);
        assert_eq!(
            out,
            [
                "2: C1|Ana|5511999990001|Hi",
                "3: column \"message\" opens a quote on line 3 that swallows the row on line 4 into this cell (the quote closes on line 4)",
                "5: C4|Di|5511999990004|Hi",
            ]
        );
        // Three rows (the one the quote closes on too: `C4;Di";57` read whole is a row), \r\n
        // line ends, and the quote closing near the last byte of the file.
        let csv = "id;name;phone\r\nC1;\"Ana\r\nC2;Bo;55\r\nC3;Cy;56\r\nC4;Di\";57";
        let out = read_all(csv.as_bytes(), None);
        assert_eq!(
            out,
            [
                "2: column \"name\" opens a quote on line 2 that swallows 3 rows, on lines 3 to 5, into this cell (the quote closes on line 5)"
            ]
        );
        let p = ContactReader::from_bytes(
            Path::new("c.csv"),
            Box::new(Cursor::new(csv.as_bytes().to_vec())),
            None,
            None,
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
        assert_eq!(
            p.hint.as_deref(),
            Some(
                "fix the stray \" on line 2: remove it, or write it as \"\" to keep it in the text, and check again"
            )
        );
    }

    #[test]
    fn a_cell_that_spans_lines_without_a_rows_delimiters_is_fine() {
        let csv = "id,name,address,phone\nC1,Ana,\"Rua A, 10\nApto 2, bloco B\nSão Paulo\",5511\nC2,Bo,x,5512\n";
        let out = read_all(csv.as_bytes(), None);
        assert_eq!(
            out,
            [
                "2: C1|Ana|Rua A, 10\nApto 2, bloco B\nSão Paulo|5511",
                "5: C2|Bo|x|5512"
            ]
        );
        // A file of one column has no delimiters to tell a row by.
        assert_eq!(
            read_all(b"phone\n\"5511\n5512\"\n", None),
            ["2: 5511\n5512"]
        );
    }

    #[test]
    fn a_utf8_file_declared_windows_1252_is_refused_with_an_example() {
        let out = read_all(
            "id,name\nC1,Ana\nC2,João Conceição\n".as_bytes(),
            Some(windows_1252()),
        );
        assert_eq!(
            out,
            [
                "open: c.csv:3: this file is UTF-8 (e.g. \"João\"), but the campaign says it is windows-1252 — remove `encoding:` under `contacts` (UTF-8 is the default), and check again"
            ]
        );
        // ASCII only is the same in both: nothing to say.
        assert_eq!(
            read_all(b"id,name\nC1,Ana\n", Some(windows_1252())),
            ["2: C1|Ana"]
        );
        // A UTF-8 BOM says UTF-8 whatever is declared.
        assert_eq!(
            read_all(
                "\u{FEFF}id;name\nC1;João\n".as_bytes(),
                Some(windows_1252())
            ),
            ["2: C1|João"]
        );
    }

    #[test]
    fn windows_1252_with_semicolons_is_split_and_decoded() {
        let csv =
            b"ID Cliente;Nome Completo\r\nC1;\"Jos\xe9\r\nda Silva\"\r\nC2;Concei\xe7\xe3o\r\n";
        let out = read_all(csv, Some(windows_1252()));
        assert_eq!(out, ["2: C1|José\r\nda Silva", "4: C2|Conceição"]);
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for u in text.encode_utf16() {
            out.extend(if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            });
        }
        out
    }

    #[test]
    fn utf16_with_a_bom_is_decoded_whatever_is_declared() {
        let text = "id\tnome\r\nC1\t\"João\r\nda Silva\"\r\nC2\tConceição\r\n";
        for big_endian in [false, true] {
            for declared in [None, Some(windows_1252())] {
                let out = read_all(&utf16(text, big_endian), declared);
                assert_eq!(
                    out,
                    ["2: C1|João\r\nda Silva", "4: C2|Conceição"],
                    "{big_endian} {declared:?}"
                );
            }
        }
    }

    #[test]
    fn a_cell_not_utf8_names_its_column_and_the_likely_encoding() {
        let f = csv_file(b"id,first_name\nC1,Jos\xe9\nC2,\x81\x82\n");
        let rows: Vec<Row> = ContactReader::open(f.path(), None, None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        // The row cannot be sent, but its other cells are read (a key in them finds the contact).
        assert_eq!(&rows[0].record[0], "C1");
        assert_eq!(&rows[0].record[1], "Jos\u{FFFD}");
        let out: Vec<String> = rows
            .iter()
            .map(|r| r.undecodable.as_ref().unwrap().to_string())
            .collect();
        assert!(out[0].ends_with(":2: column \"first_name\" is not valid UTF-8 — it looks saved as windows-1252 (read that way it says \"José\"): add `encoding: windows-1252` under `contacts`, or save the file as UTF-8 (Excel: \"CSV UTF-8\")"), "{}", out[0]);
        assert!(
            out[1].contains(":3: column \"first_name\" is not valid UTF-8 — save it as UTF-8"),
            "{}",
            out[1]
        );
    }

    #[test]
    fn utf16_without_its_mark_is_named_with_the_encoding_to_declare() {
        let text = "id,nome\nC1,Ana\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let out = read_all(&le, None);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].contains("looks saved as UTF-16") && out[0].contains("encoding: utf-16le"),
            "{out:?}"
        );
    }

    #[test]
    fn a_nul_in_a_cell_names_its_row_and_column() {
        let out = read_all(b"id,name\nK\x003,Ana\nK4,Bo\n", None);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out[0].starts_with("2: column \"id\" holds a NUL character"),
            "{out:?}"
        );
        assert_eq!(out[1], "3: K4|Bo", "the rows after it are read");
    }

    #[test]
    fn a_declared_encoding_names_the_column_of_bad_bytes() {
        let out = read_all(b"id,name\nC1,\x82\xa0\x82\n", Some(encoding_rs::SHIFT_JIS));
        assert_eq!(
            out,
            ["2: column \"name\" holds bytes that are not valid Shift_JIS"]
        );
    }

    #[test]
    fn the_delimiter_is_found_in_a_stream_that_comes_a_byte_at_a_time() {
        let source = Box::new(decoding_reader(
            Trickle(Cursor::new(b"a;b;c\n1;2;3\n".to_vec())),
            windows_1252(),
        ));
        let r = ContactReader::from_reader(Path::new("c.csv"), source, None, Some(windows_1252()))
            .unwrap();
        assert_eq!(r.headers.names, ["a", "b", "c"]);
    }

    #[test]
    fn every_fuzz_seed_reads_the_same_whole_and_a_byte_at_a_time() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/contacts");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            for declared in [None, Some(windows_1252())] {
                assert!(!read_all(&bytes, declared).is_empty());
            }
            seen += 1;
        }
        assert!(seen >= 10, "{seen} seeds");
    }
}
