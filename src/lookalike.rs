//! Characters that look like the ASCII a campaign file or a template needs but are not read as
//! it: smart quotes, non-breaking and zero-width spaces, dashes, fullwidth braces. Word
//! processors and phone keyboards put them in; this names each with its code point and column.
//!
//! Where they matter: the same “ ” that breaks `key: “{{ customer_id }}”` is right in a message
//! `Olá “Ana”`. So [`in_yaml`] and [`in_template`] report only those standing where syntax is
//! read, and leave the text a customer reads alone:
//! - template tags (`{{ … }}`, `{% … %}`, outside their string literals), in templates and in
//!   the YAML's values; a fullwidth brace or percent sign next to a brace, which was meant to
//!   open or close a tag;
//! - in the YAML: indentation, the space after `:` or `-`, a dash standing for `-` before a
//!   list item, anything in a key, and look-alike quotes wrapping a whole unquoted value (a
//!   value that only starts with one, `text: “Olá” disse Ana`, is prose).
//!
//! Dashes are reported only there: an en dash in a message is punctuation. [`find`] reports
//! every one, wherever it is, for naming the character at a position a parser complained about.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use crate::error::Problem;
use crate::render::tags::{self, Lex, Piece, Tags};

/// A look-alike character, where it is (1-based; the column counts characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lookalike {
    pub line: usize,
    pub column: usize,
    pub ch: char,
    pub name: &'static str,
    /// What to type instead; empty when the character should go.
    pub instead: &'static str,
}

