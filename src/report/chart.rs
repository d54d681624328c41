//! Time charts as geometry: counts summed into time slots and stacked by series, with axes and
//! run bands, in the numbers the SVG template draws.

use jiff::tz::Offset;
use serde::Serialize;

use super::{RunSpan, Series, clock, thousands};

/// The size of one drawing and how much it may hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub width: f64,
    pub height: f64,
    pub max_bars: i64,
    pub max_ticks: i64,
}

#[derive(Debug, Serialize)]
pub(super) struct TimeChart {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    bars: Vec<Bar>,
    yticks: Vec<Tick>,
    xticks: Vec<Tick>,
    runs: Vec<Band>,
    /// What one bar covers: "minute", "5 minutes", "hour"…
    pub per: String,
}

#[derive(Debug, Serialize)]
struct Bar {
    x: f64,
    w: f64,
    segs: Vec<Seg>,
    title: String,
}

#[derive(Debug, Serialize)]
struct Seg {
    y: f64,
    h: f64,
    class: &'static str,
}

#[derive(Debug, Serialize)]
struct Tick {
    at: f64,
    label: String,
    /// A second line under a time: the date, where it changes.
    sub: String,
}

#[derive(Debug, Serialize)]
struct Band {
    x: f64,
    w: f64,
    label: Option<String>,
    label_x: f64,
    label_y: f64,
    title: String,
}

/// Slot widths a chart may use, in seconds: bars of 1, 2, 5… minutes up to weeks.
const NICE: [i64; 16] = [
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172_800, 259_200,
    604_800, 1_209_600,
];
/// A chart with fewer slots is widened around them, so one bar is not the whole width.
const MIN_SLOTS: i64 = 12;
/// The widest a bar gets, so a few bars do not turn into blocks.
const MAX_BAR: f64 = 36.0;
const LEFT: f64 = 48.0;
const RIGHT_PAD: f64 = 18.0;
const BOTTOM_PAD: f64 = 34.0;
const LABEL_ROW: f64 = 14.0;
const RUN_LABEL_ROWS: usize = 2;

/// What a time chart draws: counts by slot start (seconds), one per series; the width of the
/// ledger's buckets (seconds); and the runs, drawn as bands.
pub(super) struct TimeData<'a> {
    pub(super) points: &'a [(i64, Vec<u64>)],
    pub(super) series: &'a [Series],
    pub(super) base: i64,
    pub(super) runs: &'a [RunSpan],
}

