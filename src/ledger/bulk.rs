//! A batch's claims and settles on PostgreSQL in one statement each: the batch's values go as
//! arrays that `unnest` reads back into rows, so the server plans and runs one statement for the
//! batch rather than one per contact. SQLite runs a statement per contact (`writer.rs`), which
//! costs it nothing: there is no server to talk to.

use super::changes::{Intent, Outcome};
use super::db::{Arg, DbResult, Sql, Tx};
use super::{Status, args};

/// A claim of contacts not in the ledger: refused, by returning no row, for any another worker
/// wrote meanwhile.
const CLAIM_NEW: &str = "INSERT INTO contacts (campaign, key, row_number, phone, status, attempts, updated_at, run_id)
    SELECT ?1, t.key, t.row_number, t.phone, 'sending', t.attempt, ?2, ?3
    FROM unnest(?4::text[], ?5::bigint[], ?6::text[], ?7::bigint[]) AS t(key, row_number, phone, attempt)
    ON CONFLICT (campaign, key) DO NOTHING
    RETURNING key";

/// A claim of contacts the ledger holds: only those still in the state the run found them in.
const CLAIM_AGAIN: &str = "UPDATE contacts c SET status = 'sending', attempts = c.attempts + 1,
        row_number = t.row_number, phone = t.phone, updated_at = ?2, run_id = ?3
    FROM unnest(?4::text[], ?5::bigint[], ?6::text[], ?7::text[]) AS t(key, row_number, phone, prior)
    WHERE c.campaign = ?1 AND c.key = t.key AND c.status = t.prior
    RETURNING c.key";

/// Outcomes of the run's claims; each column as `writer::SETTLE` sets it.
const SETTLE: &str = "UPDATE contacts c SET status = t.status, reason = t.reason,
        contact_id = COALESCE(t.contact_id, c.contact_id),
        session_id = COALESCE(t.session_id, c.session_id),
        message_ids = COALESCE(t.message_ids, c.message_ids),
        queue_id = COALESCE(t.queue_id, c.queue_id),
        http_status = t.http_status, error = t.error, updated_at = ?2,
        message_count = COALESCE(t.message_count, c.message_count)
    FROM unnest(?4::text[], ?5::text[], ?6::text[], ?7::text[], ?8::text[], ?9::text[],
                ?10::text[], ?11::bigint[], ?12::text[], ?13::bigint[])
        AS t(key, status, reason, contact_id, session_id, message_ids, queue_id, http_status,
             error, message_count)
    WHERE c.campaign = ?1 AND c.key = t.key AND c.run_id = ?3";

fn int(n: impl TryInto<i64>) -> Option<i64> {
    n.try_into().ok()
}

/// Claims `intents` for the run; returns which held (by index).
pub(crate) fn claim(
    tx: &Tx<'_>,
    run: (&str, i64),
    ts: &str,
    intents: &[&Intent],
) -> DbResult<Vec<bool>> {
    let (campaign, run_id) = run;
    let (new, again): (Vec<&Intent>, Vec<&Intent>) =
        intents.iter().copied().partition(|i| i.prior.is_none());
    let mut held = std::collections::HashSet::new();
    if !new.is_empty() {
        let columns = [
            Arg::Texts(new.iter().map(|i| Some(i.key.as_str())).collect()),
            Arg::Ints(new.iter().map(|i| int(i.row_number)).collect()),
            Arg::Texts(new.iter().map(|i| i.phone.as_deref()).collect()),
            Arg::Ints(new.iter().map(|i| int(i.attempt)).collect()),
        ];
        let args = [args![campaign, ts, run_id].as_slice(), &columns].concat();
        tx.for_each(CLAIM_NEW, &args, &mut |r| {
            held.insert(r.get::<String>(0)?);
            Ok(())
        })?;
    }
    if !again.is_empty() {
        let columns = [
            Arg::Texts(again.iter().map(|i| Some(i.key.as_str())).collect()),
            Arg::Ints(again.iter().map(|i| int(i.row_number)).collect()),
            Arg::Texts(again.iter().map(|i| i.phone.as_deref()).collect()),
            Arg::Texts(again.iter().map(|i| i.prior.map(Status::as_str)).collect()),
        ];
        let args = [args![campaign, ts, run_id].as_slice(), &columns].concat();
        tx.for_each(CLAIM_AGAIN, &args, &mut |r| {
            held.insert(r.get::<String>(0)?);
            Ok(())
        })?;
    }
    Ok(intents.iter().map(|i| held.contains(&i.key)).collect())
}

/// Which of `intents` another worker moved on since the run looked (their committed state is no
/// longer the one the run found), read without waiting for any lock.
pub(crate) fn moved_on(tx: &Tx<'_>, campaign: &str, intents: &[Intent]) -> DbResult<Vec<bool>> {
    let mut now = std::collections::HashMap::new();
    let keys = Arg::Texts(intents.iter().map(|i| Some(i.key.as_str())).collect());
    let args = [Arg::Text(campaign), keys];
    tx.for_each(
        "SELECT key, status FROM contacts WHERE campaign = ?1 AND key = ANY(?2::text[])",
        &args,
        &mut |r| {
            now.insert(r.get::<String>(0)?, r.get::<String>(1)?);
            Ok(())
        },
    )?;
    Ok(intents
        .iter()
        .map(|i| now.get(&i.key).map(String::as_str) != i.prior.map(Status::as_str))
        .collect())
}

/// Records the outcomes that settle a contact (`status` set), each with its message ids as the
/// ledger keeps them.
pub(crate) fn settle(
    tx: &Tx<'_>,
    run: (&str, i64),
    ts: &str,
    settled: &[(&Outcome, Option<&str>)],
) -> DbResult<()> {
    if settled.is_empty() {
        return Ok(());
    }
    let (campaign, run_id) = run;
    let text = |f: fn(&Outcome) -> Option<&str>| -> Arg<'_> {
        Arg::Texts(settled.iter().map(|(o, _)| f(o)).collect())
    };
    let columns = [
        text(|o| Some(o.key.as_str())),
        text(|o| o.status.map(Status::as_str)),
        text(|o| o.reason.as_deref()),
        text(|o| o.contact_id.as_deref()),
        text(|o| o.session_id.as_deref()),
        Arg::Texts(settled.iter().map(|(_, ids)| *ids).collect()),
        text(|o| o.queue_id.as_deref()),
        Arg::Ints(
            settled
                .iter()
                .map(|(o, _)| o.http_status.and_then(int))
                .collect(),
        ),
        text(|o| o.error.as_deref()),
        Arg::Ints(
            settled
                .iter()
                .map(|(o, _)| o.message_count.and_then(int))
                .collect(),
        ),
    ];
    let args = [args![campaign, ts, run_id].as_slice(), &columns].concat();
    tx.execute(SETTLE, &args)?;
    Ok(())
}
