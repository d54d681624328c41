//! Tests of the report page: a realistic fixture, an empty ledger, and the edge cases of its charts.
// The realistic fixture is one long table of rows.
#![allow(clippy::too_many_lines)]

use super::*;

/// `minute` minutes (and `second` seconds) after 12:00Z, 09:00 at the fixture's -03:00.
fn at_s(minute: i64, second: i64) -> String {
    clock(
        1_795_003_200 + minute * 60 + second,
        Offset::UTC,
        "%Y-%m-%dT%H:%M:%SZ",
    )
}

fn at(minute: i64) -> String {
    at_s(minute, 0)
}

/// 400 contacts, two runs, three failure reasons, replies with a script and a long text.
fn fixture() -> ReportData {
    let minutes: Vec<i64> = (0..13).chain(40..58).collect();
    let sends = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| SendBucket {
            start: at(*m),
            sent: if i == 30 { 1 } else { 10 },
            queued: u64::from(i % 4 == 0) * 3 - u64::from(i == 28) * 2,
            failed: u64::from(i % 3 == 0) * 2 - u64::from(i == 30) + u64::from(i == 3) * 2,
            unknown: u64::from(i == 12) * 5,
        })
        .collect();
    let example = |row: u64, error: &str| FailureExample {
        row_number: row,
        key: format!("55119876{row:05}"),
        error: error.into(),
    };
    let long = "status: error: the contact's 24-hour customer service window is closed; send an approved template message instead";
    let reply = |minute: i64, contact: &str, text: &str, button: Option<&str>| ReplyShown {
        received_at: at(minute),
        contact: contact.into(),
        text: text.into(),
        button: button.map(String::from),
        opted_out: text == "PARAR",
    };
    let (request, phone) = crate::view::tests::rich();
    ReportData {
        campaign: "renewal-nov".into(),
        generated_at: "2026-11-18T11:25:00-03:00".into(),
        ledger: "/srv/campaigns/cosmocast.db".into(),
        status_command: "cosmocast status renewal.yaml --json".into(),
        notes: Vec::new(),
        funnel: Funnel {
            rows: 400,
            filtered: 18,
            excluded: 6,
            opted_out: 4,
            duplicate: 9,
            invalid: 3,
            blank: 0,
            deferred: 0,
            deferred_by: Some((0, 0)),
            sent: 301,
            queued: 22,
            failed: 23,
            unknown: 5,
            sending: 0,
            not_yet_sent: 9,
            not_in_file: 0,
        },
        bucket: Bucket::Minute,
        sends,
        run_at_work: Some(true),
        runs: vec![
            RunMark {
                started_at: at(0),
                ended_at: Some(at_s(12, 41)),
                ended: "interrupted".into(),
                requests: Some(180),
            },
            RunMark {
                started_at: at(40),
                ended_at: Some(at_s(57, 18)),
                ended: "finished".into(),
                requests: Some(180),
            },
        ],
        failures: vec![
            FailureGroup {
                status: "failed".into(),
                reason: "http_400".into(),
                meaning: "the API refused the request (HTTP 400)".into(),
                count: 12,
                examples: (1..=5)
                    .map(|r| {
                        example(
                            r * 17,
                            "400 Bad Request: mobile_phone is not a valid WhatsApp number",
                        )
                    })
                    .collect(),
            },
            FailureGroup {
                status: "failed".into(),
                reason: long.into(),
                meaning: String::new(),
                count: 11,
                examples: vec![example(88, long), example(141, long)],
            },
            FailureGroup {
                status: "unknown".into(),
                reason: "timeout".into(),
                meaning: "no answer in time: it may have arrived".into(),
                count: 5,
                examples: vec![example(131, "no answer within 30 s after 3 attempts")],
            },
        ],
        replies: ReplySummary {
            replies: 64,
            contacts_replied: 51,
            reached: 323,
            replied_reached: 51,
            reply_rate: 51.0 / 323.0,
            opt_outs: 3,
            clicks: vec![
                Click {
                    button: "renew-yes".into(),
                    label: "Yes".into(),
                    count: 31,
                    foreign: false,
                },
                Click {
                    button: "see-plans".into(),
                    label: "see-plans".into(),
                    count: 12,
                    foreign: true,
                },
            ],
            bucket: Bucket::Minute,
            // Most replies come in the minutes after each send, then trickle.
            series: (1..140)
                .filter(|m| m % 7 < 5 || *m < 60)
                .map(|m| {
                    let replies = if (1..15).contains(&m) || (41..60).contains(&m) {
                        2
                    } else {
                        1
                    };
                    ReplyBucket {
                        start: at(m),
                        replies,
                        clicks: u64::from(m % 2 == 0),
                        opt_outs: u64::from(m % 45 == 7),
                    }
                })
                .collect(),
            latest: vec![
                reply(139, "5511987600017", "<script>alert(1)</script>", None),
                reply(
                    131,
                    "5511987600033",
                    "Bom dia! Recebi a mensagem sobre a renovação do cartão, mas gostaria de saber se o cashback de 2% vale também para compras internacionais e se existe alguma anuidade no primeiro ano. Obrigada pela atenção e aguardo o retorno.",
                    None,
                ),
                reply(90, "5511987600120", "Yes", Some("renew-yes")),
                reply(61, "5511987600208", "PARAR", None),
            ],
        },
        preview: Some(PreviewShown {
            row_number: 1,
            request,
            phone: Some(phone),
        }),
    }
}

