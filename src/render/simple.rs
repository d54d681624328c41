//! The engine-free path: a template that is only text and `{{ column | filter }}`
//! substitutions renders as its parts, without minijinja, which most message templates are and
//! which a long contact file renders millions of times. The parts come from the same reading of
//! the template as the engine's (`tags`), and a test holds their output to the engine's. Worth
//! its lines: a 100,000-row run of the benchmark's campaign (six simple templates a row) takes
//! 1.15 times as long without it (`farm-bench -n 10`, wall; CPU 1.15).

use std::sync::Arc;

use super::digits;
use super::tags::{self, Lex, Lexeme, Piece};
use crate::contacts::Headers;

/// A piece of a template made only of text and `{{ column | filter }}` substitutions.
#[derive(Debug, Clone)]
pub(super) enum Part {
    Text(String),
    Column(usize, Vec<Filter>),
}

/// The filters the engine-free path applies, each exactly as minijinja does.
#[derive(Debug, Clone, Copy)]
pub(super) enum Filter {
    Title,
    Upper,
    Lower,
    Trim,
    Digits,
}

impl Filter {
    fn named(name: &str) -> Option<Filter> {
        Some(match name {
            "title" => Filter::Title,
            "upper" => Filter::Upper,
            "lower" => Filter::Lower,
            "trim" => Filter::Trim,
            "digits" => Filter::Digits,
            _ => return None,
        })
    }

    fn apply(self, s: String) -> String {
        match self {
            Filter::Title => minijinja::filters::title(s.into()),
            Filter::Upper => s.to_uppercase(),
            Filter::Lower => s.to_lowercase(),
            Filter::Trim => s.trim().to_string(),
            Filter::Digits => digits(s),
        }
    }
}

/// Reads a template as text and column substitutions, when it is nothing more: no
/// statements, built-ins, literals, or filters beyond `Filter`'s. Anything else is left to the
/// engine. The text is what minijinja's lexer hands its parser, comments and whitespace
/// control already applied, so it is output as it is.
pub(super) fn parts(source: &str, headers: &Headers) -> Option<Arc<[Part]>> {
    let read = tags::read(source);
    if !read.clean {
        return None;
    }
    read.pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(at) | Piece::Raw(at) => Some(Part::Text(source[at.clone()].into())),
            Piece::Tag(tag) if tag.closed && !tag.block => column(&tag.tokens, headers),
            Piece::Tag(_) => None,
        })
        .collect()
}

/// `{{ column | filter | … }}`'s tokens as a part.
fn column(tokens: &[Lexeme<'_>], headers: &Headers) -> Option<Part> {
    let (first, filters) = tokens.split_first()?;
    let name = match first.kind {
        Lex::Ident(name) => name,
        _ => return None,
    };
    if matches!(
        name,
        "true" | "false" | "none" | "True" | "False" | "None" | "loop" | "self"
    ) {
        return None;
    }
    let column = headers.get(name)?;
    let filters = filters
        .chunks(2)
        .map(|pair| match pair {
            [
                Lexeme {
                    kind: Lex::Pipe, ..
                },
                Lexeme {
                    kind: Lex::Ident(f),
                    ..
                },
            ] => Filter::named(f),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Part::Column(column, filters))
}

/// Renders text and column parts; `None` when a column is missing from the record (the
/// engine then reports it).
pub(super) fn render_parts(parts: &[Part], record: &csv::StringRecord) -> Option<String> {
    // Sized once: growing from empty reallocated two or three times a template.
    let size = parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.len(),
            Part::Column(i, _) => record.get(*i).map_or(0, str::len),
        })
        .sum();
    let mut out = String::with_capacity(size);
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Column(i, filters) if filters.is_empty() => out.push_str(record.get(*i)?),
            Part::Column(i, filters) => {
                let v = filters
                    .iter()
                    .fold(record.get(*i)?.to_string(), |v, f| f.apply(v));
                out.push_str(&v);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::environment;

    /// The engine-free path must give exactly what minijinja gives, or not be taken.
    #[test]
    fn simple_templates_render_as_the_engine_does() {
        let headers = Headers::from_names(vec!["a".into(), "b".into(), "row".into()]);
        let env = environment(None);
        let values = [
            ["élodie DUPONT", "+55 (11) 9-8765", "r"],
            ["ΣΑΣ ΟΔΟΣ", "  padded  ", ""],
            ["o'neil-smith (jr) [x] <y> {z}", "", "{{ a }}"],
            ["", "ǆemal straße", "ﬁ"],
            ["tab\there\nnew line", "İstanbul", "x"],
        ];
        let simple = [
            "{{ a }}",
            "Hi {{ a | title }}, {{b}}!",
            "{{a|upper|trim}}",
            "{{ a|lower }} and {{ b|title|lower }}",
            "{{ b | digits }}",
            "{{ row }}",
            "plain }} text %} here",
            "{{ a }}\n",
            "line one\n{{ b|trim }}\r\n",
            "{{ a }}\n\n",
            // Comments and whitespace control, as the lexer applies them.
            "x \n {{- a }} y",
            "{{ a -}} \n y",
            "{{ a }} {# note #}",
            "{#- c -#}\n {{ a }}",
            "{% raw %}{{ a }}{% endraw %}",
            "a {%- raw -%} {{ b }} {%- endraw -%} z",
        ];
        for (n, source) in simple.iter().enumerate() {
            let parts =
                parts(source, &headers).unwrap_or_else(|| panic!("{source:?} should be simple"));
            let name = format!("t{n}");
            let mut env = env.clone();
            env.add_template_owned(name.clone(), source.to_string())
                .unwrap();
            for v in &values {
                let record = csv::StringRecord::from(v.to_vec());
                let ctx = minijinja::context! { a => v[0], b => v[1], row => v[2] };
                let engine = env.get_template(&name).unwrap().render(ctx).unwrap();
                assert_eq!(
                    render_parts(&parts, &record).as_deref(),
                    Some(engine.as_str()),
                    "{source:?} with {v:?}"
                );
            }
        }
        for source in [
            "{{ a ~ b }}",
            "{{ row_number }}",
            "{{ c }}",
            "{% if a %}x{% endif %}",
            "{{ a|default('x') }}",
            "{{ a|replace('x', 'y') }}",
            "{{ a|money('BRL') }}",
            "{{ a | date('%d/%m/%Y') }}",
            "{{ a | money }}",
            "{{ true }}",
            "{{ a.b }}",
            "{{ 'a' }}",
            "{{ a",
            "{{ a }",
            "{{ a | title }",
            "{{ a“ }}",
            "{{ a | title() }}",
            "{{ a | }}",
        ] {
            assert!(
                parts(source, &headers).is_none(),
                "{source:?} must go to the engine"
            );
        }
    }
}
