//! `send.window`: the hours a campaign may send in, in an IANA time zone. A run outside them
//! sends nothing and says when they next open; a run that reaches their end stops cleanly.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

#[derive(Debug, Clone)]
pub(crate) struct Window {
    /// Monday first.
    days: [bool; 7],
    from: Time,
    until: Time,
    tz: TimeZone,
    pub(crate) tz_name: String,
    /// No `timezone:` was written: the machine's zone is used, which a server in UTC makes
    /// three hours off São Paulo's.
    pub(crate) tz_implied: bool,
}

/// Where `now` falls.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    Open { closes: Timestamp },
    Closed { opens: Option<Timestamp> },
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// `mon` or `Monday`: the day's place, Monday first. Nothing else is a day (`month` is not
/// Monday).
fn day(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    (0..7).find(|&i| s == DAYS[i] || s == NAMES[i])
}

/// The days `mon`, `Monday` or `mon-fri` names (a range may wrap: `fri-mon`).
fn days_of(s: &str) -> Option<Vec<usize>> {
    let Some((first, last)) = s.split_once('-') else {
        return day(s).map(|d| vec![d]);
    };
    let (first, last) = (day(first)?, day(last)?);
    let n = (last + 7 - first) % 7;
    Some((0..=n).map(|k| (first + k) % 7).collect())
}

/// Parses `09:00` or `9:30`.
fn parse_time(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    if h == 24 && m == 0 {
        return Time::new(23, 59, 59, 999_999_999).ok();
    }
    Time::new(h, m, 0, 0).ok()
}

impl Window {
    /// Checks a window; errors name the key and say what to write.
    /// Every problem of the window at once, each as (key, message, hint).
    pub(crate) fn parse(
        days: &[String],
        from: &str,
        until: &str,
        tz: Option<&str>,
    ) -> Result<Window, Vec<(String, String, String)>> {
        let mut problems = Vec::new();
        let mut set = [days.is_empty(); 7];
        for d in days {
            match days_of(d) {
                Some(named) => named.into_iter().for_each(|i| set[i] = true),
                None => problems.push((
                    "send.window.days".into(),
                    format!("{d:?} is not a day"),
                    "use mon, tue, wed, thu, fri, sat, sun, or a range such as mon-fri".into(),
                )),
            }
        }
        let mut time = |key: &str, s: &str| {
            let t = parse_time(s);
            if t.is_none() {
                problems.push((
                    format!("send.window.{key}"),
                    format!("{s:?} is not a time of day"),
                    "write HH:MM, e.g. \"09:00\"".to_string(),
                ));
            }
            t
        };
        let (from_t, until_t) = (time("from", from), time("until", until));
        if from_t.is_some() && from_t == until_t {
            problems.push((
                "send.window.until".into(),
                "the window is empty: `from` equals `until`".into(),
                "remove the window to send at any hour".into(),
            ));
        }
        let tz_implied = tz.is_none();
        let zone = match tz {
            Some(name) => match TimeZone::get(name.trim()) {
                Ok(tz) => Some((tz, name.trim().to_string())),
                Err(_) => {
                    problems.push((
                        "send.window.timezone".into(),
                        format!("{name:?} is not a known time zone"),
                        "use an IANA name such as America/Sao_Paulo or Europe/Lisbon".into(),
                    ));
                    None
                }
            },
            None => {
                let tz = TimeZone::system();
                let name = tz.iana_name().unwrap_or("local time").to_string();
                Some((tz, name))
            }
        };
        match (from_t, until_t, zone) {
            (Some(from), Some(until), Some((tz, tz_name))) if problems.is_empty() => Ok(Window {
                days: set,
                from,
                until,
                tz_implied,
                tz,
                tz_name,
            }),
            _ => Err(problems),
        }
    }

    fn span_on(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        if !self.days[date.weekday().to_monday_zero_offset() as usize] {
            return None;
        }
        let at = |date: Date, time: Time| {
            let zoned = date.to_datetime(time).to_zoned_datetime(self.tz.clone());
            zoned.ok().map(|z| z.timestamp())
        };
        let end_date = if self.until > self.from {
            date
        } else {
            date.tomorrow().ok()?
        };
        Some((at(date, self.from)?, at(end_date, self.until)?))
    }

    pub(crate) fn state(&self, now: Timestamp) -> State {
        let today = now.to_zoned_datetime(self.tz.clone()).date();
        let mut opens: Option<Timestamp> = None;
        for offset in -1i64..=8 {
            let Ok(date) = today.checked_add(offset.days()) else {
                continue;
            };
            let Some((start, end)) = self.span_on(date) else {
                continue;
            };
            if start <= now && now < end {
                return State::Open { closes: end };
            }
            if start > now && opens.is_none_or(|o| start < o) {
                opens = Some(start);
            }
        }
        State::Closed { opens }
    }