fn empty() -> ReportData {
    ReportData {
        campaign: "new".into(),
        generated_at: "2026-11-19T11:05:00Z".into(),
        ledger: "cosmocast.db".into(),
        status_command: "cosmocast status new.yaml --json".into(),
        notes: vec!["No ledger at cosmocast.db: the campaign has not run yet.".into()],
        funnel: Funnel::default(),
        bucket: Bucket::Minute,
        sends: vec![],
        runs: vec![],
        run_at_work: None,
        failures: vec![],
        replies: ReplySummary::default(),
        preview: None,
    }
}

const COUNTS: [&str; 16] = [
    "rows",
    "filtered",
    "excluded",
    "opted_out",
    "duplicate",
    "invalid",
    "sent",
    "queued",
    "failed",
    "unknown",
    "sending",
    "not_yet_sent",
    "replies",
    "contacts_replied",
    "clicks",
    "opt_outs",
];

fn loads_nothing(html: &str) {
    let lower = html.to_lowercase();
    for bad in [
        "<script", "src=", "<link", "url(", "@import", "href=", "<a ", "<iframe", "<object",
        "<embed",
    ] {
        assert!(!lower.contains(bad), "{bad} in the page");
    }
}

/// With REPORT_FIXTURE_DIR set, writes the page there to be looked at in a browser.
fn look_at(name: &str, html: &str) {
    if let Ok(dir) = std::env::var("REPORT_FIXTURE_DIR") {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.html")),
            html,
        )
        .unwrap();
    }
}

#[test]
fn the_fixture_renders_escaped_and_self_contained() {
    let data = fixture();
    let html = render(&data).unwrap();
    look_at("fixture", &html);
    loads_nothing(&html);
    assert!(html.contains(">&lt;script&gt;alert(1)&lt;&#x2f;script&gt;<"));
    let f = &data.funnel;
    let expected = [
        f.rows,
        f.filtered,
        f.excluded,
        f.opted_out,
        f.duplicate,
        f.invalid,
        f.sent,
        f.queued,
        f.failed,
        f.unknown,
        f.sending,
        f.not_yet_sent,
        64,
        51,
        43,
        3,
    ];
    for (id, n) in COUNTS.iter().zip(expected) {
        let tag = format!("id=\"count-{id}\" data-count=\"{n}\"");
        assert_eq!(html.matches(&tag).count(), 1, "{tag}");
    }
    assert!(html.contains("id=\"reply-rate\" data-value=\"0.15789"));
    assert!(html.contains("data-reason=\"http_400\" data-count=\"12\""));
    assert!(html.contains("data-button=\"renew-yes\" data-count=\"31\""));
    // A payload no button of the message replies is said to be so, once.
    assert_eq!(
        html.matches("no button of this campaign's message replies this")
            .count(),
        1
    );
    // A long reason is cut on the page and whole in its tooltip.
    assert!(html.contains("title=\"status: error: the contact&#x27;s 24-hour"));
    assert!(html.contains("Seu cartão Gold está pronto"));
    assert!(html.contains("run 2"));
    assert!(!html.contains("add up to"));
}

