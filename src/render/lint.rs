//! Reads a template's syntax tree, as minijinja's own parser builds it, for mistakes that no
//! test row may show: an unknown filter or test (minijinja looks a filter up only when a row
//! reaches it, so one in a branch no test row took stops the run the day a row does), `default`
//! on a column (an empty cell is an empty string, never missing, so it never fires), a column
//! compared with a number (a cell is text, so `Valor > 1000` compares text with a number), and a
//! `money` currency or `date` format that no row can make work.

use std::collections::BTreeSet;

use minijinja::Environment;
use minijinja::machinery::ast::{BinOpKind, CallArg, CompareOpKind, Expr, Stmt};
use minijinja::value::ValueKind;

use super::filters;
use crate::contacts::Headers;

/// One mistake, at a line of the template (the first is 1).
#[derive(Debug)]
pub(super) struct Finding {
    pub(super) line: usize,
    pub(super) message: String,
    pub(super) hint: String,
}

/// Filters and tests a template may mean: minijinja's built-ins and cosmocast's own. Only those
/// the environment holds are offered as "did you mean".
const FILTERS: &[&str] = &[
    "abs",
    "amount",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "count",
    "d",
    "date",
    "default",
    "dictsort",
    "digits",
    "e",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "money",
    "phone",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
];
const TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// Names people reach for when they mean `money` or `date`.
const MEANS_MONEY: &[&str] = &[
    "brl", "usd", "eur", "real", "reais", "currency", "moeda", "dinheiro", "valor",
];
const MEANS_DATE: &[&str] = &[
    "data",
    "datetime",
    "datetimeformat",
    "dateformat",
    "format_date",
    "strftime",
    "strptime",
];

/// Every finding in `source`; none when it does not parse (the compiler reports that).
pub(super) fn lint(env: &Environment<'_>, source: &str, headers: &Headers) -> Vec<Finding> {
    let Ok(tree) = minijinja::machinery::parse(source, "<lint>", env.syntax().clone()) else {
        return Vec::new();
    };
    let mut locals = BTreeSet::new();
    stmt(&tree, &mut |node| {
        if let Node::Binds(target) = node {
            bound(target, &mut locals);
        }
    });
    let mut lint = Lint {
        env,
        source,
        headers,
        locals,
        reported: BTreeSet::new(),
        found: Vec::new(),
    };
    stmt(&tree, &mut |node| {
        if let Node::Expr(e) = node {
            lint.expr(e);
        }
    });
    lint.found
}

/// What the walk meets: an expression, or a target a statement binds (`set`, `for`, a macro's
/// arguments), whose names shadow columns.
enum Node<'n, 'a> {
    Expr(&'n Expr<'a>),
    Binds(&'n Expr<'a>),
}

fn bound(target: &Expr<'_>, names: &mut BTreeSet<String>) {
    match target {
        Expr::Var(v) => {
            names.insert(v.id.to_string());
        }
        Expr::Tuple(t) => t.items.iter().for_each(|i| bound(i, names)),
        Expr::List(l) => l.items.iter().for_each(|i| bound(i, names)),
        _ => {}
    }
}

fn stmts<'a>(list: &[Stmt<'a>], v: &mut dyn FnMut(Node<'_, 'a>)) {
    list.iter().for_each(|s| stmt(s, v));
}

