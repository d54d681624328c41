//! The write-ahead journal: how a run's changes reach `contacts` cheaply.
//!
//! Every contact costs two changes (its claim, then its answer), and writing each one into
//! `contacts` as it happens touches a B-tree page of the table and of each index per change:
//! most of a run's ledger cost. So the writer appends each commit's changes as one row of
//! `journal` (a few pages at the end of one table), and every `FOLD` changes it *folds* the
//! journal into `contacts`: a claim and its answer become one write, 32 contacts to a
//! statement. A claim whose answer has not come yet stays in the journal for the next fold.
//!
//! Durability is unchanged: a claim is committed in the journal before its requests leave.
//! Every connection folds what it finds when it opens (see `connect`), and the listener folds
//! before it looks a contact up, so every reader sees `contacts` as if each change had been
//! written there directly. Folding is one transaction, so it is safe from any process, at any
//! moment, any number of times.

// foldhash (hashbrown's own hasher) rather than SipHash: these maps hash every change's key two
// or three times, and SipHash was a twentieth of a fold; the keys are the user's own, no attacker's.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use rusqlite::{Transaction, params};

use super::Status;
use super::writer::{Intent, Outcome, Skip};

/// One change to the ledger, in the order the writer committed it.
#[derive(Debug, Clone)]
pub enum Op {
    Claim(Intent),
    Outcome(Outcome),
    Skip(Skip),
}

impl Op {
    /// The contact the change writes, by key; `None` for a duplicate row of the file, which
    /// goes to its own table. Changes to different contacts commute.
    fn contact(&self) -> Option<&str> {
        match self {
            Op::Claim(Intent { key, .. })
            | Op::Outcome(Outcome { key, .. })
            | Op::Skip(Skip::Contact { key, .. }) => Some(key),
            Op::Skip(Skip::Duplicate { .. }) => None,
        }
    }
}

/// Appends one commit's changes as a journal row.
pub fn append(tx: &Transaction<'_>, campaign: &str, ts: &str, ops: &[Op]) -> rusqlite::Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut blob = Vec::with_capacity(ops.len() * 64);
    for op in ops {
        encode(op, &mut blob);
    }
    tx.prepare_cached("INSERT INTO journal (campaign, ts, ops) VALUES (?1, ?2, ?3)")?
        .execute(params![campaign, ts, blob])?;
    Ok(())
}

/// Whether the journal holds anything to fold (cheap: the table is empty most of the time).
pub fn pending(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM journal)", [], |r| r.get(0))
}

/// What a fold does with a claim whose answer is not in the journal yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Writes it as `sending`: what a reader needs, and what a finished run leaves.
    Write,
    /// Keeps it in the journal, so that it meets its answer in the next fold and the contact
    /// costs one write (a running writer's folds).
    Carry,
}

