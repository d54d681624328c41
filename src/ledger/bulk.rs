//! A batch's claims of new contacts and its outcomes on PostgreSQL, each in one call: the
//! batch's values go as arrays, so the server runs one statement for the batch rather than a
//! round trip of the protocol per contact. SQLite runs a statement per contact (`writer.rs`),
//! which costs it nothing: there is no server to talk to.
//!
//! Neither joins the batch to `contacts`. A prepared statement soon runs on a generic plan, made
//! once, while the campaign held a few rows; a join on that plan read the whole campaign for
//! each batch, and a 100,000-row run took 45 s rather than 3. A claim of new contacts is an
//! insert, checked by the primary key; outcomes go through migration 3's `cosmocast_settle`,
//! which updates each contact by its key.

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

/// Outcomes of the run's claims (migration 3's function: a statement per contact, run in the
/// server).
const SETTLE: &str = "SELECT cosmocast_settle(?1, ?2, ?3, ?4::text[], ?5::text[], ?6::text[],
    ?7::text[], ?8::text[], ?9::text[], ?10::text[], ?11::bigint[], ?12::text[], ?13::bigint[])";

fn int(n: impl TryInto<i64>) -> Option<i64> {
    n.try_into().ok()
}

/// Claims `intents`, all new to the ledger, for the run; returns which held (by index).
pub(crate) fn claim_new(
    tx: &Tx<'_>,
    run: (&str, i64),
    ts: &str,
    intents: &[&Intent],
) -> DbResult<Vec<bool>> {
    let (campaign, run_id) = run;
    let mut held = std::collections::HashSet::new();
    let columns = [
        Arg::Texts(intents.iter().map(|i| Some(i.key.as_str())).collect()),
        Arg::Ints(intents.iter().map(|i| int(i.row_number)).collect()),
        Arg::Texts(intents.iter().map(|i| i.phone.as_deref()).collect()),
        Arg::Ints(intents.iter().map(|i| int(i.attempt)).collect()),
    ];
    let args = [args![campaign, ts, run_id].as_slice(), &columns].concat();
    tx.for_each(CLAIM_NEW, &args, &mut |r| {
        held.insert(r.get::<String>(0)?);
        Ok(())
    })?;
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
