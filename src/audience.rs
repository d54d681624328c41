//! Who the campaign is for, row by row: the `contacts.where` filter, the `contacts.exclude`
//! lists, the ledger's opt-out list, duplicates, and what the ledger already holds. `check`,
//! `run` (its pre-flight and its feed), `status` and `preview` all decide rows here, so they
//! cannot disagree.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::campaign::{Campaign, Exclusion};
use crate::contacts::{DELIMITERS, Row, detect_delimiter, ends_line, sep_line};
use crate::error::Problem;
use crate::ledger::keys::{Known, Skipped};
use crate::ledger::phones::PhoneMap;
use crate::ledger::{KeyId, KnownMap, Status, key_id};
use crate::phone::{self, Region};
use crate::render::{Rendered, Renderer, RowError};

/// Which recorded states a run sends again.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Resend {
    pub(crate) failed: bool,
    pub(crate) unknown: bool,
}

/// Whether a contact in `status` is sent again under `resend`: `None` when not, else the state
/// it leaves (to return to if the claim is given back).
pub(crate) fn due(status: Option<Status>, resend: Resend) -> Option<Option<Status>> {
    match status {
        None => Some(None),
        Some(Status::Failed) if resend.failed => Some(Some(Status::Failed)),
        Some(Status::Unknown) if resend.unknown => Some(Some(Status::Unknown)),
        Some(_) => None,
    }
}

/// A row's fate before the ledger is consulted.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Every cell is empty (`Row::blank`): nobody, not recorded.
    Blank,
    /// `contacts.where` is false: not part of the campaign, not recorded.
    Filtered,
    /// It cannot become a valid request.
    Invalid(RowError),
    /// Its key or phone is on an exclusion list: recorded `skipped: excluded`.
    Excluded(Rendered),
    /// Its phone asked never to be messaged again: recorded `skipped: opted_out`.
    OptedOut(Rendered),
    /// Ready to send.
    Ready(Rendered),
}

/// How a pass finds rows whose phone another key already messages.
pub(crate) enum PhoneCheck {
    /// `contacts.unique_phone: false`, or the key is the phone itself.
    Off,
    /// Track every phone messaged (a pre-flight pass): the rows found are kept.
    Track(PhoneMap),
    /// The ledger's messaged phones were not read (`Pass::Recount`): a row due to be sent, which
    /// would need them, is only noted (`true`), and the pass must be made again with them.
    Unread(bool),
    /// The rows a pre-flight found, by row number, with the row (0: the ledger) whose phone
    /// each repeats (a run's feed: it need not hold every phone beside every key).
    Found(Arc<HashMap<u64, u32>>),
}

/// How a duplicate phone's skip names the earlier row it shares the phone with (`export`
/// names that row's contact instead, as rows move).
pub(crate) const SAME_PHONE_AS_ROW: &str = "same phone as row ";

/// What a duplicate phone's skip says.
fn same_phone(first_row: u32) -> String {
    if first_row == 0 {
        "same phone as a contact this campaign already messaged".into()
    } else {
        format!("{SAME_PHONE_AS_ROW}{first_row}")
    }
}

#[derive(Clone)]
pub(crate) struct Audience {
    pub(crate) renderer: Arc<Renderer>,
    exclude: HashSet<String>,
    /// Phones on the ledger's opt-out list (empty where no ledger is read, as in `check`).
    opted_out: HashSet<String>,
    /// Phones in their cool-down (`contacts.cooldown`): the normalised digits, and when they
    /// may be messaged again (Unix seconds).
    cooling: Arc<HashMap<u64, i64>>,
    /// Phones that hold a slot of the channel's daily budget now (read when a limit applies).
    slotted: SlotHolders,
    /// A daily limit applies: `slotted` was read from the ledger.
    budgeted: bool,
}

/// Phones that hold a slot of the channel's daily budget now: messaging them again today costs
/// nothing.
#[derive(Clone, Default)]
pub(crate) struct SlotHolders(Arc<HashSet<u64>>);

