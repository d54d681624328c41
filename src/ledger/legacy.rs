//! Reads the `journal` table that ledgers of schema version 4 kept: each commit's changes as one
//! binary row, folded into `contacts` later. A run of that version killed mid-way leaves rows
//! there; migration 5 applies them in order (so its `sending` contacts become `unknown` as any
//! others) and then drops the table. Nothing else reads this format.

use rusqlite::Transaction;

use super::Status;
use super::writer::{self, Intent, Outcome, Skip};

/// One change as the journal stored it.
enum Op {
    Claim(Intent),
    Outcome(Outcome),
    Skip(Skip),
}

/// Applies every journal row to `contacts` and `duplicates`, in the order it was committed.
pub(crate) fn apply_journal(tx: &Transaction<'_>) -> rusqlite::Result<usize> {
    let exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    let mut rows: Vec<(i64, String, String, Vec<u8>)> = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT seq, campaign, ts, ops FROM journal ORDER BY seq")?;
        let mut q = stmt.query([])?;
        while let Some(r) = q.next()? {
            rows.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
        }
    }
    let mut applied = 0;
    for (seq, campaign, ts, blob) in rows {
        let mut bytes = blob.as_slice();
        while !bytes.is_empty() {
            let op = decode(&mut bytes).ok_or_else(|| damaged(seq))?;
            match op {
                Op::Claim(i) => writer::write_claim(tx, &campaign, &ts, &i)?,
                Op::Outcome(o) => writer::write_outcome(tx, &campaign, &ts, &o)?,
                Op::Skip(s) => writer::write_skip(tx, &campaign, &ts, &s)?,
            }
            applied += 1;
        }
    }
    Ok(applied)
}

fn damaged(seq: i64) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(format!(
            "journal row {seq} left by an older cosmocast is damaged and cannot be read"
        )),
    )
}

// The format: a tag byte per change, then its fields. Numbers are LEB128 varints, strings a
// length and UTF-8 bytes, an optional value 0 for none or its length (or value) + 1, a state
// 0 for none or 1 + its place in (sending, sent, queued, failed, unknown, skipped).

const STATES: [Status; 6] = [
    Status::Sending,
    Status::Sent,
    Status::Queued,
    Status::Failed,
    Status::Unknown,
    Status::Skipped,
];

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
        n => STATES.get(usize::from(n) - 1).copied().map(Some),
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
                keep_slot: false,
                key,
                status,
                prior,
                reason,
                contact_id,
                session_id,
                message_ids,
                message_count: None,
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

    /// A version-4 ledger whose run was killed: one contact answered, one still `sending`,
    /// one skipped; migrating it gives the rows the old fold would have written.
    #[test]
    fn a_killed_version_4_run_is_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        super::super::schema::migrate_to(&mut conn, 4).unwrap();
        let mut blob = Vec::new();
        for (key, row) in [("k1", 1u64), ("k2", 2)] {
            blob.push(1);
            put_str(&mut blob, key);
            put_u64(&mut blob, row);
            blob.push(0); // no phone
            put_u64(&mut blob, 1);
        }
        // k1 answered: sent, prior none, no reason, contact id "ct1", no session, 1 id.
        blob.push(2);
        put_str(&mut blob, "k1");
        blob.push(2); // sent
        blob.push(0);
        blob.push(0);
        put_u64(&mut blob, 4);
        blob.extend_from_slice(b"ct1");
        blob.push(0);
        put_u64(&mut blob, 1);
        put_str(&mut blob, "m1");
        blob.push(0);
        put_u64(&mut blob, 201);
        blob.push(0);
        // k3 skipped as excluded.
        blob.push(4);
        put_str(&mut blob, "k3");
        put_u64(&mut blob, 3);
        blob.push(0);
        put_str(&mut blob, "excluded");
        blob.push(0);
        conn.execute(
            "INSERT INTO campaigns (name, created_at) VALUES ('c', 't')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO journal (campaign, ts, ops) VALUES ('c', '2026-01-01T00:00:00.000Z', ?1)",
            [blob],
        )
        .unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let rows: Vec<(String, String, Option<String>, Option<String>)> = conn
            .prepare("SELECT key, status, contact_id, message_ids FROM contacts ORDER BY key")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (
                    "k1".into(),
                    "sent".into(),
                    Some("ct1".into()),
                    Some(r#"["m1"]"#.into())
                ),
                ("k2".into(), "sending".into(), None, None),
                ("k3".into(), "skipped".into(), None, None),
            ]
        );
        let journal: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'journal'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(journal, 0, "the journal is gone after migration");
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let mut b: &[u8] = &[1, 200];
        assert!(decode(&mut b).is_none());
        let mut b: &[u8] = &[9];
        assert!(decode(&mut b).is_none());
    }
}
