//! A template's tags as minijinja's own lexer reads them. Every question about them (is the
//! template only text and columns, which line names a variable, which templates does it
//! include, where do look-alike characters stand in its syntax) is answered from this one
//! reading, so no answer can disagree with the engine about where a tag, a string or a raw
//! block starts and ends.
//!
//! The lexer stops at the first character it cannot read, but a template holding look-alikes
//! (`{{ “plan” }}`) is read past each of them, so that all are reported at once: such a
//! character is read as spaces, a look-alike closing (`｝｝`, `％｝`) as the closing it stands
//! for, and the lexer takes up the tag again after it.

use std::borrow::Cow;
use std::ops::Range;

use minijinja::machinery::{Token, Tokenizer};
use minijinja::syntax::SyntaxConfig;

/// A template read into its pieces, by their bytes in the source.
#[derive(Debug)]
pub(crate) struct Tags<'s> {
    pub(crate) pieces: Vec<Piece<'s>>,
    /// Whether the lexer read all of the source as it is: nothing was read past or left.
    pub(crate) clean: bool,
    /// Where each line but the first starts, to tell the line of a byte.
    line_starts: Vec<usize>,
}

/// Text, a raw block or a tag; comments are left out.
#[derive(Debug)]
pub(crate) enum Piece<'s> {
    /// Text the template outputs as it is (whitespace control has trimmed it).
    Text(Range<usize>),
    /// The content of a `{% raw %}` block, output as it is.
    Raw(Range<usize>),
    Tag(Tag<'s>),
}

/// A `{{ … }}` or `{% … %}` tag, or a whole bare expression.
#[derive(Debug)]
pub(crate) struct Tag<'s> {
    /// `{% … %}` rather than `{{ … }}`.
    pub(crate) block: bool,
    /// From its opening to the end of its closing, or of the source when it has none.
    pub(crate) at: Range<usize>,
    /// Whether its closing was found (a bare expression has none).
    pub(crate) closed: bool,
    /// The tokens between opening and closing.
    pub(crate) tokens: Vec<Lexeme<'s>>,
    /// Brackets opened and not closed, as the lexer counts them.
    depth: isize,
}

impl<'s> Tag<'s> {
    fn new(block: bool, at: Range<usize>) -> Self {
        Tag {
            block,
            at,
            closed: false,
            tokens: Vec::new(),
            depth: 0,
        }
    }

    /// Adds a token, written `text` in the source.
    fn push(&mut self, lexeme: Lexeme<'s>, text: &str) {
        self.depth += bracket(text);
        self.tokens.push(lexeme);
    }

    /// Takes back the tokens from `at` on.
    fn truncate(&mut self, at: usize, source: &str) {
        while let Some(t) = self.tokens.pop_if(|t| t.at.start >= at) {
            self.depth -= bracket(&source[t.at]);
        }
    }
}

/// How a token written `text` changes the lexer's count of open brackets.
fn bracket(text: &str) -> isize {
    match text {
        "(" | "[" | "{" => 1,
        ")" | "]" | "}" => -1,
        _ => 0,
    }
}

/// A token inside a tag, by its bytes in the source.
#[derive(Debug)]
pub(crate) struct Lexeme<'s> {
    pub(crate) kind: Lex<'s>,
    pub(crate) at: Range<usize>,
}

/// The kinds of token the questions asked of tags tell apart.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lex<'s> {
    Ident(&'s str),
    /// A string literal's value.
    Str(Cow<'s, str>),
    Dot,
    Pipe,
    Comma,
    BracketOpen,
    BracketClose,
    /// Any other operator, or a number.
    Other,
    /// Where the lexer could not go on (an unterminated string): the rest of the source.
    Unread,
}

/// Reads a template.
pub(crate) fn read(source: &str) -> Tags<'_> {
    Reader::new(source, false).run()
}

/// Reads a bare expression (`contacts.where`) as one tag spanning all of it.
pub(crate) fn read_expression(source: &str) -> Tags<'_> {
    Reader::new(source, true).run()
}