/// Each look-alike, its Unicode name and what it stands in for.
const TABLE: &[(char, &str, &str)] = &[
    ('\u{2018}', "LEFT SINGLE QUOTATION MARK", "'"),
    ('\u{2019}', "RIGHT SINGLE QUOTATION MARK", "'"),
    ('\u{201A}', "SINGLE LOW-9 QUOTATION MARK", "'"),
    ('\u{201B}', "SINGLE HIGH-REVERSED-9 QUOTATION MARK", "'"),
    ('\u{201C}', "LEFT DOUBLE QUOTATION MARK", "\""),
    ('\u{201D}', "RIGHT DOUBLE QUOTATION MARK", "\""),
    ('\u{201E}', "DOUBLE LOW-9 QUOTATION MARK", "\""),
    ('\u{201F}', "DOUBLE HIGH-REVERSED-9 QUOTATION MARK", "\""),
    ('\u{2032}', "PRIME", "'"),
    ('\u{2033}', "DOUBLE PRIME", "\""),
    ('\u{2039}', "SINGLE LEFT-POINTING ANGLE QUOTATION MARK", "'"),
    (
        '\u{203A}',
        "SINGLE RIGHT-POINTING ANGLE QUOTATION MARK",
        "'",
    ),
    (
        '\u{00AB}',
        "LEFT-POINTING DOUBLE ANGLE QUOTATION MARK",
        "\"",
    ),
    (
        '\u{00BB}',
        "RIGHT-POINTING DOUBLE ANGLE QUOTATION MARK",
        "\"",
    ),
    ('\u{00B4}', "ACUTE ACCENT", "'"),
    ('\u{02BC}', "MODIFIER LETTER APOSTROPHE", "'"),
    ('\u{FF02}', "FULLWIDTH QUOTATION MARK", "\""),
    ('\u{FF07}', "FULLWIDTH APOSTROPHE", "'"),
    ('\u{00A0}', "NO-BREAK SPACE", " "),
    ('\u{2000}', "EN QUAD", " "),
    ('\u{2001}', "EM QUAD", " "),
    ('\u{2002}', "EN SPACE", " "),
    ('\u{2003}', "EM SPACE", " "),
    ('\u{2004}', "THREE-PER-EM SPACE", " "),
    ('\u{2005}', "FOUR-PER-EM SPACE", " "),
    ('\u{2006}', "SIX-PER-EM SPACE", " "),
    ('\u{2007}', "FIGURE SPACE", " "),
    ('\u{2008}', "PUNCTUATION SPACE", " "),
    ('\u{2009}', "THIN SPACE", " "),
    ('\u{200A}', "HAIR SPACE", " "),
    ('\u{202F}', "NARROW NO-BREAK SPACE", " "),
    ('\u{205F}', "MEDIUM MATHEMATICAL SPACE", " "),
    ('\u{3000}', "IDEOGRAPHIC SPACE", " "),
    ('\u{200B}', "ZERO WIDTH SPACE", ""),
    ('\u{2060}', "WORD JOINER", ""),
    ('\u{FEFF}', "ZERO WIDTH NO-BREAK SPACE", ""),
    ('\u{00AD}', "SOFT HYPHEN", ""),
    ('\u{2010}', "HYPHEN", "-"),
    ('\u{2011}', "NON-BREAKING HYPHEN", "-"),
    ('\u{2012}', "FIGURE DASH", "-"),
    ('\u{2013}', "EN DASH", "-"),
    ('\u{2014}', "EM DASH", "-"),
    ('\u{2015}', "HORIZONTAL BAR", "-"),
    ('\u{2212}', "MINUS SIGN", "-"),
    ('\u{FF0D}', "FULLWIDTH HYPHEN-MINUS", "-"),
    ('\u{FF5B}', "FULLWIDTH LEFT CURLY BRACKET", "{"),
    ('\u{FF5D}', "FULLWIDTH RIGHT CURLY BRACKET", "}"),
    ('\u{FF05}', "FULLWIDTH PERCENT SIGN", "%"),
    ('\u{FF03}', "FULLWIDTH NUMBER SIGN", "#"),
    ('\u{FF1A}', "FULLWIDTH COLON", ":"),
    ('\u{FF1B}', "FULLWIDTH SEMICOLON", ";"),
    ('\u{FF0C}', "FULLWIDTH COMMA", ","),
    ('\u{FF0E}', "FULLWIDTH FULL STOP", "."),
    ('\u{FF1D}', "FULLWIDTH EQUALS SIGN", "="),
    ('\u{FF5C}', "FULLWIDTH VERTICAL LINE", "|"),
    ('\u{FF08}', "FULLWIDTH LEFT PARENTHESIS", "("),
    ('\u{FF09}', "FULLWIDTH RIGHT PARENTHESIS", ")"),
    ('\u{FF3B}', "FULLWIDTH LEFT SQUARE BRACKET", "["),
    ('\u{FF3D}', "FULLWIDTH RIGHT SQUARE BRACKET", "]"),
    ('\u{037E}', "GREEK QUESTION MARK", ";"),
    ('\u{2236}', "RATIO", ":"),
    ('\u{A789}', "MODIFIER LETTER COLON", ":"),
    ('\u{2026}', "HORIZONTAL ELLIPSIS", "..."),
];

/// The Unicode name of a look-alike and what to type instead.
pub(crate) fn known(ch: char) -> Option<(&'static str, &'static str)> {
    TABLE
        .iter()
        .find(|(c, ..)| *c == ch)
        .map(|&(_, name, instead)| (name, instead))
}

fn is_quote(ch: char) -> bool {
    known(ch).is_some_and(|(_, instead)| instead == "\"" || instead == "'")
}

fn is_space(ch: char) -> bool {
    known(ch).is_some_and(|(_, instead)| instead == " ")
}

/// What separates YAML tokens: a space, a tab, a line end, or a look-alike space.
fn is_gap(ch: char) -> bool {
    ch == ' ' || ch == '\t' || ch == '\n' || is_space(ch)
}

fn is_dash(ch: char) -> bool {
    known(ch).is_some_and(|(_, instead)| instead == "-")
}

impl Lookalike {
    fn at(line: usize, column: usize, ch: char) -> Option<Lookalike> {
        let (name, instead) = known(ch)?;
        Some(Lookalike {
            line,
            column,
            ch,
            name,
            instead,
        })
    }

    fn invisible(&self) -> bool {
        self.instead.is_empty() || self.instead == " "
    }

