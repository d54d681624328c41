//! Characters that look like the ASCII a campaign file or a template needs but are not read as
//! it: smart quotes, non-breaking and zero-width spaces, dashes, fullwidth braces. Word
//! processors and phone keyboards put them in; this names each with its code point and column.
//!
//! Where they matter: the same “ ” that breaks `key: “{{ customer_id }}”` is right in a message
//! `Olá “Ana”`. So only those standing where syntax is read are reported, and the text a
//! customer reads is left alone:
//! - template tags (`{{ … }}`, `{% … %}`, outside their string literals), in templates and in
//!   the YAML's values ([`in_template`]); a fullwidth brace or percent sign next to a brace,
//!   which was meant to open or close a tag;
//! - in the YAML, read on the parsed keys and values with their marks (`campaign/yaml.rs`):
//!   anything in a key, and in a plain value look-alike quotes wrapping it whole (a value that
//!   only starts with one, `text: “Olá” disse Ana`, is prose) or a look-alike colon or space
//!   that makes `key: value` one word ([`in_plain_value`]).
//!
//! Dashes are reported only there: an en dash in a message is punctuation. [`find`] reports
//! every one, wherever it is, for naming the character at a position a parser complained about.
//!
//! Cyrillic and Greek letters drawn like Latin ones (`е`, `о`, `Р`) are words of their own
//! language, so they count only inside a word that also holds a Latin letter (`concurrеncy`,
//! `first_nаme`): a keyboard switched to another alphabet mid-word, and "did you mean
//! `concurrency`?" would otherwise name a word that looks the same.

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

/// Letters of other alphabets drawn like Latin ones: look-alikes only in a word with a Latin
/// letter ([`mixed_letters`]).
const LETTERS: &[(char, &str, &str)] = &[
    ('\u{0430}', "CYRILLIC SMALL LETTER A", "a"),
    ('\u{0441}', "CYRILLIC SMALL LETTER ES", "c"),
    ('\u{0501}', "CYRILLIC SMALL LETTER KOMI DE", "d"),
    ('\u{0435}', "CYRILLIC SMALL LETTER IE", "e"),
    ('\u{04BB}', "CYRILLIC SMALL LETTER SHHA", "h"),
    (
        '\u{0456}',
        "CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I",
        "i",
    ),
    ('\u{0458}', "CYRILLIC SMALL LETTER JE", "j"),
    ('\u{04CF}', "CYRILLIC SMALL LETTER PALOCHKA", "l"),
    ('\u{043E}', "CYRILLIC SMALL LETTER O", "o"),
    ('\u{0440}', "CYRILLIC SMALL LETTER ER", "p"),
    ('\u{051B}', "CYRILLIC SMALL LETTER QA", "q"),
    ('\u{0455}', "CYRILLIC SMALL LETTER DZE", "s"),
    ('\u{051D}', "CYRILLIC SMALL LETTER WE", "w"),
    ('\u{0445}', "CYRILLIC SMALL LETTER HA", "x"),
    ('\u{0443}', "CYRILLIC SMALL LETTER U", "y"),
    ('\u{0410}', "CYRILLIC CAPITAL LETTER A", "A"),
    ('\u{0412}', "CYRILLIC CAPITAL LETTER VE", "B"),
    ('\u{0421}', "CYRILLIC CAPITAL LETTER ES", "C"),
    ('\u{0415}', "CYRILLIC CAPITAL LETTER IE", "E"),
    ('\u{041D}', "CYRILLIC CAPITAL LETTER EN", "H"),
    (
        '\u{0406}',
        "CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I",
        "I",
    ),
    ('\u{0408}', "CYRILLIC CAPITAL LETTER JE", "J"),
    ('\u{041A}', "CYRILLIC CAPITAL LETTER KA", "K"),
    ('\u{041C}', "CYRILLIC CAPITAL LETTER EM", "M"),
    ('\u{041E}', "CYRILLIC CAPITAL LETTER O", "O"),
    ('\u{0420}', "CYRILLIC CAPITAL LETTER ER", "P"),
    ('\u{0405}', "CYRILLIC CAPITAL LETTER DZE", "S"),
    ('\u{0422}', "CYRILLIC CAPITAL LETTER TE", "T"),
    ('\u{0425}', "CYRILLIC CAPITAL LETTER HA", "X"),
    ('\u{03B1}', "GREEK SMALL LETTER ALPHA", "a"),
    ('\u{03B9}', "GREEK SMALL LETTER IOTA", "i"),
    ('\u{03BA}', "GREEK SMALL LETTER KAPPA", "k"),
    ('\u{03BD}', "GREEK SMALL LETTER NU", "v"),
    ('\u{03BF}', "GREEK SMALL LETTER OMICRON", "o"),
    ('\u{03C1}', "GREEK SMALL LETTER RHO", "p"),
    ('\u{0391}', "GREEK CAPITAL LETTER ALPHA", "A"),
    ('\u{0392}', "GREEK CAPITAL LETTER BETA", "B"),
    ('\u{0395}', "GREEK CAPITAL LETTER EPSILON", "E"),
    ('\u{0397}', "GREEK CAPITAL LETTER ETA", "H"),
    ('\u{0399}', "GREEK CAPITAL LETTER IOTA", "I"),
    ('\u{039A}', "GREEK CAPITAL LETTER KAPPA", "K"),
    ('\u{039C}', "GREEK CAPITAL LETTER MU", "M"),
    ('\u{039D}', "GREEK CAPITAL LETTER NU", "N"),
    ('\u{039F}', "GREEK CAPITAL LETTER OMICRON", "O"),
    ('\u{03A1}', "GREEK CAPITAL LETTER RHO", "P"),
    ('\u{03A4}', "GREEK CAPITAL LETTER TAU", "T"),
    ('\u{03A7}', "GREEK CAPITAL LETTER CHI", "X"),
    ('\u{03A5}', "GREEK CAPITAL LETTER UPSILON", "Y"),
    ('\u{0396}', "GREEK CAPITAL LETTER ZETA", "Z"),
];

