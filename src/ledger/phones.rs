//! Which phone a campaign already messages, and from which row: for `contacts.unique_phone`, so
//! that three customer ids sharing one phone get one message. A phone is a number of at most 15
//! digits, so it is kept as the number itself (no hash, no collision), with the first row that
//! messages it (0: a contact the ledger already holds as messaged), in 12 bytes an entry.
//!
//! The pre-flight fills the table and keeps only the rows it finds to be duplicates; the run's
//! feed consults those rows, so that the send does not hold the table beside the keys.

use super::table::Table;

/// The row that messages a phone first; 0 for a contact recorded in the ledger.
pub(crate) type FirstRow = u32;

const OCCUPIED: u32 = 1 << 31;

/// Normalised phones (E.164 digits) and the first row that messages each.
#[derive(Debug, Default)]
pub(crate) struct PhoneMap {
    /// Each slot: the phone's low and high 32 bits (high bit set: occupied), then the first row.
    slots: Table<3>,
    len: usize,
}

/// A phone as a number; `None` when it is not the digits of one (nothing to compare then).
fn number(phone: &str) -> Option<u64> {
    (phone.len() <= 15 && !phone.is_empty() && phone.bytes().all(|b| b.is_ascii_digit()))
        .then(|| phone.parse().ok())
        .flatten()
}

impl PhoneMap {
    /// A table that holds `n` phones without growing (at most 90% full).
    pub(crate) fn with_capacity(n: usize) -> PhoneMap {
        PhoneMap {
            slots: Table::zeroed(n * 10 / 9 + 16),
            len: 0,
        }
    }

    fn find(&self, n: u64) -> usize {
        let size = self.slots.len();
        // Fibonacci hashing spreads the numbers, which are far from uniform.
        let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut i = ((u128::from(h) * size as u128) >> 64) as usize;
        let (lo, hi) = (n as u32, (n >> 32) as u32 | OCCUPIED);
        loop {
            let s = &self.slots[i];
            if s[1] & OCCUPIED == 0 || (s[0] == lo && s[1] == hi) {
                return i;
            }
            i = if i + 1 == size { 0 } else { i + 1 };
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, Table::zeroed(size));
        for &s in old.iter().filter(|s| s[1] & OCCUPIED != 0) {
            let n = u64::from(s[0]) | u64::from(s[1] & !OCCUPIED) << 32;
            let i = self.find(n);
            self.slots[i] = s;
        }
    }

    /// Whether a row messages `phone` already.
    pub(crate) fn contains(&self, phone: &str) -> bool {
        match number(phone) {
            Some(n) if !self.slots.is_empty() => self.slots[self.find(n)][1] & OCCUPIED != 0,
            _ => false,
        }
    }

    /// Notes that `row` messages `phone`, unless a row before it does: then that row (0 for a
    /// contact the ledger holds).
    pub(crate) fn claim(&mut self, phone: &str, row: FirstRow) -> Result<(), FirstRow> {
        let Some(n) = number(phone) else {
            return Ok(());
        };
        if (self.len + 1) * 10 > self.slots.len() * 9 {
            self.grow();
        }
        let i = self.find(n);
        let s = &mut self.slots[i];
        if s[1] & OCCUPIED != 0 {
            return Err(s[2]);
        }
        *s = [n as u32, (n >> 32) as u32 | OCCUPIED, row];
        self.len += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_row_keeps_its_phone() {
        let mut m = PhoneMap::with_capacity(4);
        assert_eq!(m.claim("5511987654321", 3), Ok(()));
        assert_eq!(m.claim("5511987654321", 7), Err(3));
        assert_eq!(m.claim("5511987654322", 8), Ok(()));
        assert_eq!(m.claim("351912345678", 0), Ok(()));
        assert_eq!(m.claim("351912345678", 9), Err(0));
        // Not a number: nothing to compare.
        assert_eq!(m.claim("abc", 10), Ok(()));
        assert_eq!(m.claim("abc", 11), Ok(()));
    }

    #[test]
    fn every_phone_survives_growth() {
        let mut m = PhoneMap::default();
        for i in 0..100_000u64 {
            assert_eq!(
                m.claim(&(5_511_900_000_000 + i * 7).to_string(), i as u32 + 1),
                Ok(())
            );
        }
        for i in 0..100_000u64 {
            assert_eq!(
                m.claim(&(5_511_900_000_000 + i * 7).to_string(), 0),
                Err(i as u32 + 1)
            );
        }
        assert!(m.slots.len() * 12 < 100_000 * 16, "about 12 bytes a phone");
    }
}
