//! The campaign's identity: the key template, the API endpoint and the channel type that its
//! first run recorded. A run whose key or endpoint moved would treat every recorded contact as
//! new (and message it again) or as done (and message no one): it refuses to start, says what
//! changed and how many contacts it concerns, and gives the ways forward. `--accept-change`
//! records the new identity and goes on.

use super::RunSettings;
use crate::error::{Exit, Fatal};
use crate::ledger::{Identity, Ledger, Status};
use crate::plan::{Plan, Scan};
use crate::text::count;

/// What the key is when `contacts.key` is not set.
const DEFAULT_KEY: &str =
    "(default: the normalised contact.mobile_phone, else contact.external_id)";

/// The endpoint a sandbox rehearsal records: the in-process sandbox's port changes every run.
const SANDBOX_ENDPOINT: &str = "the built-in sandbox (run --sandbox)";

/// This run's identity.
pub(super) fn current(plan: &Plan, sandbox: bool) -> Identity {
    let c = &plan.campaign;
    let key_template = match (
        &c.contacts.key,
        &c.contact.mobile_phone,
        &c.contact.external_id,
    ) {
        (Some(k), _, _) => k.trim().to_string(),
        // The default key follows the phone (else the external id) template.
        (None, Some(p), _) => format!("{DEFAULT_KEY} mobile_phone: {}", p.trim()),
        (None, None, Some(e)) => format!("{DEFAULT_KEY} external_id: {}", e.trim()),
        (None, None, None) => DEFAULT_KEY.to_string(),
    };
    let endpoint = if sandbox {
        SANDBOX_ENDPOINT.to_string()
    } else {
        endpoint(&c.api.url)
    };
    Identity {
        key_template,
        endpoint,
        channel: c.api.channel.name().into(),
    }
}

/// scheme://host:port/path, the port always written, nothing else.
fn endpoint(url: &url::Url) -> String {
    format!(
        "{}://{}:{}{}",
        url.scheme(),
        url.host_str().unwrap_or_default().to_ascii_lowercase(),
        url.port_or_known_default().unwrap_or_default(),
        url.path()
    )
}

/// What the run must do about its identity once it holds the ledger.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Recorded and unchanged.
    Same,
    /// To record: the first run, a change that concerns no contact, or an accepted change.
    Record(Identity, Option<String>),
}

/// Compares this run's identity with the one the ledger recorded (read-only: nothing is
/// written before the run holds the ledger's lock).
pub(super) fn check(
    s: &RunSettings,
    ledger: Option<&Ledger>,
    scan: &Scan,
) -> Result<Decision, Fatal> {
    compare(&s.plan, (s.sandbox, s.accept_change), ledger, scan)
}

/// Whether the campaign's identity differs from the one the ledger recorded (a cheap look,
/// before [`refusal_note`] asks whether the difference concerns any contact).
pub(crate) fn differs(plan: &Plan, sandbox: bool, ledger: Option<&Ledger>) -> bool {
    ledger
        .and_then(|l| l.identity(&plan.campaign.name).ok().flatten())
        .is_some_and(|before| before != current(plan, sandbox))
}

/// What `status` and `report` say of a campaign whose identity moved: that `run` refuses to
/// start, and what changed.
pub(crate) fn refusal_note(
    plan: &Plan,
    sandbox: bool,
    ledger: Option<&Ledger>,
    scan: &Scan,
) -> Option<String> {
    compare(plan, (sandbox, false), ledger, scan).err()?;
    let before = ledger?.identity(&plan.campaign.name).ok()??;
    Some(format!(
        "the campaign changed since the ledger recorded it ({}): `cosmocast run` refuses to start; `cosmocast check` gives the ways forward",
        changes(&before, &current(plan, sandbox)).join("; ")
    ))
}

/// [`check`] for `plan`, `(sandbox, accept_change)` as `run` was given them: `cosmocast check`
/// asks it too, so that it refuses what the run would.
pub(crate) fn compare(
    plan: &Plan,
    (sandbox, accept_change): (bool, bool),
    ledger: Option<&Ledger>,
    scan: &Scan,
) -> Result<Decision, Fatal> {
    let now = current(plan, sandbox);
    let name = &plan.campaign.name;
    let Some(ledger) = ledger else {
        return Ok(Decision::Record(now, None));
    };
    let read = |e: anyhow::Error| {
        Fatal::new(
            Exit::CannotRun,
            format!("cannot read the ledger {}: {e}", ledger.place),
        )
    };
    let Some(before) = ledger.identity(name).map_err(read)? else {
        return Ok(Decision::Record(now, None));
    };
    if before == now {
        return Ok(Decision::Same);
    }
    let held = Tally::count(ledger, name, scan).map_err(read)?;
    let moved = held.moved(&before, &now);
    let changes = changes(&before, &now);
    if !(moved.key || moved.endpoint) || accept_change {
        let note = format!(
            "campaign {name:?}: recorded the new identity in {} ({})",
            ledger.place,
            changes.join("; ")
        );
        return Ok(Decision::Record(now, Some(note)));
    }
    let mut msg = format!(
        "campaign {name:?} changed since its ledger {} recorded it:\n",
        ledger.place
    );
    for c in &changes {
        msg.push_str(&format!("  - {c}\n"));
    }
    msg.push_str(&held.concerned(moved, &before, &now));
    msg.push_str(WAYS_FORWARD);
    Err(Fatal::new(Exit::CannotRun, msg))
}