/// The Unicode name of a look-alike and what to type instead.
pub(crate) fn known(ch: char) -> Option<(&'static str, &'static str)> {
    look_up(TABLE, ch)
}

fn letter(ch: char) -> Option<(&'static str, &'static str)> {
    look_up(LETTERS, ch)
}

fn look_up(
    table: &[(char, &'static str, &'static str)],
    ch: char,
) -> Option<(&'static str, &'static str)> {
    table
        .iter()
        .find(|(c, ..)| *c == ch)
        .map(|&(_, name, instead)| (name, instead))
}

/// The places (indices into `chars`) of the letters drawn like Latin ones that stand in a word
/// holding a Latin letter too: `first_nаme` mixes alphabets, `Телефон` does not.
fn mixed_letters(chars: &[(usize, usize, char)]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let in_word = |c: char| c.is_alphanumeric() || c == '_';
        let len = chars[start..].iter().take_while(|x| in_word(x.2)).count();
        let word = &chars[start..start + len];
        if word.iter().any(|x| x.2.is_ascii_alphabetic()) {
            out.extend((start..start + len).filter(|&i| letter(chars[i].2).is_some()));
        }
        start += len.max(1);
    }
    out
}

fn is_quote(ch: char) -> bool {
    known(ch).is_some_and(|(_, instead)| instead == "\"" || instead == "'")
}

fn is_space(ch: char) -> bool {
    known(ch).is_some_and(|(_, instead)| instead == " ")
}

