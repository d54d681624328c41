//! Valid variations of input, end to end through the real binary: delimiters and BOMs, declared
//! encodings, `where`, `exclude`, the send window, `--dry-run`, `--skip-invalid` and `test --to`.

use crate::common::*;

fn text_campaign(server: &TestServer, extra_contacts: &str, extra: &str) -> String {
    campaign_yaml(
        &server.url(),
        "  - type: text\n    text: \"Olá {{ first_name }}\"\n",
        extra,
    )
    .replace(
        "  file: contacts.csv\n",
        &format!("  file: contacts.csv\n{extra_contacts}"),
    )
}

#[test]
fn a_semicolon_csv_with_a_bom_is_read() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("campaign.yaml", &text_campaign(&server, "", ""));
    std::fs::write(f.path("contacts.csv"), b"\xEF\xBB\xBFcustomer_id;first_name;phone\nC1;Ana;5511999990001\nC2;\"Bo; Jr\";5511999990002\n").unwrap();
    f.run_cmd().assert().code(0);
    let names: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            r.body["contact"]["first_name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"Ana".to_string()) && names.contains(&"Bo; Jr".to_string()),
        "{names:?}"
    );
    assert!(server.requests().iter().all(|r| {
        r.body["contact"]["external_id"]
            .as_str()
            .unwrap()
            .starts_with('C')
    }));
}

/// A contact file that is a folder, a pipe or a broken link is named as what it is, not as
/// missing.
#[test]
fn a_contact_file_that_is_no_file_says_what_it_is() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("campaign.yaml", &text_campaign(&server, "", ""));
    std::fs::create_dir(f.path("contacts.csv")).unwrap();
    let said = |f: &Fixture| stderr_of(&f.cmd().args(["check", "campaign.yaml"]).output().unwrap());
    assert!(
        said(&f).contains("the contact file contacts.csv is a folder"),
        "{}",
        said(&f)
    );
    std::fs::remove_dir(f.path("contacts.csv")).unwrap();
    std::os::unix::fs::symlink("gone.csv", f.path("contacts.csv")).unwrap();
    assert!(
        said(&f).contains("is a link to a file that does not exist"),
        "{}",
        said(&f)
    );
    std::fs::remove_file(f.path("contacts.csv")).unwrap();
    let fifo = std::ffi::CString::new(f.path("contacts.csv").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert!(
        said(&f).contains("is no regular file (a pipe, socket or device)"),
        "{}",
        said(&f)
    );
    assert_eq!(server.count(), 0);
}