impl SlotHolders {
    pub(crate) fn new(phones: HashSet<u64>) -> SlotHolders {
        SlotHolders(Arc::new(phones))
    }

    /// Whether `phone` holds a slot already.
    pub(crate) fn hold(&self, phone: Option<&str>) -> bool {
        !self.0.is_empty()
            && phone
                .and_then(|p| p.parse::<u64>().ok())
                .is_some_and(|p| self.0.contains(&p))
    }
}

impl Audience {
    pub(crate) fn new(renderer: Arc<Renderer>, exclude: HashSet<String>) -> Audience {
        Audience {
            renderer,
            exclude,
            opted_out: HashSet::new(),
            cooling: Arc::default(),
            slotted: SlotHolders::default(),
            budgeted: false,
        }
    }

    /// The same audience, knowing which phones hold a slot of the daily budget.
    pub(crate) fn with_slots(mut self, slotted: SlotHolders) -> Audience {
        self.slotted = slotted;
        self.budgeted = true;
        self
    }

    /// Whether `phone` holds a slot of the channel's daily budget already.
    pub(crate) fn holds_slot(&self, phone: Option<&str>) -> bool {
        self.slotted.hold(phone)
    }

    /// Whether a daily limit applies, so that who holds a slot matters.
    pub(crate) fn budgeted(&self) -> bool {
        self.budgeted
    }

    /// The same audience, deferring the phones in `cooling` until the time given for each.
    pub(crate) fn with_cooling(mut self, cooling: HashMap<u64, i64>) -> Audience {
        self.cooling = Arc::new(cooling);
        self
    }

    /// When a phone's cool-down ends, if it is in one now.
    fn cooling_until(&self, phone: Option<&str>) -> Option<i64> {
        if self.cooling.is_empty() {
            return None;
        }
        self.cooling.get(&phone?.parse::<u64>().ok()?).copied()
    }

    /// The same audience, minus the phones that opted out. The list holds phones as webhooks
    /// gave them (and, in older ledgers, digits as a CSV wrote them): each is matched on its
    /// normalised form.
    pub(crate) fn with_opt_outs(&self, list: HashSet<String>, region: Option<Region>) -> Audience {
        let opted_out = list
            .into_iter()
            .map(|p| phone::match_key(&p, region.as_ref()).unwrap_or(p))
            .collect();
        Audience {
            opted_out,
            ..self.clone()
        }
    }

    pub(crate) fn classify(&self, row: &Row, csv: &Path) -> Verdict {
        if row.blank {
            return Verdict::Blank;
        }
        if let Some(e) = RowError::undecodable(row) {
            return Verdict::Invalid(e);
        }
        match self.renderer.included(row, csv) {
            Ok(true) => {}
            Ok(false) => return Verdict::Filtered,
            Err(e) => return Verdict::Invalid(e),
        }
        match self.renderer.render(row, csv) {
            Err(e) => Verdict::Invalid(e),
            Ok(r) if self.is_excluded(&r) => Verdict::Excluded(r),
            Ok(r) if r.phone.as_ref().is_some_and(|p| self.opted_out.contains(p)) => {
                Verdict::OptedOut(r)
            }
            Ok(r) => Verdict::Ready(r),
        }
    }

    fn is_excluded(&self, r: &Rendered) -> bool {
        !self.exclude.is_empty()
            && (self.exclude.contains(r.key.trim())
                || r.phone.as_ref().is_some_and(|p| self.exclude.contains(p)))
    }
}

/// What one row needs, all things considered.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Every cell is empty: nobody, never sent, never recorded.
    Blank,
    /// `contacts.where` leaves it out.
    Filtered,
    /// It cannot be sent: every reason, and one line for the ledger.
    Invalid { problems: Vec<Problem> },
    /// Its key came earlier in the file.
    Duplicate { key: String, first_row: u64 },
    /// Recorded `skipped` with a reason, never sent.
    Skip {
        key: String,
        phone: Option<String>,
        reason: Skipped,
        note: Option<String>,
    },
    /// Its phone was messaged too recently (`contacts.cooldown`): not sent, not recorded; a
    /// later run sends it once the time has passed (Unix seconds).
    Deferred {
        key: String,
        phone: Option<String>,
        until: i64,
    },
    /// The ledger already holds what this row needs: its state (and why, for a skipped one).
    Settled { key: String, known: Known },
    /// To send; `prior` is the state it leaves.
    Send {
        rendered: Box<Rendered>,
        prior: Option<Status>,
    },
}