/// Visits every statement's expressions and targets, in every branch.
fn stmt<'a>(s: &Stmt<'a>, v: &mut dyn FnMut(Node<'_, 'a>)) {
    match s {
        Stmt::Template(t) => stmts(&t.children, v),
        Stmt::EmitExpr(e) => expr(&e.expr, v),
        Stmt::EmitRaw(_) => {}
        Stmt::ForLoop(f) => {
            v(Node::Binds(&f.target));
            expr(&f.iter, v);
            if let Some(e) = &f.filter_expr {
                expr(e, v);
            }
            stmts(&f.body, v);
            stmts(&f.else_body, v);
        }
        Stmt::IfCond(i) => {
            expr(&i.expr, v);
            stmts(&i.true_body, v);
            stmts(&i.false_body, v);
        }
        Stmt::WithBlock(w) => {
            for (target, e) in &w.assignments {
                v(Node::Binds(target));
                expr(e, v);
            }
            stmts(&w.body, v);
        }
        Stmt::Set(s) => {
            v(Node::Binds(&s.target));
            expr(&s.expr, v);
        }
        Stmt::SetBlock(s) => {
            v(Node::Binds(&s.target));
            if let Some(f) = &s.filter {
                expr(f, v);
            }
            stmts(&s.body, v);
        }
        Stmt::AutoEscape(a) => {
            expr(&a.enabled, v);
            stmts(&a.body, v);
        }
        Stmt::FilterBlock(f) => {
            expr(&f.filter, v);
            stmts(&f.body, v);
        }
        Stmt::Block(b) => stmts(&b.body, v),
        Stmt::Import(i) => {
            expr(&i.expr, v);
            v(Node::Binds(&i.name));
        }
        Stmt::FromImport(i) => {
            expr(&i.expr, v);
            for (name, alias) in &i.names {
                v(Node::Binds(alias.as_ref().unwrap_or(name)));
            }
        }
        Stmt::Extends(e) => expr(&e.name, v),
        Stmt::Include(i) => expr(&i.name, v),
        Stmt::Macro(m) => {
            m.args.iter().for_each(|a| v(Node::Binds(a)));
            m.defaults.iter().for_each(|d| expr(d, v));
            stmts(&m.body, v);
        }
        Stmt::CallBlock(c) => {
            expr(&c.call.expr, v);
            args(&c.call.args, v);
            c.macro_decl.args.iter().for_each(|a| v(Node::Binds(a)));
            c.macro_decl.defaults.iter().for_each(|d| expr(d, v));
            stmts(&c.macro_decl.body, v);
        }
        Stmt::Do(d) => {
            expr(&d.call.expr, v);
            args(&d.call.args, v);
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

fn args<'a>(list: &[CallArg<'a>], v: &mut dyn FnMut(Node<'_, 'a>)) {
    for a in list {
        match a {
            CallArg::Pos(e)
            | CallArg::Kwarg(_, e)
            | CallArg::PosSplat(e)
            | CallArg::KwargSplat(e) => expr(e, v),
        }
    }
}

/// Visits `e` and every expression inside it.
fn expr<'a>(e: &Expr<'a>, v: &mut dyn FnMut(Node<'_, 'a>)) {
    v(Node::Expr(e));
    let mut each = |list: &[&Expr<'a>]| list.iter().for_each(|e| expr(e, v));
    match e {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Slice(s) => {
            each(&[&s.expr]);
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                expr(part, v);
            }
        }
        Expr::UnaryOp(u) => each(&[&u.expr]),
        Expr::BinOp(b) => each(&[&b.left, &b.right]),
        Expr::Compare(c) => {
            expr(&c.expr, v);
            c.ops.iter().for_each(|op| expr(&op.expr, v));
        }
        Expr::IfExpr(i) => {
            each(&[&i.test_expr, &i.true_expr]);
            if let Some(f) = &i.false_expr {
                expr(f, v);
            }
        }
        Expr::Filter(f) => {
            if let Some(inner) = &f.expr {
                expr(inner, v);
            }
            args(&f.args, v);
        }
        Expr::Test(t) => {
            expr(&t.expr, v);
            args(&t.args, v);
        }
        Expr::GetAttr(g) => expr(&g.expr, v),
        Expr::GetItem(g) => each(&[&g.expr, &g.subscript_expr]),
        Expr::Call(c) => {
            expr(&c.expr, v);
            args(&c.args, v);
        }
        Expr::List(l) => l.items.iter().for_each(|i| expr(i, v)),
        Expr::Tuple(t) => t.items.iter().for_each(|i| expr(i, v)),
        Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|i| expr(i, v)),
    }
}

struct Lint<'l> {
    env: &'l Environment<'l>,
    source: &'l str,
    headers: &'l Headers,
    /// Names the template binds itself: not columns, whatever the header says.
    locals: BTreeSet<String>,
    /// (what, name) already reported: one finding per mistake and template, not per use.
    reported: BTreeSet<(&'static str, String)>,
    found: Vec<Finding>,
}

