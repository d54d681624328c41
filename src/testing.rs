//! What unit tests share: random texts for the property tests of the readers, and look-alikes
//! as their assertions name them.

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

/// Look-alike characters as `line:column U+XXXX`.
pub(crate) fn lookalike_names(found: &[crate::lookalike::Lookalike]) -> Vec<String> {
    found
        .iter()
        .map(|l| format!("{}:{} U+{:04X}", l.line, l.column, u32::from(l.ch)))
        .collect()
}