/// A pipe named as an exclusion list, a template or a list to import is refused at once:
/// opening one would wait for a writer forever.
#[test]
fn a_pipe_is_refused_wherever_a_file_is_read() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let fifo = |name: &str| {
        let path = std::ffi::CString::new(f.path(name).to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    };
    fifo("vip.csv");
    fifo("templates/pipe.j2");
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,Ana,5511999990001\n",
    );
    let quick = |args: &[&str]| {
        let mut c = f.cmd();
        c.args(args).timeout(std::time::Duration::from_secs(10));
        c.output().unwrap()
    };
    f.write(
        "campaign.yaml",
        &text_campaign(&server, "  exclude: [vip.csv]\n", ""),
    );
    let out = quick(&["check", "campaign.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("the exclusion list vip.csv is no regular file (a pipe"),
        "{}",
        stderr_of(&out)
    );
    f.write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    template: pipe.j2\n", ""),
    );
    let out = quick(&["check", "campaign.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("is no regular file (a pipe"),
        "{}",
        stderr_of(&out)
    );
    let out = quick(&["optouts", "import", "vip.csv", "--column", "phone"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(
            "vip.csv is no regular file (a pipe, socket or device) — name the CSV file to import"
        ),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(server.count(), 0);
}

#[test]
fn a_windows_1252_file_keeps_its_accents() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &text_campaign(&server, "  encoding: windows-1252\n", ""),
    );
    // "José" and "Conceição" in windows-1252.
    std::fs::write(f.path("contacts.csv"), b"customer_id,first_name,phone\nC1,Jos\xe9,5511999990001\nC2,Concei\xe7\xe3o,5511999990002\n").unwrap();
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let mut texts: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            r.body["message"][0]["data"]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    texts.sort();
    assert_eq!(texts, vec!["Olá Conceição", "Olá José"]);
}

/// The texts the server received, sorted.
fn sent_texts(server: &TestServer) -> Vec<String> {
    let mut texts: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            r.body["message"][0]["data"]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    texts.sort();
    texts
}

#[test]
fn a_utf16_file_from_excel_is_read_whatever_the_campaign_declares() {
    // Excel's "Unicode text": UTF-16 LE with a BOM, tab-separated, CRLF line ends.
    let text = "customer_id\tfirst_name\tphone\r\nC1\tJoão\t5511999990001\r\nC2\tConceição\t5511999990002\r\n";
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    for declared in ["", "  encoding: windows-1252\n"] {
        let server = TestServer::sent_ok();
        let f = Fixture::new();
        f.write("campaign.yaml", &text_campaign(&server, declared, ""));
        std::fs::write(f.path("contacts.csv"), &bytes).unwrap();
        let out = f.run();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{declared:?}: {}",
            stderr_of(&out)
        );
        assert_eq!(
            sent_texts(&server),
            ["Olá Conceição", "Olá João"],
            "{declared:?}"
        );
    }
}

#[test]
fn a_declared_windows_1252_file_with_semicolons_is_split_into_its_columns() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &text_campaign(&server, "  encoding: windows-1252\n", ""),
    );
    // Excel's "CSV" in a Portuguese locale: windows-1252, semicolons, a cell over two lines.
    std::fs::write(
        f.path("contacts.csv"),
        b"customer_id;first_name;phone;endere\xe7o\r\nC1;Jos\xe9;5511999990001;\"Rua A\r\nCentro\"\r\nC2;Concei\xe7\xe3o;5511999990002;Rua B\r\n",
    )
    .unwrap();
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(sent_texts(&server), ["Olá Conceição", "Olá José"]);
}

#[test]
fn a_stray_quote_sends_no_one_the_others_data_and_skip_invalid_skips_its_row() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("campaign.yaml", &text_campaign(&server, "", ""));
    // Row 2 opens a quote that row 20 closes: rows 3 to 20 fall inside one cell.
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=30 {
        let name = match i {
            2 => "\"Ann".to_string(),
            20 => "Tim\"".to_string(),
            _ => format!("Name{i}"),
        };
        csv += &format!("C{i},{name},55119999900{i:02}\n");
    }
    f.write("contacts.csv", &csv);
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stderr_of(&check).contains(
            "contacts.csv:3: column \"first_name\" starts a quoted cell that runs 19 lines (to line 21)"
        ),
        "{}",
        stderr_of(&check)
    );
    let out = f
        .cmd()
        .args([
            "run",
            "campaign.yaml",
            "--progress",
            "none",
            "--skip-invalid",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let texts = sent_texts(&server);
    let mut expected: Vec<String> = [1]
        .into_iter()
        .chain(21..=30)
        .map(|i| format!("Olá Name{i}"))
        .collect();
    expected.sort();
    assert_eq!(texts, expected);
    // An invalid row is judged again by every run: nothing is recorded for it.
    let skipped = f.sql("SELECT key, status, reason FROM contacts WHERE status = 'skipped'");
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[test]
fn where_leaves_rows_out_and_exclude_skips_contacts() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &text_campaign(&server, "  where: \"opt_in == 'yes'\"\n  exclude: [optouts.csv]\n", ""),
    )
    .write(
        "contacts.csv",
        "customer_id,first_name,phone,opt_in\nC1,Ana,5511999990001,yes\nC2,Bo,5511999990002,no\nC3,Cy,+55 (11) 99999-0003,yes\nC4,Di,5511999990004,yes\n",
    )
    .write("optouts.csv", "phone\n55 11 99999 0003\n");
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let mut sent: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            r.body["contact"]["external_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    sent.sort();
    assert_eq!(sent, vec!["C1", "C4"]);
    let rows = f.sql("SELECT key, status, reason FROM contacts ORDER BY key");
    let rows: Vec<String> = rows.iter().map(|r| r.join(" ")).collect();
    assert_eq!(
        rows,
        vec![
            "5511999990001 sent ",
            "5511999990003 skipped excluded",
            "5511999990004 sent "
        ]
    );
    // A second run sends nothing and keeps the exclusion.
    f.run_cmd().assert().code(0);
    assert_eq!(server.count(), 2);
}

fn window(from_hour: u32, until_hour: u32) -> String {
    format!(
        "send:\n  window:\n    from: \"{from_hour:02}:00\"\n    until: \"{until_hour:02}:00\"\n    timezone: UTC\n"
    )
}

fn utc_hour() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ((secs / 3600) % 24) as u32
}

