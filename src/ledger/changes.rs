//! What a run asks the ledger to record: contacts to claim (`Intent`), what became of their
//! requests (`Outcome`), rows recorded without sending (`Skip`), and what a claim got (`Claim`).
//! The writer (`writer.rs`) applies them; on PostgreSQL `bulk.rs` claims a batch of new contacts
//! in one statement.

use super::Status;

/// A contact about to be sent: written as `sending` before the request leaves.
#[derive(Debug, Clone)]
pub(crate) struct Intent {
    pub(crate) key: String,
    pub(crate) row_number: u64,
    pub(crate) phone: Option<String>,
    /// This run's attempt number for the contact (a retry is claimed again).
    pub(crate) attempt: u32,
    /// The state the run found the contact in (none: not in the ledger). The claim holds only
    /// while the contact is still in it: another worker of the campaign may have claimed it.
    pub(crate) prior: Option<Status>,
}

/// What became of one claim of several contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Claim {
    /// How many of the contacts, from the first, were within the channel's daily limit: the
    /// rest must not be sent.
    pub(crate) admitted: usize,
    /// Those of the admitted (by their index) that another worker claimed first: not this
    /// run's to send.
    pub(crate) elsewhere: Vec<usize>,
    /// Those of the admitted (by their index) whose phone the ledger bars since the run read it:
    /// not claimed, and not to be sent.
    pub(crate) barred: Vec<(usize, Barred)>,
}

impl Claim {
    /// Whether the one contact of a claim is this run's to send.
    pub(crate) fn holds_one(&self) -> bool {
        self.admitted == 1 && self.elsewhere.is_empty() && self.barred.is_empty()
    }

    /// Whether the contact at `at` is this run's to send.
    pub(crate) fn holds(&self, at: usize) -> bool {
        at < self.admitted
            && !self.elsewhere.contains(&at)
            && !self.barred.iter().any(|(b, _)| *b == at)
    }
}

/// Why a claim was refused for a contact's phone, found when it was claimed: another process
/// (`listen`, `optouts add`, a run of another campaign) changed the ledger after this run's
/// pre-flight read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Barred {
    /// The phone is on the suppression list: the contact is recorded `skipped: opted_out`.
    OptedOut,
    /// Another contact messaged the phone within the campaign's cool-down: deferred.
    Cooling,
}

/// What became of one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) key: String,
    /// `None` releases the claim: the request surely never reached the API, so the contact
    /// returns to the state it had before (`prior`).
    pub(crate) status: Option<Status>,
    pub(crate) prior: Option<Status>,
    pub(crate) reason: Option<String>,
    pub(crate) contact_id: Option<String>,
    pub(crate) session_id: Option<String>,
    /// At most `retry::MAX_MESSAGE_IDS` of the answer's ids ...
    pub(crate) message_ids: Vec<String>,
    /// ... and how many it held.
    pub(crate) message_count: Option<u64>,
    pub(crate) queue_id: Option<String>,
    pub(crate) http_status: Option<u16>,
    pub(crate) error: Option<String>,
    /// A released claim keeps its slot of the channel's daily budget: the request is only
    /// waiting to be retried.
    pub(crate) keep_slot: bool,
}

/// A row recorded without sending.
#[derive(Debug, Clone)]
pub(crate) enum Skip {
    /// The key was seen before, at `first_row` (the `duplicates` table: the key is taken).
    Duplicate {
        key: String,
        row_number: u64,
        first_row: u64,
    },
    /// `skipped` with a reason (`excluded`, `opted_out`, `invalid`, `duplicate` by phone).
    Contact {
        key: String,
        row_number: u64,
        phone: Option<String>,
        reason: String,
        error: Option<String>,
    },
}