/// Writes every journal row into `contacts` and `duplicates`, and empties the journal but for
/// the claims it carries. Returns how many it carried.
pub fn fold(tx: &Transaction<'_>, open: Open) -> rusqlite::Result<usize> {
    // Which campaign and time each change belongs to: one entry per journal row.
    let mut origins: Vec<(String, String)> = Vec::new();
    let mut ops: Vec<(u32, Op)> = Vec::new();
    {
        let mut stmt =
            tx.prepare_cached("SELECT seq, campaign, ts, ops FROM journal ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let origin = u32::try_from(origins.len()).unwrap_or(u32::MAX);
            origins.push((r.get(1)?, r.get(2)?));
            let mut bytes = r.get_ref(3)?.as_blob()?;
            while !bytes.is_empty() {
                let op = decode(&mut bytes).ok_or_else(|| damaged(seq))?;
                ops.push((origin, op));
            }
        }
    }
    // The changes are written in the journal's order, but for a claim: it waits for the next
    // change to its contact, and when that is its answer the two are written as one row.
    // (Changes to different rows commute, so holding one back reorders nothing that matters.)
    let mut waiting: HashMap<(&str, &str), (usize, u32, &Intent)> = HashMap::new();
    let mut settling = Settling::new(tx);
    for (at, (origin, op)) in ops.iter().enumerate() {
        let (campaign, ts) = &origins[*origin as usize];
        let Some(key) = op.contact() else {
            if let Op::Skip(s) = op {
                write_skip(tx, campaign, ts, s)?;
            }
            continue;
        };
        if let Some((_, claimed, claim)) = waiting.remove(&(campaign.as_str(), key)) {
            if let Op::Outcome(o) = op
                && o.status.is_some()
            {
                settling.push(campaign, ts, claim, o)?;
                continue;
            }
            settling.flush_for(campaign, key)?;
            write_claim(tx, campaign, &origins[claimed as usize].1, claim)?;
        } else {
            settling.flush_for(campaign, key)?;
        }
        match op {
            Op::Claim(claim) => {
                waiting.insert((campaign.as_str(), key), (at, *origin, claim));
            }
            Op::Outcome(o) => write_outcome(tx, campaign, ts, o)?,
            Op::Skip(s) => write_skip(tx, campaign, ts, s)?,
        }
    }
    // Claims with nothing after them, in the journal's order: their requests are still out.
    let mut unanswered: Vec<(usize, u32, &Intent)> = waiting.into_values().collect();
    unanswered.sort_unstable_by_key(|(at, ..)| *at);
    let mut carried: Vec<(u32, Intent)> = Vec::new();
    for (_, origin, claim) in unanswered {
        let (campaign, ts) = &origins[origin as usize];
        match open {
            Open::Carry => carried.push((origin, claim.clone())),
            Open::Write => {
                settling.flush_for(campaign, &claim.key)?;
                write_claim(tx, campaign, ts, claim)?;
            }
        }
    }
    settling.flush()?;
    drop(settling);
    tx.execute("DELETE FROM journal", [])?;
    // Carried claims go back in their own commit's order, each with the time it was made.
    carried.sort_by_key(|(origin, _)| *origin);
    for group in carried.chunk_by(|a, b| a.0 == b.0) {
        let (campaign, ts) = &origins[group[0].0 as usize];
        let claims: Vec<Op> = group.iter().map(|(_, c)| Op::Claim(c.clone())).collect();
        append(tx, campaign, ts, &claims)?;
    }
    Ok(carried.len())
}

fn damaged(seq: i64) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(format!("journal row {seq} is damaged and cannot be read")),
    )
}

/// `sending`, written before the request leaves.
fn write_claim(tx: &Transaction<'_>, campaign: &str, ts: &str, i: &Intent) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO contacts (campaign, key, row_number, phone, status, attempts, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'sending', ?6, ?5)
         ON CONFLICT (campaign, key) DO UPDATE SET status = 'sending',
            attempts = attempts + 1, row_number = excluded.row_number,
            phone = excluded.phone, updated_at = excluded.updated_at",
    )?
    .execute(params![
        campaign,
        i.key,
        i.row_number,
        i.phone,
        ts,
        i.attempt
    ])?;
    Ok(())
}

fn message_ids(o: &Outcome) -> Option<String> {
    (!o.message_ids.is_empty()).then(|| serde_json::to_string(&o.message_ids).unwrap_or_default())
}

/// What became of one request.
fn write_outcome(
    tx: &Transaction<'_>,
    campaign: &str,
    ts: &str,
    o: &Outcome,
) -> rusqlite::Result<()> {
    match (o.status, o.prior) {
        (Some(status), _) => {
            tx.prepare_cached(
                "UPDATE contacts SET status = ?3, reason = ?4, contact_id = COALESCE(?5, contact_id),
                    session_id = COALESCE(?6, session_id), message_ids = COALESCE(?7, message_ids),
                    queue_id = COALESCE(?8, queue_id),
                    http_status = ?9, error = ?10, updated_at = ?11
                 WHERE campaign = ?1 AND key = ?2",
            )?
            .execute(params![
                campaign,
                o.key,
                status.as_str(),
                o.reason,
                o.contact_id,
                o.session_id,
                message_ids(o),
                o.queue_id,
                o.http_status,
                o.error,
                ts
            ])?;
        }
        // Released: the request surely never left, the contact goes back to where it was.
        (None, None) => {
            tx.prepare_cached("DELETE FROM contacts WHERE campaign = ?1 AND key = ?2")?
                .execute(params![campaign, o.key])?;
        }
        (None, Some(prior)) => {
            tx.prepare_cached(
                "UPDATE contacts SET status = ?3, updated_at = ?4 WHERE campaign = ?1 AND key = ?2",
            )?
            .execute(params![campaign, o.key, prior.as_str(), ts])?;
        }
    }
    Ok(())
}

