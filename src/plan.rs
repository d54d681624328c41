//! The pre-flight, built once and consumed by every command: the checked campaign, its contact
//! file (opened to read the header, and its size and time noted), the compiled templates and
//! the exclusion lists; and the scan that decides every row before anything is sent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audience::{
    Audience, Decider, Decision, PhoneCheck, Resend, SlotHolders, Verdict, load_exclusions,
};
use crate::campaign::{self, Campaign};
use crate::contacts::{ContactReader, Snapshot};
use crate::error::{Problem, Problems};
use crate::ledger::keys::{Known, Skipped};
use crate::ledger::locate::Located;
use crate::ledger::phones::PhoneMap;
use crate::ledger::{KnownMap, Ledger, Status};
use crate::phone::LineKind;
use crate::render::Renderer;

/// Which pass over the contact file a decider serves.
pub(crate) enum Pass {
    /// A pass that finds everything itself: `check`, `status`, `export`, a run's pre-flight.
    Scan,
    /// A `Scan` that leaves the ledger's messaged phones unread, for a campaign whose rows are
    /// likely all settled (a run's summary): `Scan::phones_unread` says when a row needed them.
    Recount,
    /// A run's feed, after its pre-flight counted the `rows` and found the rows repeating a
    /// phone (row number → the row, 0: the ledger, whose phone it repeats).
    Feed {
        rows: u64,
        phone_duplicates: Arc<std::collections::HashMap<u64, u32>>,
    },
}

/// A campaign ready to render: checked file, compiled templates, exclusion lists.
pub(crate) struct Plan {
    pub(crate) campaign: Campaign,
    pub(crate) audience: Arc<Audience>,
    /// The contact file as it was when the plan was made.
    pub(crate) snapshot: Snapshot,
}

fn open_contacts(c: &Campaign) -> Result<ContactReader, Problems> {
    let file = &c.contacts.file;
    if let Some(why) = crate::campaign::system::not_a_file(file) {
        let what = format!("the contact file {} {why}", file.display());
        // Point at the campaign line that names the file: that is what the user must fix.
        let p = c
            .problem_at("contacts.file", what)
            .hint("fix `contacts.file`; paths are relative to the campaign file's folder");
        return Err(Problems { list: vec![p] });
    }
    ContactReader::open(&c.contacts.file, c.contacts.delimiter, c.contacts.encoding)
        .map_err(|p| Problems { list: vec![p] })
}

impl Plan {
    /// Loads the campaign, opens the CSV, compiles every template and reads the exclusion lists.
    pub(crate) fn load(path: &Path) -> Result<Plan, Problems> {
        Plan::new(campaign::load(path)?)
    }

    /// The plan of a campaign already loaded: opens the CSV, compiles every template and reads
    /// the exclusion lists.
    pub(crate) fn new(campaign: Campaign) -> Result<Plan, Problems> {
        // Noted before the file is read, so that a change after this is caught.
        let snapshot = Snapshot::take(&campaign.contacts.file);
        // A missing or unreadable file is reported here, at the campaign line that names it.
        let reader = open_contacts(&campaign)?;
        let snapshot = snapshot.map_err(|e| Problems {
            list: vec![Problem::new(
                reader.path(),
                None,
                format!("cannot read the contact file: {e}"),
            )],
        })?;
        let renderer = Renderer::new(&campaign, reader.headers.clone());
        let exclude = load_exclusions(&campaign);
        let (renderer, exclude) = match (renderer, exclude) {
            (Ok(r), Ok(e)) => (r, e),
            (r, e) => {
                let mut list = r.err().unwrap_or_default();
                list.extend(e.err().unwrap_or_default());
                return Err(Problems { list });
            }
        };
        let audience = Arc::new(Audience::new(Arc::new(renderer), exclude));
        Ok(Plan {
            campaign,
            audience,
            snapshot,
        })
    }

    /// Opens the contact file afresh (each pass streams it from the start).
    pub(crate) fn reader(&self) -> Result<ContactReader, Problems> {
        open_contacts(&self.campaign)
    }

    /// About how many rows the contact file holds (a little over, to size tables once).
    pub(crate) fn estimated_rows(&self) -> usize {
        crate::contacts::estimate_rows(&self.campaign.contacts.file) * 21 / 20
    }

    /// Whether rows must be checked for a phone another key messages: `contacts.unique_phone`.
    /// With the phone as the key the file's rows cannot repeat one under two keys, but the
    /// ledger can: contacts messaged before `key:` was taken out are keyed by the old key.
    fn checks_phones(&self) -> bool {
        self.campaign.contacts.unique_phone
    }

