//! The `money` and `date` filters, for cells as people type them (`1.234,56`, `05/12/2026`).
//! A cell they cannot read for sure is an error of that row, never a guess: `1.234` may be one
//! thousand two hundred and thirty-four or one point two three four, so it is refused.

use jiff::civil::Date;
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// How an amount of a currency is written.
pub(crate) struct Currency {
    code: &'static str,
    symbol: &'static str,
    /// A space between the symbol and the digits.
    space: bool,
    group: char,
    decimal: char,
}

/// The currencies `money` writes. The euro has no single custom across its countries; it is
/// written as most of them group and separate digits, symbol first: `€ 1.234,56`.
const CURRENCIES: [Currency; 3] = [
    Currency {
        code: "BRL",
        symbol: "R$",
        space: true,
        group: '.',
        decimal: ',',
    },
    Currency {
        code: "USD",
        symbol: "$",
        space: false,
        group: ',',
        decimal: '.',
    },
    Currency {
        code: "EUR",
        symbol: "€",
        space: true,
        group: '.',
        decimal: ',',
    },
];

/// The currency of an ISO 4217 code (any case), when `money` writes it.
pub(crate) fn currency(code: &str) -> Option<&'static Currency> {
    CURRENCIES
        .iter()
        .find(|c| c.code.eq_ignore_ascii_case(code.trim()))
}

/// The codes `money` knows, for messages: `BRL, USD, EUR`.
pub(crate) fn currency_codes() -> String {
    CURRENCIES.map(|c| c.code).join(", ")
}

impl Currency {
    fn write(&self, cents: i64) -> String {
        let sign = if cents < 0 { "-" } else { "" };
        let cents = cents.unsigned_abs();
        let units = (cents / 100).to_string();
        let mut grouped = String::with_capacity(units.len() + units.len() / 3);
        for (i, d) in units.chars().enumerate() {
            if i > 0 && (units.len() - i).is_multiple_of(3) {
                grouped.push(self.group);
            }
            grouped.push(d);
        }
        let space = if self.space { " " } else { "" };
        format!(
            "{sign}{}{space}{grouped}{}{:02}",
            self.symbol,
            self.decimal,
            cents % 100
        )
    }
}

/// Why a cell is not an amount.
#[derive(Debug, PartialEq)]
enum Unread {
    /// `1.234`: a thousands separator or a decimal point, nothing tells which.
    Ambiguous,
    Unreadable,
}

/// Reads an amount in cents. The decimal separator is the last `.` or `,` when one or two
/// digits follow it at the end; the other one may group thousands. A currency symbol copied
/// with the amount is allowed.
fn read_amount(cell: &str) -> Result<i64, Unread> {
    let s = cell.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, s),
    };
    let s = ["R$", "US$", "$", "€"]
        .iter()
        .find_map(|sym| s.strip_prefix(sym))
        .unwrap_or(s)
        .trim_start();
    let s = s.strip_suffix('€').unwrap_or(s).trim_end();
    let digit_ends =
        s.starts_with(|c: char| c.is_ascii_digit()) && s.ends_with(|c: char| c.is_ascii_digit());
    if !digit_ends
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return Err(Unread::Unreadable);
    }
    let (int, frac, group) = match s.rfind(['.', ',']) {
        None => (s, "", None),
        Some(at) => {
            let sep = if s.as_bytes()[at] == b'.' { '.' } else { ',' };
            let other = if sep == '.' { ',' } else { '.' };
            match s.len() - at - 1 {
                1 | 2 => (&s[..at], &s[at + 1..], Some(other)),
                3 if !s.contains(other) => {
                    let grouped = grouped_digits(s, sep).ok_or(Unread::Unreadable)?;
                    if !s[..at].contains(sep) {
                        return Err(Unread::Ambiguous);
                    }
                    return cents(&grouped, "", negative);
                }
                _ => return Err(Unread::Unreadable),
            }
        }
    };
    let digits = match group {
        Some(g) => grouped_digits(int, g).ok_or(Unread::Unreadable)?,
        None => int.to_string(),
    };
    cents(&digits, frac, negative)
}

/// The digits of `s` grouped in thousands by `group` (`1.234.567`), or `None` when the groups
/// are not of three digits.
fn grouped_digits(s: &str, group: char) -> Option<String> {
    let mut pieces = s.split(group);
    let first = pieces.next()?;
    let mut out = first.to_string();
    let mut grouped = false;
    for p in pieces {
        if p.len() != 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        grouped = true;
        out.push_str(p);
    }
    let first_ok = !first.is_empty()
        && first.bytes().all(|b| b.is_ascii_digit())
        && (!grouped || first.len() <= 3);
    first_ok.then_some(out)
}