/// Claim-and-answer pairs waiting to be written, several to a statement: a statement's own
/// cost (binding aside) is about a third of a row's.
struct Settling<'a, 't> {
    /// campaign, time of the answer, the claim, the answer
    pairs: Vec<(&'a str, &'a str, &'a Intent, &'a Outcome)>,
    /// The contacts among them (a statement never writes one twice: its rows would see each
    /// other, and another change to one waits for its pair to be written).
    contacts: HashSet<(&'a str, &'a str)>,
    conn: &'t rusqlite::Connection,
    /// The two statements, held for the whole fold: taking one from the connection's cache
    /// hashes its text (6 KB for the many-row one), and giving it back clears its 448
    /// parameters; per statement, that was a tenth of the fold.
    many: Option<rusqlite::CachedStatement<'t>>,
    one: Option<rusqlite::CachedStatement<'t>>,
}

/// How many pairs one statement writes.
const SETTLE_ROWS: usize = 32;

impl<'a, 't> Settling<'a, 't> {
    fn new(conn: &'t rusqlite::Connection) -> Self {
        Settling {
            pairs: Vec::new(),
            contacts: HashSet::new(),
            conn,
            many: None,
            one: None,
        }
    }

    /// Writes the waiting pairs if one of them is this contact's.
    fn flush_for(&mut self, campaign: &str, key: &str) -> rusqlite::Result<()> {
        if self.contacts.contains(&(campaign, key)) {
            self.flush()?;
        }
        Ok(())
    }

    fn push(
        &mut self,
        campaign: &'a str,
        ts: &'a str,
        claim: &'a Intent,
        o: &'a Outcome,
    ) -> rusqlite::Result<()> {
        self.flush_for(campaign, &claim.key)?;
        self.pairs.push((campaign, ts, claim, o));
        self.contacts.insert((campaign, &claim.key));
        if self.pairs.len() == SETTLE_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> rusqlite::Result<()> {
        if self.pairs.is_empty() {
            return Ok(());
        }
        // A full batch in one statement; a remainder (the end of a fold, or pairs before some
        // other change) one pair at a time, so that only two statements are ever prepared.
        let (slot, sql, size) = if self.pairs.len() == SETTLE_ROWS {
            (&mut self.many, &*SETTLE_MANY, SETTLE_ROWS)
        } else {
            (&mut self.one, &*SETTLE_ONE, 1)
        };
        let stmt = match slot {
            Some(stmt) => stmt,
            None => slot.insert(self.conn.prepare_cached(sql)?),
        };
        for chunk in self.pairs.chunks(size) {
            let ids: Vec<Option<String>> = chunk.iter().map(|p| message_ids(p.3)).collect();
            let statuses: Vec<Option<&str>> = chunk
                .iter()
                .map(|p| p.3.status.map(Status::as_str))
                .collect();
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 14);
            for (n, (campaign, ts, i, o)) in chunk.iter().enumerate() {
                values.extend_from_slice(&[
                    campaign as &dyn rusqlite::ToSql,
                    &i.key,
                    &i.row_number,
                    &i.phone,
                    &statuses[n],
                    &o.reason,
                    &o.contact_id,
                    &o.session_id,
                    &ids[n],
                    &o.queue_id,
                    &i.attempt,
                    &o.http_status,
                    &o.error,
                    ts,
                ]);
            }
            stmt.execute(rusqlite::params_from_iter(values))?;
        }
        self.pairs.clear();
        self.contacts.clear();
        Ok(())
    }
}

static SETTLE_MANY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| settle_sql(SETTLE_ROWS));
static SETTLE_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| settle_sql(1));

/// Writes `rows` claim-and-answer pairs: the row `write_claim` then `write_outcome` leave.
fn settle_sql(rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "{SETTLE_HEAD} VALUES {} {SETTLE_TAIL}",
        vec![row; rows].join(", ")
    )
}

const SETTLE_HEAD: &str = "INSERT INTO contacts (campaign, key, row_number, phone, status,
    reason, contact_id, session_id, message_ids, queue_id, attempts, http_status, error, updated_at)";

const SETTLE_TAIL: &str =
    "ON CONFLICT (campaign, key) DO UPDATE SET row_number = excluded.row_number,
        phone = excluded.phone, status = excluded.status, reason = excluded.reason,
        contact_id = COALESCE(excluded.contact_id, contact_id),
        session_id = COALESCE(excluded.session_id, session_id),
        message_ids = COALESCE(excluded.message_ids, message_ids),
        queue_id = COALESCE(excluded.queue_id, queue_id),
        attempts = attempts + 1, http_status = excluded.http_status,
        error = excluded.error, updated_at = excluded.updated_at";

