//! What a run knows of each contact key, in 16 bytes a key: a million keys take about 19 MB.
//!
//! Keys are kept as 96-bit hashes, never as text. Two different keys share a hash with odds of
//! about 10^-17 for a million keys: far below any other way a send can go wrong. The hasher is
//! only compared within one process (it is not stable across Rust releases; nothing stores it).
//! The table is open addressing with linear probing, sized to the keys it will hold (not to a
//! power of two), and the hash bits are uniform already, so they place the key directly.

use super::Status;
use super::table::Table;

/// A contact key's 96-bit hash.
pub(crate) type KeyId = [u32; 3];

pub(crate) fn key_id(key: &str) -> KeyId {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut a = DefaultHasher::new();
    key.hash(&mut a);
    let mut b = DefaultHasher::new();
    0x9e37_79b9_7f4a_7c15u64.hash(&mut b);
    key.hash(&mut b);
    let (a, b) = (a.finish(), b.finish());
    [a as u32, (a >> 32) as u32, b as u32]
}

/// Why a contact is recorded `skipped` without being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// Its phone is messaged under another key (`contacts.unique_phone`).
    Duplicate,
    Excluded,
    OptedOut,
}

impl Skipped {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Skipped::Duplicate => "duplicate",
            Skipped::Excluded => "excluded",
            Skipped::OptedOut => "opted_out",
        }
    }

    pub(crate) fn parse(reason: &str) -> Option<Skipped> {
        SKIPPED.into_iter().find(|s| s.as_str() == reason)
    }
}

/// What a run knows of a key: its state in the ledger (and why, for a skipped one), and its
/// first row in this file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Known {
    pub status: Option<Status>,
    pub skipped: Option<Skipped>,
    /// 0 until the key is seen in the contact file.
    pub first_row: u32,
}

const OCCUPIED: u32 = 1 << 31;
const ROW_BITS: u32 = (1 << 26) - 1;
const SKIPPED: [Skipped; 3] = [Skipped::Duplicate, Skipped::Excluded, Skipped::OptedOut];

/// The state encoded in three bits: 0 for none, else 1 + its place in `Status::ALL` (within one
/// process only: nothing stores it).
const STATES: [Status; 6] = Status::ALL;

fn pack(k: Known) -> u32 {
    let status = k
        .status
        .and_then(|s| STATES.iter().position(|x| *x == s))
        .map_or(0, |i| i as u32 + 1);
    let skipped = k
        .skipped
        .and_then(|s| SKIPPED.iter().position(|x| *x == s))
        .map_or(0, |i| i as u32 + 1);
    OCCUPIED | status << 28 | skipped << 26 | k.first_row.min(ROW_BITS)
}

fn unpack(meta: u32) -> Known {
    let status = ((meta >> 28) & 7) as usize;
    let skipped = ((meta >> 26) & 3) as usize;
    Known {
        status: status.checked_sub(1).map(|i| STATES[i]),
        skipped: skipped.checked_sub(1).map(|i| SKIPPED[i]),
        first_row: meta & ROW_BITS,
    }
}

/// Keys with what is known of each.
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownMap {
    /// Each slot: the key's hash, then `OCCUPIED | status << 28 | skipped << 26 | first_row`.
    slots: Table<4>,
    len: usize,
    /// Keys with a recorded state (the rest were only sighted in the file).
    states: usize,
}