    /// What to type instead, in words.
    fn replacement(&self) -> String {
        match self.instead {
            "" => "nothing".into(),
            " " => "a plain space".into(),
            s => format!("`{s}`"),
        }
    }

    /// A located problem in `file`: `file:line:col: U+201C LEFT DOUBLE QUOTATION MARK “ looks
    /// like `"` but is not read as one — type `"` instead …`.
    pub(crate) fn problem(&self, file: &Path) -> Problem {
        let code = format!("U+{:04X} {}", u32::from(self.ch), self.name);
        let (message, hint) = if self.instead.is_empty() {
            (
                format!("{code} is invisible, but is read as part of the text around it"),
                "delete it (it comes with text pasted from the web or a word processor), and check again"
                    .to_string(),
            )
        } else {
            let glyph = if self.invisible() {
                String::new()
            } else {
                format!(" {}", self.ch)
            };
            let like = self.replacement();
            (
                format!("{code}{glyph} looks like {like} but is not read as one"),
                format!(
                    "type {like} instead (word processors and phone keyboards swap these in), and check again"
                ),
            )
        };
        Problem::new(file, Some(self.line), message)
            .at(Some(self.column))
            .hint(hint)
    }
}

impl fmt::Display for Lookalike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U+{:04X} {}", u32::from(self.ch), self.name)?;
        if !self.invisible() {
            write!(f, " {}", self.ch)?;
        }
        match self.instead {
            "" => write!(f, " (remove it)"),
            " " => write!(f, " (use a plain space instead)"),
            s => write!(f, " (use {s} instead)"),
        }
    }
}

