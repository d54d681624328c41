//! `cosmocast check` (and the pre-flight of `run`) on broken campaigns: every problem names its
//! file and line, the exit code is 1, and nothing reaches the server.

use crate::common::*;

fn broken(server: &TestServer, yaml: &str, csv: &str, template: &str) -> Fixture {
    let f = Fixture::new();
    f.write("campaign.yaml", &yaml.replace("URL", &server.url()))
        .write("contacts.csv", csv)
        .write("templates/hello.txt.j2", template);
    f
}

const CSV: &str = "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,5511999990002\n";

/// Runs `check` and `run` and returns check's stderr; both must refuse with exit 1.
fn refuse(f: &Fixture, server: &TestServer) -> String {
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert_eq!(check.status.code(), Some(1), "check: {}", stderr_of(&check));
    // With --json, the same problems as one object on stdout.
    let json = f
        .cmd()
        .args(["check", "campaign.yaml", "--json"])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(1), "{}", stderr_of(&json));
    let object: serde_json::Value = serde_json::from_str(&stdout_of(&json))
        .unwrap_or_else(|e| panic!("{e}: {}", stdout_of(&json)));
    assert_eq!(object["ok"], false, "{object}");
    let first = object["problems"][0].as_str().unwrap_or_default();
    assert!(
        !first.is_empty() && stderr_of(&check).contains(first),
        "{object}"
    );
    let run = f.run();
    assert_eq!(run.status.code(), Some(1), "run: {}", stderr_of(&run));
    assert_eq!(server.count(), 0, "nothing may be sent");
    assert!(
        !f.ledger().exists(),
        "a refused run must not create the ledger"
    );
    stderr_of(&check)
}

#[test]
fn a_missing_column_names_the_template_line_and_the_columns() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml("URL", "  - type: text\n    template: hello.txt.j2\n", "");
    let f = broken(
        &server,
        &yaml,
        CSV,
        "Hello {{ first_name }},\nyour plan: {{ plan }}\n",
    );
    let err = refuse(&f, &server);
    assert!(
        err.contains("hello.txt.j2:2: the template uses `plan`, which is not a column"),
        "{err}"
    );
    assert!(
        err.contains("columns are: customer_id, first_name, phone"),
        "{err}"
    );
}

#[test]
fn a_broken_inline_template_names_the_campaign_line() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    text: \"Hi {{ first_name }\"\n",
        "",
    );
    let f = broken(&server, &yaml, CSV, "");
    let err = refuse(&f, &server);
    assert!(
        err.contains("campaign.yaml:17: template error in `messages[0].text`"),
        "{err}"
    );
}

#[test]
fn a_broken_template_file_names_its_line() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml("URL", "  - type: text\n    template: hello.txt.j2\n", "");
    let f = broken(&server, &yaml, CSV, "Hello\n{% if first_name %}\nno end\n");
    let err = refuse(&f, &server);
    assert!(err.contains("hello.txt.j2:"), "{err}");
    assert!(err.contains("template error"), "{err}");
}

#[test]
fn a_bad_yaml_line_is_located() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    text: Hi\n",
        "send:\n  concurrency: 4\n    retries: 2\n",
    );
    let f = broken(&server, &yaml, CSV, "");
    let err = refuse(&f, &server);
    // `retries: 2` indented under `concurrency: 4` continues no plain scalar: YAML takes no
    // `key: value` there, and the line says so.
    assert!(
        err.contains("campaign.yaml:20:12: mapping values are not allowed in this context"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_suggests_the_closest() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    text: Hi\n",
        "send:\n  concurency: 4\n",
    );
    let f = broken(&server, &yaml, CSV, "");
    let err = refuse(&f, &server);
    assert!(
        err.contains("campaign.yaml:19:3: send: unknown field `concurency`"),
        "{err}"
    );
    assert!(err.contains("did you mean `concurrency`?"), "{err}");
}

#[test]
fn an_invalid_row_names_the_csv_line_and_field() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    text: \"Hi {{ first_name }}\"\n",
        "",
    );
    let csv = "customer_id,first_name,phone\nC1,Ana,5511999990001\n\nC2,Bo,12\nC3,,\n";
    let f = broken(&server, &yaml, csv, "");
    let err = refuse(&f, &server);
    assert!(
        err.contains(
            "contacts.csv:4: row 2: `12` is too short to be a phone number (contact.mobile_phone)"
        ),
        "{err}"
    );
    assert!(
        err.contains("contacts.csv:5: row 3: `contact.mobile_phone` is empty"),
        "{err}"
    );
}