fn write_skip(tx: &Transaction<'_>, campaign: &str, ts: &str, s: &Skip) -> rusqlite::Result<()> {
    match s {
        Skip::Duplicate {
            key,
            row_number,
            first_row,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO duplicates (campaign, row_number, key, first_row, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![campaign, row_number, key, first_row, ts])?;
        }
        Skip::Contact {
            key,
            row_number,
            phone,
            reason,
            error,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO contacts (campaign, key, row_number, phone, status, reason, error, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'skipped', ?5, ?6, ?7)",
            )?
            .execute(params![campaign, key, row_number, phone, reason, error, ts])?;
        }
    }
    Ok(())
}

// The journal's encoding: a tag byte per change, then its fields. Numbers are LEB128 varints,
// strings a length and UTF-8 bytes, an optional value 0 for none or its length (or value) + 1.

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            put_u64(out, s.len() as u64 + 1);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn put_status(out: &mut Vec<u8>, s: Option<Status>) {
    out.push(s.map_or(0, |s| {
        1 + Status::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
    }));
}

fn encode(op: &Op, out: &mut Vec<u8>) {
    match op {
        Op::Claim(i) => {
            out.push(1);
            put_str(out, &i.key);
            put_u64(out, i.row_number);
            put_opt_str(out, i.phone.as_deref());
            put_u64(out, u64::from(i.attempt));
        }
        Op::Outcome(o) => {
            out.push(2);
            put_str(out, &o.key);
            put_status(out, o.status);
            put_status(out, o.prior);
            put_opt_str(out, o.reason.as_deref());
            put_opt_str(out, o.contact_id.as_deref());
            put_opt_str(out, o.session_id.as_deref());
            put_u64(out, o.message_ids.len() as u64);
            for id in &o.message_ids {
                put_str(out, id);
            }
            put_opt_str(out, o.queue_id.as_deref());
            put_u64(out, o.http_status.map_or(0, |s| u64::from(s) + 1));
            put_opt_str(out, o.error.as_deref());
        }
        Op::Skip(Skip::Duplicate {
            key,
            row_number,
            first_row,
        }) => {
            out.push(3);
            put_str(out, key);
            put_u64(out, *row_number);
            put_u64(out, *first_row);
        }
        Op::Skip(Skip::Contact {
            key,
            row_number,
            phone,
            reason,
            error,
        }) => {
            out.push(4);
            put_str(out, key);
            put_u64(out, *row_number);
            put_opt_str(out, phone.as_deref());
            put_str(out, reason);
            put_opt_str(out, error.as_deref());
        }
    }
}