    /// The decider of a pass over the file, against what the ledger holds (its states, its
    /// opt-outs, the phones it messaged), or nothing when there is no ledger.
    pub(crate) fn decider(
        &self,
        ledger: Option<&Ledger>,
        resend: Resend,
        pass: Pass,
    ) -> anyhow::Result<Decider> {
        let name = &self.campaign.name;
        // Room for every row's key, so the table never grows (and doubles) mid-run.
        let rows = match &pass {
            Pass::Scan | Pass::Recount => self.estimated_rows(),
            Pass::Feed { rows, .. } => usize::try_from(*rows).unwrap_or(0),
        };
        let mut phones = match pass {
            _ if !self.checks_phones() => PhoneCheck::Off,
            Pass::Feed {
                phone_duplicates, ..
            } => PhoneCheck::Found(phone_duplicates),
            // A scan tracks the phones the campaign messaged, read with the keys in one pass.
            Pass::Scan => PhoneCheck::Track(PhoneMap::with_capacity(rows)),
            Pass::Recount => PhoneCheck::Unread(false),
        };
        let (known, audience) = match ledger {
            Some(l) => {
                let known = l.known(name, rows, |p| {
                    if let PhoneCheck::Track(map) = &mut phones {
                        let _ = map.claim(p, 0);
                    }
                })?;
                (known, Arc::new(self.audience_in(l)?))
            }
            None => (KnownMap::with_capacity(rows), self.audience.clone()),
        };
        let mut decider = Decider::new(audience, known, resend, phones);
        if let (Some(cooldown), false) = (self.campaign.contacts.cooldown, self.checks_phones()) {
            decider.cool_what_it_sends(cooldown, rows);
        }
        Ok(decider)
    }

    /// The audience as the ledger leaves it: minus the suppression list, with the phones in
    /// their cool-down deferred, and those holding a slot of the channel's daily budget known
    /// (the real channel's or the rehearsal's: each ledger holds one of them).
    fn audience_in(&self, ledger: &Ledger) -> anyhow::Result<Audience> {
        let c = &self.campaign;
        let mut audience = self
            .audience
            .with_opt_outs(ledger.opt_outs()?, c.contacts.country);
        if c.api.daily_limit.is_some() || ledger.limited(&channels(c))? {
            audience = audience.with_slots(self.slot_holders(ledger)?);
        }
        let Some(cooldown) = c.contacts.cooldown else {
            return Ok(audience);
        };
        let span = i64::try_from(cooldown.as_secs()).unwrap_or(i64::MAX);
        let mut cooling = ledger.messaged_since(&crate::ledger::ago(cooldown))?;
        for at in cooling.values_mut() {
            *at = at.saturating_add(span);
        }
        Ok(audience.with_cooling(cooling))
    }

    /// The phones holding a slot of the campaign's channel now.
    pub(crate) fn slot_holders(&self, ledger: &Ledger) -> anyhow::Result<SlotHolders> {
        Ok(SlotHolders::new(
            ledger.slot_phones(&channels(&self.campaign))?,
        ))
    }

    /// Reads and decides every row once, as `check`, the pre-flight of `run` and `status` do.
    pub(crate) fn scan(&self, mut decider: Decider) -> Result<Scan, Problems> {
        let reader = self.reader()?;
        let csv = reader.path().to_path_buf();
        let mut scan = Scan {
            budgeted: decider.budgeted(),
            ..Scan::default()
        };
        // WhatsApp, RCS and Apple Messages reach mobiles only.
        let landlines_matter = self.campaign.api.channel.requires_phone();
        // An unreadable file ends the rows after the problem that says so.
        for row in reader {
            scan.rows += 1;
            let row = match row {
                Ok(row) => row,
                Err(p) => {
                    scan.invalid += 1;
                    scan.keep(p);
                    continue;
                }
            };
            match decider.decide(&row, &csv) {
                Decision::Blank => scan.blank += 1,
                Decision::Filtered => scan.filtered += 1,
                Decision::Invalid { problems, .. } => {
                    scan.invalid += 1;
                    for p in problems {
                        scan.keep(p);
                    }
                }
                Decision::Duplicate { .. } => scan.duplicates += 1,
                Decision::Skip { reason, .. } => match reason {
                    Skipped::Excluded => scan.excluded += 1,
                    Skipped::OptedOut => scan.opted_out += 1,
                    Skipped::Duplicate => scan.same_phone += 1,
                },
                Decision::Settled { known, .. } => {
                    let unlisted = known.skipped == Some(Skipped::Excluded)
                        && !matches!(self.audience.classify(&row, &csv), Verdict::Excluded(_));
                    scan.settled(known, decider.resends(known.status), unlisted);
                }
                Decision::Deferred { until, .. } => {
                    scan.deferred += 1;
                    scan.deferred_until = Some(scan.deferred_until.map_or(until, |u| u.min(until)));
                }
                Decision::Send { prior, rendered } => {
                    if decider.budgeted() && !decider.holds_slot(rendered.phone.as_deref()) {
                        let before = u32::try_from(scan.sends()).unwrap_or(u32::MAX);
                        scan.newcomers.push(before);
                    }
                    match prior {
                        None => scan.to_send += 1,
                        Some(Status::Failed) => scan.failed_again += 1,
                        Some(_) => scan.unknown_again += 1,
                    }
                    if landlines_matter && rendered.line == Some(LineKind::FixedLine) {
                        scan.landline(
                            Problem::new(
                                &csv,
                                Some(row.line as usize),
                                format!(
                                    "row {}: the phone `{}` is a landline, which {} cannot reach",
                                    row.number,
                                    rendered.phone_as_written.as_deref().unwrap_or_default(),
                                    self.campaign.api.channel.name()
                                ),
                            )
                            .hint(
                                "it is sent all the same; check the number, or leave the row out",
                            ),
                        );
                    }
                }
            }
        }
        scan.phones_unread = decider.phones_unread();
        scan.phone_duplicates = decider.phone_duplicates();
        scan.runaway = self.audience.renderer.ran_away();
        Ok(scan)
    }
}