impl Lookalike {
    fn at(line: usize, column: usize, ch: char) -> Option<Lookalike> {
        let (name, instead) = known(ch).or_else(|| letter(ch))?;
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
            let why = if letter(self.ch).is_some() {
                "a keyboard set to another alphabet types these"
            } else {
                "word processors and phone keyboards swap these in"
            };
            (
                format!("{code}{glyph} looks like {like} but is not read as one"),
                format!("type {like} instead ({why}), and check again"),
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
    let chars = positioned(text);
    let mixed = mixed_letters(&chars);
    chars
        .iter()
        .enumerate()
        .filter(|&(i, &(.., c))| !(i == 0 && c == '\u{FEFF}'))
        .filter(|&(i, &(.., c))| known(c).is_some() || mixed.binary_search(&i).is_ok())
        .filter_map(|(_, &(line, column, c))| Lookalike::at(line, column, c))
        .collect()
}

/// The look-alikes in a template's syntax: inside its tags, and fullwidth braces and percent
/// signs that were meant to open or close one.
pub(crate) fn in_template(text: &str) -> Vec<Lookalike> {
    in_syntax(text, &tags::read(text))
}

/// The look-alikes in a bare template expression (`contacts.where`): all of them but those in
/// its string literals.
pub(crate) fn in_expression(text: &str) -> Vec<Lookalike> {
    in_syntax(text, &tags::read_expression(text))
}

/// The look-alikes of a plain YAML value that stand for YAML's own syntax: quotes wrapping the
/// whole value (`“{{ id }}”`), and after a leading word a fullwidth colon or a look-alike space
/// after its colon, which turned `key: value` into one string (`type：text`).
pub(crate) fn in_plain_value(text: &str) -> Vec<Lookalike> {
    let chars = positioned(text);
    let mut out = Vec::new();
    let mut words = chars.iter().filter(|x| !x.2.is_whitespace());
    if let (Some(first), Some(last)) = (words.next(), words.next_back())
        && is_quote(first.2)
        && is_quote(last.2)
    {
        report(&mut out, first);
        report(&mut out, last);
    }
    let word = chars
        .iter()
        .take_while(|x| x.2.is_ascii_alphanumeric() || x.2 == '_')
        .count();
    match (chars.get(word), chars.get(word + 1)) {
        (Some(colon @ &(.., '\u{FF1A}')), _) if word > 0 => report(&mut out, colon),
        (Some(&(.., ':')), Some(space)) if word > 0 && is_space(space.2) => report(&mut out, space),
        _ => {}
    }
    out
}

fn report(out: &mut Vec<Lookalike>, &(line, column, c): &(usize, usize, char)) {
    if known(c).is_some()
        && let Some(l) = Lookalike::at(line, column, c)
    {
        out.push(l);
    }
}

/// The look-alikes of `text` that stand in its template syntax, as `read` from it: all of
/// those in tags but in their string literals, and in text the fullwidth braces and percent
/// signs that were meant to open or close a tag.
fn in_syntax(text: &str, read: &Tags<'_>) -> Vec<Lookalike> {
    let chars = &positioned(text);
    let mixed = mixed_letters(chars);
    let mut found = Vec::new();
    let out = &mut found;
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
                let mut syntax = Vec::new();
                for t in &tag.tokens {
                    if matches!(t.kind, Lex::Str(_) | Lex::Unread) {
                        syntax.push(within(from..t.at.start));
                        from = t.at.end;
                    }
                }
                syntax.push(within(from..tag.at.end));
                for i in syntax.into_iter().flatten() {
                    if mixed.binary_search(&i).is_ok() {
                        let (line, column, c) = chars[i];
                        out.extend(Lookalike::at(line, column, c));
                    } else {
                        report(out, &chars[i]);
                    }
                }
            }
        }
    }
    found
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::lookalike_names as names;

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
    fn a_letter_of_another_alphabet_counts_only_in_a_latin_word() {
        // `concurrеncy` and `first_nаme` hold a Cyrillic letter; `Телефон` and `Олег` are
        // Russian words, and `Ωmega` has no Latin look-alike.
        let text = "concurr\u{0435}ncy: 4\nТелефон Олег Ωmega\ntext: \"{{ first_n\u{0430}me }} Олег {{ 'Оk' }}\"";
        assert_eq!(
            names(&find(text)),
            ["1:8 U+0435", "3:18 U+0430", "3:34 U+041E"]
        );
        // In a template, only the syntax counts: not the string literal, not the text.
        assert_eq!(
            names(&in_template("Олег {{ first_n\u{0430}me }} {{ 'Оk' }} Оk")),
            ["1:16 U+0430"]
        );
        let l = &find("n\u{0430}me")[0];
        assert_eq!(
            l.problem(Path::new("c.yaml")).to_string(),
            "c.yaml:1:2: U+0430 CYRILLIC SMALL LETTER A а looks like `a` but is not read as one — type `a` instead (a keyboard set to another alphabet types these), and check again"
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
    fn any_text_is_scanned_and_every_report_points_at_its_character() {
        let alphabet: Vec<char> = "ab :-#{}%[],'\"|>\n\r\t\\“”‘’–\u{00A0}\u{200B}｛｝％："
            .chars()
            .collect();
        for text in crate::testing::random_texts(&alphabet, 0x2545_F491_4F6C_DD1Du64, 3000) {
            let lines: Vec<Vec<char>> = text.split('\n').map(|l| l.chars().collect()).collect();
            for found in [find(&text), in_template(&text), in_expression(&text)] {
                for l in found {
                    assert_eq!(lines[l.line - 1][l.column - 1], l.ch, "{text:?}");
                }
            }
        }
    }
}