#[test]
fn outside_the_window_nothing_is_sent_and_the_exit_is_4() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let h = utc_hour();
    f.write(
        "campaign.yaml",
        &text_campaign(&server, "", &window((h + 2) % 24, (h + 3) % 24)),
    )
    .write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,Ana,5511999990001\n",
    );
    let out = f.run();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("outside the send window")
            && err.contains(&format!("{:02}:00 UTC", (h + 2) % 24)),
        "{err}"
    );
    assert_eq!(server.count(), 0);
    // With --json, a cron job still gets one object on stdout saying why.
    let out = f.run_cmd().arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(
        (
            &json["exit_code"],
            &json["stopped"]["reason"],
            &json["work_remains"]
        ),
        (&4.into(), &"window".into(), &true.into()),
        "{json}"
    );
    assert_eq!(server.count(), 0);
    // status and a dry run say the window is closed beside what a run would send.
    let closed = "is closed now; it next opens";
    let status = stdout_of(&f.cmd().args(["status", "campaign.yaml"]).output().unwrap());
    assert!(
        status.contains(closed) && status.contains("a run sends nothing until then"),
        "{status}"
    );
    let dry = f.run_cmd().arg("--dry-run").output().unwrap();
    assert!(stderr_of(&dry).contains(closed), "{}", stderr_of(&dry));
}

#[test]
fn inside_the_window_the_run_sends() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let h = utc_hour();
    f.write(
        "campaign.yaml",
        &text_campaign(&server, "", &window((h + 23) % 24, (h + 2) % 24)),
    )
    .write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,Ana,5511999990001\n",
    );
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 1);
}