/// The ledger a campaign's command uses: the workspace's (`--ledger`, `COSMOCAST_LEDGER`, the
/// default), or its rehearsal's with `--sandbox`. A ledger left beside the campaign file at the
/// old default place is refused.
pub(crate) fn ledger_for(
    campaign: &Campaign,
    flag: &Option<PathBuf>,
    sandbox: bool,
) -> Result<Located, crate::error::Fatal> {
    crate::ledger::locate::for_campaign(flag.as_deref(), &campaign.dir, sandbox)
}

/// Every row accounted for, as the pre-flight found them.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct Scan {
    pub(crate) rows: u64,
    /// Rows whose every cell is empty: never sent.
    pub(crate) blank: u64,
    /// Left out by `contacts.where`.
    pub(crate) filtered: u64,
    pub(crate) excluded: u64,
    pub(crate) opted_out: u64,
    /// Rows whose key came earlier in the file.
    pub(crate) duplicates: u64,
    /// Rows whose phone another key already messages (`contacts.unique_phone`).
    pub(crate) same_phone: u64,
    /// Rows that cannot be sent.
    pub(crate) invalid: u64,
    /// Contacts the ledger already settles.
    pub(crate) settled: u64,
    /// The settled rows by the state the ledger records.
    #[serde(skip)]
    pub(crate) recorded: Recorded,
    /// Contacts whose phone is in its cool-down: a later run sends them.
    pub(crate) deferred: u64,
    /// When the first deferred contact may be sent (Unix seconds).
    #[serde(skip)]
    pub(crate) deferred_until: Option<i64>,
    /// Contacts never sent, to send now.
    pub(crate) to_send: u64,
    /// Failed contacts sent again (`--retry-failed`).
    pub(crate) failed_again: u64,
    /// Unknown contacts sent again (`--resend-unknown`).
    pub(crate) unknown_again: u64,
    /// Under a daily limit, for each contact to send whose phone holds no slot yet (a person
    /// new to the budget), how many contacts to send come before it in the file. The run stops
    /// claiming at the first person past the limit, so every contact from there on waits, those
    /// holding a slot included.
    #[serde(skip)]
    pub(crate) newcomers: Vec<u32>,
    /// A daily limit applies (`newcomers` is kept).
    #[serde(skip)]
    pub(crate) budgeted: bool,
    /// Contacts to send whose phone is a landline, on a channel that reaches mobiles only.
    pub(crate) landlines: u64,
    /// A template ran out of its rendering budget: the campaign's fault, not its rows'.
    #[serde(skip)]
    pub(crate) runaway: bool,
    /// Contacts recorded `skipped: excluded` that `contacts.exclude` no longer lists: a recorded
    /// skip is final, so they stay skipped.
    pub(crate) no_longer_excluded: u64,
    /// Failed or unknown contacts that `--retry-failed` or `--resend-unknown` would send again,
    /// held back: `contacts.where`, an exclusion list or the suppression list leaves them out now.
    pub(crate) held_back: u64,
    /// Kept problems (the first ones); `problem_count` has them all.
    #[serde(skip)]
    pub(crate) problems: Vec<Problem>,
    pub(crate) problem_count: u64,
    /// Kept landline warnings (the first ones); they do not stop a run.
    #[serde(skip)]
    pub(crate) warnings: Vec<Problem>,
    /// The rows found repeating a phone: row number → the row (0: the ledger) it repeats.
    #[serde(skip)]
    pub(crate) phone_duplicates: std::collections::HashMap<u64, u32>,
    /// A `Pass::Recount` met a row due to be sent, which needs the ledger's messaged phones it
    /// did not read: its counts are not to be used.
    #[serde(skip)]
    pub(crate) phones_unread: bool,
}