/// Decides rows in file order: it remembers each key's first row (for duplicates) and knows the
/// ledger's states (empty where no ledger is read).
pub(crate) struct Decider {
    audience: Arc<Audience>,
    known: KnownMap,
    resend: Resend,
    phones: PhoneCheck,
    /// The rows a tracking pass found repeating a phone.
    found: HashMap<u64, u32>,
    /// With a cool-down and `unique_phone: false`, the phones this pass sends, and when their
    /// cool-down ends (`cool_what_it_sends`).
    sends: Option<(PhoneMap, i64)>,
}

impl Decider {
    /// `known`: the ledger's states (empty without a ledger); `phones`: how rows whose phone
    /// another key already messages are found.
    pub(crate) fn new(
        audience: Arc<Audience>,
        known: KnownMap,
        resend: Resend,
        phones: PhoneCheck,
    ) -> Decider {
        Decider {
            audience,
            known,
            resend,
            phones,
            found: HashMap::new(),
            sends: None,
        }
    }

    /// A phone this pass sends to starts its cool-down now: a later row with it (another key,
    /// `unique_phone: false`) waits, as the next run would make it wait. With `unique_phone`
    /// such a row is a duplicate and nothing is needed.
    pub(crate) fn cool_what_it_sends(&mut self, cooldown: std::time::Duration, rows: usize) {
        let span = i64::try_from(cooldown.as_secs()).unwrap_or(i64::MAX);
        let until = jiff::Timestamp::now().as_second().saturating_add(span);
        self.sends = Some((PhoneMap::with_capacity(rows), until));
    }

    /// When a phone's cool-down ends, if it is in one: from the ledger, or sent by this pass.
    fn cooling_until(&self, phone: Option<&str>) -> Option<i64> {
        self.audience.cooling_until(phone).or_else(|| {
            let (sent, until) = self.sends.as_ref()?;
            sent.contains(phone?).then_some(*until)
        })
    }

    pub(crate) fn renderer(&self) -> &Renderer {
        &self.audience.renderer
    }

    /// Whether `phone` holds a slot of the channel's daily budget already (free to message).
    pub(crate) fn holds_slot(&self, phone: Option<&str>) -> bool {
        self.audience.holds_slot(phone)
    }

    /// Whether a daily limit applies, so that who holds a slot matters.
    pub(crate) fn budgeted(&self) -> bool {
        self.audience.budgeted()
    }

    /// Whether a row needed the ledger's messaged phones, which this pass did not read.
    pub(crate) fn phones_unread(&self) -> bool {
        matches!(self.phones, PhoneCheck::Unread(true))
    }

    /// The rows found repeating a phone, for the feed that follows a pre-flight.
    pub(crate) fn phone_duplicates(self) -> HashMap<u64, u32> {
        self.found
    }

    /// Whether a contact about to be sent for the first time has a phone another key claims.
    fn repeats_phone(&mut self, row: u64, phone: Option<&str>) -> Option<u32> {
        match &mut self.phones {
            PhoneCheck::Off => None,
            PhoneCheck::Unread(needed) => {
                *needed = true;
                None
            }
            PhoneCheck::Found(rows) => rows.get(&row).copied(),
            PhoneCheck::Track(map) => {
                let first = map
                    .claim(phone?, u32::try_from(row).unwrap_or(u32::MAX))
                    .err()?;
                self.found.insert(row, first);
                Some(first)
            }
        }
    }

    /// Whether a contact the ledger records as `status` would be sent again by this pass's
    /// resend flags (`--retry-failed`, `--resend-unknown`).
    pub(crate) fn resends(&self, status: Option<Status>) -> bool {
        status.is_some() && due(status, self.resend).is_some()
    }