fn get_u64(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

fn get_bytes(b: &mut &[u8], len: u64) -> Option<String> {
    let len = usize::try_from(len).ok()?;
    if len > b.len() {
        return None;
    }
    let (s, rest) = b.split_at(len);
    *b = rest;
    String::from_utf8(s.to_vec()).ok()
}

fn get_str(b: &mut &[u8]) -> Option<String> {
    let len = get_u64(b)?;
    get_bytes(b, len)
}

fn get_opt_str(b: &mut &[u8]) -> Option<Option<String>> {
    match get_u64(b)? {
        0 => Some(None),
        n => get_bytes(b, n - 1).map(Some),
    }
}

fn get_status(b: &mut &[u8]) -> Option<Option<Status>> {
    let (&tag, rest) = b.split_first()?;
    *b = rest;
    match tag {
        0 => Some(None),
        n => Status::ALL.get(usize::from(n) - 1).copied().map(Some),
    }
}

fn decode(b: &mut &[u8]) -> Option<Op> {
    let (&tag, rest) = b.split_first()?;
    *b = rest;
    Some(match tag {
        1 => Op::Claim(Intent {
            key: get_str(b)?,
            row_number: get_u64(b)?,
            phone: get_opt_str(b)?,
            attempt: u32::try_from(get_u64(b)?).ok()?,
        }),
        2 => {
            let key = get_str(b)?;
            let status = get_status(b)?;
            let prior = get_status(b)?;
            let reason = get_opt_str(b)?;
            let contact_id = get_opt_str(b)?;
            let session_id = get_opt_str(b)?;
            let ids = get_u64(b)?;
            let mut message_ids = Vec::new();
            for _ in 0..ids {
                message_ids.push(get_str(b)?);
            }
            let queue_id = get_opt_str(b)?;
            let http_status = match get_u64(b)? {
                0 => None,
                n => Some(u16::try_from(n - 1).ok()?),
            };
            Op::Outcome(Outcome {
                key,
                status,
                prior,
                reason,
                contact_id,
                session_id,
                message_ids,
                queue_id,
                http_status,
                error: get_opt_str(b)?,
            })
        }
        3 => Op::Skip(Skip::Duplicate {
            key: get_str(b)?,
            row_number: get_u64(b)?,
            first_row: get_u64(b)?,
        }),
        4 => Op::Skip(Skip::Contact {
            key: get_str(b)?,
            row_number: get_u64(b)?,
            phone: get_opt_str(b)?,
            reason: get_str(b)?,
            error: get_opt_str(b)?,
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// A small deterministic generator (xorshift64*), so a failing case can be replayed by seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn maybe(&mut self, s: &str) -> Option<String> {
            (self.below(2) == 0).then(|| format!("{s}-{}", self.below(1000)))
        }
        fn status(&mut self) -> Status {
            Status::ALL[self.below(6) as usize]
        }
    }

    fn random_op(rng: &mut Rng) -> Op {
        let key = format!("k{}", rng.below(12));
        match rng.below(10) {
            0..=3 => Op::Claim(Intent {
                key,
                row_number: rng.below(50),
                phone: rng.maybe("55"),
                attempt: 1 + rng.below(3) as u32,
            }),
            4..=7 => Op::Outcome(Outcome {
                key,
                status: (rng.below(4) != 0).then(|| rng.status()),
                prior: (rng.below(2) == 0).then(|| rng.status()),
                reason: rng.maybe("reason"),
                contact_id: rng.maybe("c"),
                session_id: rng.maybe("s"),
                message_ids: (0..rng.below(3)).map(|i| format!("m{i}")).collect(),
                queue_id: rng.maybe("q"),
                http_status: (rng.below(2) == 0).then(|| 200 + rng.below(400) as u16),
                error: rng.maybe("error é \"quoted\""),
            }),
            8 => Op::Skip(Skip::Duplicate {
                key,
                row_number: rng.below(50),
                first_row: rng.below(50),
            }),
            _ => Op::Skip(Skip::Contact {
                key,
                row_number: rng.below(50),
                phone: rng.maybe("55"),
                reason: "excluded".into(),
                error: rng.maybe("why"),
            }),
        }
    }

    fn ledger() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::ledger::schema::migrate(&mut conn).unwrap();
        conn
    }

    fn dump(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        for q in [
            "SELECT * FROM contacts ORDER BY campaign, key",
            "SELECT * FROM duplicates ORDER BY campaign, row_number",
        ] {
            let mut stmt = conn.prepare(q).unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    Ok((0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap();
            out.extend(rows.map(Result::unwrap));
        }
        out
    }

    /// Folding the journal leaves exactly the rows that writing each change in order leaves,
    /// whatever the changes, however they are split into commits and folds.
    #[test]
    fn folding_equals_writing_each_change_in_order() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let direct = ledger();
            let mut folded = ledger();
            let commits = 1 + rng.below(8);
            for commit in 0..commits {
                let campaign = if rng.below(4) == 0 { "other" } else { "main" };
                let ts = format!("t{commit}");
                let ops: Vec<Op> = (0..rng.below(30)).map(|_| random_op(&mut rng)).collect();
                let tx = direct.unchecked_transaction().unwrap();
                for op in &ops {
                    match op {
                        Op::Claim(i) => write_claim(&tx, campaign, &ts, i).unwrap(),
                        Op::Outcome(o) => write_outcome(&tx, campaign, &ts, o).unwrap(),
                        Op::Skip(s) => write_skip(&tx, campaign, &ts, s).unwrap(),
                    }
                }
                tx.commit().unwrap();
                let tx = folded.transaction().unwrap();
                append(&tx, campaign, &ts, &ops).unwrap();
                match rng.below(4) {
                    0 => {
                        fold(&tx, Open::Write).unwrap();
                    }
                    1 => {
                        fold(&tx, Open::Carry).unwrap();
                    }
                    _ => {}
                }
                tx.commit().unwrap();
            }
            crate::ledger::fold(&mut folded).unwrap();
            assert_eq!(dump(&folded), dump(&direct), "seed {seed}");
            let left: i64 = folded
                .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
                .unwrap();
            assert_eq!(left, 0, "seed {seed}: the fold empties the journal");
        }
    }

    /// The same with a run's own shape: claims in batches, answers a commit or two later,
    /// retries released and claimed again, over enough contacts to fill multi-row writes.
    #[test]
    fn a_run_folds_to_the_rows_each_change_would_have_written() {
        let mut rng = Rng(42);
        let direct = ledger();
        let mut folded = ledger();
        let mut out: Vec<Intent> = Vec::new();
        let mut next = 0u64;
        for commit in 0..200 {
            let ts = format!("t{commit:03}");
            let mut ops = Vec::new();
            // Answers to some of what is out, in any order.
            let mut answered = 0;
            while !out.is_empty() && answered < 20 {
                let i = out.swap_remove(rng.below(out.len() as u64) as usize);
                let retry = rng.below(8) == 0;
                ops.push(Op::Outcome(Outcome {
                    key: i.key.clone(),
                    status: (!retry).then(|| {
                        [Status::Sent, Status::Queued, Status::Failed][rng.below(3) as usize]
                    }),
                    contact_id: rng.maybe("c"),
                    message_ids: vec![format!("m{commit}")],
                    http_status: Some(200),
                    ..Outcome::default()
                }));
                if retry {
                    ops.push(Op::Claim(Intent {
                        attempt: i.attempt + 1,
                        ..i.clone()
                    }));
                    out.push(Intent {
                        attempt: i.attempt + 1,
                        ..i
                    });
                }
                answered += 1;
            }
            for _ in 0..rng.below(40) {
                next += 1;
                let i = Intent {
                    key: format!("C{}", rng.below(5_000)),
                    row_number: next,
                    phone: rng.maybe("55"),
                    attempt: 1,
                };
                if out.iter().any(|o| o.key == i.key) {
                    continue;
                }
                ops.push(Op::Claim(i.clone()));
                out.push(i);
            }
            let tx = direct.unchecked_transaction().unwrap();
            for op in &ops {
                match op {
                    Op::Claim(i) => write_claim(&tx, "main", &ts, i).unwrap(),
                    Op::Outcome(o) => write_outcome(&tx, "main", &ts, o).unwrap(),
                    Op::Skip(s) => write_skip(&tx, "main", &ts, s).unwrap(),
                }
            }
            tx.commit().unwrap();
            // As the writer does: the commit, then every few commits a fold of its own.
            let tx = folded.transaction().unwrap();
            append(&tx, "main", &ts, &ops).unwrap();
            tx.commit().unwrap();
            if commit % 7 == 6 {
                let tx = folded.transaction().unwrap();
                fold(&tx, Open::Carry).unwrap();
                tx.commit().unwrap();
            }
        }
        crate::ledger::fold(&mut folded).unwrap();
        let rows = dump(&folded);
        assert!(rows.len() > 300, "{}", rows.len());
        assert_eq!(rows, dump(&direct));
    }

    #[test]
    fn a_damaged_journal_row_is_an_error_not_a_panic() {
        let mut rng = Rng(7);
        let ops: Vec<Op> = (0..40).map(|_| random_op(&mut rng)).collect();
        let mut blob = Vec::new();
        for op in &ops {
            encode(op, &mut blob);
        }
        let mut b = blob.as_slice();
        let mut back = Vec::new();
        while !b.is_empty() {
            back.push(decode(&mut b).expect("decodes what was encoded"));
        }
        assert_eq!(format!("{back:?}"), format!("{ops:?}"));
        // Every truncation and a stray tag: refused cleanly.
        for cut in 0..blob.len() {
            let mut b = &blob[..cut];
            while !b.is_empty() {
                if decode(&mut b).is_none() {
                    break;
                }
            }
        }
        let conn = ledger();
        conn.execute(
            "INSERT INTO journal (campaign, ts, ops) VALUES ('main', 't', x'09')",
            [],
        )
        .unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        let err = fold(&tx, Open::Write).unwrap_err().to_string();
        assert!(err.contains("journal row 1 is damaged"), "{err}");
    }
}