impl Scan {
    /// A row whose contact the ledger settles: `resent` when a resend flag made it due again
    /// (then filtered, excluded or opted out now holds it back), `unlisted` when it was recorded
    /// excluded and no exclusion list names it now.
    fn settled(&mut self, known: Known, resent: bool, unlisted: bool) {
        self.settled += 1;
        self.recorded.add(known);
        self.held_back += u64::from(resent);
        self.no_longer_excluded += u64::from(unlisted);
    }
}

/// Why a contact is deferred, as `deferred_by_reason` and `export` name it: its phone's
/// `contacts.cooldown`.
pub(crate) const COOLDOWN: &str = "cooldown";
/// Why a contact is deferred: past what the channel's daily limit still allows today.
pub(crate) const DAILY_LIMIT: &str = "daily_limit";

/// Rows whose contact the ledger holds, by the state it records.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Recorded {
    pub(crate) sending: u64,
    pub(crate) sent: u64,
    pub(crate) queued: u64,
    pub(crate) failed: u64,
    pub(crate) unknown: u64,
    pub(crate) duplicate: u64,
    pub(crate) excluded: u64,
    pub(crate) opted_out: u64,
}

impl Recorded {
    /// The states, in the order the run summary lists them, with how many rows hold each.
    pub(crate) fn by_state(&self) -> [(&'static str, u64); 8] {
        [
            ("sending", self.sending),
            ("sent", self.sent),
            ("queued", self.queued),
            ("failed", self.failed),
            ("unknown", self.unknown),
            ("skipped duplicate", self.duplicate),
            ("skipped excluded", self.excluded),
            ("skipped opted_out", self.opted_out),
        ]
    }

    /// `sent 95, unknown 2, skipped 11 (duplicate 6, excluded 5)`: the states held, as the run
    /// summary words them, so that `check`'s one "settled" figure can be read against `status`.
    pub(crate) fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        for (state, n) in self.by_state().into_iter().filter(|(_, n)| *n > 0) {
            match state.strip_prefix("skipped ") {
                Some(reason) => skipped.push(format!("{reason} {n}")),
                None => parts.push(format!("{state} {n}")),
            }
        }
        if !skipped.is_empty() {
            let total = self.duplicate + self.excluded + self.opted_out;
            parts.push(format!("skipped {total} ({})", skipped.join(", ")));
        }
        parts.join(", ")
    }

    fn add(&mut self, k: Known) {
        let n = match (k.status, k.skipped) {
            (Some(Status::Sending), _) => &mut self.sending,
            (Some(Status::Sent), _) => &mut self.sent,
            (Some(Status::Queued), _) => &mut self.queued,
            (Some(Status::Failed), _) => &mut self.failed,
            (Some(Status::Skipped), Some(Skipped::Excluded)) => &mut self.excluded,
            (Some(Status::Skipped), Some(Skipped::OptedOut)) => &mut self.opted_out,
            (Some(Status::Skipped), _) => &mut self.duplicate,
            (Some(Status::Unknown) | None, _) => &mut self.unknown,
        };
        *n += 1;
    }
}

/// Every row of the contact file in exactly one bucket, and the ledger's contacts no longer in
/// the file apart: what the run summary, `status`, `report` and `export` all say. A row whose
/// contact the ledger holds takes the ledger's state; any other is judged afresh, in the order
/// blank, invalid, filtered, skipped, deferred, pending.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct Accounting {
    pub(crate) rows: u64,
    pub(crate) sent: u64,
    pub(crate) queued: u64,
    pub(crate) failed: u64,
    pub(crate) unknown: u64,
    /// Being sent right now (a run in progress).
    pub(crate) sending: u64,
    pub(crate) skipped: u64,
    pub(crate) skipped_by_reason: std::collections::BTreeMap<&'static str, u64>,
    pub(crate) filtered: u64,
    pub(crate) invalid: u64,
    pub(crate) blank: u64,
    pub(crate) deferred: u64,
    /// The deferred by why: `COOLDOWN` or `DAILY_LIMIT`.
    pub(crate) deferred_by_reason: std::collections::BTreeMap<&'static str, u64>,
    /// Not sent yet.
    pub(crate) pending: u64,
    /// Contacts the ledger holds whose rows are no longer in the file (not among the rows).
    pub(crate) not_in_file: u64,
}