impl Lint<'_> {
    /// Reports `mistake`, a (what, name) pair such as `("filter", "titel")`, at `e`: once per
    /// template, however often it is made.
    fn report(
        &mut self,
        e: &Expr<'_>,
        mistake: (&'static str, &str),
        message: String,
        hint: String,
    ) {
        let (what, name) = mistake;
        if self.reported.insert((what, name.to_string())) {
            self.found.push(Finding {
                line: usize::from(e.span().start_line).max(1),
                message,
                hint,
            });
        }
    }

    /// The text of `e` as written.
    fn text(&self, e: &Expr<'_>) -> &str {
        let span = e.span();
        self.source
            .get(span.start_offset as usize..span.end_offset as usize)
            .unwrap_or("")
            .trim()
    }

    /// The text from where `first` starts to where `last` ends (a filter's span starts at its
    /// name, after the value it filters).
    fn text_from(&self, first: &Expr<'_>, last: &Expr<'_>) -> &str {
        let (a, b) = (first.span(), last.span());
        let start = a.start_offset.min(b.start_offset) as usize;
        let end = a.end_offset.max(b.end_offset) as usize;
        self.source.get(start..end).unwrap_or("").trim()
    }

    /// `e`'s text when it reads a CSV cell: a column's variable, or `row["Header"]`.
    fn column(&self, e: &Expr<'_>) -> Option<String> {
        let is_column = |name: &str| self.headers.get(name).is_some();
        match e {
            Expr::Var(v) if is_column(v.id) && !self.locals.contains(v.id) => Some(v.id.into()),
            Expr::GetItem(g) => match (&g.expr, &g.subscript_expr) {
                (Expr::Var(v), Expr::Const(c))
                    if v.id == "row" && c.value.as_str().is_some_and(is_column) =>
                {
                    Some(self.text(e).into())
                }
                _ => None,
            },
            Expr::GetAttr(g) => match &g.expr {
                Expr::Var(v) if v.id == "row" && is_column(g.name) => Some(self.text(e).into()),
                _ => None,
            },
            _ => None,
        }
    }

    fn expr(&mut self, e: &Expr<'_>) {
        match e {
            Expr::Filter(f) => {
                let state = self.env.empty_state();
                if !minijinja::tests::is_filter(&state, f.name) {
                    let hint = suggestion(self.env, f.name, FILTERS, true);
                    self.report(
                        e,
                        ("filter", f.name),
                        format!("unknown filter `{}`", f.name),
                        hint,
                    );
                    return;
                }
                match f.name {
                    "default" | "d" => self.default_on_column(e, f.expr.as_ref(), &f.args),
                    "money" => self.money_currency(e, &f.args),
                    "date" => self.date_formats(e, &f.args),
                    _ => {}
                }
            }
            Expr::Test(t) => {
                let state = self.env.empty_state();
                if !minijinja::tests::is_test(&state, t.name) {
                    let hint = suggestion(self.env, t.name, TESTS, false);
                    self.report(
                        e,
                        ("test", t.name),
                        format!("unknown test `{}`", t.name),
                        hint,
                    );
                }
            }
            // One comparison is a binary operation; a chain (`0 < a < 9`) is a `Compare`.
            Expr::BinOp(b) => {
                let symbol = match b.op {
                    BinOpKind::Eq => "==",
                    BinOpKind::Ne => "!=",
                    BinOpKind::Lt => "<",
                    BinOpKind::Lte => "<=",
                    BinOpKind::Gt => ">",
                    BinOpKind::Gte => ">=",
                    _ => return,
                };
                self.column_against_number(e, &b.left, symbol, &b.right);
            }
            Expr::Compare(c) => {
                let mut left = &c.expr;
                for op in &c.ops {
                    let symbol = match op.op {
                        CompareOpKind::Eq => "==",
                        CompareOpKind::Ne => "!=",
                        CompareOpKind::Lt => "<",
                        CompareOpKind::Lte => "<=",
                        CompareOpKind::Gt => ">",
                        CompareOpKind::Gte => ">=",
                        CompareOpKind::In | CompareOpKind::NotIn => continue,
                    };
                    self.column_against_number(e, left, symbol, &op.expr);
                    left = &op.expr;
                }
            }
            Expr::GetItem(g) => {
                if let Expr::Const(c) = &g.subscript_expr
                    && let Some(name) = c.value.as_str()
                {
                    self.unknown_column(e, &g.expr, name);
                }
            }
            Expr::GetAttr(g) => self.unknown_column(e, &g.expr, g.name),
            _ => {}
        }
    }

    /// `row["preferred store"]` (or `row.nome`) naming no column: every row would fail on it,
    /// so it is the template's problem, with the column it may mean.
    fn unknown_column(&mut self, e: &Expr<'_>, target: &Expr<'_>, name: &str) {
        let Expr::Var(v) = target else { return };
        if v.id != "row" || self.locals.contains("row") || self.headers.get(name).is_some() {
            return;
        }
        let near = self
            .headers
            .nearest(name)
            .map(|n| format!("did you mean `row[{n:?}]`? "))
            .unwrap_or_default();
        self.report(
            e,
            ("column", name),
            format!("`{}` names no column of the contact file", self.text(e)),
            format!("{near}columns are: {}", self.headers.listing()),
        );
    }

    /// `first_name | default('cliente')`: a cell is never undefined, so it never fires.
    fn default_on_column(&mut self, e: &Expr<'_>, value: Option<&Expr<'_>>, args: &[CallArg<'_>]) {
        let Some(column) = value.and_then(|v| self.column(v)) else {
            return;
        };
        // `default(x, true)` replaces an empty string too, as meant.
        if let Some(CallArg::Pos(lax)) = args.get(1)
            && !matches!(lax, Expr::Const(c) if !c.value.is_true())
        {
            return;
        }
        let fallback = match args.first() {
            Some(CallArg::Pos(a)) => self.text(a).to_string(),
            _ => "''".to_string(),
        };
        let written = value.map_or("", |v| self.text_from(v, e));
        self.report(
            e,
            ("default", &column),
            format!(
                "`{written}` never uses its default: an empty cell of `{column}` is an empty string, not a missing value"
            ),
            format!("write `{{{{ {column} or {fallback} }}}}`"),
        );
    }

    /// `Valor > 1000`: a cell is text, and text against a number does not compare as amounts.
    fn column_against_number(
        &mut self,
        e: &Expr<'_>,
        left: &Expr<'_>,
        symbol: &str,
        right: &Expr<'_>,
    ) {
        let number =
            |x: &Expr<'_>| matches!(x, Expr::Const(c) if c.value.kind() == ValueKind::Number);
        let (column, fixed) = match (self.column(left), self.column(right)) {
            (Some(c), _) if number(right) => {
                let fixed = format!("{c} | float {symbol} {}", self.text(right));
                (c, fixed)
            }
            (_, Some(c)) if number(left) => {
                let fixed = format!("{} {symbol} {c} | float", self.text(left));
                (c, fixed)
            }
            _ => return,
        };
        self.report(
            e,
            ("compare", &format!("{column} {symbol}")),
            format!(
                "`{}` compares the column `{column}` with a number, but a cell is text: the comparison does not read it as an amount",
                self.text_from(left, right)
            ),
            format!(
                "convert the cell first: `{fixed}` (or `| int` for whole numbers, `| amount` for amounts written like 1.234,56)"
            ),
        );
    }

    /// `money('BRL')`: a currency written in the template is known before any row.
    fn money_currency(&mut self, e: &Expr<'_>, args: &[CallArg<'_>]) {
        let code = match args.first() {
            Some(CallArg::Pos(Expr::Const(c))) => c.value.as_str().map(str::to_string),
            None => {
                self.report(
                    e,
                    ("money", ""),
                    "`money` needs a currency".into(),
                    format!(
                        "write e.g. `money('BRL')`; known: {}",
                        filters::currency_codes()
                    ),
                );
                return;
            }
            _ => None,
        };
        if let Some(code) = code
            && filters::currency(&code).is_none()
        {
            self.report(
                e,
                ("money", &code),
                format!("`money` does not know the currency {code:?}"),
                format!("write one of {}", filters::currency_codes()),
            );
        }
    }

    /// `date('%d/%m/%Y', from='%d/%m/%Y')`: formats written in the template are checked once.
    fn date_formats(&mut self, e: &Expr<'_>, args: &[CallArg<'_>]) {
        let constant = |a: &Expr<'_>| match a {
            Expr::Const(c) => c.value.as_str().map(str::to_string),
            _ => None,
        };
        let mut format = None;
        let mut from = None;
        let mut dynamic = false;
        for a in args {
            match a {
                CallArg::Pos(x) if format.is_none() => {
                    format = constant(x);
                    dynamic |= format.is_none();
                }
                CallArg::Kwarg("from", x) => {
                    from = constant(x);
                    dynamic |= from.is_none();
                }
                _ => {}
            }
        }
        if dynamic {
            return;
        }
        let Some(format) = format else {
            self.report(
                e,
                ("date", ""),
                "`date` needs the format to write".into(),
                "write e.g. `date('%d/%m/%Y')`".into(),
            );
            return;
        };
        if let Some(problem) = filters::date_format_problem(&format, from.as_deref()) {
            self.report(
                e,
                ("date", &format),
                format!("`date`: {problem}"),
                "write a strftime format such as '%d/%m/%Y' or '%Y-%m-%d'".into(),
            );
        }
    }
}