impl<'s> Tags<'s> {
    /// The tags, in order.
    pub(crate) fn tags(&self) -> impl Iterator<Item = &Tag<'s>> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Tag(t) => Some(t),
            _ => None,
        })
    }

    /// The line (from 1) of the byte at `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset) + 1
    }
}

/// Where a pass of the lexer starts.
struct Resume<'s> {
    /// The byte of `patched` it starts at.
    from: usize,
    /// Inside a tag: the tag as read so far, and where the text the lexer must read again to
    /// take up its state (the tag's opening and open brackets) ends.
    within: Option<(Tag<'s>, usize)>,
}

/// What one pass of the lexer leaves to do.
enum Pass<'s> {
    Done,
    /// Read `range` of the source in `tag` as spaces ending in `closing`, and go on.
    Patch {
        tag: Tag<'s>,
        range: Range<usize>,
        closing: &'static str,
    },
}

struct Reader<'s> {
    source: &'s str,
    /// The source as the lexer reads it: unreadable characters in tags replaced by spaces or
    /// the closing they stand for, and before them what puts the lexer back in its state (same
    /// length, so offsets hold).
    patched: Cow<'s, str>,
    expression: bool,
    /// Whether to take up a tag where the lexer stopped rather than read it again from its
    /// opening (false only to test the first against the second).
    take_up: bool,
}

impl<'s> Reader<'s> {
    fn new(source: &'s str, expression: bool) -> Self {
        Reader {
            source,
            patched: Cow::Borrowed(source),
            expression,
            take_up: true,
        }
    }