impl Accounting {
    /// The buckets of a scan made without resending (`Resend::default()`); `held` is how many
    /// contacts the ledger holds for the campaign, and `budget_left` what the channel's daily
    /// limit still allows today (pending rows past it are deferred).
    pub(crate) fn of(scan: &Scan, held: u64, budget_left: Option<u64>) -> Accounting {
        let r = scan.recorded;
        let mut skipped_by_reason = std::collections::BTreeMap::new();
        for (reason, n) in [
            ("duplicate", scan.duplicates + scan.same_phone + r.duplicate),
            ("excluded", scan.excluded + r.excluded),
            ("opted_out", scan.opted_out + r.opted_out),
        ] {
            if n > 0 {
                skipped_by_reason.insert(reason, n);
            }
        }
        let over_budget = scan.over_budget(budget_left);
        let pending = scan.sends() - over_budget;
        let deferred_by_reason = [(COOLDOWN, scan.deferred), (DAILY_LIMIT, over_budget)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        Accounting {
            rows: scan.rows,
            sent: r.sent,
            queued: r.queued,
            failed: r.failed,
            unknown: r.unknown,
            sending: r.sending,
            skipped: skipped_by_reason.values().sum(),
            skipped_by_reason,
            filtered: scan.filtered,
            invalid: scan.invalid,
            blank: scan.blank,
            deferred: scan.deferred + over_budget,
            deferred_by_reason,
            pending,
            not_in_file: held.saturating_sub(scan.settled + scan.failed_again + scan.unknown_again),
        }
    }

    /// The breakdown by reason of a bucket that has one: `skipped`, `deferred`.
    pub(crate) fn reasons(
        &self,
        bucket: &str,
    ) -> Option<&std::collections::BTreeMap<&'static str, u64>> {
        match bucket {
            "skipped" => Some(&self.skipped_by_reason),
            "deferred" => Some(&self.deferred_by_reason),
            _ => None,
        }
    }

    /// How many are deferred for `reason` (`COOLDOWN`, `DAILY_LIMIT`).
    pub(crate) fn deferred_for(&self, reason: &str) -> u64 {
        self.deferred_by_reason.get(reason).copied().unwrap_or(0)
    }