/// The text as characters with their line and column.
pub(crate) fn positioned(text: &str) -> Vec<(usize, usize, char)> {
    let mut out = Vec::with_capacity(text.len());
    let (mut line, mut column) = (1, 1);
    for c in text.chars() {
        out.push((line, column, c));
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    out
}

/// Every look-alike in `text`, wherever it is (a BOM opening the text is not one).
pub(crate) fn find(text: &str) -> Vec<Lookalike> {
    positioned(text)
        .into_iter()
        .enumerate()
        .filter(|&(i, (.., c))| !(i == 0 && c == '\u{FEFF}'))
        .filter_map(|(_, (line, column, c))| Lookalike::at(line, column, c))
        .collect()
}

/// The look-alikes in a template's syntax: inside its tags, and fullwidth braces and percent
/// signs that were meant to open or close one.
pub(crate) fn in_template(text: &str) -> Vec<Lookalike> {
    let mut out = Vec::new();
    in_syntax(text, &positioned(text), &tags::read(text), &mut out);
    out
}

/// The look-alikes in a bare template expression (`contacts.where`): all of them but those in
/// its string literals.
pub(crate) fn in_expression(text: &str) -> Vec<Lookalike> {
    let mut out = Vec::new();
    in_syntax(
        text,
        &positioned(text),
        &tags::read_expression(text),
        &mut out,
    );
    out
}

/// The look-alikes in a campaign file's syntax: its structure (indentation, keys, the space
/// after `:` and `-`, list dashes, look-alike quotes around a whole value) and the tags of the
/// templates in its values. Message text is left alone.
pub(crate) fn in_yaml(text: &str) -> Vec<Lookalike> {
    let chars = positioned(text);
    let mut out = Vec::new();
    in_tags(&chars, &mut out);
    let mut yaml = Yaml::default();
    let mut start = 0;
    while start < chars.len() {
        let end = chars[start..]
            .iter()
            .position(|&(.., c)| c == '\n')
            .map_or(chars.len(), |i| start + i);
        let mut line = &chars[start..end];
        if line.last().is_some_and(|x| x.2 == '\r') {
            line = &line[..line.len() - 1];
        }
        yaml.line(line, &mut out);
        start = end + 1;
    }
    out.sort_by_key(|l| (l.line, l.column));
    out.dedup_by_key(|l| (l.line, l.column));
    out
}

fn report(out: &mut Vec<Lookalike>, &(line, column, c): &(usize, usize, char)) {
    if let Some(l) = Lookalike::at(line, column, c) {
        out.push(l);
    }
}

/// Scans template tags in `chars`: look-alikes inside `{{ … }}` and `{% … %}` (not in their
/// string literals, nor in comments or raw blocks), and look-alike braces beside braces.
fn in_tags(chars: &[(usize, usize, char)], out: &mut Vec<Lookalike>) {
    let text: String = chars.iter().map(|x| x.2).collect();
    in_syntax(&text, chars, &tags::read(&text), out);
}

/// Reports the look-alikes of `text` (whose characters are `chars`) that stand in its
/// template syntax, as `read` from it: all of those in tags but in their string literals, and
/// in text the fullwidth braces and percent signs that were meant to open or close a tag.
fn in_syntax(
    text: &str,
    chars: &[(usize, usize, char)],
    read: &Tags<'_>,
    out: &mut Vec<Lookalike>,
) {
    let starts: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    // The characters of a range of bytes.
    let within = |at: Range<usize>| {
        starts.partition_point(|&b| b < at.start)..starts.partition_point(|&b| b < at.end)
    };
    for piece in &read.pieces {
        match piece {
            Piece::Text(at) => {
                for i in within(at.clone()).filter(|&i| tag_like(chars, i)) {
                    report(out, &chars[i]);
                }
            }
            Piece::Raw(_) => {}
            Piece::Tag(tag) => {
                let mut from = tag.at.start;
                for t in &tag.tokens {
                    if matches!(t.kind, Lex::Str(_) | Lex::Unread) {
                        chars[within(from..t.at.start)]
                            .iter()
                            .for_each(|c| report(out, c));
                        from = t.at.end;
                    }
                }
                chars[within(from..tag.at.end)]
                    .iter()
                    .for_each(|c| report(out, c));
            }
        }
    }
}

/// Whether the character at `i`, in text, is a fullwidth brace or percent sign meant to open
/// or close a tag: beside a brace, or a brace beside `%` or `#`.
fn tag_like(chars: &[(usize, usize, char)], i: usize) -> bool {
    let c = |i: Option<usize>| i.and_then(|i| chars.get(i)).map_or('\0', |x| x.2);
    let (prev, next) = (c(i.checked_sub(1)), c(Some(i + 1)));
    let brace = |ch: char| matches!(ch, '{' | '}' | '\u{FF5B}' | '\u{FF5D}');
    let percent = |ch: char| matches!(ch, '%' | '\u{FF05}');
    match c(Some(i)) {
        '\u{FF5B}' | '\u{FF5D}' => {
            brace(prev)
                || brace(next)
                || percent(prev)
                || percent(next)
                || prev == '#'
                || next == '#'
        }
        '\u{FF05}' => brace(prev) || brace(next),
        _ => false,
    }
}

/// The YAML scanner's state from one line to the next.
#[derive(Debug, Default)]
struct Yaml {
    /// In a block scalar (`|`, `>`) below a line of this indentation.
    block: Option<usize>,
    /// In a plain value that goes on below a line of this indentation.
    plain: Option<usize>,
    /// In a quoted value that goes on to the next line.
    quoted: Option<char>,
    /// Depth of `{` and `[`.
    flow: usize,
}

/// A position in a line of characters.
type Chars<'a> = &'a [(usize, usize, char)];

/// What a plain scalar turned out to be.
enum Plain {
    /// A key; the value starts at this index.
    Key(usize),
    /// A value in a flow collection, which goes on at this index.
    FlowValue(usize),
    /// A value that ends the line.
    Value,
}

impl Yaml {
    fn line(&mut self, line: Chars, out: &mut Vec<Lookalike>) {
        let indent = line
            .iter()
            .position(|&(.., c)| !(c == ' ' || c == '\t' || is_space(c)))
            .unwrap_or(line.len());
        if indent == line.len() {
            return;
        }
        if let Some(q) = self.quoted {
            if let Some(end) = close_quote(line, 0, q) {
                self.quoted = None;
                let i = self.after_quoted(line, end, out);
                self.nodes(line, i, false, out);
            }
            return;
        }
        for parent in [&mut self.block, &mut self.plain] {
            match *parent {
                Some(p) if indent > p => return,
                _ => *parent = None,
            }
        }
        for l in &line[..indent] {
            report(out, l);
        }
        self.nodes(line, indent, true, out);
    }

    /// Scans the nodes of a line from `i`, where a node is expected; `fresh` when it starts
    /// the line (it may then be a key or a list item).
    fn nodes(&mut self, line: Chars, mut i: usize, mut fresh: bool, out: &mut Vec<Lookalike>) {
        let c = |i: usize| line.get(i).map_or('\n', |x| x.2);
        // The column of the node that owns what follows: lines indented past it continue it.
        let mut owner = i;
        loop {
            while c(i) == ' ' || c(i) == '\t' {
                i += 1;
            }
            let ch = c(i);
            if fresh {
                owner = i;
            }
            let block = self.flow == 0;
            match ch {
                '\n' | '#' => return,
                '-' | '?' if fresh && block && is_gap(c(i + 1)) => i = self.indicator(line, i, out),
                // Word turns "- " at the start of a line into a dash.
                _ if fresh && block && is_dash(ch) && is_gap(c(i + 1)) => {
                    report(out, &line[i]);
                    i = self.indicator(line, i, out);
                }
                '{' | '[' | ',' => {
                    self.flow += usize::from(ch != ',');
                    fresh = true;
                    i += 1;
                }
                '}' | ']' => {
                    self.flow = self.flow.saturating_sub(1);
                    fresh = false;
                    i += 1;
                }
                '"' | '\'' => match close_quote(line, i + 1, ch) {
                    None => {
                        self.quoted = Some(ch);
                        return;
                    }
                    Some(end) => {
                        i = self.after_quoted(line, end, out);
                        fresh = false;
                    }
                },
                '|' | '>' if block => {
                    self.block = Some(owner);
                    return;
                }
                _ => match self.plain_node(line, i, fresh, out) {
                    Plain::Key(next) | Plain::FlowValue(next) => {
                        i = next;
                        fresh = false;
                    }
                    Plain::Value => {
                        if block {
                            self.plain = Some(owner);
                        }
                        return;
                    }
                },
            }
        }
    }

    /// Moves past a `-`, `?` or `:` indicator at `i`, reporting a look-alike space after it.
    fn indicator(&self, line: Chars, i: usize, out: &mut Vec<Lookalike>) -> usize {
        if let Some(next) = line.get(i + 1)
            && is_space(next.2)
        {
            report(out, next);
        }
        i + 1
    }

    /// After a quoted scalar ending before `i`: past a key's `:`, or where it ended.
    fn after_quoted(&mut self, line: Chars, mut i: usize, out: &mut Vec<Lookalike>) -> usize {
        while line.get(i).is_some_and(|x| x.2 == ' ' || x.2 == '\t') {
            i += 1;
        }
        match line.get(i) {
            Some(colon @ &(.., ':' | '\u{FF1A}')) => {
                report(out, colon);
                self.indicator(line, i, out)
            }
            _ => i,
        }
    }

    /// A plain scalar at `i`. In a key every look-alike is reported (a fullwidth colon ends a
    /// key only at the start of a line: elsewhere it is punctuation). In a value only
    /// look-alike quotes that wrap it whole are.
    fn plain_node(
        &mut self,
        line: Chars,
        i: usize,
        fresh: bool,
        out: &mut Vec<Lookalike>,
    ) -> Plain {
        let c = |i: usize| line.get(i).map_or('\n', |x| x.2);
        let mut j = i;
        loop {
            let ch = c(j);
            if (ch == ':' && is_gap(c(j + 1))) || (ch == '\u{FF1A}' && fresh) {
                for l in &line[i..=j] {
                    report(out, l);
                }
                return Plain::Key(self.indicator(line, j, out));
            }
            let ends_flow = self.flow > 0 && matches!(ch, ',' | ']' | '}');
            if ch == '\n' || ends_flow || (ch == '#' && j > i && is_gap(c(j - 1))) {
                let mut text = line[i..j].iter().filter(|x| x.2 != ' ' && x.2 != '\t');
                if let (Some(first), Some(last)) = (text.next(), text.next_back())
                    && is_quote(first.2)
                    && is_quote(last.2)
                {
                    report(out, first);
                    report(out, last);
                }
                return if ends_flow {
                    Plain::FlowValue(j)
                } else {
                    Plain::Value
                };
            }
            j += 1;
        }
    }
}

/// The index after the quote that closes a `q`-quoted scalar whose content starts at `from`.
fn close_quote(line: Chars, from: usize, q: char) -> Option<usize> {
    let mut i = from;
    while i < line.len() {
        let ch = line[i].2;
        if q == '"' && ch == '\\' {
            i += 2;
            continue;
        }
        if ch == q {
            // '' inside single quotes is one quote.
            if q == '\'' && line.get(i + 1).is_some_and(|x| x.2 == '\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(found: &[Lookalike]) -> Vec<String> {
        found
            .iter()
            .map(|l| format!("{}:{} U+{:04X}", l.line, l.column, u32::from(l.ch)))
            .collect()
    }

    #[test]
    fn displays_the_code_point_name_and_what_to_type() {
        let f = find("a ” b\u{00A0}c\u{200B}");
        let shown: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "U+201D RIGHT DOUBLE QUOTATION MARK ” (use \" instead)",
                "U+00A0 NO-BREAK SPACE (use a plain space instead)",
                "U+200B ZERO WIDTH SPACE (remove it)",
            ]
        );
        assert_eq!((f[0].line, f[0].column), (1, 3));
        assert_eq!(
            f[0].problem(Path::new("campaign.yaml")).to_string(),
            "campaign.yaml:1:3: U+201D RIGHT DOUBLE QUOTATION MARK ” looks like `\"` but is not read as one — type `\"` instead (word processors and phone keyboards swap these in), and check again"
        );
        assert_eq!(
            f[2].problem(Path::new("t.j2")).to_string(),
            "t.j2:1:8: U+200B ZERO WIDTH SPACE is invisible, but is read as part of the text around it — delete it (it comes with text pasted from the web or a word processor), and check again"
        );
    }

    #[test]
    fn find_reports_everything_but_a_leading_bom() {
        let text = "\u{FEFF}x: “a” – ‘b’\n  \u{2007}｛｝\u{202F}y\u{FEFF}";
        assert_eq!(
            names(&find(text)),
            [
                "1:5 U+201C",
                "1:7 U+201D",
                "1:9 U+2013",
                "1:11 U+2018",
                "1:13 U+2019",
                "2:3 U+2007",
                "2:4 U+FF5B",
                "2:5 U+FF5D",
                "2:6 U+202F",
                "2:8 U+FEFF"
            ]
        );
    }

    #[test]
    fn a_template_is_checked_inside_its_tags_only() {
        let text = "Olá “{{ first_name }}”, – veja {{ “plan” }} e {% if x\u{00A0}%}sim{% endif %}\n\
                    {{ 'It’s “fine”' }} {# “comment” #} 50％ off";
        assert_eq!(
            names(&in_template(text)),
            ["1:35 U+201C", "1:40 U+201D", "1:54 U+00A0"]
        );
    }

    #[test]
    fn look_alike_braces_that_mean_a_tag_are_reported_in_prose_too() {
        let text = "Olá ｛｛ name ｝｝ e {｛ x }} e {％ if ％} ｛solo｝";
        assert_eq!(
            names(&in_template(text)),
            [
                "1:5 U+FF5B",
                "1:6 U+FF5B",
                "1:13 U+FF5D",
                "1:14 U+FF5D",
                "1:19 U+FF5B",
                "1:29 U+FF05",
                "1:34 U+FF05",
            ]
        );
    }

    #[test]
    fn a_tag_closed_by_look_alikes_ends_there() {
        let text = "{{ name ｝｝ Olá “Ana”";
        assert_eq!(names(&in_template(text)), ["1:9 U+FF5D", "1:10 U+FF5D"]);
    }

    #[test]
    fn an_expression_is_checked_outside_its_strings() {
        let text = "opt_in == ‘yes’ and plan != 'it’s'";
        assert_eq!(names(&in_expression(text)), ["1:11 U+2018", "1:15 U+2019"]);
    }

    #[test]
    fn a_raw_block_is_prose() {
        let text = "{% raw %}{{ “x” }}{% endraw %}{{ “y” }}";
        assert_eq!(names(&in_template(text)), ["1:34 U+201C", "1:36 U+201D"]);
    }

    #[test]
    fn yaml_prose_with_smart_quotes_is_fine() {
        let text = "messages:\n  - type: text\n    text: Olá “Ana”, tudo bem?\n  - type: text\n    text: \"Olá “{{ first_name }}” – até já\"\n  - type: text\n    text: “Olá” disse Ana\n  - type: text\n    text: |\n      – Oferta “especial”\n      – para você\n  - { type: text, text: 'It’s “on”' }\n";
        assert_eq!(names(&in_yaml(text)), Vec::<String>::new());
    }

    #[test]
    fn yaml_look_alike_quotes_around_a_whole_value_or_a_key_are_reported() {
        let text = "contacts:\n  key: “{{ customer_id }}”\n  where: ‘opt_in == 1’ # ok\n  “file”: a.csv\nbuttons: [{ title: “Yes”, type: payload }]\n";
        assert_eq!(
            names(&in_yaml(text)),
            [
                "2:8 U+201C",
                "2:26 U+201D",
                "3:10 U+2018",
                "3:22 U+2019",
                "4:3 U+201C",
                "4:8 U+201D",
                "5:20 U+201C",
                "5:24 U+201D",
            ]
        );
    }

    #[test]
    fn yaml_spaces_dashes_and_colons_that_are_not_ascii_are_reported() {
        let text = "send:\n\u{00A0} concurrency:\u{00A0}4\nmessages:\n  – type: text\n    text: Olá\n  - type：text\n  -\u{202F}type: text\nname: a\u{200B}b\n";
        assert_eq!(
            names(&in_yaml(text)),
            [
                "2:1 U+00A0",
                "2:15 U+00A0",
                "4:3 U+2013",
                "6:9 U+FF1A",
                "7:4 U+202F",
            ]
        );
    }

    #[test]
    fn yaml_tags_in_values_are_checked() {
        let text = "contact:\n  first_name: \"{{ first_name | title }}\"\n  last_name: \"{{ last\u{00A0}name }}\"\n  custom: Olá {{ “x” }}\n";
        assert_eq!(
            names(&in_yaml(text)),
            ["3:22 U+00A0", "4:18 U+201C", "4:20 U+201D"]
        );
    }

    #[test]
    fn a_multi_line_quoted_or_plain_value_is_prose() {
        let text = "text: \"Olá\n  – “Ana”: hoje\"\nother: Olá\n  – mais “texto”: aqui\nlast: ok\n";
        assert_eq!(names(&in_yaml(text)), Vec::<String>::new());
    }

    #[test]
    fn any_text_is_scanned_and_every_report_points_at_its_character() {
        let alphabet: Vec<char> = "ab :-#{}%[],'\"|>\n\r\t\\“”‘’–\u{00A0}\u{200B}｛｝％："
            .chars()
            .collect();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..3000 {
            let len = (seed % 40) as usize;
            let text: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let lines: Vec<Vec<char>> = text.split('\n').map(|l| l.chars().collect()).collect();
            for found in [
                find(&text),
                in_template(&text),
                in_yaml(&text),
                in_expression(&text),
            ] {
                for l in found {
                    assert_eq!(lines[l.line - 1][l.column - 1], l.ch, "{text:?}");
                }
            }
        }
    }
}