    fn run(mut self) -> Tags<'s> {
        let mut pieces = Vec::new();
        let mut clean = true;
        let mut start = Resume {
            from: 0,
            within: self.expression.then(|| (Tag::new(false, 0..0), 0)),
        };
        // Each patch turns characters that are not spaces into spaces or a closing, further
        // on in the source each time, so this ends.
        while let Pass::Patch {
            tag,
            range,
            closing,
        } = self.pass(start, &mut pieces, &mut clean)
        {
            start = self.patch(tag, range, closing);
        }
        let line_starts = self
            .source
            .match_indices('\n')
            .map(|(i, _)| i + 1)
            .collect();
        Tags {
            pieces,
            clean,
            line_starts,
        }
    }

    /// Lexes from `start` to the end, or to the first character the lexer cannot read.
    fn pass(&self, start: Resume<'s>, pieces: &mut Vec<Piece<'s>>, clean: &mut bool) -> Pass<'s> {
        let patched: &str = &self.patched;
        let from = start.from;
        let mut lexer = Tokenizer::new(
            &patched[from..],
            "<template>",
            self.expression,
            SyntaxConfig::default(),
        );
        let (mut open, mut lexed) = start.within.map_or((None, from), |(t, e)| (Some(t), e));
        let mut text_from = from;
        loop {
            let (token, span) = match lexer.next_token() {
                Ok(Some(next)) => next,
                Ok(None) => {
                    close(pieces, open, self.source.len());
                    return Pass::Done;
                }
                Err(e) => {
                    *clean = false;
                    let at = e.range().map(|r| from + r.start);
                    return self.recover(pieces, open, at, lexed);
                }
            };
            let at = from + span.start_offset as usize..from + span.end_offset as usize;
            match token {
                Token::VariableEnd | Token::BlockEnd => {
                    text_from = at.end;
                    if let Some(tag) = &mut open {
                        tag.closed = true;
                    }
                    close(pieces, open.take(), at.end);
                }
                // What the lexer read again to take up its state.
                _ if at.start < lexed => {}
                Token::TemplateData(_) => {
                    let raw = opens_raw(&patched[text_from..at.start]);
                    text_from = at.end;
                    pieces.push(if raw { Piece::Raw(at) } else { Piece::Text(at) });
                }
                Token::VariableStart | Token::BlockStart => {
                    lexed = at.end;
                    open = Some(Tag::new(matches!(token, Token::BlockStart), at));
                }
                token => {
                    if let Some(tag) = &mut open {
                        let kind = self.lex(token, &at);
                        tag.push(
                            Lexeme {
                                kind,
                                at: at.clone(),
                            },
                            &self.source[at],
                        );
                    }
                }
            }
        }
    }

    fn lex(&self, token: Token<'_>, at: &Range<usize>) -> Lex<'s> {
        match token {
            Token::Ident(_) => Lex::Ident(&self.source[at.clone()]),
            // Patches never fall inside a string, so the source holds it as the lexer read it.
            Token::Str(_) => Lex::Str(Cow::Borrowed(&self.source[at.start + 1..at.end - 1])),
            Token::String(s) => Lex::Str(Cow::Owned(s.into())),
            Token::Dot => Lex::Dot,
            Token::Pipe => Lex::Pipe,
            Token::Comma => Lex::Comma,
            Token::BracketOpen => Lex::BracketOpen,
            Token::BracketClose => Lex::BracketClose,
            _ => Lex::Other,
        }
    }

    /// After the lexer stopped at `at` inside `open`, having read its tokens to `lexed`: the
    /// patch that reads past what stopped it. Outside a tag (an unterminated comment or raw
    /// block), or at an unterminated string, reading ends there.
    fn recover(
        &self,
        pieces: &mut Vec<Piece<'s>>,
        open: Option<Tag<'s>>,
        at: Option<usize>,
        lexed: usize,
    ) -> Pass<'s> {
        let (Some(mut tag), Some(at)) = (open, at) else {
            return Pass::Done;
        };
        let patched: &str = &self.patched;
        // Where the token that failed starts: after the last one, and the spaces after it.
        let last = tag.tokens.last().map_or(lexed, |t| t.at.end.max(lexed));
        let start = patched[last..]
            .find(|c: char| !c.is_ascii_whitespace())
            .map_or(self.source.len(), |i| last + i);
        if let Some(c) = patched[at..].chars().next().filter(|_| start == at) {
            let prev = patched[lexed..at].chars().next_back();
            let (range, closing) = self.unreadable(&tag, (prev, at, c));
            return Pass::Patch {
                tag,
                range,
                closing,
            };
        }
        if start < at && !patched[start..].starts_with(['"', '\'']) {
            // A malformed number, read as spaces.
            return Pass::Patch {
                tag,
                range: start..at,
                closing: "",
            };
        }
        tag.tokens.push(Lexeme {
            kind: Lex::Unread,
            at: start..self.source.len(),
        });
        close(pieces, Some(tag), self.source.len());
        Pass::Done
    }

    /// What to read in place of `c`, the character at `at` in `tag` after `prev`: spaces, or
    /// the closing it stands for when it makes a look-alike closing with the character before
    /// or after it.
    fn unreadable(
        &self,
        tag: &Tag<'_>,
        (prev, at, c): (Option<char>, usize, char),
    ) -> (Range<usize>, &'static str) {
        let brace = |c: char| matches!(c, '}' | '\u{FF5D}');
        let percent = |c: char| matches!(c, '%' | '\u{FF05}');
        let closing = match (self.expression, tag.block) {
            (true, _) => "",
            (false, true) => "%}",
            (false, false) => "}}",
        };
        let closes = |a: char, b: char| match closing {
            "%}" => percent(a) && brace(b),
            "}}" => brace(a) && brace(b),
            _ => false,
        };
        let end = at + c.len_utf8();
        let next = self.patched[end..].chars().next();
        // As the lexer, a closing closes only outside brackets; a `}` before `c` was read as
        // one, and is taken back.
        let outside = |before: Option<char>| {
            let taken_back = before.map_or(0, |p| bracket(p.encode_utf8(&mut [0; 4])));
            tag.depth - taken_back == 0
        };
        match (prev, next) {
            (_, Some(n)) if closes(c, n) && outside(None) => (at..end + n.len_utf8(), closing),
            (Some(p), _) if closes(p, c) && outside(prev) => (at - p.len_utf8()..end, closing),
            _ => (at..end, ""),
        }
    }

    /// Writes the patch of `range` in `tag` into the text the lexer reads, with before it the
    /// tag's opening and its open brackets, so that the lexer takes up the tag where it left
    /// it: the tag is not read again from its start, and a tag left open over a long text full
    /// of characters the lexer cannot read costs no more than reading it once.
    fn patch(&mut self, mut tag: Tag<'s>, range: Range<usize>, closing: &str) -> Resume<'s> {
        // A `}` read before a look-alike `｝` is part of the closing.
        tag.truncate(range.start, self.source);
        let brackets = if tag.depth < 0 { ")" } else { "(" }.repeat(tag.depth.unsigned_abs());
        let lead = match (self.expression, tag.block) {
            (true, _) => brackets,
            // `()` keeps the lexer from reading a `raw` that follows as a raw block's opening.
            (false, true) if tag.depth == 0 => "{%()".to_string(),
            (false, true) => format!("{{%{brackets}"),
            (false, false) => format!("{{{{{brackets}"),
        };
        let room = if self.expression { 0 } else { tag.at.start };
        let need = lead.len() + closing.len();
        let from = (range.end - room)
            .checked_sub(need)
            .map(|spare| room + spare.min(range.start - room));
        let Some(from) = from.filter(|_| self.take_up) else {
            // Only an ASCII character right after a `{%`, with nothing read before it.
            return self.restart(tag, range, closing);
        };
        let spaces = " ".repeat(range.end - from - need);
        self.patched
            .to_mut()
            .replace_range(from..range.end, &format!("{lead}{spaces}{closing}"));
        Resume {
            from,
            within: Some((tag, range.end)),
        }
    }

    /// Writes the patch of `range` in `tag`, to read the tag again from its opening (which no
    /// patch has touched).
    fn restart(&mut self, tag: Tag<'s>, range: Range<usize>, closing: &str) -> Resume<'s> {
        let spaces = " ".repeat(range.len() - closing.len());
        self.patched
            .to_mut()
            .replace_range(range, &format!("{spaces}{closing}"));
        if self.expression {
            return Resume {
                from: 0,
                within: Some((Tag::new(false, 0..0), 0)),
            };
        }
        Resume {
            from: tag.at.start,
            within: None,
        }
    }
}

/// Whether `gap`, what the lexer passed over before a text, ends with a `{% raw %}` tag (which
/// yields no token), so that the text is the raw block's content.
fn opens_raw(gap: &str) -> bool {
    let gap = gap.trim_end();
    let tag = gap
        .rfind("{%")
        .and_then(|i| gap[i + 2..].strip_suffix("%}"));
    tag.is_some_and(|t| {
        t.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()) == "raw"
    })
}

