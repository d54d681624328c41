//! What unit tests share: random texts for the property tests of the readers.

use std::fmt::Write;

/// `count` texts of up to 39 pieces drawn from `alphabet` by a xorshift generator: the same
/// texts for a seed every time, so a failure names a text that comes back.
pub(crate) fn random_texts<T: std::fmt::Display>(
    alphabet: &[T],
    mut seed: u64,
    count: usize,
) -> impl Iterator<Item = String> + '_ {
    (0..count).map(move |_| {
        let mut text = String::new();
        for _ in 0..seed % 40 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let _ = write!(
                text,
                "{}",
                alphabet[(seed % alphabet.len() as u64) as usize]
            );
        }
        text
    })
}