/// The chart of `data` in `layout`, or None when there is nothing in time to draw.
pub(super) fn time_chart(data: &TimeData<'_>, layout: Layout, off: Offset) -> Option<TimeChart> {
    let slots = Slots::fit(data, layout, off)?;
    let totals = slots.totals(data.points, data.series.len());
    let labels = label_rows(data.runs, slots.t0, slots.span(), layout.width);
    let top = 10.0 + LABEL_ROW * labels.iter().flatten().map(|r| r + 1).max().unwrap_or(0) as f64;
    let bottom = layout.height - BOTTOM_PAD;
    let max = totals
        .iter()
        .map(|v| v.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let (ystep, ytop) = y_scale(max);
    let rise = Rise {
        bottom,
        scale: (bottom - top) / ytop as f64,
    };
    let xticks = x_ticks(slots.t0, slots.span(), slots.step, layout.max_ticks, off)
        .into_iter()
        .map(|mut t| {
            t.at = r1(slots.x(t.at as i64));
            t
        })
        .collect();
    Some(TimeChart {
        width: layout.width,
        height: layout.height,
        left: LEFT,
        right: slots.right,
        top,
        bottom,
        bars: slots.bars(&totals, data.series, &rise, off),
        yticks: rise.ticks(ystep, ytop),
        xticks,
        runs: slots.bands(data.runs, labels),
        per: duration_name(slots.step),
    })
}

/// The time axis: `n` slots of `step` seconds from `t0`, drawn from `LEFT` to `right`.
struct Slots {
    t0: i64,
    step: i64,
    n: i64,
    right: f64,
}

impl Slots {
    /// Slots as wide as the layout's bar count needs, starting on a round time of the page's
    /// offset, and at least `MIN_SLOTS` of them; None when there is nothing to draw.
    fn fit(data: &TimeData<'_>, layout: Layout, off: Offset) -> Option<Slots> {
        let first = data
            .points
            .iter()
            .map(|p| p.0)
            .chain(data.runs.iter().map(|r| r.start))
            .min()?;
        let end = data
            .points
            .iter()
            .map(|p| p.0 + data.base)
            .chain(data.runs.iter().map(|r| r.end.unwrap_or(r.start) + 1))
            .max()?
            .max(first + 1);
        let step = slot_seconds(end - first, data.base, layout.max_bars);
        let o = i64::from(off.seconds());
        let mut t0 = (first + o).div_euclid(step) * step - o;
        let mut n = ceil_div(end - t0, step).max(1);
        // A short campaign's axis is widened into the time before it, never past its last
        // send: the page would show minutes that have not come yet.
        if n < MIN_SLOTS {
            t0 -= (MIN_SLOTS - n) * step;
            n = MIN_SLOTS;
        }
        Some(Slots {
            t0,
            step,
            n,
            right: layout.width - RIGHT_PAD,
        })
    }

    /// The seconds the axis covers.
    fn span(&self) -> i64 {
        self.n * self.step
    }

    /// Where the time `t` is drawn.
    fn x(&self, t: i64) -> f64 {
        LEFT + (t - self.t0) as f64 / self.span() as f64 * (self.right - LEFT)
    }

    /// Each slot's counts, one per series.
    fn totals(&self, points: &[(i64, Vec<u64>)], series: usize) -> Vec<Vec<u64>> {
        let mut totals = vec![vec![0u64; series]; self.n as usize];
        for (t, values) in points {
            let i = (t - self.t0).div_euclid(self.step).clamp(0, self.n - 1) as usize;
            for (acc, v) in totals[i].iter_mut().zip(values) {
                *acc += v;
            }
        }
        totals
    }

    /// A stacked bar for each slot with a count, centred in its slot.
    fn bars(&self, totals: &[Vec<u64>], series: &[Series], rise: &Rise, off: Offset) -> Vec<Bar> {
        let slot_w = (self.right - LEFT) / self.n as f64;
        let bar_w = (slot_w - (slot_w * 0.2).min(3.0)).min(MAX_BAR);
        totals
            .iter()
            .enumerate()
            .filter(|(_, values)| values.iter().any(|v| *v > 0))
            .map(|(i, values)| {
                let start = self.t0 + i as i64 * self.step;
                Bar {
                    x: r1(self.x(start) + (slot_w - bar_w) / 2.0),
                    w: r1(bar_w),
                    segs: rise.stack(values, series),
                    title: bar_title(start, self.step, values, series, off),
                }
            })
            .collect()
    }

    /// A band for each run, labelled on its row (`label_rows`) where there is room.
    fn bands(&self, runs: &[RunSpan], rows: Vec<Option<usize>>) -> Vec<Band> {
        runs.iter()
            .zip(rows)
            .map(|(r, row)| {
                let x0 = self.x(r.start);
                let x1 = self.x(r.end.unwrap_or(self.t0 + self.span())).max(x0 + 1.5);
                Band {
                    x: r1(x0),
                    w: r1(x1 - x0),
                    label: row.map(|_| r.label.clone()),
                    label_x: r1(x0.min(self.right - label_width(&r.label))),
                    label_y: row.map_or(0.0, |row| 10.0 + LABEL_ROW * (row as f64 + 1.0) - 3.0),
                    title: r.title.clone(),
                }
            })
            .collect()
    }
}

/// The vertical axis: where zero is drawn, and the height of one count.
struct Rise {
    bottom: f64,
    scale: f64,
}

impl Rise {
    /// A bar's segments, one per series with a count, stacked from the bottom.
    fn stack(&self, values: &[u64], series: &[Series]) -> Vec<Seg> {
        let mut y = self.bottom;
        values
            .iter()
            .zip(series)
            .filter(|(v, _)| **v > 0)
            .map(|(v, s)| {
                // The smallest count still shows as a sliver beside a huge one.
                let h = (*v as f64 * self.scale).max(1.0);
                y -= h;
                Seg {
                    y: r1(y),
                    h: r1(h),
                    class: s.class,
                }
            })
            .collect()
    }

    /// The ticks every `step` counts up to `top`.
    fn ticks(&self, step: u64, top: u64) -> Vec<Tick> {
        (0..=top / step)
            .map(|k| Tick {
                at: r1(self.bottom - (k * step) as f64 * self.scale),
                label: thousands(k * step),
                sub: String::new(),
            })
            .collect()
    }
}

/// The narrowest nice slot, a whole number of buckets, that keeps the bars within `max_bars`.
fn slot_seconds(span: i64, base: i64, max_bars: i64) -> i64 {
    NICE.into_iter()
        .filter(|s| *s >= base && s % base == 0)
        .find(|s| ceil_div(span, *s) <= max_bars)
        .unwrap_or_else(|| {
            let week = 604_800;
            week * ceil_div(span, week * max_bars).max(1)
        })
}

/// About four gridlines at 1, 2 or 5 times a power of ten, and the top of the axis.
fn y_scale(max: u64) -> (u64, u64) {
    let raw = max.div_ceil(4).max(1);
    let mut pow = 1u64;
    let step = loop {
        if let Some(s) = [1, 2, 5].iter().map(|m| m * pow).find(|s| *s >= raw) {
            break s;
        }
        pow = pow.saturating_mul(10);
    };
    (step, step * max.div_ceil(step).max(1))
}

/// Ticks (positions still in seconds) at round times, at most `max` of them.
fn x_ticks(t0: i64, span: i64, step: i64, max: i64, off: Offset) -> Vec<Tick> {
    let o = i64::from(off.seconds());
    let every = NICE
        .into_iter()
        .filter(|s| *s >= step)
        .find(|s| span / s <= max)
        .unwrap_or(span.max(1));
    let mut t = (t0 + o).div_euclid(every) * every - o;
    if t < t0 {
        t += every;
    }
    let mut ticks = Vec::new();
    let mut last_date = String::new();
    while t <= t0 + span {
        let date = clock(t, off, "%b %-d");
        let tick = match every >= 86400 {
            true => Tick {
                at: t as f64,
                label: date.clone(),
                sub: String::new(),
            },
            false => Tick {
                at: t as f64,
                label: clock(t, off, "%H:%M"),
                sub: if date != last_date {
                    date.clone()
                } else {
                    String::new()
                },
            },
        };
        last_date = date;
        ticks.push(tick);
        t += every;
    }
    ticks
}

/// The label row (0 = top) of each run's label, or None when the rows are full there.
fn label_rows(runs: &[RunSpan], t0: i64, span: i64, width: f64) -> Vec<Option<usize>> {
    let plot = width - LEFT - RIGHT_PAD;
    let mut row_ends: Vec<f64> = Vec::new();
    runs.iter()
        .map(|r| {
            let x0 = LEFT + (r.start - t0) as f64 / span as f64 * plot;
            let x0 = x0.min(width - RIGHT_PAD - label_width(&r.label));
            let x1 = x0 + label_width(&r.label) + 6.0;
            match row_ends.iter().position(|end| *end <= x0) {
                Some(i) => {
                    row_ends[i] = x1;
                    Some(i)
                }
                None if row_ends.len() < RUN_LABEL_ROWS => {
                    row_ends.push(x1);
                    Some(row_ends.len() - 1)
                }
                None => None,
            }
        })
        .collect()
}

/// Roughly how wide a label is at the chart's 11-unit font.
fn label_width(s: &str) -> f64 {
    s.chars().count() as f64 * 6.2
}

fn bar_title(start: i64, step: i64, values: &[u64], series: &[Series], off: Offset) -> String {
    let fmt = if step >= 86400 {
        "%b %-d"
    } else {
        "%b %-d %H:%M"
    };
    let counts: Vec<String> = values
        .iter()
        .zip(series)
        .filter(|(v, _)| **v > 0)
        .map(|(v, s)| format!("{} {}", thousands(*v), if *v == 1 { s.one } else { s.name }))
        .collect();
    format!(
        "{} – {}: {}",
        clock(start, off, fmt),
        clock(start + step, off, fmt),
        counts.join(", ")
    )
}

fn duration_name(secs: i64) -> String {
    let units = [
        (604_800, "week"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ];
    for (size, name) in units {
        if secs % size == 0 {
            return match secs / size {
                1 => name.to_string(),
                k => format!("{k} {name}s"),
            };
        }
    }
    format!("{secs} seconds")
}

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDE: Layout = Layout {
        width: 720.0,
        height: 250.0,
        max_bars: 120,
        max_ticks: 8,
    };
    const ONE: [Series; 1] = [Series {
        class: "sent",
        name: "sent",
        one: "sent",
    }];
    const T0: i64 = 1_795_003_200;

    /// The chart of one series of `points` in buckets of `base` seconds, with no runs.
    fn chart(points: &[(i64, Vec<u64>)], base: i64, off: Offset) -> Option<TimeChart> {
        let data = TimeData {
            points,
            series: &ONE,
            base,
            runs: &[],
        };
        time_chart(&data, WIDE, off)
    }

    fn run(start: i64, end: i64) -> RunSpan {
        RunSpan {
            start,
            end: Some(end),
            label: "run 1".into(),
            title: String::new(),
        }
    }

    #[test]
    fn a_bar_title_names_one_in_the_singular() {
        let series = [
            Series {
                class: "optout",
                name: "opt-outs",
                one: "opt-out",
            },
            Series {
                class: "click",
                name: "button clicks",
                one: "button click",
            },
        ];
        let title = bar_title(T0, 3600, &[1, 2], &series, Offset::UTC);
        assert!(title.ends_with(": 1 opt-out, 2 button clicks"), "{title}");
    }

    #[test]
    fn hundreds_of_buckets_become_at_most_max_bars() {
        let points: Vec<_> = (0..700)
            .map(|h| (T0 + h * 3600, vec![1 + h as u64 % 5]))
            .collect();
        let c = chart(&points, 3600, Offset::UTC).unwrap();
        assert!(c.bars.len() <= 120, "{} bars", c.bars.len());
        assert_eq!(c.per, "6 hours");
        assert!(c.xticks.len() <= 8 && c.xticks.len() >= 3, "{:?}", c.xticks);
        assert!(
            c.bars
                .iter()
                .all(|b| b.x >= c.left && b.x + b.w <= c.right + 0.1)
        );
    }

    #[test]
    fn a_tiny_count_beside_a_huge_one_still_shows() {
        let points = vec![(T0, vec![50_000]), (T0 + 60, vec![1]), (T0 + 120, vec![2])];
        let c = chart(&points, 60, Offset::UTC).unwrap();
        assert_eq!(c.bars.len(), 3);
        assert!(c.bars.iter().all(|b| b.segs[0].h >= 1.0));
        assert_eq!(c.yticks.last().map(|t| t.label.as_str()), Some("60,000"));
    }

    #[test]
    fn one_bucket_is_one_narrow_bar_in_a_padded_axis() {
        let c = chart(&[(T0, vec![3])], 60, Offset::UTC).unwrap();
        assert_eq!(c.bars.len(), 1);
        assert!(c.bars[0].w <= MAX_BAR);
        assert!(
            c.bars[0].x > c.left + 100.0,
            "the bar sits away from the axis's start"
        );
        // The axis ends with the last send's slot: no minutes that have not come yet.
        assert!(
            c.bars[0].x + c.bars[0].w >= c.right - (c.right - c.left) / MIN_SLOTS as f64,
            "the last slot is the bar's: {} of {}",
            c.bars[0].x,
            c.right
        );
        assert!(chart(&[], 60, Offset::UTC).is_none());
    }

    #[test]
    fn run_labels_take_a_second_row_and_then_none() {
        let runs = [
            run(T0, T0 + 60),
            run(T0 + 60, T0 + 120),
            run(T0 + 120, T0 + 180),
        ];
        let rows = label_rows(&runs, T0, 3600, 720.0);
        assert_eq!(rows, [Some(0), Some(1), None]);
        let far = [run(T0, T0 + 60), run(T0 + 1800, T0 + 1860)];
        assert_eq!(label_rows(&far, T0, 3600, 720.0), [Some(0), Some(0)]);
    }

    #[test]
    fn times_follow_the_pages_offset() {
        let off = Offset::from_seconds(-3 * 3600).unwrap();
        let c = chart(&[(T0, vec![1]), (T0 + 3 * 3600, vec![1])], 60, off).unwrap();
        // 12:00Z is 09:00 at -03:00.
        assert_eq!(c.xticks[0].label, "09:00");
        assert_eq!(c.xticks[0].sub, "Nov 18");
        assert_eq!(c.xticks[1].sub, "");
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(y_scale(0), (1, 1));
        assert_eq!(y_scale(7), (2, 8));
        assert_eq!(y_scale(1234), (500, 1500));
        assert_eq!(slot_seconds(3600, 60, 120), 60);
        assert_eq!(slot_seconds(10 * 3600, 60, 120), 300);
        assert_eq!(slot_seconds(3 * 3600, 3600, 120), 3600);
        assert_eq!(duration_name(300), "5 minutes");
        assert_eq!(duration_name(86400), "day");
    }
}