fn close<'s>(pieces: &mut Vec<Piece<'s>>, tag: Option<Tag<'s>>, end: usize) {
    if let Some(mut tag) = tag {
        tag.at.end = end;
        pieces.push(Piece::Tag(tag));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each piece as `kind:text`, a tag with its tokens.
    fn shown(source: &str, read: &Tags<'_>) -> Vec<String> {
        read.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(at) => format!("text:{:?}", &source[at.clone()]),
                Piece::Raw(at) => format!("raw:{:?}", &source[at.clone()]),
                Piece::Tag(t) => {
                    let tokens: Vec<String> = t
                        .tokens
                        .iter()
                        .map(|l| match &l.kind {
                            Lex::Ident(name) => (*name).to_string(),
                            Lex::Str(value) => format!("{value:?}"),
                            Lex::Unread => format!("unread:{:?}", &source[l.at.clone()]),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    let kind = if t.block { "block" } else { "var" };
                    let open = if t.closed { "" } else { " (open)" };
                    format!(
                        "{kind}@{}{open}:{}",
                        read.line(t.at.start),
                        tokens.join(" ")
                    )
                }
            })
            .collect()
    }

    fn pieces(source: &str) -> Vec<String> {
        shown(source, &read(source))
    }

    #[test]
    fn text_tags_raw_blocks_and_comments_are_told_apart() {
        let source = "Hi {{ a.b | title }}\n{# note #}{% if x -%}\n  y {%- endif %}\
                      {% raw %}{{ z }}{% endraw %} 'e\\\"q' {{ \"e\\\"q\" ~ 'w' }}\n";
        assert_eq!(
            pieces(source),
            [
                "text:\"Hi \"",
                "var@1:a Dot b Pipe title",
                "text:\"\\n\"",
                "block@2:if x",
                "text:\"y\"",
                "block@3:endif",
                "raw:\"{{ z }}\"",
                "text:\" 'e\\\\\\\"q' \"",
                "var@3:\"e\\\"q\" Other \"w\"",
            ]
        );
        assert!(read(source).clean);
    }

    #[test]
    fn a_character_the_lexer_cannot_read_is_read_past() {
        let source = "{{ “plan” | x }} and {% if a\u{00A0}== 1_ %}b{% endif %}";
        let read = read(source);
        assert!(!read.clean);
        assert_eq!(
            shown(source, &read),
            [
                "var@1:plan Pipe x",
                "text:\" and \"",
                "block@1:if a Other",
                "text:\"b\"",
                "block@1:endif",
            ]
        );
    }

    #[test]
    fn a_look_alike_closing_closes_its_tag() {
        assert_eq!(
            pieces("{{ name ｝｝ Olá “Ana” {% if x ％｝y{% endif %}"),
            [
                "var@1:name",
                "text:\" Olá “Ana” \"",
                "block@1:if x",
                "text:\"y\"",
                "block@1:endif",
            ]
        );
        assert_eq!(pieces("{{ a }｝b"), ["var@1:a", "text:\"b\""]);
        // `％｝` does not close `{{`.
        assert_eq!(pieces("{{ a ％｝b"), ["var@1 (open):a b"]);
    }

    #[test]
    fn what_cannot_be_read_on_ends_the_reading() {
        assert_eq!(
            pieces("a {{ x ~ 'open }} b\n"),
            [
                "text:\"a \"",
                "var@1 (open):x Other unread:\"'open }} b\\n\""
            ]
        );
        assert_eq!(pieces("a {# open"), ["text:\"a \""]);
        assert_eq!(pieces("{% raw %}open"), Vec::<String>::new());
    }

    #[test]
    fn an_expression_is_one_tag() {
        let source = "opt_in == ‘yes’ and plan != 'it’s'";
        assert_eq!(
            shown(source, &read_expression(source)),
            ["var@1 (open):opt_in Other yes and plan Other \"it’s\""]
        );
    }

    #[test]
    fn lines_count_from_one() {
        let read = read("a\n\nb {{ c }}");
        assert_eq!(
            (read.line(0), read.line(1), read.line(2), read.line(3)),
            (1, 1, 2, 3)
        );
    }

    #[test]
    fn any_text_is_read_to_its_end_in_order_and_as_if_read_again_from_each_tag() {
        let alphabet = [
            "a", "b", "_", "1", ".", " ", "{", "}", "%", "#", "-", "+", "'", "\"", "\\", "|", "[",
            "]", "(", ")", ",", "~", "\n", "“", "”", "‘", "’", "｛", "｝", "％", "\u{00A0}", "é",
            "?", "raw", "endraw", "{{", "{%", "}}", "%}",
        ];
        for text in crate::testing::random_texts(&alphabet, 0x9E37_79B9_7F4A_7C15u64, 20_000) {
            for expression in [false, true] {
                let read = Reader::new(&text, expression).run();
                let mut again = Reader::new(&text, expression);
                again.take_up = false;
                assert_eq!(shown(&text, &read), shown(&text, &again.run()), "{text:?}");
                let mut end = 0;
                for piece in &read.pieces {
                    let at = match piece {
                        Piece::Text(at) | Piece::Raw(at) => at.clone(),
                        Piece::Tag(t) => {
                            for l in &t.tokens {
                                assert!(t.at.start <= l.at.start && l.at.end <= t.at.end);
                                assert!(text.get(l.at.clone()).is_some(), "{text:?}");
                            }
                            t.at.clone()
                        }
                    };
                    assert!(end <= at.start && at.start <= at.end, "{text:?}");
                    assert!(text.get(at.clone()).is_some(), "{text:?}");
                    end = at.end;
                }
            }
        }
    }
}
