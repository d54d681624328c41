//! Secrets out of text from the API. An API that fails may echo what it was sent, and not always
//! verbatim: PHP's `json_encode` writes `/` as `\/`, a proxy percent-encodes, a debug page shows
//! a header in base64, upper-cased or cut short. Whatever the API says is passed through
//! [`Redactor::apply`] before it is stored in the ledger or printed, which replaces each secret
//! with `<redacted>` in any of those spellings.
//!
//! One matcher reads the text through its escapes (backslash escapes of JSON, C and Python: `\/`,
//! `\"`, `\uXXXX`, `\x73`, octal `\163`, and of any punctuation as Markdown and regular expressions
//! write it: `\-`, `\.`; percent-encoding, `+` for a space and a space for a `+` (a form decoded);
//! quoted-printable `=73`; HTML's `&#115;`, `&#x73;`, `&amp;`), an escape of an escape too
//! (`\\u0073` in a JSON string holding JSON, `%2573` encoded twice), so escaped, encoded, mixed and
//! cut-short spellings are all found in one pass over the text, with no list of variants to keep
//! complete. Base64 and base32 cannot be read that way (a character spans two bytes), so each
//! secret's base64 spellings are computed once, at the three alignments it can have inside a longer
//! encoded stream, and its base32 (whole, padded or not). Hex could be read as an escape of each
//! byte, but every id would then be full of escapes: it is computed once too, with nothing, a
//! space, a colon or a hyphen between bytes, and is found inside a longer hex dump as it is. Base64
//! and hex are of the secret's UTF-8 and of its UTF-16 in either byte order. All are matched
//! through the same escapes. Every spelling is read past line breaks (base64 and quoted-printable
//! wrap at 76 characters a line, a terminal wraps a long token) and characters that show nothing (a
//! zero-width space, a soft hyphen, the NUL between the bytes of UTF-16) inside it. A secret
//! shorter than `MIN_RUN` counts only where no letter or digit touches it, in whatever spelling: a
//! channel id of four letters or five digits is in many words and numbers by chance.
//!
//! The texts are error bodies of at most a few KB and the ids of an answer, so a scan that tries
//! every start is fast enough and simple to check; each start is tried only against the needles
//! that may begin with a character it spells, as it is or read, since a secret has dozens of
//! precomputed spellings. The ids come with every answer, though, and hold no escape: where a
//! start's first four characters each spell only themselves, a match begins with four characters in
//! a row of some needle, and a start whose four are no needle's is passed over without trying them
//! all.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// What replaces a secret.
const REDACTED: &str = "<redacted>";

/// Secrets shorter than this stay: they would redact ordinary words.
const MIN_SECRET: usize = 4;

/// A run of this many consecutive characters of a secret is an echo of it cut short.
const MIN_RUN: usize = 12;

/// At most this many [`filler`]s stand between two characters of a match: more than any
/// wrapping or copy puts there, and few enough that a text made of fillers, each holding a
/// needle's first character (`%00%00`), is read in a time linear in its length.
const MAX_GAP: usize = 8;

/// Replaces the secrets it was built with, in every spelling an echo may use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    needles: Vec<Needle>,
    /// Every `MIN_SECRET` characters in a row of every needle, packed by [`gram`], sorted.
    grams: Vec<u128>,
    /// The first two characters of every gram, by [`pair`]: one bit rules out most windows of a
    /// text before a search of `grams` (they were a percent of a run's CPU, for ids and texts
    /// that hold no secret).
    pairs: Vec<u64>,
    /// Each character a match of a needle may begin with, as [`plus_as_space`] writes it, and the
    /// needle's index, sorted.
    firsts: Vec<(char, usize)>,
}

/// One spelling to look for.
#[derive(Debug, Clone)]
struct Needle {
    /// Lower-cased when `fold`.
    chars: Vec<char>,
    /// Compared without case (the secret itself, its hex and base32), or exactly (its base64,
    /// where case is data).
    fold: bool,
    /// The fewest consecutive characters that count as a match: the whole needle, or a run.
    run: usize,
    /// Spelled from a secret shorter than `MIN_RUN`, which counts only standing apart.
    short: bool,
}

/// Secrets of the process beyond a campaign's own (the ledger database's password), which
/// every redactor also hides.
static PROCESS_SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Adds a secret every redactor made from now on hides.
pub(crate) fn register(secret: &str) {
    let mut all = PROCESS_SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if secret.chars().count() >= MIN_SECRET && !all.iter().any(|s| s == secret) {
        all.push(secret.to_string());
    }
}

/// The redactor of the process's secrets, rebuilt when one is added.
static PROCESS: std::sync::Mutex<Option<(usize, Redactor)>> = std::sync::Mutex::new(None);