/// What a refused run says to do.
const WAYS_FORWARD: &str = "  Nothing was sent. Ways forward:\n\
     \x20 - undo the edit, if it was not meant;\n\
     \x20 - give the campaign a new `name:`, if it is a new campaign;\n\
     \x20 - keep rehearsals in a ledger of their own (--ledger or COSMOCAST_LEDGER; `run --sandbox` keeps its own beside the workspace's);\n\
     \x20 - or run again with --accept-change to record the new identity and go on.";

/// Each part of the identity that changed, before → now.
fn changes(before: &Identity, now: &Identity) -> Vec<String> {
    let mut changes = Vec::new();
    if before.key_template != now.key_template {
        changes.push(format!(
            "the contact key: {:?} → {:?}",
            before.key_template, now.key_template
        ));
    }
    if before.endpoint != now.endpoint {
        changes.push(format!(
            "the API endpoint: {} → {}",
            before.endpoint, now.endpoint
        ));
    }
    if before.channel != now.channel {
        changes.push(format!(
            "the channel type: {} → {}",
            before.channel, now.channel
        ));
    }
    changes
}

/// Which changes concern recorded contacts, so that the run may not go on without
/// `--accept-change`.
#[derive(Debug, Clone, Copy)]
struct Moved {
    key: bool,
    endpoint: bool,
}

/// The contacts the ledger holds for the campaign, against what the file's rows found.
struct Tally {
    /// Contacts recorded in any state but `skipped`.
    recorded: u64,
    /// Every contact the ledger holds.
    held: u64,
    /// Recorded contacts that no row of the file finds under the new key.
    lost: u64,
    /// Rows the recorded keys no longer match: new contacts to send, or to skip as the same
    /// phone.
    unmatched: u64,
    /// Rows to send for the first time.
    to_send: u64,
}

impl Tally {
    fn count(ledger: &Ledger, name: &str, scan: &Scan) -> anyhow::Result<Tally> {
        let recorded: u64 = ledger
            .counts(name)?
            .iter()
            .filter(|(s, _)| **s != Status::Skipped)
            .map(|(_, n)| *n)
            .sum();
        let held = ledger.contact_count(name)?;
        // The recorded contacts the file still finds under the new key: when every one is
        // found, the edit changed no recorded key (a renamed column, the same values), and only
        // rows never sent are keyed the new way.
        let found = scan.settled + scan.failed_again + scan.unknown_again;
        Ok(Tally {
            recorded,
            held,
            lost: held.saturating_sub(found),
            unmatched: scan.to_send + scan.same_phone,
            to_send: scan.to_send,
        })
    }

    fn moved(&self, before: &Identity, now: &Identity) -> Moved {
        Moved {
            key: before.key_template != now.key_template
                && self.recorded > 0
                && self.unmatched > 0
                && self.lost > 0,
            endpoint: before.endpoint != now.endpoint && self.recorded > 0,
        }
    }

    /// What the changes would do to the recorded contacts.
    fn concerned(&self, moved: Moved, before: &Identity, now: &Identity) -> String {
        let mut msg = String::new();
        if moved.key {
            let same_phone = self.unmatched.saturating_sub(self.to_send);
            msg.push_str(&format!(
                "  The ledger holds {}; under the new key, {} of them match no row of the file, and {} of the file match none of them and would count as new contacts: {} to message (any of them messaged under the old key would get it again){}.\n",
                count(self.held, "contact"),
                self.lost,
                count(self.unmatched, "row"),
                self.to_send,
                if same_phone > 0 {
                    format!(", {same_phone} skipped as a phone already messaged")
                } else {
                    String::new()
                },
            ));
        }
        if moved.endpoint {
            msg.push_str(&format!(
                "  The ledger holds {} recorded against {}: a run against {} would not message them, since they count as done there.\n",
                count(self.recorded, "contact"),
                before.endpoint,
                now.endpoint,
            ));
        }
        msg
    }
}