#[test]
fn a_ragged_csv_row_is_located() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml("URL", "  - type: text\n    text: Hi\n", "");
    let f = broken(
        &server,
        &yaml,
        "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo\n",
        "",
    );
    let err = refuse(&f, &server);
    assert!(
        err.contains("contacts.csv:3: this row has 2 fields, the header has 3"),
        "{err}"
    );
}

#[test]
fn a_valid_campaign_checks_clean_without_network() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    text: \"Hi {{ first_name }}\"\n",
        "",
    );
    let f = broken(&server, &yaml, CSV, "");
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("2 contacts to message"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(server.count(), 0);
    assert!(!f.ledger().exists());
}

/// Thousands of rows: duplicates counted whatever the distance to their first row, and every
/// problem reported, in row order.
#[test]
fn thousands_of_rows_count_duplicates_and_report_problems_in_row_order() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    text: \"Hi {{ first_name }}\"\n",
        "",
    )
    .replace(
        "  file: contacts.csv\n",
        "  file: contacts.csv\n  key: \"{{ customer_id }}\"\n",
    );
    // Row i repeats the key of row i - 1500 (or i - 3000) now and then: some pairs straddle a
    // batch, some a batch's halves.
    let key = |i: usize| match i {
        _ if i > 3000 && i.is_multiple_of(11) => i - 3000,
        _ if i > 1500 && i.is_multiple_of(7) => i - 1500,
        _ => i,
    };
    let rows = 9000;
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=rows {
        csv.push_str(&format!("C{},n{i},55119{i:08}\n", key(i)));
    }
    let mut seen = std::collections::HashSet::new();
    let duplicates = (1..=rows).filter(|&i| !seen.insert(key(i))).count();
    assert!(duplicates > 500, "the file has {duplicates} duplicates");
    let f = broken(&server, &yaml, &csv, "");
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    for expected in [
        format!("ok — {} contacts to message", rows - duplicates),
        format!("rows       {rows:>9}"),
        format!("duplicates {duplicates:>9}"),
        format!("to send    {:>9}", rows - duplicates),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} in {stdout}");
    }

    // The same file with a bad phone now and then: every problem, in row order.
    let bad: Vec<usize> = (1..=rows).filter(|i| i.is_multiple_of(1013)).collect();
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=rows {
        let phone = if bad.contains(&i) {
            "12".to_string()
        } else {
            format!("55119{i:08}")
        };
        csv.push_str(&format!("C{},n{i},{phone}\n", key(i)));
    }
    f.write("contacts.csv", &csv);
    let err = refuse(&f, &server);
    let reported: Vec<usize> = err
        .lines()
        .filter_map(|l| l.split(": row ").nth(1)?.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(reported, bad, "{err}");
}

/// The problems `check` printed, one a line (a hint follows its problem on the same line).
fn problem_lines(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| l.contains(".yaml:") || l.contains(".j2:") || l.contains(".csv:"))
        .collect()
}

#[test]
fn an_unknown_filter_in_a_branch_no_row_takes_is_one_problem_at_its_line() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    template: hello.txt.j2\n  - type: text\n    text: \"{{ first_name | titel }}\"\n",
        "",
    );
    let f = broken(
        &server,
        &yaml,
        CSV,
        "Olá {{ first_name }}\n{% if first_name == 'Zé' %}\nValor: {{ customer_id | brl }} {{ customer_id | brl }}\n{% include 'part.j2' %}\n{% endif %}\n",
    );
    f.write(
        "templates/part.j2",
        "Obrigado\n{% if customer_id is nmber %}{% endif %}\n",
    );
    let err = refuse(&f, &server);
    let lines = problem_lines(&err);
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].contains("hello.txt.j2:3: unknown filter `brl` — did you mean `money`?"),
        "{err}"
    );
    assert!(
        err.contains(
            "campaign.yaml:19: `messages[1].text`: unknown filter `titel` — did you mean `title`?"
        ),
        "{err}"
    );
    assert!(
        err.contains("part.j2:2: unknown test `nmber` — did you mean `number`?"),
        "{err}"
    );
}