    pub(crate) fn decide(&mut self, row: &Row, csv: &Path) -> Decision {
        if row.blank {
            return Decision::Blank;
        }
        // A contact the ledger already settles needs only its key, not its request.
        let recorded = match self.recorded_key(row, csv) {
            Some((key, id, status)) if due(Some(status), self.resend).is_none() => {
                return self.sighting(key, id, row.number);
            }
            other => other.map(|(key, id, _)| (key, id)),
        };
        let (rendered, skip) = match self.audience.classify(row, csv) {
            Verdict::Blank => return Decision::Blank,
            // A contact the ledger holds keeps its state, though `where` leaves it out now and
            // a resend flag would have sent it again (it is not sent: it is filtered).
            Verdict::Filtered => {
                return match recorded {
                    Some((key, id)) => self.sighting(key, id, row.number),
                    None => {
                        self.holds_key(row, csv);
                        Decision::Filtered
                    }
                };
            }
            Verdict::Invalid(e) => {
                self.holds_key(row, csv);
                return Decision::Invalid {
                    problems: e.problems,
                };
            }
            Verdict::Excluded(r) => (r, Some(Skipped::Excluded)),
            Verdict::OptedOut(r) => (r, Some(Skipped::OptedOut)),
            Verdict::Ready(r) => (r, None),
        };
        let known = match self.known.first_sighting(key_id(&rendered.key), row.number) {
            Err(first_row) => {
                return Decision::Duplicate {
                    key: rendered.key,
                    first_row,
                };
            }
            Ok(known) => known,
        };
        match (skip, known.status) {
            // Recorded already (skipped, or sent before it was excluded): nothing to add.
            (Some(_), Some(_)) => Decision::Settled {
                key: rendered.key,
                known,
            },
            (Some(reason), None) => Decision::Skip {
                key: rendered.key,
                phone: rendered.phone,
                reason,
                note: None,
            },
            (None, status) => match due(status, self.resend) {
                None => Decision::Settled {
                    key: rendered.key,
                    known,
                },
                Some(prior @ (None | Some(Status::Failed))) => {
                    self.first_send(row, rendered, prior)
                }
                Some(prior) => {
                    // An unknown contact sent again holds its phone already (its own record
                    // counts as messaging it): later rows with it are duplicates.
                    match (&mut self.phones, &rendered.phone) {
                        (PhoneCheck::Track(map), Some(p)) => {
                            let _ = map.claim(p, u32::try_from(row.number).unwrap_or(u32::MAX));
                        }
                        (PhoneCheck::Unread(needed), _) => *needed = true,
                        _ => {}
                    }
                    self.send(rendered, prior)
                }
            },
        }
    }

    /// A new contact, or a failed one sent again (`--retry-failed`), whose phone nobody holds
    /// for it (another key may have messaged it since it failed): sent, deferred, or a
    /// duplicate of the row that holds its phone. A row whose phone cools down waits and holds
    /// its phone for nobody: a later row with the phone waits with it, rather than being
    /// recorded a duplicate of a row nobody has messaged.
    fn first_send(&mut self, row: &Row, rendered: Rendered, prior: Option<Status>) -> Decision {
        if let Some(until) = self.cooling_until(rendered.phone.as_deref()) {
            return Decision::Deferred {
                key: rendered.key,
                phone: rendered.phone,
                until,
            };
        }
        match self.repeats_phone(row.number, rendered.phone.as_deref()) {
            Some(first_row) => Decision::Skip {
                key: rendered.key,
                phone: rendered.phone,
                reason: Skipped::Duplicate,
                note: Some(same_phone(first_row)),
            },
            None => self.send(rendered, prior),
        }
    }

