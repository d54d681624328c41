//! Error kinds, the documented exit codes, and the `file:line: message — hint` problem format.

use std::fmt;
use std::path::{Path, PathBuf};

/// The exit codes (README: Exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Nothing is left for this run to do, and it left no contact `failed` or `unknown`.
    Ok = 0,
    /// The campaign cannot run (bad input, environment, lock, credentials).
    CannotRun = 1,
    /// The command line is wrong.
    Usage = 2,
    /// The run reached the end, but it left contacts `failed` or `unknown`.
    Incomplete = 3,
    /// Work remains: interrupted, `--limit` reached, outside the send window, contacts
    /// deferred (cool-down, daily limit).
    WorkRemains = 4,
    /// Another run holds this campaign; this one did nothing.
    Busy = 5,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// What sort of problem a row has, set where the problem is made: `check` prints at most
/// `SHOWN_PER_KIND` of one kind, then counts them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// Not one of a row's: each distinct message stands alone.
    #[default]
    Other,
    /// A phone that cannot be read.
    Phone,
    /// A rendered field the API's rules refuse.
    Field,
    /// A template that fails on a row.
    Template,
    /// A cell or record the contact file's reader refuses, or a filter cannot read.
    Cell,
    /// A row whose contact key renders empty.
    Key,
}

impl Kind {
    /// What problems of this kind are about, as a summary names them: `phone `, or nothing.
    fn about(&self) -> &'static str {
        match self {
            Kind::Other => "",
            Kind::Phone => "phone ",
            Kind::Field => "field ",
            Kind::Template => "template ",
            Kind::Cell => "contact-file ",
            Kind::Key => "key ",
        }
    }
}

/// One problem in the user's input, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
    pub kind: Kind,
}

impl Problem {
    pub fn new(file: impl AsRef<Path>, line: Option<usize>, message: impl Into<String>) -> Self {
        Problem {
            file: file.as_ref().to_path_buf(),
            line,
            column: None,
            message: message.into(),
            hint: None,
            kind: Kind::Other,
        }
    }

    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    pub fn at(mut self, column: Option<usize>) -> Self {
        self.column = column;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " — {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a campaign, reported together.
#[derive(Debug, Default)]
pub struct Problems {
    pub list: Vec<Problem>,
}

impl Problems {
    pub fn push(&mut self, p: Problem) {
        self.list.push(p);
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub fn into_result(self) -> Result<(), Problems> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// What problems are grouped by: their kind, else (a problem of no row) their message, less the
/// numbers and quoted values in it.
fn group_of(p: &Problem) -> String {
    match &p.kind {
        Kind::Other => kind_of(&p.message),
        kind => format!("{kind:?}"),
    }
}

/// Problems of one kind differ only in numbers and quoted values: "row 7: `x` is empty".
fn kind_of(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted || c.is_ascii_digit() => {}
            _ => out.push(c),
        }
    }
    out
}

/// How many problems of one kind `check` prints before it only counts them.
pub const SHOWN_PER_KIND: usize = 20;

impl Problems {
    /// The problems, as many of each kind as are shown, and how many there are: the text of a
    /// refusal without its "nothing was sent" (for `status`, which sends nothing anyway).
    pub fn listing(&self) -> String {
        let all = self.to_string();
        match all.strip_suffix(NOTHING_SENT) {
            Some(listing) => listing.to_string(),
            None => all,
        }
    }
}

/// How a refusal ends.
const NOTHING_SENT: &str = "; nothing was sent";

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown: std::collections::HashMap<String, usize> = Default::default();
        // Those left out, by what they are about, in the order first met.
        let mut hidden: Vec<(&'static str, usize)> = Vec::new();
        for p in &self.list {
            let n = shown.entry(group_of(p)).or_default();
            *n += 1;
            if *n > SHOWN_PER_KIND {
                let about = p.kind.about();
                match hidden.iter_mut().find(|(a, _)| *a == about) {
                    Some((_, count)) => *count += 1,
                    None => hidden.push((about, 1)),
                }
                continue;
            }
            writeln!(f, "{p}")?;
        }
        for (about, count) in hidden {
            writeln!(
                f,
                "... and {count} more {about}{}, not shown ({SHOWN_PER_KIND} of each kind are)",
                crate::text::plural(count as u64, "problem")
            )?;
        }
        let n = self.list.len();
        write!(
            f,
            "{n} problem{} found{NOTHING_SENT}",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Problems {}

/// An error that carries its own exit code (anything else maps to exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Fatal {
    pub exit: Exit,
    pub message: String,
}

impl Fatal {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Fatal {
            exit,
            message: message.into(),
        }
    }
}

/// The exit code an error ends the process with (README: Exit codes).
pub fn exit_of(err: &anyhow::Error) -> Exit {
    err.downcast_ref::<Fatal>()
        .map(|f| f.exit)
        .unwrap_or(Exit::CannotRun)
}

/// Prints an error with its cause chain and returns the exit code it maps to.
pub fn report(err: &anyhow::Error) -> Exit {
    use crate::text::printable_lines;
    // Problems and errors quote cells, file names and API text: none may drive the terminal.
    use crate::redact::stderr_line;
    if let Some(problems) = err.downcast_ref::<Problems>() {
        stderr_line(printable_lines(&problems.to_string()));
        return Exit::CannotRun;
    }
    let exit = exit_of(err);
    stderr_line(format_args!("error: {}", printable_lines(&err.to_string())));
    for cause in err.chain().skip(1) {
        stderr_line(format_args!(
            "  caused by: {}",
            printable_lines(&cause.to_string())
        ));
    }
    exit
}