#[test]
fn default_on_a_column_is_one_problem_that_says_to_use_or() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    text: \"Olá {{ first_name | default('cliente') }}!\"\n",
        "",
    );
    let csv = "customer_id,first_name,phone\nC1,,5511999990001\nC2,,5511999990002\n";
    let f = broken(&server, &yaml, csv, "");
    let err = refuse(&f, &server);
    assert_eq!(problem_lines(&err).len(), 1, "{err}");
    assert!(
        err.contains("campaign.yaml:17: `messages[0].text`: `first_name | default('cliente')` never uses its default"),
        "{err}"
    );
    assert!(
        err.contains("write `{{ first_name or 'cliente' }}`"),
        "{err}"
    );
}

#[test]
fn where_comparing_a_column_with_a_number_is_one_problem_with_the_fix() {
    let server = TestServer::sent_ok();
    let yaml = |filter: &str| {
        campaign_yaml(
            "URL",
            "  - type: text\n    text: \"Oi {{ first_name }}\"\n",
            "",
        )
        .replace(
            "  file: contacts.csv\n",
            &format!("  file: contacts.csv\n  where: \"{filter}\"\n"),
        )
    };
    let csv = "customer_id,first_name,phone,Valor\nC1,Ana,5511999990001,300\nC2,Bo,5511999990002,1500\nC3,Cy,5511999990003,999.5\n";
    let f = broken(&server, &yaml("Valor > 1000"), csv, "");
    let err = refuse(&f, &server);
    assert_eq!(problem_lines(&err).len(), 1, "{err}");
    assert!(
        err.contains("campaign.yaml:11: `contacts.where`: `Valor > 1000` compares the column `Valor` with a number"),
        "{err}"
    );
    assert!(
        err.contains("convert the cell first: `Valor | float > 1000`"),
        "{err}"
    );
    // The fix, as the hint writes it, counts the rows as a manager expects.
    f.write(
        "campaign.yaml",
        &yaml("Valor | float > 1000").replace("URL", &server.url()),
    );
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    assert!(stdout.contains("filtered           2"), "{stdout}");
    assert!(stdout.contains("to send            1"), "{stdout}");
}

#[test]
fn money_and_dates_are_written_for_brazil() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    text: \"{{ valor | money('BRL') }} até {{ vencimento | date('%d/%m/%Y') }}; {{ valor | money('USD') }}; {{ pago | date('%Y-%m-%d', from='%d/%m/%Y') }}\"\n",
        "",
    );
    let csv = "customer_id,first_name,phone,valor,vencimento,pago\nC1,Ana,5511999990001,1234.56,2026-12-05,01/11/2026\nC2,Bo,5511999990002,\"1.234,5\",2027-01-31,31/12/2026\n";
    let f = broken(&server, &yaml, csv, "");
    let out = f
        .cmd()
        .args([
            "preview",
            "campaign.yaml",
            "--row",
            "1",
            "--row",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let texts: Vec<String> = stdout_of(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"][0]["data"]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        texts,
        [
            "R$ 1.234,56 até 05/12/2026; $1,234.56; 2026-11-01",
            "R$ 1.234,50 até 31/01/2027; $1,234.50; 2026-12-31",
        ]
    );
}

/// `preview --row` shows every row asked for: one that cannot be sent is on the page with a
/// note (its problems follow), and a number past the file's end is named, not dropped.
#[test]
fn preview_names_every_row_it_was_asked_for() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    text: \"Oi {{ first_name }}\"\n",
        "",
    );
    let csv = "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,123\n";
    let f = broken(&server, &yaml, csv, "");
    let out = f
        .cmd()
        .args([
            "preview",
            "campaign.yaml",
            "--row",
            "1",
            "--row",
            "2",
            "--row",
            "99",
        ])
        .args(["--html", "p.html"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("contacts.csv: there is no row 99"), "{err}");
    assert!(err.contains("mobile_phone"), "row 2's problem: {err}");
    let page = std::fs::read_to_string(f.path("p.html")).unwrap();
    assert!(page.contains("Row 1 ("), "{page}");
    assert!(
        page.contains("Row 2 (") && page.contains("cannot be sent"),
        "{page}"
    );
    // Without --row, the first three rows are shown when there are fewer: nothing is missing.
    let out = f.cmd().args(["preview", "campaign.yaml"]).output().unwrap();
    assert!(!stderr_of(&out).contains("no row"), "{}", stderr_of(&out));

    // A row the CSV reader rejects is there all the same, with its problem; another row's
    // problem is not a preview's to list, and a preview sends nothing to refuse.
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,5511999990002,x\nC3,Cy,5511999990003\n",
    );
    let out = f
        .cmd()
        .args(["preview", "campaign.yaml", "--row", "2"])
        .output()
        .unwrap();
    let (text, err) = (stdout_of(&out), stderr_of(&out));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        text.contains("row 2 (contacts.csv:3) — cannot be read"),
        "{text}"
    );
    assert!(
        err.contains("contacts.csv:3: this row has 4 fields"),
        "{err}"
    );
    assert!(
        !err.contains("no row") && !err.contains("nothing was sent"),
        "{err}"
    );
    let out = f
        .cmd()
        .args(["preview", "campaign.yaml", "--row", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).is_empty(), "{}", stderr_of(&out));
}