    /// A contact due a message: sent now, or deferred while its phone cools down.
    /// An unknown contact sent again (`--resend-unknown`) is not deferred: its own earlier
    /// attempt is what keeps its phone cooling, and sending it again is the very choice of
    /// messaging it twice.
    fn send(&mut self, rendered: Rendered, prior: Option<Status>) -> Decision {
        let resent = matches!(prior, Some(Status::Unknown | Status::Sending));
        let cooling = (!resent)
            .then(|| self.cooling_until(rendered.phone.as_deref()))
            .flatten();
        if let Some(until) = cooling {
            return Decision::Deferred {
                key: rendered.key,
                phone: rendered.phone,
                until,
            };
        }
        if let (Some((sent, _)), Some(phone)) = (&mut self.sends, &rendered.phone) {
            let _ = sent.claim(phone, 1);
        }
        Decision::Send {
            rendered: Box::new(rendered),
            prior,
        }
    }

    /// For a row whose contact the ledger records: its key, found without rendering the
    /// request, and its state. The ledger's state stands whether or not `contacts.where` still
    /// takes the row: a contact sent before a filter was added stays `sent`. `None`: the ledger
    /// holds nothing of it.
    fn recorded_key(&self, row: &Row, csv: &Path) -> Option<(String, KeyId, Status)> {
        if !self.known.has_states() {
            return None;
        }
        let key = self.audience.renderer.key(row, csv).ok()??;
        let id = key_id(&key);
        let status = self.known.get(&id)?.status?;
        Some((key, id, status))
    }

    /// A row left out (invalid, filtered) is still its key's first row, when its key can be
    /// read: a later row with the key is a duplicate of it (README: "a row whose key an earlier
    /// row has"), before a run as after one, whichever row is fixed first. Otherwise the later
    /// row is sent, and once the ledger holds the key the earlier row takes its state.
    fn holds_key(&mut self, row: &Row, csv: &Path) {
        if let Ok(Some(key)) = self.audience.renderer.key(row, csv) {
            let _ = self.known.first_sighting(key_id(&key), row.number);
        }
    }

    /// A recorded contact met at row `row`: `Settled`, or `Duplicate` when its key came
    /// earlier in the file.
    fn sighting(&mut self, key: String, id: KeyId, row: u64) -> Decision {
        match self.known.first_sighting(id, row) {
            Ok(known) => Decision::Settled { key, known },
            Err(first_row) => Decision::Duplicate { key, first_row },
        }
    }
}

/// Reads every exclusion list into one set of keys and normalised phones (read with
/// `contacts.country`). A `{ file, column }` list is read by its header, that column only; a bare
/// file must hold one cell a line, since any other cell (a reason, a count) would exclude the
/// contacts whose key it happens to equal. When every key is a phone (no `contacts.key`, and a
/// channel that requires one), a cell that is no phone excludes nobody, and is named (but for
/// a bare list's first line, which may be its header).
pub(crate) fn load_exclusions(c: &Campaign) -> Result<HashSet<String>, Vec<Problem>> {
    let mut set = HashSet::new();
    let mut problems = Vec::new();
    let keys_are_phones = c.contacts.key.is_none() && c.api.channel.requires_phone();
    for (i, list) in c.contacts.exclude.iter().enumerate() {
        let cells = match read_list(c, i, list) {
            Ok(cells) => cells,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        for (n, (line, cell)) in cells.iter().enumerate() {
            // A bare list's first line may be its header (`phone`).
            let header = n == 0 && list.column.is_none();
            let cell = String::from_utf8_lossy(cell);
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            match phone::match_key(cell, c.contacts.country.as_ref()) {
                Some(phone) => {
                    set.insert(phone);
                }
                None if keys_are_phones && !header => {
                    let why = phone::normalise(cell, c.contacts.country.as_ref()).err();
                    problems.push(
                        Problem::new(
                            &list.file,
                            Some(*line),
                            format!(
                                "`{cell}` is no phone number{}, so this exclusion excludes nobody",
                                why.as_ref().map_or(String::new(), |e| format!(" ({e})"))
                            ),
                        )
                        .hint(why.map_or_else(
                            || "write the phone with its country code, or remove the line".into(),
                            |e| e.hint(),
                        )),
                    );
                }
                None => {}
            }
            set.insert(cell.to_string());
        }
    }
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(problems)
    }
}