fn cents(units: &str, frac: &str, negative: bool) -> Result<i64, Unread> {
    let units: i64 = units.parse().map_err(|_| Unread::Unreadable)?;
    let frac: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().map_err(|_| Unread::Unreadable)? * 10,
        _ => frac.parse().map_err(|_| Unread::Unreadable)?,
    };
    let cents = units
        .checked_mul(100)
        .and_then(|u| u.checked_add(frac))
        .ok_or(Unread::Unreadable)?;
    Ok(if negative { -cents } else { cents })
}

fn error(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// A cell a filter cannot read: the row's fault, not the template's. Carried as the source of
/// minijinja's error, so that the renderer tells the two apart.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unreadable(String);

fn unreadable(message: String) -> Error {
    error(message.clone()).with_source(Unreadable(message))
}

/// The unreadable cell behind a rendering error, if that is what it is.
pub(crate) fn unreadable_cell(e: &Error) -> Option<&Unreadable> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(u) = s.downcast_ref::<Unreadable>() {
            return Some(u);
        }
        source = s.source();
    }
    None
}

/// `{{ valor | money('BRL') }}`: `R$ 1.234,56`.
pub(crate) fn money(value: Value, code: String) -> Result<String, Error> {
    let currency = currency(&code).ok_or_else(|| {
        error(format!(
            "money: unknown currency {code:?}; write one of {}",
            currency_codes()
        ))
    })?;
    let cents = match (value.kind(), value.as_str()) {
        (_, Some(cell)) => read_amount(cell).map_err(|e| match e {
            Unread::Ambiguous => unreadable(format!(
                "money: `{cell}` is ambiguous: its separator may group thousands or mark the decimals; write the cents (`{cell},00` or `{}.00`) or no separator (`{}`)",
                cell.replace(['.', ','], ""),
                cell.replace(['.', ','], ""),
            )),
            Unread::Unreadable => unreadable(format!(
                "money: `{cell}` is not an amount (such as 1234.56, 1.234,56 or 1234)"
            )),
        })?,
        (ValueKind::Number, None) => match value.as_i64() {
            Some(n) => n
                .checked_mul(100)
                .ok_or_else(|| error(format!("money: {n} is too large")))?,
            None => match f64::try_from(value.clone()) {
                Ok(f) if f.is_finite() && f.abs() < 1e15 => (f * 100.0).round() as i64,
                _ => return Err(error(format!("money: {value} is not an amount"))),
            },
        },
        (kind, None) => {
            return Err(unreadable(format!(
                "money: expects a cell or a number, got {kind}"
            )));
        }
    };
    Ok(currency.write(cents))
}

/// `{{ Valor | amount }}`: the cell's amount as a number, read as `money` reads it, so that
/// `where: "Valor | amount > 1000"` compares `1.234,56` as 1234.56.
pub(crate) fn amount(value: Value) -> Result<Value, Error> {
    if value.kind() == ValueKind::Number {
        return Ok(value);
    }
    let Some(cell) = value.as_str() else {
        return Err(unreadable(format!(
            "amount: expects a cell or a number, got {}",
            value.kind()
        )));
    };
    match read_amount(cell) {
        Ok(cents) if cents % 100 == 0 => Ok(Value::from(cents / 100)),
        Ok(cents) => Ok(Value::from(cents as f64 / 100.0)),
        Err(Unread::Ambiguous) => Err(unreadable(format!(
            "amount: `{cell}` is ambiguous: its separator may group thousands or mark the decimals; write `{cell},00` or `{}`",
            cell.replace(['.', ','], "")
        ))),
        Err(Unread::Unreadable) => Err(unreadable(format!(
            "amount: `{cell}` is not an amount (such as 1234.56, 1.234,56 or 1234)"
        ))),
    }
}

/// `{{ vencimento | date('%d/%m/%Y') }}`: reads ISO 8601 (`2026-12-05`), or the `from=` format,
/// and writes `format` (strftime, as jiff reads it).
pub(crate) fn date(value: Value, format: String, kwargs: Kwargs) -> Result<String, Error> {
    let from: Option<String> = kwargs.get("from")?;
    kwargs.assert_all_used()?;
    let Some(cell) = value.as_str() else {
        return Err(unreadable(format!(
            "date: expects a cell, got {}",
            value.kind()
        )));
    };
    let cell = cell.trim();
    let day = match &from {
        None => cell.parse::<Date>().map_err(|_| {
            unreadable(format!(
                "date: `{cell}` is not a date written as ISO 8601 (2026-12-05); for another way, name it: `date('{format}', from='%d/%m/%Y')`"
            ))
        })?,
        Some(f) => Date::strptime(f, cell)
            .map_err(|_| unreadable(format!("date: `{cell}` is not a date written as {f:?}")))?,
    };
    jiff::fmt::strtime::format(&format, day)
        .map_err(|e| error(format!("date: cannot write a date as {format:?}: {e}")))
}