impl KnownMap {
    /// A table that holds `n` keys without growing (at most 90% full).
    pub(crate) fn with_capacity(n: usize) -> KnownMap {
        KnownMap {
            slots: Table::zeroed(n * 10 / 9 + 16),
            len: 0,
            states: 0,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any key has a recorded state: without one, no row can be settled already (the
    /// keys a file's first sightings add carry none).
    pub(crate) fn has_states(&self) -> bool {
        self.states > 0
    }

    fn rebuild(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, Table::zeroed(size));
        for &slot in old.iter().filter(|s| s[3] & OCCUPIED != 0) {
            let i = self.find(&[slot[0], slot[1], slot[2]]);
            self.slots[i] = slot;
        }
    }

    /// The slot that holds `id`, or the empty slot where it would go.
    fn find(&self, id: &KeyId) -> usize {
        let n = self.slots.len();
        let h = u64::from(id[0]) | u64::from(id[1]) << 32;
        let mut i = ((u128::from(h) * n as u128) >> 64) as usize;
        loop {
            let s = &self.slots[i];
            if s[3] & OCCUPIED == 0 || s[..3] == id[..] {
                return i;
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
    }

    pub(crate) fn get(&self, id: &KeyId) -> Option<Known> {
        if self.slots.is_empty() {
            return None;
        }
        let s = self.slots[self.find(id)];
        (s[3] & OCCUPIED != 0).then(|| unpack(s[3]))
    }

    /// Marks the first row of the key `id` (`key_id`) in this file and returns what the ledger
    /// records of it, or, when the key came earlier in the file, that row: this one is then a
    /// duplicate. One probe of the table: every row of a file comes here once.
    pub(crate) fn first_sighting(&mut self, id: KeyId, row: u64) -> Result<Known, u64> {
        let first_row = u32::try_from(row).unwrap_or(u32::MAX).max(1);
        if !self.slots.is_empty() {
            let i = self.find(&id);
            let meta = self.slots[i][3];
            if meta & OCCUPIED != 0 {
                let entry = unpack(meta);
                if entry.first_row != 0 {
                    return Err(u64::from(entry.first_row));
                }
                self.slots[i][3] = pack(Known { first_row, ..entry });
                return Ok(entry);
            }
        }
        self.insert(
            id,
            Known {
                first_row,
                ..Known::default()
            },
        );
        Ok(Known::default())
    }

    /// Sets what is known of `id`, and returns what was known before.
    pub(crate) fn insert(&mut self, id: KeyId, known: Known) -> Option<Known> {
        // Keep the table at most 90% full, so that probes stay short.
        if (self.len + 1) * 10 > self.slots.len() * 9 {
            self.rebuild((self.slots.len() * 2).max(64));
        }
        let i = self.find(&id);
        let before = self.slots[i];
        self.slots[i] = [id[0], id[1], id[2], pack(known)];
        let before = (before[3] & OCCUPIED != 0).then(|| unpack(before[3]));
        self.len += usize::from(before.is_none());
        self.states += usize::from(known.status.is_some());
        self.states -= usize::from(before.is_some_and(|b| b.status.is_some()));
        before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_key_and_state_through_growth() {
        let mut m = KnownMap::default();
        let states = [None, Some(Status::Sent), Some(Status::Unknown)];
        for i in 0..50_000u32 {
            let k = Known {
                status: states[i as usize % 3],
                skipped: None,
                first_row: i,
            };
            assert_eq!(m.insert(key_id(&format!("C{i}")), k), None);
        }
        assert_eq!(m.len(), 50_000);
        for i in 0..50_000u32 {
            let got = m.get(&key_id(&format!("C{i}"))).unwrap();
            assert_eq!(got.status, states[i as usize % 3]);
            assert_eq!(got.first_row, i);
        }
        assert_eq!(m.get(&key_id("C50000")), None);
        let before = m.insert(
            key_id("C7"),
            Known {
                status: Some(Status::Failed),
                skipped: None,
                first_row: 9,
            },
        );
        assert_eq!(before.map(|k| k.first_row), Some(7));
        assert_eq!(m.len(), 50_000);
        assert!(m.has_states());
    }

    #[test]
    fn sightings_alone_record_no_state() {
        let mut m = KnownMap::with_capacity(4);
        assert_eq!(m.first_sighting(key_id("a"), 1).map(|k| k.status), Ok(None));
        assert_eq!(m.first_sighting(key_id("a"), 2), Err(1));
        assert!(!m.is_empty());
        assert!(!m.has_states());
        let id = key_id("b");
        m.insert(
            id,
            Known {
                status: Some(Status::Sent),
                skipped: None,
                first_row: 0,
            },
        );
        assert!(m.has_states());
        assert_eq!(
            m.first_sighting(key_id("b"), 3).map(|k| k.status),
            Ok(Some(Status::Sent))
        );
        assert!(m.has_states());
        m.insert(
            id,
            Known {
                status: None,
                skipped: None,
                first_row: 3,
            },
        );
        assert!(!m.has_states());
    }

    #[test]
    fn every_state_and_large_rows_round_trip() {
        let skips = SKIPPED.iter().copied().map(Some).chain([None]);
        for (s, skipped) in STATES
            .iter()
            .copied()
            .map(Some)
            .chain([None])
            .zip(skips.cycle())
        {
            for row in [0, 1, 123_456, ROW_BITS, u32::MAX] {
                let k = unpack(pack(Known {
                    status: s,
                    skipped,
                    first_row: row,
                }));
                assert_eq!((k.status, k.skipped), (s, skipped));
                assert_eq!(k.first_row, row.min(ROW_BITS));
            }
        }
    }

    #[test]
    fn a_reserved_table_does_not_grow() {
        let mut m = KnownMap::with_capacity(1000);
        let size = m.slots.len();
        for i in 0..1000 {
            m.insert(key_id(&i.to_string()), Known::default());
        }
        assert_eq!(m.slots.len(), size);
        assert!(size * 16 < 1000 * 20, "about 16 bytes a key");
    }
}