/// The cells of `contacts.exclude[i]`, each with its line: its named column's, or a bare
/// file's one cell a line.
fn read_list(c: &Campaign, i: usize, list: &Exclusion) -> Result<Vec<(usize, Vec<u8>)>, Problem> {
    let at = format!("contacts.exclude[{i}]");
    let path = &list.file;
    if let Some(why) = crate::campaign::system::not_a_file(path) {
        return Err(c
            .problem_at(&at, format!("the exclusion list {} {why}", path.display()))
            .hint(
                "fix the path (relative to the campaign file) or remove it from `contacts.exclude`",
            ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        c.problem_at(
            &at,
            format!("cannot read the exclusion list {}: {e}", path.display()),
        )
        .hint("fix the path (relative to the campaign file) or remove it from `contacts.exclude`")
    })?;
    let text = decode_list(c, &at, path, &bytes)?;
    let text = text.as_ref();
    // Excel's `sep=;` line names the delimiter; lines are still counted from it.
    let (text, delimiter, skipped) = match sep_line(text) {
        Some((d, len)) => (&text[len..], d, 1),
        None => (text, detect_delimiter(text), 0),
    };
    let lines = Lines::of(text, skipped);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(list.column.is_some())
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text);
    let column = match &list.column {
        None => None,
        Some(name) => Some(column_of(&mut reader, name).map_err(|names| {
            let headers: Vec<String> = names.iter().map(|h| format!("{h:?}")).collect();
            c.problem_at(
                &at,
                format!(
                    "the exclusion list {} has no column {name:?}; its header has {}",
                    path.display(),
                    headers.join(", ")
                ),
            )
            .hint(
                match containing(name, &names)
                    .or_else(|| crate::campaign::closest(name.trim(), &names).cloned())
                {
                    Some(close) => format!("did you mean `{close}`? fix `column:` to it"),
                    None => "fix `column:` to one of the header's names".into(),
                },
            )
        })?),
    };
    let mut cells = Vec::new();
    for record in reader.byte_records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| lines.at(p.byte() as usize));
            Problem::new(path, line, format!("cannot read the exclusion list: {e}"))
        })?;
        let line = lines.at(record.position().map_or(0, |p| p.byte() as usize));
        // A quote that never closes reads every line after it as one cell.
        if record
            .iter()
            .any(|cell| cell.contains(&b'\n') || cell.contains(&b'\r'))
        {
            return Err(Problem::new(
                path,
                Some(line),
                "a quote opens on this line and is not closed on it: the lines after it were read as one cell, and would exclude nobody",
            )
            .hint("remove the stray quote (or close it), and check again"));
        }
        let filled = || record.iter().filter(|c| !c.trim_ascii().is_empty());
        let several = |cell: &[u8]| cell.iter().any(|b| DELIMITERS.contains(b));
        match column {
            Some(i) => cells.extend(record.get(i).map(|cell| (line, cell.to_vec()))),
            None if filled().count() > 1 || filled().any(several) => {
                return Err(several_cells(c, &at, path, &record, line));
            }
            None => cells.extend(filled().next().map(|cell| (line, cell.to_vec()))),
        }
    }
    Ok(cells)
}

/// The line of a record of an exclusion list, counted as a contact file's (`ends_line`), from
/// the lines skipped before it (a `sep=` line). The csv crate's own count takes `\r\n` for two.
struct Lines<'t> {
    text: &'t [u8],
    /// Where each line after the first starts.
    starts: Vec<usize>,
    skipped: usize,
}

impl Lines<'_> {
    fn of(text: &[u8], skipped: usize) -> Lines<'_> {
        let starts = (0..text.len())
            .filter(|&i| ends_line(text, i))
            .map(|i| i + 1)
            .collect();
        Lines {
            text,
            starts,
            skipped,
        }
    }

    /// The line of the record at `byte`: a record's position may be the line end before it,
    /// or the blank lines the reader skipped.
    fn at(&self, byte: usize) -> usize {
        let blank = self.text.get(byte..).unwrap_or_default();
        let byte = byte
            + blank
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        1 + self.skipped + self.starts.partition_point(|&s| s <= byte)
    }
}