/// Why a date format written in a template cannot work, found once before any row: `format`
/// must write a date, `from` must read back what it writes.
pub(crate) fn date_format_problem(format: &str, from: Option<&str>) -> Option<String> {
    let sample = jiff::civil::date(2026, 12, 5);
    if let Err(e) = jiff::fmt::strtime::format(format, sample) {
        return Some(format!("cannot write a date as {format:?}: {e}"));
    }
    let from = from?;
    match jiff::fmt::strtime::format(from, sample).map(|s| Date::strptime(from, s)) {
        Ok(Ok(_)) => None,
        Ok(Err(e)) | Err(e) => Some(format!("cannot read a date as from={from:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_by_their_last_separator() {
        for (cell, cents) in [
            ("1234.56", 123_456),
            ("1.234,56", 123_456),
            ("1,234.56", 123_456),
            ("1234", 123_400),
            ("1234,5", 123_450),
            ("0,99", 99),
            ("1.234.567", 123_456_700),
            ("1.234.567,89", 123_456_789),
            ("R$ 1.234,56", 123_456),
            ("-12,30", -1230),
            (" 7 ", 700),
        ] {
            assert_eq!(read_amount(cell), Ok(cents), "{cell:?}");
        }
        for cell in ["1.234", "1,234", "12.345"] {
            assert_eq!(read_amount(cell), Err(Unread::Ambiguous), "{cell:?}");
        }
        for cell in [
            "",
            "abc",
            "1.2.3",
            "12,34.56",
            "1.234,5678",
            ".5",
            "1234,567",
            "1 234",
        ] {
            assert_eq!(read_amount(cell), Err(Unread::Unreadable), "{cell:?}");
        }
    }

    #[test]
    fn amounts_are_written_as_each_currency_is() {
        let m = |v: Value, c: &str| money(v, c.into()).map_err(|e| e.to_string());
        assert_eq!(m("1234.56".into(), "BRL").unwrap(), "R$ 1.234,56");
        assert_eq!(m("1.234,56".into(), "usd").unwrap(), "$1,234.56");
        assert_eq!(m("1234".into(), "EUR").unwrap(), "€ 1.234,00");
        assert_eq!(m("-0,5".into(), "BRL").unwrap(), "-R$ 0,50");
        assert_eq!(m("1234567".into(), "BRL").unwrap(), "R$ 1.234.567,00");
        assert_eq!(m(Value::from(99.5), "USD").unwrap(), "$99.50");
        assert_eq!(m(Value::from(12), "BRL").unwrap(), "R$ 12,00");
        assert!(m("1.234".into(), "BRL").unwrap_err().contains("ambiguous"));
        assert!(
            m("1".into(), "XYZ")
                .unwrap_err()
                .contains("unknown currency")
        );
    }

    #[test]
    fn amount_gives_a_number_to_compare() {
        assert_eq!(amount("1.234,56".into()).unwrap(), Value::from(1234.56));
        assert_eq!(amount("1.000,00".into()).unwrap(), Value::from(1000));
        assert!(amount("R$ 1.000".into()).is_err());
        assert!(unreadable_cell(&amount("abc".into()).unwrap_err()).is_some());
    }

    #[test]
    fn dates_are_read_as_iso_unless_told() {
        let d = |cell: &str, fmt: &str, from: Option<&str>| {
            let kwargs = Kwargs::from_iter(from.map(|f| ("from", Value::from(f))));
            date(cell.into(), fmt.into(), kwargs).map_err(|e| e.to_string())
        };
        assert_eq!(d("2026-12-05", "%d/%m/%Y", None).unwrap(), "05/12/2026");
        assert_eq!(
            d("05/12/2026", "%Y-%m-%d", Some("%d/%m/%Y")).unwrap(),
            "2026-12-05"
        );
        assert!(
            d("05/12/2026", "%d/%m/%Y", None)
                .unwrap_err()
                .contains("ISO 8601")
        );
        assert!(d("2026-12-05", "%d/%m/%Y", Some("%d/%m/%Y")).is_err());
        assert!(d("", "%d/%m/%Y", None).is_err());
        assert_eq!(date_format_problem("%d/%m/%Y", Some("%d/%m/%Y")), None);
        assert!(date_format_problem("%H:%M", None).is_some());
    }
}