/// "did you mean `x`?" for a close name the environment holds, else what there is.
fn suggestion(env: &Environment<'_>, typo: &str, known: &[&str], filter: bool) -> String {
    let state = env.empty_state();
    let holds = |n: &str| {
        if filter {
            minijinja::tests::is_filter(&state, n)
        } else {
            minijinja::tests::is_test(&state, n)
        }
    };
    let lower = typo.to_ascii_lowercase();
    if filter && MEANS_MONEY.contains(&lower.as_str()) {
        return "did you mean `money`? e.g. `{{ valor | money('BRL') }}`".into();
    }
    if filter && MEANS_DATE.contains(&lower.as_str()) {
        return "did you mean `date`? e.g. `{{ vencimento | date('%d/%m/%Y') }}`".into();
    }
    let close = known
        .iter()
        .copied()
        .filter(|n| holds(n))
        .map(|n| (strsim::levenshtein(&lower, n), n))
        .min()
        .filter(|(d, _)| *d <= typo.chars().count().max(3) / 2);
    match close {
        Some((_, n)) => format!("did you mean `{n}`?"),
        None if filter => {
            "the filters are minijinja's built-ins and digits, phone, money, amount, date (README.md)"
                .into()
        }
        None => "the tests are minijinja's built-ins, such as defined, none, number".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(source: &str) -> Vec<String> {
        let mut env = super::super::environment(None);
        env.add_filter("noop", |s: String| s);
        let headers = Headers::from_names(vec!["first_name".into(), "Valor".into()]);
        lint(&env, source, &headers)
            .into_iter()
            .map(|f| format!("{}: {} — {}", f.line, f.message, f.hint))
            .collect()
    }

    #[test]
    fn a_row_subscript_naming_no_column_is_found_with_the_column_meant() {
        let mistakes =
            found("{{ row[\"valor\"] }} {{ row[\"Valor\"] }} {{ row.first_name }} {{ row.plan }}");
        assert_eq!(mistakes.len(), 2, "{mistakes:?}");
        assert!(
            mistakes[0].contains("`row[\"valor\"]` names no column of the contact file")
                && mistakes[0].contains("did you mean `row[\"Valor\"]`?"),
            "{mistakes:?}"
        );
        assert!(
            mistakes[1].contains("`row.plan` names no column"),
            "{mistakes:?}"
        );
        assert_eq!(
            found("{% set row = {'x': 1} %}{{ row['x'] }}"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_unknown_filter_is_found_in_a_branch_no_row_takes() {
        let got = found("Olá\n{% if Valor %}\n{{ Valor | brl }}{{ Valor | brl }}\n{% endif %}");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].starts_with("3: unknown filter `brl` — did you mean `money`?"));
        let got = found("{% for x in [1] %}{{ first_name | uper }}{% endfor %}");
        assert!(got[0].contains("did you mean `upper`?"), "{got:#?}");
        let got = found("{% if Valor is nmber %}x{% endif %}");
        assert!(got[0].starts_with("1: unknown test `nmber` — did you mean `number`?"));
        assert!(
            found("{{ first_name | title | noop }}{% if Valor is number %}{% endif %}").is_empty()
        );
    }

    #[test]
    fn default_on_a_column_is_found_and_default_on_the_rest_is_not() {
        let got = found("{{ first_name | default('cliente') }}");
        assert_eq!(
            got,
            [
                "1: `first_name | default('cliente')` never uses its default: an empty cell of `first_name` is an empty string, not a missing value — write `{{ first_name or 'cliente' }}`"
            ]
        );
        assert_eq!(found("{{ row['first_name'] | d('x') }}").len(), 1);
        for fine in [
            "{{ first_name | default('x', true) }}",
            "{{ vars.greeting | default('x') }}",
            "{% set first_name = none %}{{ first_name | default('x') }}",
            "{{ first_name or 'cliente' }}",
        ] {
            assert!(found(fine).is_empty(), "{fine}");
        }
    }

    #[test]
    fn a_column_compared_with_a_number_is_found() {
        let got = found("{% if Valor > 1000 %}{% endif %}");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].contains("convert the cell first: `Valor | float > 1000`"),
            "{got:#?}"
        );
        let got = found("{% if 10 <= Valor %}{% endif %}");
        assert!(got[0].contains("`10 <= Valor | float`"), "{got:#?}");
        for fine in [
            "{% if Valor | float > 1000 %}{% endif %}",
            "{% if Valor == '1000' %}{% endif %}",
            "{% if row_number > 3 %}{% endif %}",
            "{% for Valor in [1] %}{% if Valor > 0 %}{% endif %}{% endfor %}",
        ] {
            assert!(found(fine).is_empty(), "{fine}");
        }
    }

    #[test]
    fn money_and_date_arguments_are_checked_once() {
        assert!(found("{{ Valor | money('BRL') }}").is_empty());
        assert!(found("{{ Valor | money('XBR') }}")[0].contains("does not know the currency"));
        assert!(found("{{ Valor | money }}")[0].contains("needs a currency"));
        assert!(found("{{ Valor | date('%d/%m/%Y', from='%d/%m/%Y') }}").is_empty());
        assert!(found("{{ Valor | date('%H:%M') }}")[0].contains("cannot write a date"));
    }
}