    /// The buckets, in the README's order (The ledger), with their counts (zero ones included).
    pub(crate) fn buckets(&self) -> [(&'static str, u64); 11] {
        [
            ("sent", self.sent),
            ("queued", self.queued),
            ("failed", self.failed),
            ("unknown", self.unknown),
            ("sending", self.sending),
            ("skipped", self.skipped),
            ("filtered", self.filtered),
            ("invalid", self.invalid),
            ("blank", self.blank),
            ("deferred", self.deferred),
            ("pending", self.pending),
        ]
    }

    /// `sent 3, queued 0, …, pending 2`: every bucket but an empty `sending`, with the skipped
    /// reasons.
    pub(crate) fn line(&self) -> String {
        self.buckets()
            .iter()
            .filter(|(name, n)| *name != "sending" || *n > 0)
            .map(|(name, n)| match self.reasons(name) {
                Some(reasons) if !reasons.is_empty() => {
                    let reasons: Vec<String> =
                        reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
                    format!("{name} {n} ({})", reasons.join(", "))
                }
                _ => format!("{name} {n}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One kind of failure (state and reason) among the contacts the file holds now.
pub(crate) struct FileFailures {
    pub(crate) status: String,
    pub(crate) reason: String,
    pub(crate) count: u64,
    /// The kind's first contacts by their row now: (row, key, error).
    pub(crate) first: Vec<(u64, String, String)>,
}

impl Plan {
    /// The campaign's accounting now: one pass over the contact file, deciding every row as a
    /// run without resend flags would, against what `ledger` holds.
    pub(crate) fn account(
        &self,
        ledger: Option<&Ledger>,
        sandbox: bool,
    ) -> anyhow::Result<Accounting> {
        let scan = self.scan(self.decider(ledger, Resend::default(), Pass::Scan)?)?;
        self.accounting(ledger, sandbox, &scan)
    }

    /// The failed and unknown contacts the contact file holds now, grouped by state and reason
    /// as [`Ledger::errors_by_kind`] groups the whole ledger's: most frequent first, then by
    /// reason and state; at most `kinds` kinds, each with its first `examples` contacts by their
    /// row now. A contact no longer in the file is not among them (`status` and the report
    /// count it apart). One pass over the file, as the funnel's.
    pub(crate) fn failures_in_file(
        &self,
        ledger: &Ledger,
        name: &str,
        (kinds, examples): (usize, usize),
    ) -> anyhow::Result<Vec<FileFailures>> {
        let mut decider = self.decider(Some(ledger), Resend::default(), Pass::Recount)?;
        let reader = self.reader()?;
        let csv = reader.path().to_path_buf();
        let mut rows = HashMap::new();
        // A row that cannot be read holds no contact of the ledger's.
        for row in reader.flatten() {
            if let Decision::Settled { key, known } = decider.decide(&row, &csv)
                && matches!(known.status, Some(Status::Failed | Status::Unknown))
            {
                rows.insert(key, row.number);
            }
        }
        let mut by_kind: HashMap<(String, String), FileFailures> = HashMap::new();
        for (key, status, reason, error) in ledger.failed_and_unknown(name)? {
            let Some(&row) = rows.get(&key) else { continue };
            let kind = by_kind
                .entry((status.clone(), reason.clone()))
                .or_insert_with(|| FileFailures {
                    status,
                    reason,
                    count: 0,
                    first: Vec::new(),
                });
            kind.count += 1;
            kind.first.push((row, key, error));
        }
        let mut out: Vec<FileFailures> = by_kind.into_values().collect();
        out.sort_by(|a, b| (b.count, &a.reason, &a.status).cmp(&(a.count, &b.reason, &b.status)));
        out.truncate(kinds);
        for kind in &mut out {
            kind.first.sort_unstable_by_key(|&(row, _, _)| row);
            kind.first.truncate(examples);
        }
        Ok(out)
    }

    /// `account` at the end of a run, when every row is usually settled. The ledger's messaged
    /// phones (for `contacts.unique_phone`, 14 MB for a million) are needed only by rows still
    /// due, so the first pass leaves them unread, and the pass is made again with them only
    /// when it meets such a row.
    pub(crate) fn recount(&self, ledger: &Ledger, sandbox: bool) -> anyhow::Result<Accounting> {
        let ledger = Some(ledger);
        let mut scan = self.scan(self.decider(ledger, Resend::default(), Pass::Recount)?)?;
        if scan.phones_unread {
            scan = self.scan(self.decider(ledger, Resend::default(), Pass::Scan)?)?;
        }
        self.accounting(ledger, sandbox, &scan)
    }

    /// The buckets of a scan without resend flags, with what the ledger holds beside it.
    fn accounting(
        &self,
        ledger: Option<&Ledger>,
        sandbox: bool,
        scan: &Scan,
    ) -> anyhow::Result<Accounting> {
        let held = match ledger {
            Some(l) => l.contact_count(&self.campaign.name)?,
            None => 0,
        };
        Ok(Accounting::of(
            scan,
            held,
            self.budget_left(ledger, sandbox)?,
        ))
    }

    /// How many more people the channel's daily limit lets any campaign message now (`None`: no
    /// limit applies); pending rows past it count as deferred.
    /// Without a ledger nothing is spent yet: the campaign's own limit is all there is.
    pub(crate) fn budget_left(
        &self,
        ledger: Option<&Ledger>,
        sandbox: bool,
    ) -> anyhow::Result<Option<u64>> {
        let c = &self.campaign;
        let Some(ledger) = ledger else {
            return Ok(c.api.daily_limit.map(u64::from));
        };
        let own = Some((c.name.as_str(), c.api.daily_limit));
        Ok(ledger.spent(&channel_of(c, sandbox), own)?.left())
    }
}

/// How many problems a scan keeps; the rest are only counted.
const KEEP: usize = 200;

impl Scan {
    /// What `check` and `status` say of contacts recorded `skipped: excluded` that the exclusion
    /// lists no longer name.
    pub(crate) fn no_longer_excluded_note(&self) -> String {
        let n = self.no_longer_excluded;
        format!(
            "{} recorded `skipped: excluded` {} on no `contacts.exclude` list now, but a recorded skip is final: {} not sent (a new `name:` starts a campaign that messages everyone)",
            crate::text::count(n, "contact"),
            if n == 1 { "is" } else { "are" },
            if n == 1 { "it is" } else { "they are" }
        )
    }

    fn landline(&mut self, p: Problem) {
        self.landlines += 1;
        if self.warnings.len() < KEEP {
            self.warnings.push(p);
        }
    }

    fn keep(&mut self, p: Problem) {
        self.problem_count += 1;
        if self.problems.len() < KEEP {
            self.problems.push(p);
        }
    }

    /// Contacts this run would send a request to.
    pub(crate) fn sends(&self) -> u64 {
        self.to_send + self.failed_again + self.unknown_again
    }

    /// How many of the sends are past what the channel's daily limit still allows (`left`):
    /// deferred, for a later run. A phone that holds a slot already costs nothing more, but
    /// the run stops at the first person new to the budget who does not fit, so the sends from
    /// that one on all wait.
    pub(crate) fn over_budget(&self, left: Option<u64>) -> u64 {
        let sends = self.sends();
        let Some(left) = left else { return 0 };
        if !self.budgeted {
            return sends.saturating_sub(left);
        }
        let first_past = usize::try_from(left)
            .ok()
            .and_then(|i| self.newcomers.get(i));
        first_past.map_or(0, |&before| sends - u64::from(before))
    }
}

/// What the channel's daily limit lets a pass over the file send, contact by contact in file
/// order, as the run's claims would find it: a phone that holds a slot already costs nothing
/// more, and from the first person new to the budget who does not fit, every contact waits
/// (the run stops claiming there), those holding a slot included.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// What the limit still allows (`None`: no limit applies).
    left: Option<u64>,
    /// Contacts held back so far.
    held: u64,
}

impl Budget {
    pub(crate) fn new(left: Option<u64>) -> Budget {
        Budget { left, held: 0 }
    }

    /// Whether the next contact to send, whose phone `holds_slot` or not, would be sent.
    pub(crate) fn admits(&mut self, holds_slot: bool) -> bool {
        match &mut self.left {
            None => true,
            Some(_) if self.held == 0 && holds_slot => true,
            Some(n) if *n > 0 && self.held == 0 => {
                *n -= 1;
                true
            }
            Some(_) => {
                self.held += 1;
                false
            }
        }
    }

    /// Contacts held back so far.
    pub(crate) fn held(&self) -> u64 {
        self.held
    }
}

/// The campaign file as the ledger records it: its full path, so that two folders' files tell
/// apart.
pub(crate) fn campaign_file(c: &Campaign) -> PathBuf {
    std::fs::canonicalize(&c.file).unwrap_or_else(|_| c.file.clone())
}

/// A note when the campaign's last run came from another file: a `name:` is the campaign across
/// the whole ledger, so the second file's run skips whom the first messaged. A note, not a
/// refusal: on several hosts one campaign lives at different paths.
pub(crate) fn other_file_note(c: &Campaign, ledger: &Ledger) -> Option<String> {
    let (last, at) = ledger.last_run_from(&c.name).ok()??;
    let this = campaign_file(c);
    if Path::new(&last) == this {
        return None;
    }
    let when = crate::ledger::minute(&at);
    Some(format!(
        "campaign {} was last run from {last} on {when} UTC; this is {}. One name is one campaign in the ledger: whom it messaged is not messaged again (give this file a new `name:` to make it a new campaign)",
        c.name,
        this.display()
    ))
}

/// A note when this file last sent as another campaign (its `name:` was changed) and the new
/// name has not run yet: one name is one campaign, so everyone is messaged again, those the old
/// name messaged included. A note, not a refusal: a new name is how a campaign starts afresh.
pub(crate) fn renamed_note(c: &Campaign, ledger: &Ledger) -> Option<String> {
    let this = campaign_file(c);
    let (old, at, messaged) = ledger.last_sent_from_file(&this.to_string_lossy()).ok()??;
    if old == c.name || ledger.has_campaign(&c.name).unwrap_or(true) {
        return None;
    }
    Some(format!(
        "this file last sent as campaign {old:?} on {} UTC, which messaged {}; under the new `name:` {:?} it is a new campaign and messages everyone again, them included — put back `name: {old}` to go on with that campaign",
        crate::ledger::minute(&at),
        crate::text::count(messaged, "contact"),
        c.name
    ))
}

/// The campaign's channel and its rehearsal's: a ledger holds the slots of one of them.
fn channels(c: &Campaign) -> [String; 2] {
    [channel_of(c, false), channel_of(c, true)]
}

/// The fingerprint of the channel a campaign sends through: its id's, or the rehearsal's own.
pub(crate) fn channel_of(c: &Campaign, sandbox: bool) -> String {
    let id = match (&c.api.channel_id.value, sandbox) {
        (Some(id), false) => id.as_str(),
        _ => "the built-in sandbox",
    };
    crate::ledger::budget::fingerprint(id)
}

/// What `check` and `status` say of the channel's daily budget.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct BudgetNote {
    /// How much of the limit the last 24 hours spent.
    pub(crate) spent: String,
    /// Unique people messaged through the channel in the last 24 hours.
    pub(crate) used: u64,
    /// The limit that applies (the smallest any campaign declares).
    pub(crate) limit: u32,
    /// How many more people it allows now.
    pub(crate) left: u64,
    /// When the oldest slot of the window frees (RFC 3339), if any is taken.
    pub(crate) next_slot: Option<String>,
    /// When campaigns on the channel declare different limits.
    pub(crate) warning: Option<String>,
}

/// The channel's daily budget as `check` and `status` tell it; nothing when no limit applies
/// to the channel.
pub(crate) fn budget_note(
    c: &Campaign,
    ledger: Option<&Ledger>,
    sandbox: bool,
) -> Option<BudgetNote> {
    let spent = match ledger {
        Some(l) => l
            .spent(&channel_of(c, sandbox), Some((&c.name, c.api.daily_limit)))
            .ok(),
        None => c.api.daily_limit.map(|n| crate::ledger::budget::Spent {
            used: 0,
            limit: Some(n),
            declared: vec![(c.name.clone(), n)],
            next_slot: None,
        }),
    };
    let spent = spent?;
    let limit = spent.limit?;
    let line = format!(
        "daily limit: {} of {limit} unique people messaged through this channel in the last 24 hours{}",
        spent.used,
        match (&spent.next_slot, spent.left()) {
            (Some(t), Some(0)) => format!(
                " — none left; the next slot opens at {} UTC",
                crate::ledger::minute(t)
            ),
            (_, Some(left)) => format!(" — {left} left"),
            _ => String::new(),
        }
    );
    let distinct: std::collections::BTreeSet<u32> = spent.declared.iter().map(|d| d.1).collect();
    let warning = (distinct.len() > 1).then(|| {
        let all = spent
            .declared
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "campaigns on this channel declare different `api.daily_limit`s ({all}): the smallest, {limit}, applies to all of them"
        )
    });
    Some(BudgetNote {
        spent: line,
        used: spent.used,
        limit,
        left: spent.left().unwrap_or(0),
        next_slot: spent.next_slot.clone(),
        warning,
    })
}

/// A fingerprint of what the campaign says to people: its `messages:` as written and the
/// template files they name. Another text under the same `name:` is another fingerprint.
pub(crate) fn messages_fingerprint(c: &Campaign) -> String {
    let doc: serde_yaml::Value = serde_yaml::from_str(&c.source).unwrap_or_default();
    let messages = doc.get("messages").cloned().unwrap_or_default();
    let mut text = serde_json::to_string(&messages).unwrap_or_default();
    for file in c.template_files() {
        text.push('\0');
        text.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    }
    crate::ledger::budget::fingerprint(&text)
}

/// What `check` and `run` say of a contact file with a header and no row: an export of the
/// wrong sheet, or one cut short, reads as a campaign with nobody to message.
pub(crate) fn no_rows_warning(c: &Campaign) -> String {
    format!(
        "{} has a header but no rows: nobody is messaged — check it is the right file (or the right sheet of the export)",
        c.contacts.file.display()
    )
}

/// A note when runs of the campaign sent other messages than the file holds now: what the
/// report and `preview` show is the text as it reads now, not what everyone got.
pub(crate) fn edited_note(c: &Campaign, ledger: &Ledger) -> Option<String> {
    let sent = ledger.sent_messages(&c.name).ok()?;
    let now = messages_fingerprint(c);
    let (_, first_other) = sent.iter().find(|(fp, _)| *fp != now)?;
    let versions = sent.len() + usize::from(!sent.iter().any(|(fp, _)| *fp == now));
    Some(format!(
        "the messages changed while the campaign ran: a run on {} UTC sent from other message templates than the campaign's files hold now ({versions} versions in all), so some contacts may have got other text than the one shown (a renamed column alone changes a template)",
        crate::ledger::minute(first_other)
    ))
}

/// A note when every row is settled and the messages differ from the last ones sent: a copied
/// campaign that kept its `name:` reaches nobody.
pub(crate) fn finished_note(c: &Campaign, ledger: &Ledger, scan: &Scan) -> Option<String> {
    if scan.sends() > 0 || scan.deferred > 0 || scan.settled == 0 {
        return None;
    }
    let (last, at) = ledger.last_messages(&c.name).ok()??;
    if last == messages_fingerprint(c) {
        return None;
    }
    let when = crate::ledger::minute(&at);
    Some(format!(
        "campaign {} is finished: every row was settled by earlier runs, which last sent on {when} UTC from other message templates than this file's; nobody will get these messages — give the campaign a new `name:` to send them as a new campaign",
        c.name
    ))
}

#[cfg(test)]
mod tests {
    use super::Recorded;

    #[test]
    fn recorded_states_are_worded_as_the_run_summary_words_them() {
        let r = Recorded {
            sent: 95,
            unknown: 2,
            duplicate: 6,
            excluded: 5,
            ..Recorded::default()
        };
        assert_eq!(
            r.describe(),
            "sent 95, unknown 2, skipped 11 (duplicate 6, excluded 5)"
        );
        assert_eq!(Recorded::default().describe(), "");
    }
}
