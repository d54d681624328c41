//! What reading a phone number costs: this crate's reading against the
//! `phonenumber` crate's own parser, on 1,000,000 varied BR, US and PT numbers written the ways
//! people write them (national and international forms, some invalid), plus the one-off cost of
//! loading the metadata and compiling a region's patterns.
//!
//!   cargo run --release -p cosmocast-phone --example phone_bench [-- COUNT]

use std::hint::black_box;
use std::time::Instant;

use cosmocast_phone::{LineKind, Region, normalise};

const BR_AREAS: &[u32] = &[
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69, 71, 73, 74, 75, 77,
    79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95, 96, 97, 98, 99,
];
const US_AREAS: &[u32] = &[
    201, 202, 212, 213, 305, 312, 404, 415, 503, 512, 602, 617, 646, 702, 713, 718, 805, 907, 917,
];

/// One cell and the region the campaign gives it (None: `contacts.country` not set).
fn cell(rng: &mut fastrand::Rng) -> (String, Option<&'static str>) {
    let n = |rng: &mut fastrand::Rng, digits: u32| rng.u32(0..10u32.pow(digits));
    match rng.u32(0..3) {
        0 => {
            let area = BR_AREAS[rng.usize(..BR_AREAS.len())];
            let (a, b) = if rng.u32(0..5) == 0 {
                (2000 + n(rng, 3) % 4000, n(rng, 4))
            } else {
                (90000 + n(rng, 4), n(rng, 4))
            };
            let text = match rng.u32(0..6) {
                0 => format!("({area}) {a}-{b:04}"),
                1 => format!("{area} {a} {b:04}"),
                2 => format!("0{area} {a}-{b:04}"),
                3 => format!("+55 {area} {a}-{b:04}"),
                4 => format!("55{area}{a}{b:04}"),
                _ => format!("0 15 {area} {a}-{b:04}"),
            };
            let region = if text.starts_with('+') && rng.bool() {
                None
            } else {
                Some("BR")
            };
            (text, region)
        }
        1 => {
            let area = US_AREAS[rng.usize(..US_AREAS.len())];
            let (x, y) = (200 + n(rng, 3) % 800, n(rng, 4));
            let text = match rng.u32(0..4) {
                0 => format!("({area}) {x}-{y:04}"),
                1 => format!("{area}-{x}-{y:04}"),
                2 => format!("1 {area} {x} {y:04}"),
                _ => format!("+1 {area}-{x}-{y:04}"),
            };
            let region = if text.starts_with('+') && rng.bool() {
                None
            } else {
                Some("US")
            };
            (text, region)
        }
        _ => {
            let first = [91, 92, 93, 96, 21, 22][rng.usize(..6)];
            let (a, b, c) = (first * 10 + n(rng, 1), n(rng, 3), n(rng, 3));
            let text = match rng.u32(0..4) {
                0 => format!("{a} {b:03} {c:03}"),
                1 => format!("+351 {a} {b:03} {c:03}"),
                2 => format!("00351{a}{b:03}{c:03}"),
                _ => format!("351{a}{b:03}{c:03}"),
            };
            let region = if text.starts_with('+') && rng.bool() {
                None
            } else {
                Some("PT")
            };
            (text, region)
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1_000_000,
    };

    let start = Instant::now();
    let br = Region::parse("BR").ok_or("no metadata for BR")?;
    println!(
        "metadata load (the crate's database and the tables over it): {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let start = Instant::now();
    black_box(normalise("(11) 98765-4321", Some(&br)).ok());
    println!(
        "first BR number (compiles BR's patterns): {:.2} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let regions = [
        ("BR", br),
        ("US", Region::parse("US").ok_or("no metadata for US")?),
        ("PT", Region::parse("PT").ok_or("no metadata for PT")?),
    ];
    let region = |code: &str| regions.iter().find(|(c, _)| *c == code).map(|(_, r)| *r);

    let mut rng = fastrand::Rng::with_seed(13);
    let cells: Vec<(String, Option<Region>)> = (0..count)
        .map(|_| {
            let (text, code) = cell(&mut rng);
            (text, code.and_then(region))
        })
        .collect();

    // Warm: every region's patterns compiled, as after the first rows of a real file.
    for (text, region) in cells.iter().take(10_000) {
        black_box(normalise(text, region.as_ref()).ok());
    }
    let start = Instant::now();
    let mut valid = 0usize;
    let mut fixed = 0usize;
    for (text, region) in &cells {
        if let Ok(phone) = normalise(text, region.as_ref()) {
            valid += 1;
            fixed += usize::from(phone.line == LineKind::FixedLine);
            black_box(&phone.digits);
        }
    }
    let elapsed = start.elapsed();
    println!(
        "cosmocast's reading: {:.0} ns/number ({count} numbers in {:.0} ms; {valid} valid, {fixed} fixed lines)",
        elapsed.as_nanos() as f64 / count as f64,
        elapsed.as_secs_f64() * 1e3,
    );

    // The crate's parser is ten times slower: a tenth of the numbers tell its cost.
    let sample = (count / 10).max(1);
    let start = Instant::now();
    let mut crate_valid = 0usize;
    for (text, region) in cells.iter().take(sample) {
        let id = region.and_then(|r| r.code().parse::<phonenumber::country::Id>().ok());
        if let Ok(number) = phonenumber::parse(id, text)
            && number.is_valid()
        {
            crate_valid += 1;
            black_box(number.number_type(&phonenumber::metadata::DATABASE));
            black_box(number.format().mode(phonenumber::Mode::E164).to_string());
        }
    }
    let elapsed = start.elapsed();
    println!(
        "phonenumber::parse + is_valid + number_type + E.164: {:.0} ns/number ({sample} numbers; {crate_valid} valid)",
        elapsed.as_nanos() as f64 / sample as f64,
    );
    Ok(())
}