    /// A timestamp in the window's zone, for messages: `2026-11-27 09:00 America/Sao_Paulo`.
    /// When the window is closed at `now`: a sentence saying so and when it opens.
    pub(crate) fn closed_note(&self, now: Timestamp) -> Option<String> {
        match self.state(now) {
            State::Open { .. } => None,
            State::Closed { opens: Some(t) } => Some(format!(
                "the send window ({self}) is closed now; it next opens {}",
                self.describe(t)
            )),
            State::Closed { opens: None } => Some(format!(
                "the send window ({self}) never opens (no day is allowed)"
            )),
        }
    }

    pub(crate) fn describe(&self, t: Timestamp) -> String {
        let z = t.to_zoned_datetime(self.tz.clone());
        format!(
            "{} {} {}",
            z.date(),
            z.time().strftime("%H:%M"),
            self.tz_name
        )
    }
}

/// `mon-fri 09:00-20:00 America/Sao_Paulo`, `every day 22:00-06:00 UTC`.
impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on: Vec<&str> = DAYS
            .iter()
            .zip(self.days)
            .filter_map(|(d, on)| on.then_some(*d))
            .collect();
        // Three days or more in one run (the week wraps) read as a range: `sun-thu`.
        let first = (0..7).find(|&i| self.days[i] && !self.days[(i + 6) % 7]);
        let run = first.filter(|&i| (0..on.len()).all(|k| self.days[(i + k) % 7]));
        let days = match (on.len(), run) {
            (7, _) => "every day".to_string(),
            (3.., Some(i)) => format!("{}-{}", DAYS[i], DAYS[(i + on.len() - 1) % 7]),
            _ => on.join(","),
        };
        write!(
            f,
            "{days} {}-{} {}",
            self.from.strftime("%H:%M"),
            self.until.strftime("%H:%M"),
            self.tz_name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn weekdays_in_sao_paulo() {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"]
            .map(String::from)
            .to_vec();
        let w = Window::parse(&days, "09:00", "20:00", Some("America/Sao_Paulo")).unwrap();
        // Thursday 2026-11-26 10:00 in São Paulo (UTC-3) is 13:00 UTC.
        assert_eq!(
            w.state(at("2026-11-26T13:00:00Z")),
            State::Open {
                closes: at("2026-11-26T23:00:00Z")
            }
        );
        // Thursday 21:00 local: next opening is Friday 09:00 local.
        assert_eq!(
            w.state(at("2026-11-27T00:00:00Z")),
            State::Closed {
                opens: Some(at("2026-11-27T12:00:00Z"))
            }
        );
        // Saturday: next opening is Monday.
        assert_eq!(
            w.state(at("2026-11-28T15:00:00Z")),
            State::Closed {
                opens: Some(at("2026-11-30T12:00:00Z"))
            }
        );
    }

    #[test]
    fn overnight_windows_and_errors() {
        let w = Window::parse(&[], "22:00", "06:00", Some("UTC")).unwrap();
        assert_eq!(
            w.state(at("2026-11-26T23:30:00Z")),
            State::Open {
                closes: at("2026-11-27T06:00:00Z")
            }
        );
        assert_eq!(
            w.state(at("2026-11-27T03:00:00Z")),
            State::Open {
                closes: at("2026-11-27T06:00:00Z")
            }
        );
        assert!(matches!(
            w.state(at("2026-11-27T12:00:00Z")),
            State::Closed { .. }
        ));
        for not_a_day in ["funday", "month", "sunny", "mon-", "mon-fun", "m"] {
            assert!(
                Window::parse(&[not_a_day.into()], "09:00", "10:00", None).is_err(),
                "{not_a_day}"
            );
        }
        let days = |d: &[&str]| {
            let d: Vec<String> = d.iter().map(|s| s.to_string()).collect();
            Window::parse(&d, "09:00", "10:00", Some("UTC"))
                .unwrap()
                .to_string()
        };
        assert_eq!(days(&["mon-fri"]), "mon-fri 09:00-10:00 UTC");
        assert_eq!(days(&["Monday", " TUE "]), "mon,tue 09:00-10:00 UTC");
        assert_eq!(days(&["fri-mon"]), "fri-mon 09:00-10:00 UTC");
        assert_eq!(days(&["sun", "mon-thu"]), "sun-thu 09:00-10:00 UTC");
        assert_eq!(days(&["sat-sun", "wed"]), "wed,sat,sun 09:00-10:00 UTC");
        assert_eq!(days(&["mon", "wed", "fri"]), "mon,wed,fri 09:00-10:00 UTC");
        assert_eq!(days(&["sat", "sun"]), "sat,sun 09:00-10:00 UTC");
        assert_eq!(days(&["thu-wed"]), "every day 09:00-10:00 UTC");
        assert!(Window::parse(&[], "9am", "10:00", None).is_err());
        assert!(Window::parse(&[], "09:00", "10:00", Some("Mars/Olympus")).is_err());
        // Every mistake at once, each at its key.
        let keys: Vec<String> = Window::parse(
            &["seg-sex".into()],
            "25:00",
            "8h",
            Some("America/Sao_Paolo"),
        )
        .unwrap_err()
        .into_iter()
        .map(|(key, _, _)| key)
        .collect();
        assert_eq!(
            keys,
            [
                "send.window.days",
                "send.window.from",
                "send.window.until",
                "send.window.timezone"
            ]
        );
    }
}