#[test]
fn an_ambiguous_amount_or_an_unreadable_date_is_a_problem_of_its_row() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: text\n    text: \"{{ valor | money('BRL') }} até {{ vencimento | date('%d/%m/%Y') }}\"\n",
        "",
    );
    let csv = "customer_id,first_name,phone,valor,vencimento\nC1,Ana,5511999990001,1.234,2026-12-05\nC2,Bo,5511999990002,10,05/12/2026\nC3,Cy,5511999990003,\"1.234,00\",2026-12-05\n";
    let f = broken(&server, &yaml, csv, "");
    let err = refuse(&f, &server);
    let lines = problem_lines(&err);
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("contacts.csv:2: row 1: ")
            && lines[0].contains("`1.234` is ambiguous"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("contacts.csv:3: row 2: ")
            && lines[1].contains("`05/12/2026` is not a date written as ISO 8601"),
        "{err}"
    );
}

#[test]
fn a_constant_button_title_too_long_is_one_problem_at_its_campaign_line() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml(
        "URL",
        "  - type: buttons\n    text: \"Oi {{ first_name }}, renova?\"\n    buttons:\n      - { title: \"Quero renovar meu plano agora\", type: payload, value: \"renew-yes\" }\n      - { title: \"{{ first_name }}\", type: payload, value: \"no\" }\n",
        "",
    );
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=50 {
        csv.push_str(&format!("C{i},n{i},55119{i:08}\n"));
    }
    let f = broken(&server, &yaml, &csv, "");
    let err = refuse(&f, &server);
    assert_eq!(
        problem_lines(&err),
        [
            "campaign.yaml:19: `messages[0].buttons[0].title` is 29 characters long; on WhatsApp a button title may hold at most 20 — it is written in the campaign file, the same for every row: fix it there",
        ],
        "{err}"
    );
}

/// A campaign without `contact.mobile_phone` on a channel that needs a phone: one problem at
/// the campaign, not one a row at the contact file (which is fine).
#[test]
fn a_campaign_with_no_phone_field_is_one_problem_at_the_campaign() {
    let server = TestServer::sent_ok();
    let yaml = campaign_yaml("URL", "  - type: text\n    text: oi\n", "")
        .replace("  mobile_phone: \"{{ phone }}\"\n", "");
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=30 {
        csv.push_str(&format!("C{i},n{i},55119{i:08}\n"));
    }
    let f = broken(&server, &yaml, &csv, "");
    let err = refuse(&f, &server);
    assert_eq!(
        problem_lines(&err),
        [
            "campaign.yaml:11: the campaign has no `contact.mobile_phone`, and whatsapp reaches each contact by phone — add it under `contact:`, naming the column that holds the phone: `mobile_phone: \"{{ phone }}\"`",
        ],
        "{err}"
    );
}

/// A contact file with a header and no row (the wrong sheet exported) is no error, but `check`
/// and `run` say nobody would be messaged.
#[test]
fn a_file_with_a_header_and_no_rows_is_named() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: oi\n", ""),
    )
    .write("contacts.csv", "customer_id,first_name,phone\n");
    let warning = "contacts.csv has a header but no rows: nobody is messaged";
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr_of(&check));
    assert!(stdout_of(&check).contains(warning), "{}", stdout_of(&check));
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains(warning), "{}", stderr_of(&out));
    assert_eq!(server.count(), 0);
}