#[test]
fn dry_run_prints_requests_and_writes_nothing() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("campaign.yaml", &text_campaign(&server, "", ""))
        .write(
            "contacts.csv",
            "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,5511999990002\n",
        );
    let out = f
        .cmd()
        .args(["run", "campaign.yaml", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let lines: Vec<serde_json::Value> = stdout_of(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["message"][0]["data"]["text"], "Olá Ana");
    assert_eq!(server.count(), 0);
    assert!(!f.ledger().exists());
}

#[test]
fn skip_invalid_records_nothing_for_a_bad_row_and_the_row_fixed_is_sent() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("campaign.yaml", &text_campaign(&server, "", ""))
        .write(
            "contacts.csv",
            "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,123\nC3,Cy,5511999990003\n",
        );
    f.run_cmd().assert().code(1);
    assert_eq!(server.count(), 0);
    let out = f
        .cmd()
        .args([
            "run",
            "campaign.yaml",
            "--progress",
            "none",
            "--skip-invalid",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 2);
    assert!(stdout_of(&out).contains("invalid 1"), "{}", stdout_of(&out));
    assert!(
        stdout_of(&out)
            .contains("1 invalid row left out: `cosmocast check campaign.yaml` says why"),
        "{}",
        stdout_of(&out)
    );
    assert!(
        f.sql("SELECT key FROM contacts WHERE status = 'skipped'")
            .is_empty()
    );
    let export = stdout_of(&f.cmd().args(["export", "campaign.yaml"]).output().unwrap());
    let line = export
        .lines()
        .find(|l| l.contains(",2,invalid,"))
        .unwrap_or_default();
    assert!(line.contains("`123` is too short"), "{export}");

    // Fixed, the row is sent by the next run and counts as invalid no more.
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,5511999990002\nC3,Cy,5511999990003\n",
    );
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 3);
    assert!(
        stdout_of(&out).contains("sent 3") && stdout_of(&out).contains("invalid 0"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn test_sends_to_the_test_phone_and_is_recorded_apart() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &text_campaign(&server, "", "").replace(
            "  external_id",
            "  id: \"ct-{{ customer_id }}\"\n  external_id",
        ),
    )
    .write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,5511999990002\n,,\n",
    );
    // A blank row is nobody: said so, nothing sent.
    let out = f
        .cmd()
        .args([
            "test",
            "campaign.yaml",
            "--to",
            "+1 (201) 555-0123",
            "--row",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("contacts.csv:4: row 3 is blank"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(server.count(), 0);
    let out = f
        .cmd()
        .args([
            "test",
            "campaign.yaml",
            "--to",
            "+1 (201) 555-0123",
            "--row",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let contact = &reqs[0].body["contact"];
    assert_eq!(contact["mobile_phone"], "12015550123");
    assert_eq!(
        contact["id"], "new_contact",
        "a test never addresses the real contact"
    );
    assert!(contact.get("external_id").is_none());
    assert_eq!(reqs[0].body["message"][0]["data"]["text"], "Olá Bo");
    assert_eq!(f.sql("SELECT COUNT(*) FROM contacts")[0][0], "0");
    assert_eq!(
        f.sql("SELECT row_number, phone, status FROM test_sends"),
        vec![vec!["2", "12015550123", "sent"]]
    );
    // The real run still sends to both contacts.
    f.run_cmd().assert().code(0);
    assert_eq!(server.count(), 3);
}

/// A test phone on the suppression list is refused, sending nothing; a landline is sent to,
/// with a warning that the channel cannot reach it.
#[test]
fn test_refuses_an_opted_out_phone_and_warns_of_a_landline() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("campaign.yaml", &text_campaign(&server, "", ""))
        .write(
            "contacts.csv",
            "customer_id,first_name,phone\nC1,Ana,5511999990001\n",
        );
    let add = f
        .cmd()
        .args(["optouts", "add", "+55 11 98765-4321"])
        .output()
        .unwrap();
    assert_eq!(add.status.code(), Some(0), "{}", stderr_of(&add));
    let test = |to: &str| {
        f.cmd()
            .args(["test", "campaign.yaml", "--to", to])
            .output()
            .unwrap()
    };
    let out = test("+55 (11) 98765-4321");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("--to +5511987654321 is on the ledger's suppression list"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(server.count(), 0);
    let out = test("+55 (11) 3456-7890");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out)
            .contains("warning: --to +551134567890 is a landline: whatsapp cannot reach it"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(server.count(), 1);
    // An API that cannot be reached: the campaign cannot run (1), as `run` says of it.
    let url = crate::hostile::closed_port_url();
    let yaml = std::fs::read_to_string(f.path("campaign.yaml")).unwrap();
    let yaml = format!("{}send:\n  retries: 0\n", yaml.replace(&server.url(), &url));
    f.write("campaign.yaml", &yaml);
    let out = test("+55 11 99999-0002");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("refused the connection"),
        "{}",
        stderr_of(&out)
    );
}

/// An exclusion list taken off after a run: its contacts stay `skipped: excluded` (a recorded
/// skip is final), and check and status say so rather than leave the marketer wondering.
#[test]
fn a_contact_no_longer_excluded_stays_skipped_and_is_named() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let exclude = "  exclude:\n    - { file: vip.csv, column: Codigo }\n";
    f.write("campaign.yaml", &text_campaign(&server, exclude, ""))
        .write(
            "contacts.csv",
            "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,5511999990002\n",
        )
        .write("vip.csv", "Codigo\n5511999990001\n");
    assert_eq!(f.run().status.code(), Some(0));
    assert_eq!(server.count(), 1);
    f.write("campaign.yaml", &text_campaign(&server, "", ""));
    let said = "1 contact recorded `skipped: excluded` is on no `contacts.exclude` list now, but a recorded skip is final";
    let check = stdout_of(&f.cmd().args(["check", "campaign.yaml"]).output().unwrap());
    assert!(check.contains(said), "{check}");
    let status = stdout_of(&f.cmd().args(["status", "campaign.yaml"]).output().unwrap());
    assert!(status.contains(said), "{status}");
    assert_eq!(f.run().status.code(), Some(0));
    assert_eq!(server.count(), 1, "still not sent");
}

#[test]
fn an_excel_csv_with_its_sep_line_and_blank_rows_sends_everyone_else() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &text_campaign(
            &server,
            "  exclude:\n    - { file: optouts.csv, column: Telefone }\n",
            "",
        ),
    )
    .write(
        "contacts.csv",
        "sep=;\r\ncustomer_id;first_name;phone\r\nC1;Ana;5511999990001\r\n;;\r\nC2;Bo;5511999990002\r\nC3;Cy;5511999990003\r\n;;\r\n;;\r\n",
    )
    .write("optouts.csv", "sep=;\nNome;Telefone\nBo;5511999990002\n");
    // A misspelt column is named with the header's, and the close one offered.
    let yaml = std::fs::read_to_string(f.path("campaign.yaml")).unwrap();
    f.write(
        "campaign.yaml",
        &yaml.replace("column: Telefone", "column: Telefon"),
    );
    let err = stderr_of(&f.cmd().args(["check", "campaign.yaml"]).output().unwrap());
    assert!(
        err.contains(r#"has no column "Telefon"; its header has "Nome", "Telefone""#)
            && err.contains("did you mean `Telefone`?"),
        "{err}"
    );
    // A part of the name points at the column that holds it, not at the nearest spelling
    // (`Nome`).
    f.write(
        "campaign.yaml",
        &yaml.replace("column: Telefone", "column: Fone"),
    );
    let err = stderr_of(&f.cmd().args(["check", "campaign.yaml"]).output().unwrap());
    assert!(err.contains("did you mean `Telefone`?"), "{err}");
    // The list named bare: the phone column is the one offered.
    f.write(
        "campaign.yaml",
        &yaml.replace("{ file: optouts.csv, column: Telefone }", "optouts.csv"),
    );
    let err = stderr_of(&f.cmd().args(["check", "campaign.yaml"]).output().unwrap());
    assert!(
        err.contains("{ file: optouts.csv, column: Telefone }"),
        "{err}"
    );
    f.write("campaign.yaml", &yaml);
    let check = f
        .cmd()
        .args(["check", "campaign.yaml", "--json"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr_of(&check));
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&check)).unwrap();
    assert_eq!(
        (
            &json["rows"],
            &json["blank"],
            &json["excluded"],
            &json["to_send"]
        ),
        (&6.into(), &3.into(), &1.into(), &2.into())
    );
    let out = f.run_cmd().arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(sent_texts(&server), ["Olá Ana", "Olá Cy"]);
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(json["blank"], 3, "{json}");
    // Blank rows are nobody: the ledger holds the three contacts only.
    assert_eq!(f.sql("SELECT count(*) FROM contacts"), [["3"]]);
    let json = f.status_json();
    assert_eq!(json["next_run"]["blank"], 3, "{json}");
    // `optouts import` reads the same way, its line numbers counting the `sep=` line.
    f.write(
        "crm.csv",
        "sep=;\nNome;Telefone\nDi;5511999990004\n;\nEd;12\n",
    );
    let out = f
        .cmd()
        .args(["optouts", "import", "crm.csv", "--column", "Telefone"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("imported 1 phone"),
        "{}",
        stdout_of(&out)
    );
    assert!(
        stderr_of(&out).contains("crm.csv:5:"),
        "{}",
        stderr_of(&out)
    );
}

/// `text` in UTF-16 little-endian, with its byte-order mark or without.
fn utf16(text: &str, bom: bool) -> Vec<u8> {
    let mut bytes = if bom { vec![0xFF, 0xFE] } else { vec![] };
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

#[test]
fn an_exclusion_list_saved_as_unicode_text_excludes_its_people_or_is_refused() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &text_campaign(
            &server,
            "  exclude:\n    - naoenviar.txt\n    - { file: descadastros.txt, column: Telefone }\n",
            "",
        ),
    )
    .write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,5511999990002\nC3,Cy,5511999990003\n",
    );
    // Excel's "Unicode text": UTF-16 with its mark, tab-separated.
    std::fs::write(f.path("naoenviar.txt"), utf16("5511999990001\r\n", true)).unwrap();
    std::fs::write(
        f.path("descadastros.txt"),
        utf16("Nome\tTelefone\r\nCy\t5511999990003\r\n", true),
    )
    .unwrap();
    let check = f
        .cmd()
        .args(["check", "campaign.yaml", "--json"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr_of(&check));
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&check)).unwrap();
    assert_eq!(
        (&json["excluded"], &json["to_send"]),
        (&2.into(), &1.into())
    );

    // Without its mark the list would match nobody: it is refused, and nothing is sent.
    std::fs::write(f.path("naoenviar.txt"), utf16("5511999990001\r\n", false)).unwrap();
    let out = f.run();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("naoenviar.txt holds NUL bytes") && err.contains("CSV UTF-8"),
        "{err}"
    );
    assert_eq!(server.count(), 0);
}