/// `text` with the process's secrets (those `register`ed: a campaign's token and channel id,
/// the ledger's password) redacted: what any message on stderr goes through, since a file a
/// campaign names, or a header it lists, may hold one.
pub(crate) fn hide(text: &str) -> std::borrow::Cow<'_, str> {
    let count = PROCESS_SECRETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    if count == 0 {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut cached = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    if cached.as_ref().is_none_or(|(n, _)| *n != count) {
        *cached = Some((count, Redactor::new(&[])));
    }
    match cached.as_ref() {
        Some((_, r)) => std::borrow::Cow::Owned(r.apply(text)),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// Writes one line to stderr through [`hide`], dropping it if stderr is gone: every message a
/// command prints there (`printer::stderr_line`, and the last error).
pub(crate) fn stderr_line(line: impl std::fmt::Display) {
    use std::io::Write;
    let line = line.to_string();
    let _ = writeln!(std::io::stderr(), "{}", hide(&line));
}

/// The process's secrets long enough to be searched for in a contact's cells without meeting
/// one by chance (`MIN_RUN` characters or more).
pub(crate) fn long_secrets() -> Vec<String> {
    PROCESS_SECRETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|s| s.chars().count() >= MIN_RUN)
        .cloned()
        .collect()
}

impl Redactor {
    /// A redactor for `secrets` (the token, the channel id, ...) and those `register`ed; blanks
    /// around each are ignored, as they are when the secret is sent.
    pub(crate) fn new(secrets: &[&str]) -> Redactor {
        let mut needles = Vec::new();
        let process = PROCESS_SECRETS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let all = secrets
            .iter()
            .copied()
            .chain(process.iter().map(String::as_str));
        for secret in all.map(str::trim) {
            let chars: Vec<char> = secret.chars().map(fold).collect();
            if chars.len() < MIN_SECRET {
                continue;
            }
            let short = chars.len() < MIN_RUN;
            needles.push(Needle {
                run: chars.len().min(MIN_RUN),
                chars,
                fold: true,
                short,
            });
            for (encoded, fold_case) in encodings(secret) {
                if encoded.len() >= MIN_SECRET {
                    needles.push(Needle {
                        run: encoded.len(),
                        chars: encoded
                            .chars()
                            .map(|c| if fold_case { fold(c) } else { c })
                            .collect(),
                        fold: fold_case,
                        short,
                    });
                }
            }
        }
        let mut grams: Vec<u128> = needles
            .iter()
            .flat_map(|n| n.chars.windows(MIN_SECRET))
            .filter_map(|w| <&[char; MIN_SECRET]>::try_from(w).ok())
            // A `+` of a needle may be spelled by a space in a text the fast path takes.
            .flat_map(|w| [gram(w), gram(&w.map(plus_as_space))])
            .collect();
        grams.sort_unstable();
        grams.dedup();
        let mut pairs = vec![0u64; PAIRS / 64];
        for &g in &grams {
            let bit = pair(g);
            pairs[bit / 64] |= 1 << (bit % 64);
        }
        let mut firsts: Vec<(char, usize)> = needles
            .iter()
            .enumerate()
            .flat_map(|(i, n)| {
                let starts = &n.chars[..=n.chars.len() - n.run];
                starts.iter().map(move |&c| (plus_as_space(c), i))
            })
            .collect();
        firsts.sort_unstable();
        firsts.dedup();
        Redactor {
            needles,
            grams,
            pairs,
            firsts,
        }
    }

    /// Whether a match may begin at `text[at]` of a text without escapes: its first
    /// `MIN_SECRET` characters, as they are or folded, are a run of some needle.
    fn may_start(&self, text: &[char], at: usize) -> bool {
        let Some(four) = text
            .get(at..at + MIN_SECRET)
            .and_then(|s| <&[char; MIN_SECRET]>::try_from(s).ok())
        else {
            return false;
        };
        let has_pair = |g: u128| {
            let bit = pair(g);
            self.pairs
                .get(bit / 64)
                .is_some_and(|w| w & (1 << (bit % 64)) != 0)
        };
        [gram(four), gram(&four.map(fold))]
            .into_iter()
            .any(|g| has_pair(g) && self.grams.binary_search(&g).is_ok())
    }

    /// Whether `text` is ASCII without escapes and no start in it passes [`Self::may_start`]:
    /// then it holds no secret, which the ids of every answer show without a copy of the text.
    /// An `=` or `&` that begins no escape (`status=failed & retry`) keeps a text plain.
    fn plain_and_clear(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        let escape_at = |at: usize| {
            let mut window = ['\0'; LONGEST_ESCAPE];
            let ahead = &bytes[at..bytes.len().min(at + LONGEST_ESCAPE)];
            for (w, &b) in window.iter_mut().zip(ahead) {
                *w = char::from(b);
            }
            escape(&window[..ahead.len()], 0).is_some()
        };
        if !text.is_ascii()
            || bytes.iter().enumerate().any(|(at, b)| match b {
                b'+' | b'\r' | b'\n' | b'\0' => true,
                b'\\' | b'%' | b'=' | b'&' => escape_at(at),
                _ => false,
            })
        {
            return false;
        }
        !bytes.windows(MIN_SECRET).any(|w| {
            let four: [char; MIN_SECRET] = std::array::from_fn(|i| char::from(w[i]));
            self.may_start(&four, 0)
        })
    }

    /// The char ranges of `text` to replace, in order, overlapping or touching ones merged;
    /// with `fast`, a start is tried only against the needles [`Self::starting_at`] gives, and
    /// one whose first `MIN_SECRET` characters each spell only themselves only if
    /// [`Self::may_start`] allows it.
    fn spans(&self, text: &Text, fast: bool) -> Vec<(usize, usize)> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut before = None;
        let chars = &text.chars;
        let plain: Vec<bool> = (0..chars.len()).map(|at| itself(text, at)).collect();
        let mut tried: Vec<usize> = (0..self.needles.len()).collect();
        for at in 0..chars.len() {
            let first = &plain[at..chars.len().min(at + MIN_SECRET)];
            if fast && first.iter().all(|&p| p) && !self.may_start(chars, at) {
                continue;
            }
            if fast {
                self.starting_at(text, at, &mut tried);
            }
            let Some(end) = tried
                .iter()
                .filter_map(|&i| {
                    let n = &self.needles[i];
                    let end = n.end_at(text, at)?;
                    let before = before.get_or_insert_with(|| decoded_before(text));
                    (!n.short || apart(text, before, at, end)).then_some(end)
                })
                .max()
            else {
                continue;
            };
            match spans.last_mut() {
                Some(last) if at <= last.1 => last.1 = last.1.max(end),
                _ => spans.push((at, end)),
            }
        }
        spans
    }

    /// Into `out`, the indices of the needles a match at `text[at]` may be of: those whose
    /// first character (any of a run's first characters) `text[at]` spells, as it is or read.
    fn starting_at(&self, text: &Text, at: usize, out: &mut Vec<usize>) {
        out.clear();
        let read = text.readings[at].iter().flatten().map(|&(c, _)| c);
        for c in std::iter::once(text.chars[at]).chain(read) {
            for key in [plus_as_space(c), plus_as_space(fold(c))] {
                let from = self.firsts.partition_point(|&(k, _)| k < key);
                let same = self.firsts[from..].iter().take_while(|&&(k, _)| k == key);
                out.extend(same.map(|&(_, i)| i));
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// `text` with every spelling of every secret replaced by `<redacted>`; a secret shorter
    /// than `MIN_RUN` (a channel id of a few digits) only where it stands apart, with no letter
    /// or digit touching it: `c-5511987654321` holds the channel id `98765` and `change` holds
    /// `chan` by chance, and cutting them there would hide what the text says.
    pub(crate) fn apply(&self, text: &str) -> String {
        if self.needles.is_empty() || self.plain_and_clear(text) {
            return text.to_string();
        }
        let read = Text::new(text);
        let chars = &read.chars;
        let spans = self.spans(&read, true);
        if spans.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut from = 0;
        for (start, end) in spans {
            out.extend(&chars[from..start]);
            out.push_str(REDACTED);
            from = end;
        }
        out.extend(&chars[from..]);
        out
    }

    /// An id from an answer (a contact id, a message id), redacted as any text.
    pub(crate) fn apply_to_id(&self, id: &str) -> String {
        self.apply(id)
    }
}

impl Needle {
    /// Where the longest match starting at `text[at]` ends, if one does.
    fn end_at(&self, text: &Text, at: usize) -> Option<usize> {
        let mut best = None;
        for first in 0..=self.chars.len() - self.run {
            let (mut pos, mut next, mut gap) = (at, first, 0);
            while let Some(&want) = self.chars.get(next) {
                if let Some(n) = spelled(text, pos, want, self.fold) {
                    pos += n;
                    next += 1;
                    gap = 0;
                } else if let Some(n) = filler(text, pos).filter(|_| next > first && gap < MAX_GAP)
                {
                    pos += n;
                    gap += 1;
                } else {
                    break;
                }
            }
            if next - first >= self.run {
                best = best.max(Some(pos));
            }
        }
        best
    }
}

/// How many characters of `text` from `at` spell `want`: an escape of it (read up to
/// `ESCAPE_DEPTH` times over), `+` for a space, a space for a `+` (a form decoded before it
/// reached us), or the character itself.
fn spelled(text: &Text, at: usize, want: char, fold_case: bool) -> Option<usize> {
    let same = |c: char| {
        let c = if fold_case { fold(c) } else { c };
        c == want || (want == '+' && c == ' ')
    };
    let first = *text.chars.get(at)?;
    if first == '+' && want == ' ' {
        return Some(1);
    }
    // The deepest reading first: `%2573` is `s` before it is `%`.
    let readings = text.readings[at].iter().rev().flatten();
    readings
        .chain(&[(first, 1)])
        .find(|&&(c, _)| same(c))
        .map(|&(_, n)| n)
}

/// For each position of `text`, the character that ends there once escapes are read, if one
/// does: what stands before a match is judged as read, so `%22chan` has `"` before `chan`.
fn decoded_before(text: &Text) -> Vec<Option<(char, usize)>> {
    let mut before = vec![None; text.chars.len() + 1];
    let mut at = 0;
    while let Some((c, n)) = text.read(at) {
        before[at + n] = Some((c, at));
        at += n;
    }
    before
}

/// Whether the match `text[start..end]` has no letter or digit on either side, as read and
/// past characters that show nothing (`chan&shy;nel` is still a word).
fn apart(text: &Text, before: &[Option<(char, usize)>], start: usize, end: usize) -> bool {
    let mut at = start;
    let prev = loop {
        match (at.checked_sub(1), before[at]) {
            (None, _) => break None,
            (Some(_), Some((c, from))) if invisible(c) => at = from,
            (Some(_), Some((c, _))) => break Some(c),
            // Inside an escape the greedy reading did not take: judged as it is.
            (Some(i), None) => break Some(text.chars[i]),
        }
    };
    let mut at = end;
    while let Some((_, n)) = text.read(at).filter(|&(c, _)| invisible(c)) {
        at += n;
    }
    let next = text.read(at).map(|(c, _)| c);
    ![prev, next].iter().flatten().any(|c| c.is_alphanumeric())
}

/// How many times over escapes are read: a JSON string holding an escaped JSON string
/// (`\\\\u0073`), a percent-encoded URL encoded again (`%2573`), an HTML page quoting either.
const ESCAPE_DEPTH: usize = 3;

/// The longest escape of one character: a surrogate pair, or four percent-encoded bytes.
const LONGEST_ESCAPE: usize = 12;

/// The character an escape at `text[at]` stands for, and its length.
fn escape(text: &[char], at: usize) -> Option<(char, usize)> {
    match *text.get(at)? {
        '%' | '=' => utf8_escape(text, at),
        '\\' => utf8_escape(text, at).or_else(|| backslash_escape(text, at)),
        '&' => html_reference(text, at),
        _ => None,
    }
}

/// A text as the matcher reads it: its characters, and what an escape at each spells read
/// once, twice, up to `ESCAPE_DEPTH` times over, worked out once so that trying every start
/// against every needle costs no more in a text of escapes than in plain characters.
struct Text {
    chars: Vec<char>,
    /// `readings[at][d]`: the character an escape at `chars[at]` spells read `d + 1` times
    /// over, and its length; `None` where no escape begins.
    readings: Vec<[Option<(char, usize)>; ESCAPE_DEPTH]>,
}

impl Text {
    fn new(text: &str) -> Text {
        let chars: Vec<char> = text.chars().collect();
        let mut readings: Vec<_> = (0..chars.len())
            .map(|at| std::array::from_fn(|d| if d == 0 { escape(&chars, at) } else { None }))
            .collect();
        for depth in 1..ESCAPE_DEPTH {
            for at in 0..chars.len() {
                let reading = readings[at][0].map(|once| {
                    if matches!(once.0, '\\' | '%' | '=' | '&') {
                        read_again(&chars, &readings, at, depth - 1)
                    } else {
                        once
                    }
                });
                readings[at][depth] = reading;
            }
        }
        Text { chars, readings }
    }

    /// The character `chars[at]` begins, read as deep as escapes go, and its length.
    fn read(&self, at: usize) -> Option<(char, usize)> {
        let c = *self.chars.get(at)?;
        Some(self.readings[at][ESCAPE_DEPTH - 1].unwrap_or((c, 1)))
    }
}

/// What `chars` from `at` spells once its escapes are read one time more than
/// `readings[..][depth]` does, and its length: an escape may spell the start of another
/// (`%2573` spells `%73`, `s`).
fn read_again(
    chars: &[char],
    readings: &[[Option<(char, usize)>; ESCAPE_DEPTH]],
    at: usize,
    depth: usize,
) -> (char, usize) {
    let (mut read, mut ends) = (['\0'; LONGEST_ESCAPE], [0; LONGEST_ESCAPE]);
    let (mut len, mut pos) = (0, at);
    while len < LONGEST_ESCAPE
        && let Some(&c) = chars.get(pos)
    {
        let (c, n) = readings[pos][depth].unwrap_or((c, 1));
        pos += n;
        read[len] = c;
        ends[len] = pos - at;
        len += 1;
    }
    let (c, n) = escape(&read[..len], 0).unwrap_or((read[0], 1));
    (c, ends[n - 1])
}

/// Whether `text[at]` spells only itself: it begins no escape, and is no `+` for a space nor
/// a [`filler`].
fn itself(text: &Text, at: usize) -> bool {
    text.chars[at] != '+' && text.readings[at][0].is_none() && filler(text, at).is_none()
}

/// The length of what at `text[at]` is no part of a spelling, as it is or escaped: a line
/// break (base64 and quoted-printable wrap lines at 76 characters, a terminal or a mail client
/// wraps a long token) with the indentation of the line after it, quoted-printable's soft break
/// (`=` ending a line), a terminal's colour sequence, or a character that shows nothing (a
/// zero-width space or joiner, a byte order mark, a soft hyphen), which a copy from a web page
/// or a chat may carry.
fn filler(text: &Text, at: usize) -> Option<usize> {
    let first = *text.chars.get(at)?;
    if first == '=' {
        return Some(1 + line_break(text, at + 1)?);
    }
    if invisible(first) {
        return Some(1);
    }
    if let Some(n) = ansi(&text.chars, at) {
        return Some(n);
    }
    if let Some(n) = line_break(text, at) {
        return Some(n + indent(&text.chars, at + n));
    }
    let (c, n) = text.read(at)?;
    invisible(c).then_some(n)
}

/// The spaces and tabs, at most `MAX_INDENT`, that indent the line after a break: a
/// pretty-printer's, a folded mail or HTTP header's.
fn indent(chars: &[char], at: usize) -> usize {
    chars
        .iter()
        .skip(at)
        .take(MAX_INDENT)
        .take_while(|c| matches!(c, ' ' | '\t'))
        .count()
}

/// At most this many spaces and tabs indent a line inside a secret.
const MAX_INDENT: usize = 64;

/// The length of a terminal's colour or style sequence at `chars[at]` (`ESC [ 31 m`), which a
/// coloured log puts between the pieces of a text.
fn ansi(chars: &[char], at: usize) -> Option<usize> {
    if chars.get(at) != Some(&'\u{1b}') || chars.get(at + 1) != Some(&'[') {
        return None;
    }
    let params = chars
        .iter()
        .skip(at + 2)
        .take(16)
        .take_while(|c| c.is_ascii_digit() || **c == ';')
        .count();
    (chars.get(at + 2 + params) == Some(&'m')).then_some(params + 3)
}

/// The length of a line break at `text[at]` (CR LF counts as one), as it is or escaped.
fn line_break(text: &Text, at: usize) -> Option<usize> {
    match text.read(at)? {
        ('\r', n) => match text.read(at + n) {
            Some(('\n', m)) => Some(n + m),
            _ => Some(n),
        },
        ('\n', n) => Some(n),
        _ => None,
    }
}

/// Whether `c` shows nothing: zero-width space, non-joiner and joiner, word joiner, byte
/// order mark, soft hyphen, and NUL, which stands between the characters of UTF-16 bytes read
/// as ASCII or percent-encoded one byte at a time (`%73%00%65%00`).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{AD}' | '\0'
    )
}

/// The character a JSON, JavaScript, Python, Markdown or regular expression escape at
/// `text[at]` (a backslash) stands for, and its length; byte escapes are [`utf8_escape`]'s.
fn backslash_escape(text: &[char], at: usize) -> Option<(char, usize)> {
    let c = match *text.get(at + 1)? {
        'u' => {
            let unit = hex(text, at + 2, 4)?;
            if (0xD800..0xDC00).contains(&unit)
                && text.get(at + 6..at + 8) == Some(&['\\', 'u'][..])
            {
                let low = hex(text, at + 8, 4)?;
                let c = char::decode_utf16([unit as u16, low as u16]).next()?.ok()?;
                return Some((c, 12));
            }
            return Some((char::from_u32(unit)?, 6));
        }
        'U' => return Some((char::from_u32(hex(text, at + 2, 8)?)?, 10)),
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'b' => '\u{8}',
        'f' => '\u{c}',
        // JSON's `\/`, `\"`, `\\`, and any other punctuation as Markdown and regular
        // expressions escape it (`\-`, `\.`, `\_`).
        c if c.is_ascii_punctuation() => c,
        _ => return None,
    };
    Some((c, 2))
}

/// The character a run of byte escapes at `text[at]` spells in UTF-8, and its length.
fn utf8_escape(text: &[char], at: usize) -> Option<(char, usize)> {
    let (lead, mut len) = byte_escape(text, at)?;
    let width = match lead {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return None,
    };
    let mut bytes = [lead, 0, 0, 0];
    for b in bytes.iter_mut().take(width).skip(1) {
        let (byte, n) = byte_escape(text, at + len)?;
        *b = byte;
        len += n;
    }
    let c = std::str::from_utf8(&bytes[..width]).ok()?.chars().next()?;
    Some((c, len))
}

/// The byte an escape at `text[at]` writes, and its length: `%HH` (URLs), `=HH`
/// (quoted-printable), `\xHH` (C, Python) or `\NNN` in octal.
fn byte_escape(text: &[char], at: usize) -> Option<(u8, usize)> {
    let (value, len) = match *text.get(at)? {
        '%' | '=' => (hex(text, at + 1, 2)?, 3),
        '\\' => match *text.get(at + 1)? {
            'x' => (hex(text, at + 2, 2)?, 4),
            '0'..='7' => {
                let digits = text[at + 1..]
                    .iter()
                    .take(3)
                    .take_while(|c| c.is_digit(8))
                    .count();
                let n = text[at + 1..at + 1 + digits]
                    .iter()
                    .try_fold(0, |n, c| Some(n * 8 + c.to_digit(8)?))?;
                (n, 1 + digits)
            }
            _ => return None,
        },
        _ => return None,
    };
    Some((u8::try_from(value).ok()?, len))
}

/// The character an HTML character reference at `text[at]` (an ampersand) stands for, and its
/// length: `&#115;`, `&#x73;` (the `;` may be left out, as browsers allow) or a name of
/// [`HTML_NAMES`].
fn html_reference(text: &[char], at: usize) -> Option<(char, usize)> {
    let rest = text.get(at + 1..)?;
    if rest.first() == Some(&'#') {
        let (radix, skip) = match rest.get(1) {
            Some('x' | 'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = rest.get(skip..)?;
        let count = digits
            .iter()
            .take(8)
            .take_while(|c| c.is_digit(radix))
            .count();
        let n = digits[..count]
            .iter()
            .try_fold(0, |n, c| Some(n * radix + c.to_digit(radix)?))?;
        let end = skip + count;
        if count == 0 {
            return None;
        }
        let len = 1 + end + usize::from(rest.get(end) == Some(&';'));
        return Some((char::from_u32(n)?, len));
    }
    let name_len = rest
        .iter()
        .take(8)
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if rest.get(name_len) != Some(&';') {
        return None;
    }
    let name: String = rest[..name_len].iter().collect();
    let &(_, c) = HTML_NAMES.iter().find(|(n, _)| *n == name)?;
    Some((c, name_len + 2))
}

/// HTML's names for the ASCII characters a secret may hold.
const HTML_NAMES: &[(&str, char)] = &[
    ("amp", '&'),
    ("AMP", '&'),
    ("quot", '"'),
    ("QUOT", '"'),
    ("apos", '\''),
    ("lt", '<'),
    ("LT", '<'),
    ("gt", '>'),
    ("GT", '>'),
    ("excl", '!'),
    ("num", '#'),
    ("dollar", '$'),
    ("percnt", '%'),
    ("lpar", '('),
    ("rpar", ')'),
    ("ast", '*'),
    ("plus", '+'),
    ("comma", ','),
    ("period", '.'),
    ("sol", '/'),
    ("colon", ':'),
    ("semi", ';'),
    ("equals", '='),
    ("quest", '?'),
    ("commat", '@'),
    ("lsqb", '['),
    ("bsol", '\\'),
    ("rsqb", ']'),
    ("Hat", '^'),
    ("lowbar", '_'),
    ("grave", '`'),
    ("lcub", '{'),
    ("verbar", '|'),
    ("rcub", '}'),
    ("shy", '\u{AD}'),
    ("zwj", '\u{200D}'),
    ("zwnj", '\u{200C}'),
];

/// The number written by `digits` hex digits (either case) at `text[at]`.
fn hex(text: &[char], at: usize, digits: usize) -> Option<u32> {
    text.get(at..at + digits)?
        .iter()
        .try_fold(0, |n, c| Some(n * 16 + c.to_digit(16)?))
}

/// How many pairs [`pair`] tells apart.
const PAIRS: usize = 1 << 16;

/// A gram's first two characters, by their low bytes: one of `PAIRS`.
fn pair(gram: u128) -> usize {
    ((gram >> 96) as usize & 0xFF) << 8 | ((gram >> 64) as usize & 0xFF)
}

/// `MIN_SECRET` characters packed into one number, to compare and sort.
fn gram(four: &[char; MIN_SECRET]) -> u128 {
    four.iter()
        .fold(0, |g, &c| (g << 32) | u128::from(u32::from(c)))
}

/// A character as the fast scan looks it up, in [`Redactor::grams`] and
/// [`Redactor::firsts`]: `+` and a space alike, as each may spell the other.
fn plus_as_space(c: char) -> char {
    if c == '+' { ' ' } else { c }
}

/// The character as compared without case.
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// The base64 characters that spell `secret` wherever it lies in an encoded stream, in the
/// standard and URL-safe alphabets. The secret may begin at byte 0, 1 or 2 of a 3-byte group;
/// encoding it behind that many bytes and keeping only the characters made of its own bits
/// alone gives the part that is the same whatever surrounds it. Padding carries nothing, so
/// padded and unpadded streams both hold it. The secret encoded alone (its last character
/// made with zero bits, then padding) is kept whole too.
fn base64_spellings(secret: &[u8]) -> Vec<String> {
    let mut out = vec![STANDARD.encode(secret), URL_SAFE.encode(secret)];
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(secret));
        for offset in 0..3 {
            let mut stream = vec![0u8; offset];
            stream.extend_from_slice(secret);
            let encoded = engine.encode(&stream);
            // Characters carry 6 bits: skip those touching the offset bytes, keep whole ones.
            let start = (offset * 8).div_ceil(6);
            let end = stream.len() * 8 / 6;
            if start < end {
                out.push(encoded[start..end].to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The spellings of `secret` worked out once rather than read as escapes, each with whether
/// it is compared without case: case is data in base64, hex and base32 are read in either.
/// Base64 and hex are of its UTF-8 and of its UTF-16 in either byte order, which a Windows or
/// Java service may have encoded before quoting it in an ASCII text.
fn encodings(secret: &str) -> Vec<(String, bool)> {
    let bytes = secret.as_bytes();
    let mut out = Vec::new();
    for encoded in [
        bytes.to_vec(),
        to_utf16(secret, true),
        to_utf16(secret, false),
    ] {
        out.extend(base64_spellings(&encoded).into_iter().map(|e| (e, false)));
        out.extend(
            HEX_SEPARATORS
                .iter()
                .map(|sep| (to_hex(&encoded, sep), true)),
        );
    }
    let base32 = to_base32(bytes);
    out.push((base32.trim_end_matches('=').to_string(), true));
    out.push((base32, true));
    out
}

/// What stands between the bytes of a hex dump: nothing (a debug dump), a space (`hexdump`,
/// `od`, Wireshark), a colon (MAC addresses, `openssl`) or a hyphen (Windows, .NET's
/// `BitConverter`).
const HEX_SEPARATORS: [&str; 4] = ["", " ", ":", "-"];

/// `bytes` in hex, two digits a byte with `separator` between them, as a debug dump or a log
/// of the bytes sent shows them.
fn to_hex(bytes: &[u8], separator: &str) -> String {
    let digits: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    digits.join(separator)
}

/// `text` in UTF-16, little-endian or big-endian.
fn to_utf16(text: &str, little_endian: bool) -> Vec<u8> {
    text.encode_utf16()
        .flat_map(|unit| {
            if little_endian {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            }
        })
        .collect()
}

/// `bytes` in base32 (RFC 4648, padded), as TOTP secrets and some signing schemes write them.
fn to_base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut group = [0u8; 5];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = group.iter().fold(0u64, |b, &x| (b << 8) | u64::from(x));
        // Five bits a character; the last group's characters made of padding bytes alone
        // become `=`.
        let used = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            let index = usize::try_from((bits >> (35 - 5 * i)) & 31).unwrap_or(0);
            out.push(if i < used {
                char::from(ALPHABET[index])
            } else {
                '='
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "tOk/Harn3ss-9f2Q+x";
    const CHANNEL: &str = "chan-42x";

    fn redact(text: &str) -> String {
        Redactor::new(&[TOKEN, CHANNEL]).apply(text)
    }

    fn assert_redacted(text: &str) {
        let out = redact(text);
        assert!(out.contains(REDACTED), "{text:?} gave {out:?}");
        for secret in [TOKEN, CHANNEL] {
            assert!(
                !out.to_lowercase().contains(&secret.to_lowercase()),
                "{out:?}"
            );
        }
        // Nothing is left of the token but fragments too short to be a run.
        let folded = out.to_lowercase();
        let token = TOKEN.to_lowercase();
        for w in token.as_bytes().windows(MIN_RUN) {
            assert!(!folded.contains(std::str::from_utf8(w).unwrap()), "{out:?}");
        }
    }

    #[test]
    fn a_short_secret_inside_a_word_is_left_and_a_separate_one_is_not() {
        let r = Redactor::new(&["98765", TOKEN]);
        // The channel id inside a phone inside a contact id is a coincidence.
        assert_eq!(r.apply_to_id("c-5511987654321"), "c-5511987654321");
        assert_eq!(r.apply("phone 5511987654321"), "phone 5511987654321");
        // Standing alone, or the token anywhere, it is an echo.
        assert_eq!(r.apply_to_id("98765"), "<redacted>");
        assert_eq!(r.apply_to_id("chan-98765"), "chan-<redacted>");
        assert_eq!(r.apply_to_id(&format!("id{TOKEN}x")), "id<redacted>x");
        // Words that hold a short channel id stay in a reply's text.
        let r = Redactor::new(&["chan"]);
        let text = "Can I change my plan? Chance of a discount? CHANNEL";
        assert_eq!(r.apply(text), text);
        assert_eq!(
            r.apply(r#"channel_id=chan&x "chan" {"c":"CHAN"}"#),
            r#"channel_id=<redacted>&x "<redacted>" {"c":"<redacted>"}"#
        );
        // What stands beside it is judged as read: an escaped quote or space is no letter.
        assert_eq!(
            r.apply("q=%22chan%22 \nchan"),
            "q=%22<redacted>%22 \n<redacted>"
        );
        assert_eq!(r.apply("%41chan"), "%41chan");
        // A word broken by a soft hyphen or a zero-width space is still a word.
        let text = "chan&shy;nel chan\u{AD}ge \u{200B}\u{200B}chance, x\\u200bchan";
        assert_eq!(r.apply(text), text);
        assert_eq!(r.apply("\u{200B}chan\u{AD}."), "\u{200B}<redacted>\u{AD}.");
        let r = Redactor::new(&["98000"]);
        assert_eq!(
            r.apply("order 98000123, call 11 98000-1007"),
            "order 98000123, call 11 <redacted>-1007"
        );
    }

    #[test]
    fn raw_secrets_are_replaced_in_any_case() {
        assert_eq!(
            redact(&format!("bad token={TOKEN} for {CHANNEL}")),
            "bad token=<redacted> for <redacted>"
        );
        assert_eq!(
            redact(&format!("TOKEN {} / {}", TOKEN.to_uppercase(), "Chan-42X")),
            "TOKEN <redacted> / <redacted>"
        );
    }

    #[test]
    fn json_escaped_secrets_are_replaced() {
        // PHP's json_encode: `\/` for `/`.
        assert_eq!(
            redact(r#"{"token":"tOk\/Harn3ss-9f2Q+x"}"#),
            r#"{"token":"<redacted>"}"#
        );
        // Any character as \uXXXX, in either case of hex.
        let escaped: String = TOKEN
            .chars()
            .enumerate()
            .map(|(i, c)| match i % 3 {
                0 => format!("\\u{:04x}", c as u32),
                1 => format!("\\u{:04X}", c as u32),
                _ => c.to_string(),
            })
            .collect();
        assert_eq!(redact(&format!("x {escaped} y")), "x <redacted> y");
        // A character beyond the BMP as a surrogate pair.
        let r = Redactor::new(&["key-\u{1F600}-secret"]);
        assert_eq!(r.apply(r"a key-\ud83d\ude00-secret b"), "a <redacted> b");
    }

    /// `secret` with each character spelled by `spell`.
    fn spelled_as(secret: &str, spell: impl Fn(usize, char) -> String) -> String {
        secret
            .chars()
            .enumerate()
            .map(|(i, c)| spell(i, c))
            .collect()
    }

    #[test]
    fn html_character_references_are_read() {
        const SECRET: &str = "secret-token-XYZ";
        let r = Redactor::new(&[SECRET, "chan"]);
        let decimal = spelled_as(SECRET, |_, c| format!("&#{};", c as u32));
        let hex = spelled_as(SECRET, |_, c| format!("&#x{:x};", c as u32));
        // Mixed with plain characters, in either case of `x` and hex, `;` left out at times.
        let mixed = spelled_as(SECRET, |i, c| match i % 4 {
            0 => format!("&#{}", c as u32),
            1 => format!("&#X{:X};", c as u32),
            _ => c.to_string(),
        });
        for spelling in [decimal, hex, mixed] {
            assert_eq!(r.apply(&format!("<p>{spelling}</p>")), "<p><redacted></p>");
        }
        assert_eq!(r.apply("&#99;&#x68;an"), "<redacted>");
        // Named references for the punctuation a secret may hold.
        let r = Redactor::new(&[r#"p&ss"w<rd>'x"#]);
        assert_eq!(
            r.apply("v=p&amp;ss&quot;w&lt;rd&gt;&apos;x;"),
            "v=<redacted>;"
        );
    }

    #[test]
    fn escapes_read_twice_over_are_read() {
        const SECRET: &str = "secret-token-XYZ";
        let r = Redactor::new(&[SECRET]);
        // A JSON string holding an escaped JSON string.
        let double_json = spelled_as(SECRET, |_, c| format!("\\\\u{:04x}", c as u32));
        assert_eq!(r.apply(&format!("\"{double_json}\"")), "\"<redacted>\"");
        // Percent-encoding encoded again, whole or only its `%`.
        let double = spelled_as(SECRET, |_, c| {
            format!(
                "%25{}",
                format!("{:02X}", c as u32)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect::<String>()
            )
        });
        let half = spelled_as(SECRET, |_, c| format!("%25{:02x}", c as u32));
        for spelling in [double, half] {
            assert_eq!(r.apply(&format!("u={spelling}&x")), "u=<redacted>&x");
        }
        // An HTML page quoting an escaped JSON string, in one run of mixed spellings.
        let mixed = spelled_as(SECRET, |i, c| match i % 3 {
            0 => format!("&amp;#{};", c as u32),
            1 => format!("\\\\u{:04X}", c as u32),
            _ => format!("%2525{:02x}", c as u32),
        });
        assert_eq!(r.apply(&mixed), "<redacted>");
    }

    #[test]
    fn byte_escapes_of_c_python_and_mail_are_read() {
        const SECRET: &str = "secret-token-XYZ";
        let r = Redactor::new(&[SECRET, "pässwort-geheim"]);
        let spellings = [
            spelled_as(SECRET, |_, c| format!("\\x{:02x}", c as u32)),
            spelled_as(SECRET, |_, c| format!("\\{:03o}", c as u32)),
            spelled_as(SECRET, |_, c| format!("={:02X}", c as u32)),
            spelled_as(SECRET, |i, c| match i % 3 {
                0 => format!("\\x{:02X}", c as u32),
                1 => format!("\\{:o}", c as u32),
                _ => c.to_string(),
            }),
        ];
        for spelling in spellings {
            assert_eq!(
                r.apply(&format!("b'{spelling}'")),
                "b'<redacted>'",
                "{spelling}"
            );
        }
        // A character beyond ASCII as its UTF-8 bytes, escaped in each way.
        assert_eq!(r.apply("p\\xc3\\xa4sswort-geheim"), "<redacted>");
        assert_eq!(r.apply("p\\303\\244sswort-geheim"), "<redacted>");
        assert_eq!(r.apply("p=C3=A4sswort-geheim"), "<redacted>");
        // A Python repr of a text: `\U` with eight digits.
        assert_eq!(r.apply("p\\U000000e4sswort-geheim"), "<redacted>");
    }

    #[test]
    fn line_breaks_and_invisible_characters_inside_a_secret_are_read_past() {
        const SECRET: &str = "secret-token-XYZ";
        let r = Redactor::new(&[SECRET, "chan"]);
        for gap in [
            "\u{200B}",
            "\u{200C}",
            "\u{200D}",
            "\u{2060}",
            "\u{FEFF}",
            "\u{AD}",
            "\n",
            "\r\n",
            "\\u200b",
            "\\r\\n",
            "%E2%80%8B",
            "&#8203;",
            "&shy;",
            "=\r\n",
            "\u{200B}\u{AD}",
        ] {
            let (head, tail) = SECRET.split_at(10);
            assert_eq!(
                r.apply(&format!("t={head}{gap}{tail}.")),
                "t=<redacted>.",
                "{gap:?}"
            );
            // Between every two characters, and in a short secret standing apart.
            let every: Vec<String> = SECRET.chars().map(String::from).collect();
            assert_eq!(r.apply(&every.join(gap)), "<redacted>", "{gap:?}");
            assert_eq!(
                r.apply(&format!("id \"ch{gap}an\"")),
                "id \"<redacted>\"",
                "{gap:?}"
            );
        }
        // A line break with the next line's indentation (a pretty-printer, a folded header),
        // and a terminal's colours around the pieces.
        for gap in [
            "\n          ",
            "\n\t\t",
            "\r\n ",
            "\u{1b}[0m\u{1b}[32m",
            "\u{1b}[1;31m",
        ] {
            let pieces: Vec<&str> = vec![&SECRET[..5], &SECRET[5..10], &SECRET[10..]];
            assert_eq!(
                r.apply(&format!("token:{gap}{}", pieces.join(gap))),
                format!("token:{gap}<redacted>"),
                "{gap:?}"
            );
        }
        // As many as `MAX_GAP` in a row.
        let (head, tail) = SECRET.split_at(6);
        let gap = "\u{200B}".repeat(MAX_GAP);
        assert_eq!(r.apply(&format!("{head}{gap}{tail}")), "<redacted>");
        // What surrounds a secret is no part of it, and stays.
        assert_eq!(
            r.apply("a\u{200B}\nsecret-token-XYZ\n\u{200B}b"),
            "a\u{200B}\n<redacted>\n\u{200B}b"
        );
    }

    #[test]
    fn punctuation_escaped_by_a_backslash_is_read() {
        let r = Redactor::new(&["secret-token-XYZ", "ab_cd.ef:gh/ij+kl=mn"]);
        // Markdown and regular expressions escape punctuation with a backslash.
        assert_eq!(r.apply(r"see `secret\-token\-XYZ`."), "see `<redacted>`.");
        assert_eq!(r.apply(r"ab\_cd\.ef\:gh\/ij\+kl\=mn"), "<redacted>");
        // The same escaped again inside a JSON string.
        assert_eq!(
            r.apply(r#"{"re":"ab\\_cd\\.ef\\:gh\\/ij\\+kl\\=mn"}"#),
            r#"{"re":"<redacted>"}"#
        );
        // Every ASCII punctuation mark, each escaped.
        let marks: String = ('!'..='~').filter(char::is_ascii_punctuation).collect();
        let secret = format!("a{marks}z");
        let r = Redactor::new(&[secret.as_str()]);
        let escaped = spelled_as(&secret, |i, c| {
            if i == 0 || i > marks.len() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        });
        assert_eq!(
            r.apply(&format!("[{escaped}]")),
            "[<redacted>]",
            "{escaped}"
        );
        // A backslash before a letter or digit keeps its own meaning, or none.
        assert_eq!(r.apply(r"a\n\x41\101\q"), r"a\n\x41\101\q");
    }

    #[test]
    fn hex_and_base32_of_a_secret_are_replaced() {
        const SECRET: &str = "secret-token-XYZ";
        let r = Redactor::new(&[SECRET]);
        let hex = "7365637265742d746f6b656e2d58595a";
        assert_eq!(to_hex(SECRET.as_bytes(), ""), hex);
        for text in [hex.to_string(), hex.to_uppercase()] {
            assert_eq!(r.apply(&format!("bytes: {text}.")), "bytes: <redacted>.");
            // Inside a longer run of hex, as a dump of a whole request shows it.
            let dump = format!("0a0b{text}20ff");
            assert_eq!(r.apply(&dump), "0a0b<redacted>20ff");
        }
        let base32 = "ONSWG4TFOQWXI33LMVXC2WCZLI======";
        assert_eq!(to_base32(SECRET.as_bytes()), base32);
        assert_eq!(r.apply(&format!("k={base32}&x")), "k=<redacted>&x");
        assert_eq!(r.apply("k=ONSWG4TFOQWXI33LMVXC2WCZLI&x"), "k=<redacted>&x");
        assert_eq!(r.apply("k=onswg4tfoqwxi33lmvxc2wczli"), "k=<redacted>");
        // Lengths that leave each count of padding.
        assert_eq!(to_base32(b"f"), "MY======");
        assert_eq!(to_base32(b"fo"), "MZXQ====");
        assert_eq!(to_base32(b"foo"), "MZXW6===");
        assert_eq!(to_base32(b"foob"), "MZXW6YQ=");
        assert_eq!(to_base32(b"fooba"), "MZXW6YTB");
        assert_eq!(to_base32(b"foobar"), "MZXW6YTBOI======");
    }

    #[test]
    fn hex_with_a_separator_between_bytes_is_replaced() {
        const SECRET: &str = "secret-token-XYZ";
        let r = Redactor::new(&[SECRET]);
        let bytes: Vec<String> = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
        for sep in [" ", ":", "-"] {
            let hex = bytes.join(sep);
            for text in [hex.clone(), hex.to_uppercase()] {
                assert_eq!(r.apply(&format!("bytes: {text}.")), "bytes: <redacted>.");
                // Inside a longer dump, whose bytes around the secret stay.
                assert_eq!(
                    r.apply(&format!("0a{sep}0b{sep}{text}{sep}20{sep}ff")),
                    format!("0a{sep}0b{sep}<redacted>{sep}20{sep}ff")
                );
            }
        }
        // A dump that is only the secret's first bytes is no echo of it.
        let cut = bytes[..6].join(" ");
        assert_eq!(r.apply(&cut), cut);
    }

    #[test]
    fn utf16_bytes_of_a_secret_in_an_ascii_text_are_replaced() {
        const SECRET: &str = "secret-token-XYZ";
        let r = Redactor::new(&[SECRET]);
        let le = to_utf16(SECRET, true);
        assert_eq!(to_hex(&le[..6], ""), "730065006300");
        assert_eq!(to_hex(&to_utf16(SECRET, false)[..6], ""), "007300650063");
        for little_endian in [true, false] {
            let bytes = to_utf16(SECRET, little_endian);
            for sep in ["", " ", ":"] {
                let hex = to_hex(&bytes, sep).to_uppercase();
                assert_eq!(r.apply(&format!("dump {hex} .")), "dump <redacted> .");
            }
            // Base64 of a UTF-16 body holding the secret, at each of the three alignments
            // (a character of UTF-16 is two bytes).
            for prefix in ["", "a", "ab"] {
                let body = to_utf16(&format!("{prefix}{SECRET} tail"), little_endian);
                for engine in [&STANDARD, &URL_SAFE_NO_PAD] {
                    let out = r.apply(&format!("b={}", engine.encode(&body)));
                    assert!(out.contains(REDACTED), "{prefix:?}: {out}");
                    for spelling in base64_spellings(&bytes) {
                        assert!(!out.contains(&spelling), "{prefix:?}: {out}");
                    }
                }
            }
        }
        let alone = STANDARD.encode(&le);
        assert!(alone.starts_with("cwBlAGMAcgBlAHQALQB0AG8A"), "{alone}");
        assert_eq!(r.apply(&format!("[{alone}]")), "[<redacted>]");
        // Percent-encoded a byte at a time, as JSON escapes, or raw: NULs between characters.
        let percent: String = le.iter().map(|b| format!("%{b:02X}")).collect();
        assert_eq!(r.apply(&format!("u={percent}&x")), "u=<redacted>%00&x");
        let json = spelled_as(SECRET, |_, c| format!("{c}\\u0000"));
        assert_eq!(r.apply(&json), "<redacted>\\u0000");
        let raw = String::from_utf8(le).unwrap();
        assert_eq!(r.apply(&format!("[{raw}]")), "[<redacted>\0]");
    }

    #[test]
    fn url_encoded_secrets_are_replaced() {
        assert_redacted("token=tOk%2FHarn3ss-9f2Q%2Bx&c=1");
        assert_redacted("token=tOk%2fharn3ss%2d9f2q%2bx");
        let every: String = TOKEN.bytes().map(|b| format!("%{b:02x}")).collect();
        assert_eq!(redact(&format!("?t={every}&x")), "?t=<redacted>&x");
        // `+` for a space, and a multi-byte character as its UTF-8 bytes.
        let r = Redactor::new(&["pass word é secret"]);
        assert_eq!(r.apply("p=pass+word+%C3%A9+secret"), "p=<redacted>");
    }

    #[test]
    fn a_plus_in_a_secret_is_read_as_a_form_writes_it() {
        let r = Redactor::new(&["ab_cd.ef:gh/ij+kl=mn"]);
        for body in [
            "t=ab_cd.ef:gh/ij+kl=mn&x=1",
            "t=ab_cd.ef:gh/ij%2bkl=mn&x=1",
            "t=ab_cd.ef%3Agh%2Fij%2Bkl%3Dmn&x=1",
        ] {
            assert_eq!(r.apply(body), "t=<redacted>&x=1", "{body}");
        }
        // A form body decoded before it is stored: its `+` became a space, and the tail after
        // it is the secret's too.
        assert_eq!(r.apply("t=ab_cd.ef:gh/ij kl=mn, x=1"), "t=<redacted>, x=1");
        assert_eq!(r.apply("t=ab_cd.ef:gh/ij%20kl=mn"), "t=<redacted>");
        // What follows the secret is not taken with it.
        assert_eq!(r.apply("ab_cd.ef:gh/ij+kl=mn kl=mn"), "<redacted> kl=mn");
        // A space for a `+` among a start's first four characters does not pass it over.
        let r = Redactor::new(&["a+bcdefghijklmn"]);
        assert_eq!(r.apply("x a bcdefghijklmn."), "x <redacted>.");
        assert_eq!(r.apply("x a bcdefghijk."), "x <redacted>.");
        // Nor where the `+` or the space is the first character of a match.
        let r = Redactor::new(&["+plus-first-secret", "abc+defghijklmnop"]);
        for text in [
            "[+plus-first-secret]",
            "[ plus-first-secret]",
            "[+defghijklmnop]",
        ] {
            assert_eq!(r.apply(text), "[<redacted>]", "{text}");
        }
    }

    #[test]
    fn base64_secrets_are_replaced_at_every_alignment() {
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            for prefix in ["", "a", "ab", "token: ", "Bearer x"] {
                let plain = format!("{prefix}{TOKEN} trailing bytes");
                let encoded = engine.encode(plain.as_bytes());
                let out = redact(&format!("header={encoded}"));
                assert!(out.contains(REDACTED), "{prefix:?}: {out}");
                for spelling in base64_spellings(TOKEN.as_bytes()) {
                    assert!(!out.contains(&spelling), "{prefix:?}: {out}");
                }
            }
            // The secret encoded alone, padding and all, goes whole.
            let alone = engine.encode(TOKEN.as_bytes());
            assert_eq!(redact(&format!("[{alone}]")), "[<redacted>]", "{alone}");
        }
        // Wrapped into lines (MIME), as they are or escaped in JSON, at any column.
        let encoded = STANDARD.encode(format!("Authorization-ish: token={TOKEN}; more bytes"));
        for width in [4, 5, 7, 76] {
            for eol in ["\r\n", "\n", "\\r\\n", "%0D%0A"] {
                let wrapped: Vec<String> = encoded
                    .as_bytes()
                    .chunks(width)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                let out = redact(&format!("body: {}", wrapped.join(eol)));
                assert!(out.contains(REDACTED), "{width} {eol:?}: {out}");
                let joined: String = out.split(eol).collect();
                for spelling in base64_spellings(TOKEN.as_bytes()) {
                    assert!(!joined.contains(&spelling), "{width} {eol:?}: {out}");
                }
            }
        }
        // Standard base64 holds `/`, which a JSON encoder may escape in turn.
        let escaped = STANDARD_NO_PAD.encode(TOKEN).replace('/', "\\/");
        assert_eq!(redact(&format!("\"{escaped}\"")), "\"<redacted>\"");
    }

    #[test]
    fn a_run_of_twelve_characters_is_an_echo_cut_short() {
        // The first twelve, the last twelve, and a middle run, in any case.
        assert_eq!(redact("token tOk/Harn3ss-9…"), "token <redacted>…");
        assert_eq!(redact("…HARN3SS-9F2Q+X end"), "…<redacted> end");
        assert_eq!(redact("k/harn3ss-9f2q"), "<redacted>");
        // Eleven are not enough: a short common run is not an echo.
        assert_eq!(redact("tOk/Harn3ss"), "tOk/Harn3ss");
    }

    #[test]
    fn short_secrets_and_ordinary_text_stay() {
        let r = Redactor::new(&["abc", "", "  "]);
        assert_eq!(r.apply("abc abcd"), "abc abcd");
        let text = "HTTP 400: the contact's window is closed; channel chan-4 invalid";
        assert_eq!(redact(text), text);
        // Secrets are trimmed as they are when sent.
        assert_eq!(
            Redactor::new(&["  s3cr3t-value \n"]).apply("x s3cr3t-value y"),
            "x <redacted> y"
        );
    }

    #[test]
    fn a_secret_inside_another_is_replaced_once() {
        let r = Redactor::new(&["inner-secret", "outer-inner-secret-x"]);
        assert_eq!(r.apply("a outer-inner-secret-x b"), "a <redacted> b");
        assert_eq!(r.apply("a inner-secret b"), "a <redacted> b");
    }

    #[test]
    fn an_equals_sign_or_ampersand_beginning_no_escape_keeps_a_text_plain() {
        let r = Redactor::new(&[TOKEN, CHANNEL]);
        assert!(r.plain_and_clear("status=failed & retry later; a=b&c=d"));
        for escaped in [
            "x=3D",
            "a &amp; b",
            "&#65;",
            "=\n",
            "%41",
            "\\n",
            "a+b",
            "a\0b",
        ] {
            assert!(!r.plain_and_clear(escaped), "{escaped:?}");
        }
    }

    #[test]
    fn the_fast_scan_finds_what_trying_every_needle_at_every_start_finds() {
        let r = Redactor::new(&[TOKEN, CHANNEL, "Ünïcode-Sécret"]);
        // Texts made of pieces of the secrets, their base64, and other characters, so that
        // runs of every length and near misses occur.
        let mut pieces: Vec<String> = [TOKEN, CHANNEL, "Ünïcode-Sécret"]
            .iter()
            .flat_map(|s| {
                [
                    s.to_string(),
                    s.to_uppercase(),
                    STANDARD.encode(s),
                    STANDARD.encode(to_utf16(s, true)),
                    to_hex(s.as_bytes(), " "),
                ]
            })
            .collect();
        pieces.extend(["a".into(), "-".into(), " ".into(), "é".into(), "x9".into()]);
        // Escapes too, which a start passed over must not hide.
        pieces.extend(
            [
                "%63", "\\u0068", "&#x61;", "=6E", "\n", "+", "%2525", "\\-", "%00", "%20",
            ]
            .map(String::from),
        );
        let mut rng = fastrand::Rng::with_seed(7);
        let mut found = 0;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..rng.usize(1..6) {
                let p: Vec<char> = pieces[rng.usize(..pieces.len())].chars().collect();
                // Whole half the time, else any part of it.
                let (from, to) = if rng.bool() {
                    (0, p.len())
                } else {
                    let from = rng.usize(..p.len());
                    (from, rng.usize(from..=p.len()))
                };
                text.extend(&p[from..to]);
            }
            let read = Text::new(&text);
            let spans = r.spans(&read, false);
            found += usize::from(!spans.is_empty());
            assert_eq!(r.spans(&read, true), spans, "{text:?}");
            // A text let through untouched at once is one the whole scan finds nothing in.
            let out = r.apply(&text);
            assert_eq!(out == text, spans.is_empty(), "{text:?} gave {out:?}");
        }
        // Enough of the texts hold a secret for the comparison to mean something.
        assert!(found > 500, "{found}");
    }

    #[test]
    fn a_few_kilobytes_are_redacted_quickly() {
        let text = format!("{} {TOKEN}", "the window is closed; ".repeat(200));
        let started = std::time::Instant::now();
        let out = redact(&text);
        assert!(out.ends_with(" <redacted>"));
        // Generous for a debug build on a busy machine; a scan that went quadratic in the
        // text's length would take seconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // A body made of escapes, each beginning another, is read once, not once a needle.
        for unit in [
            "%25",
            "\\\\u0073",
            "&amp;#115;",
            "=3D",
            "\u{200B}",
            "%00",
            "\\-",
        ] {
            let text = unit.repeat(4096 / unit.len());
            let started = std::time::Instant::now();
            assert_eq!(redact(&text), text);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{unit:?}"
            );
        }
    }
}
