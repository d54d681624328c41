//! Where a command's messages go, decided once from the global flags and stderr: with `-q`
//! only what must be said (errors, warnings, why a run stopped, a failed run's summary); on a
//! terminal, a run may draw a progress bar; elsewhere (cron, CI, a pipe) plain lines for a log.
//! Data a command is asked for (`status`, `export`, `--json`) goes to stdout whatever the flags.
//!
//! A line on stderr is dropped if stderr is gone: a server started from a terminal that has
//! since closed goes on serving (`eprintln!` would panic).

use std::fmt::Display;
use std::io::{self, IsTerminal, Write};

use crate::commands::output;

/// How a run shows its progress (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    Auto,
    Bar,
    Plain,
    None,
}

/// How much a command says, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Printer {
    /// `-q`: errors and warnings only.
    Quiet,
    /// Stderr is not a terminal: plain lines, no bar.
    Plain,
    /// Stderr is a terminal: a run draws a bar.
    Terminal,
}

impl Printer {
    /// The printer of a command line: `-q`, else what stderr is.
    pub(crate) fn new(quiet: bool) -> Printer {
        if quiet {
            Printer::Quiet
        } else if io::stderr().is_terminal() {
            Printer::Terminal
        } else {
            Printer::Plain
        }
    }

    pub(crate) fn is_quiet(self) -> bool {
        self == Printer::Quiet
    }

    /// A line on stderr that `-q` silences: notes, and what a command is doing.
    pub(crate) fn info(self, line: impl Display) {
        if !self.is_quiet() {
            stderr_line(line);
        }
    }

    /// A line on stderr whatever the flags: errors, warnings, and what the user must act on.
    pub(crate) fn important(self, line: impl Display) {
        stderr_line(line);
    }

    /// Stdout for what a command did (`report: wrote …`); `-q` silences it.
    pub(crate) fn stdout(self) -> Stdout {
        Stdout((!self.is_quiet()).then(output::stdout))
    }

    /// Stdout whatever the flags.
    pub(crate) fn stdout_important(self) -> Stdout {
        Stdout(Some(output::stdout()))
    }

    /// How a run shows its progress: `auto` is a bar on a terminal and plain lines elsewhere;
    /// `-q` shows none, whatever was asked.
    pub(crate) fn progress(self, asked: ProgressMode) -> ProgressMode {
        match (self, asked) {
            (Printer::Quiet, _) => ProgressMode::None,
            (Printer::Terminal, ProgressMode::Auto) => ProgressMode::Bar,
            (Printer::Plain, ProgressMode::Auto) => ProgressMode::Plain,
            (_, mode) => mode,
        }
    }
}

/// Stdout, or nowhere when the printer silences it.
pub(crate) struct Stdout(Option<output::Stdout>);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Some(out) => out.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

pub(crate) use crate::redact::stderr_line;

/// Writes one line to stderr whatever the flags, for what runs without a printer at hand (the
/// servers' handlers, the progress display).
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::printer::stderr_line(format_args!($($arg)*))
    };
}
pub(crate) use log;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_shows_no_progress_and_auto_follows_the_terminal() {
        for asked in [ProgressMode::Auto, ProgressMode::Bar, ProgressMode::Plain] {
            assert_eq!(Printer::Quiet.progress(asked), ProgressMode::None);
        }
        assert_eq!(
            Printer::Terminal.progress(ProgressMode::Auto),
            ProgressMode::Bar
        );
        assert_eq!(
            Printer::Plain.progress(ProgressMode::Auto),
            ProgressMode::Plain
        );
        assert_eq!(
            Printer::Plain.progress(ProgressMode::Bar),
            ProgressMode::Bar
        );
    }

    #[test]
    fn quiet_stdout_takes_everything_and_writes_nothing() {
        let mut out = Printer::Quiet.stdout();
        assert!(out.0.is_none());
        assert!(writeln!(out, "report: wrote x").is_ok());
    }
}