#[test]
fn an_exclusion_list_that_would_exclude_nobody_is_refused_at_its_line() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &text_campaign(&server, "  exclude: [vip.csv]\n", ""),
    )
    .write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,5511999990002\nC3,Cy,5511999990003\n",
    );
    let refused = |list: &str, expected: &str| {
        f.write("vip.csv", list);
        let out = f.run();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{list:?}: {err}");
        assert!(err.contains(expected), "{list:?}: {err}");
    };
    // A stray quote would read every line after it as one cell: the quote's line is named.
    refused(
        "5511999990001\r\n\"5511999990002\r\n5511999990003\r\n",
        "vip.csv:2: a quote opens on this line",
    );
    // A second cell after another delimiter than the first line's; lines counted with CRLF.
    refused(
        "5511999990001\r\n5511999990002;pediu\r\n",
        "(line 2: \"5511999990002;pediu\")",
    );
    refused(
        "5511999990001\r\n\r\n5511999990002,1\r\n",
        "(line 3: \"5511999990002\", \"1\")",
    );
    // Every key is a phone here: a cell that is none excludes nobody, and is named.
    refused(
        "5511999990001\n1199999.0\n",
        "vip.csv:2: `1199999.0` is no phone number",
    );
    assert_eq!(server.count(), 0, "nothing was sent");
    f.write("vip.csv", "5511999990001\r\n+55 (11) 99999-0003\r\n");
    f.run_cmd().assert().code(0);
    assert_eq!(sent_texts(&server), ["Olá Bo"]);
}