/// An exclusion list's text as UTF-8: a byte-order mark says how it is written (Excel's "Unicode
/// text" is UTF-16), else `contacts.encoding` does when the file is not UTF-8. A list that still
/// holds NUL bytes is UTF-16 without its mark: read as it is, it would exclude nobody.
fn decode_list<'b>(
    c: &Campaign,
    at: &str,
    path: &Path,
    bytes: &'b [u8],
) -> Result<Cow<'b, [u8]>, Problem> {
    let text: Cow<'b, [u8]> = match encoding_rs::Encoding::for_bom(bytes) {
        Some((enc, bom)) if enc != encoding_rs::UTF_8 => {
            let (text, _) = enc.decode_without_bom_handling(&bytes[bom..]);
            Cow::Owned(text.into_owned().into_bytes())
        }
        Some((_, bom)) => Cow::Borrowed(&bytes[bom..]),
        None => match c.contacts.encoding {
            Some(enc) if std::str::from_utf8(bytes).is_err() => {
                let (text, _) = enc.decode_without_bom_handling(bytes);
                Cow::Owned(text.into_owned().into_bytes())
            }
            _ => Cow::Borrowed(bytes),
        },
    };
    if text.contains(&0) {
        return Err(c
            .problem_at(
                at,
                format!(
                    "the exclusion list {} holds NUL bytes: it looks like UTF-16 without a byte-order mark, and would exclude nobody",
                    path.display()
                ),
            )
            .hint("save it from Excel as \"CSV UTF-8 (Comma delimited)\", and check again"));
    }
    Ok(text)
}

/// The index of the header `name` (trimmed, as headers are written), or the header's names.
fn column_of(reader: &mut csv::Reader<&[u8]>, name: &str) -> Result<usize, Vec<String>> {
    let headers = reader.byte_headers().cloned().unwrap_or_default();
    let names: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    names.iter().position(|h| h == name.trim()).ok_or(names)
}

/// Whether a header names a phone column, in the languages our users write their sheets in.
fn is_phone_column(name: &str) -> bool {
    let name = name.to_lowercase();
    [
        "phone", "fone", "tel", "cel", "mobile", "whats", "numero", "número",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// The header that holds `name` whole (`Fone` in `Telefone`), when one does: a closer guess
/// than the nearest spelling (`Nome`).
fn containing(name: &str, names: &[String]) -> Option<String> {
    let name = name.trim().to_lowercase();
    (name.len() >= 3)
        .then(|| {
            names
                .iter()
                .find(|h| h.to_lowercase().contains(&name))
                .cloned()
        })
        .flatten()
}

/// A bare exclusion file whose line holds several cells: which one is meant cannot be told.
/// `skipped`: the lines before the ones the reader counts.
fn several_cells(
    c: &Campaign,
    at: &str,
    path: &Path,
    record: &csv::ByteRecord,
    line: usize,
) -> Problem {
    let cells: Vec<String> = record
        .iter()
        .map(|c| format!("{:?}", String::from_utf8_lossy(c).trim()))
        .collect();
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    // The cells of the first line, split at any delimiter (a `;` file read with `,`): the one
    // named like a phone column is the likely choice, else the first.
    let names: Vec<String> = record
        .iter()
        .flat_map(|c| {
            String::from_utf8_lossy(c)
                .split(|c: char| u8::try_from(c).is_ok_and(|b| DELIMITERS.contains(&b)))
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let first = names
        .iter()
        .find(|n| is_phone_column(n))
        .or(names.first())
        .map_or("", String::as_str);
    c.problem_at(
        at,
        format!(
            "the exclusion list {} has several cells a line (line {line}: {}): every cell would be taken for a phone or a key",
            path.display(),
            cells.join(", ")
        ),
    )
    .hint(format!(
        "name the column that holds the phones or keys: `- {{ file: {name}, column: {first} }}` (the file's first line must then be its header)"
    ))
}