#[test]
fn an_empty_ledger_renders() {
    let html = render(&empty()).unwrap();
    look_at("empty", &html);
    loads_nothing(&html);
    for id in COUNTS {
        assert!(
            html.contains(&format!("id=\"count-{id}\" data-count=\"0\"")),
            "{id}"
        );
    }
    assert!(html.contains("No sends yet"));
    assert!(html.contains("No replies received yet. Run <code>cosmocast listen</code>"));
    assert!(html.contains("No row to show"));
    assert!(html.contains(">contacts reached, 0% of 0 rows<"));
    assert!(html.contains("reply rate: no contact reached yet; "));
}

#[test]
fn figures_read_well() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(percent(0.0), "0%");
    assert_eq!(percent(0.0004), "<0.1%");
    assert_eq!(percent(0.5), "50%");
    assert_eq!(percent(51.0 / 323.0), "15.8%");
    assert_eq!(truncate("abc", 3), "abc");
    assert_eq!(truncate("ãbcd", 2), "ãb…");
    assert_eq!(
        offset_name(offset_of("2026-11-19T11:05:00-03:00")),
        "UTC−03:00"
    );
    assert_eq!(offset_name(offset_of("2026-11-19T11:05:00Z")), "UTC");
    assert_eq!(Bucket::for_span(6 * 3600), Bucket::Minute);
    assert_eq!(Bucket::for_span(6 * 3600 + 1), Bucket::Hour);
    let mut one = empty();
    one.funnel.rows = 1;
    one.funnel.sent = 1;
    let html = render(&one).unwrap();
    assert!(html.contains(">contact reached, 100% of 1 row<"), "{html}");
}

#[test]
fn a_time_that_is_not_rfc3339_is_an_error() {
    let mut data = empty();
    data.sends.push(SendBucket {
        start: "yesterday".into(),
        sent: 1,
        queued: 0,
        failed: 0,
        unknown: 0,
    });
    let err = render(&data).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"yesterday\" is not an RFC 3339 time"),
        "{err}"
    );
}

#[test]
fn a_run_without_a_count_shows_a_dash_not_zero() {
    let mut page = empty();
    page.runs.push(RunMark {
        started_at: at(0),
        ended_at: None,
        ended: "killed".into(),
        requests: None,
    });
    let html = render(&page).unwrap();
    assert!(
        html.contains(r#"<td class="num" title="a killed run leaves no count">—</td>"#),
        "{html}"
    );
    assert!(
        html.contains("requests not counted"),
        "the chart's run title says so too"
    );
}

#[test]
fn a_single_bucket_and_a_long_campaign_render() {
    let mut one = empty();
    one.funnel = Funnel {
        rows: 1,
        sent: 1,
        ..Funnel::default()
    };
    one.sends.push(SendBucket {
        start: at(0),
        sent: 1,
        queued: 0,
        failed: 0,
        unknown: 0,
    });
    one.runs.push(RunMark {
        started_at: at_s(0, 2),
        ended_at: Some(at_s(0, 3)),
        ended: "finished".into(),
        requests: Some(1),
    });
    look_at("single", &render(&one).unwrap());
    // Three weeks of hourly buckets, one of them huge.
    let mut long = empty();
    long.bucket = Bucket::Hour;
    long.sends = (0..500)
        .map(|h| SendBucket {
            start: at(h * 60),
            sent: if h == 100 { 25_000 } else { 1 + h as u64 % 3 },
            queued: 0,
            failed: u64::from(h % 50 == 0),
            unknown: 0,
        })
        .collect();
    long.runs = (0..6)
        .map(|i| RunMark {
            started_at: at(i * 5000),
            ended_at: (i < 5).then(|| at(i * 5000 + 900)),
            ended: if i < 5 { "window" } else { "running" }.into(),
            requests: (i < 5).then_some(5000),
        })
        .collect();
    let sent: u64 = long.sends.iter().map(|b| b.sent).sum();
    let failed: u64 = long.sends.iter().map(|b| b.failed).sum();
    long.funnel = Funnel {
        rows: sent + failed,
        sent,
        failed,
        ..Funnel::default()
    };
    let html = render(&long).unwrap();
    look_at("long", &html);
    assert!(
        html.contains("25,"),
        "the huge bucket's count shows with a separator"
    );
}