#[test]
fn a_utf8_file_declared_windows_1252_is_refused_however_late_its_first_accent() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &text_campaign(&server, "  encoding: windows-1252\n", ""),
    );
    // Past the first 64 KiB, all ASCII until then: read as declared, João would go as JoÃ£o.
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=3000 {
        csv.push_str(&format!("C{i},Name{i},55119{i:08}\n"));
    }
    csv.push_str("C9999,João,5511999999999\n");
    f.write("contacts.csv", &csv);
    let out = f.run();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("contacts.csv:3002: this file is UTF-8 (e.g. \"João\")"),
        "{err}"
    );
    assert_eq!(server.count(), 0);
}

#[test]
fn blank_lines_above_the_header_are_passed_over_and_counted() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("campaign.yaml", &text_campaign(&server, "", ""));
    // The delimiter is the header's, not the blank first line's; lines are the file's own.
    f.write(
        "contacts.csv",
        "\r\n\r\ncustomer_id;first_name;first_name\r\nC1;Ana;x\r\n",
    );
    let err = stderr_of(&f.cmd().args(["check", "campaign.yaml"]).output().unwrap());
    assert!(
        err.contains("contacts.csv:3:3: the header \"first_name\" appears twice"),
        "{err}"
    );
    f.write(
        "contacts.csv",
        "\r\n\r\ncustomer_id;first_name;phone\r\nC1;Ana;5511999990001\r\n",
    );
    let out = f.cmd().args(["preview", "campaign.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("── row 1 (contacts.csv:4)"),
        "{}",
        stdout_of(&out)
    );
    f.run_cmd().assert().code(0);
    assert_eq!(sent_texts(&server), ["Olá Ana"]);
}
