//! Value parsers for command-line flags, shared by `cli.rs` and the sandbox's own options: those
//! cannot take them from `cli.rs`, which imports the options.

/// A duration flag (`50ms`, `2s`, `7d`), read as the campaign file reads one.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::campaign::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration; write e.g. 50ms or 2s"))
}
