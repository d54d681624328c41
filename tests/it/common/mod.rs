//! Shared test parts: a recording HTTP server on 127.0.0.1 and campaign fixtures in temp dirs.
#![allow(dead_code)]

pub mod postgres;
pub mod sandbox;
pub mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::Value;

/// The secret every test campaign reads from the environment; no output may contain it.
pub const TOKEN: &str = "tok-SECRET-6f1e9a2b";
pub const CHANNEL: &str = "chan-42";

#[derive(Debug, Clone)]
pub struct Recorded {
    pub headers: HashMap<String, String>,
    pub body: Value,
}

/// Decides the answer to the n-th request (0-based): status and body.
pub type Responder = Arc<dyn Fn(usize, &Value) -> (u16, String) + Send + Sync>;

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    respond: Responder,
}

/// A recording stand-in for the API, on its own thread and runtime.
pub struct TestServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Answers like the API: sent, with one message id per item.
pub fn answer_sent(n: usize, body: &Value) -> (u16, String) {
    let items = body["message"].as_array().map(|a| a.len()).unwrap_or(0);
    let ids: Vec<String> = (1..=items).map(|i| format!("msg-{n}-{i}")).collect();
    (
        200,
        serde_json::json!({"status": "sent", "contact_id": format!("ct-{n}"), "session_id": format!("ss-{n}"), "message_ids": ids})
            .to_string(),
    )
}

async fn handle(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let n = {
        let mut r = s.requests.lock().unwrap();
        r.push(Recorded {
            headers,
            body: body.clone(),
        });
        r.len() - 1
    };
    let (status, text) = (s.respond)(n, &body);
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        text,
    )
}

impl TestServer {
    pub fn start(respond: Responder) -> TestServer {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            respond,
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let s = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/messages/v1/send", post(handle))
                    .with_state(s);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        TestServer {
            addr,
            shared,
            _stop: stop_tx,
        }
    }

    pub fn sent_ok() -> TestServer {
        Self::start(Arc::new(answer_sent))
    }

    pub fn url(&self) -> String {
        format!("http://{}/messages/v1/send", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The phones the requests were for, sorted (requests of one run arrive in any order).
    pub fn phones(&self) -> Vec<String> {
        let mut phones: Vec<String> = self
            .requests()
            .iter()
            .map(|r| {
                r.body["contact"]["mobile_phone"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        phones.sort();
        phones
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }
}

/// A campaign in a temp dir: campaign.yaml, contacts.csv and a templates folder.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// The workspace's ledger is this database instead of a file (`on_postgres`).
    pub pg: Option<postgres::Database>,
}

/// Where a test keeps its ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        Fixture { dir, pg: None }
    }

    /// The same fixture with its ledger in a fresh PostgreSQL database.
    pub fn on(mut self, backend: Backend) -> Fixture {
        if backend == Backend::Postgres {
            self.pg = Some(postgres::database());
        }
        self
    }

    /// `COSMOCAST_LEDGER` for this fixture: the database's URL, or the file's path.
    pub fn ledger_env(&self) -> std::ffi::OsString {
        match &self.pg {
            Some(db) => db.url.clone().into(),
            None => self.ledger().into(),
        }
    }

    /// Whether a command created the ledger yet (its file, or its tables).
    pub fn has_ledger(&self) -> bool {
        match &self.pg {
            Some(db) => db.query("SELECT to_regclass('contacts') IS NOT NULL")[0][0] == "t",
            None => self.ledger().exists(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: &str) -> &Self {
        let p = self.path(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(p, content).unwrap();
        self
    }

    /// Deletes from contacts.csv the rows of these keys (the first cell), as a marketer would.
    pub fn drop_rows(&self, keys: &[&str]) {
        let csv = std::fs::read_to_string(self.path("contacts.csv")).unwrap();
        let kept: Vec<&str> = csv
            .lines()
            .filter(|l| !keys.iter().any(|k| l.starts_with(&format!("{k},"))))
            .collect();
        self.write("contacts.csv", &(kept.join("\n") + "\n"));
    }

    pub fn campaign(&self) -> PathBuf {
        self.path("campaign.yaml")
    }

    /// The workspace's ledger for this fixture (`COSMOCAST_LEDGER`). Not `cosmocast.sqlite`:
    /// a file of that name beside a campaign is a ledger at the old default place.
    pub fn ledger(&self) -> PathBuf {
        self.path("workspace.sqlite")
    }

    /// The real binary with the test token and channel in its environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("cosmocast").unwrap();
        // The workspace's ledger is the fixture's own: no test reads or writes the user's.
        c.current_dir(self.dir.path())
            .env("COSMOCAST_LEDGER", self.ledger_env())
            .env("XDG_DATA_HOME", self.path("xdg"))
            .env("COSMOBOTS_TOKEN", TOKEN)
            .env("COSMOBOTS_CHANNEL_ID", CHANNEL)
            .timeout(std::time::Duration::from_secs(60));
        c
    }

    /// `cosmocast run campaign.yaml --progress none`, ready to run.
    pub fn run_cmd(&self) -> assert_cmd::Command {
        let mut c = self.cmd();
        c.args(["run", "campaign.yaml", "--progress", "none"]);
        c
    }

    /// `status --json` of the campaign, which must succeed.
    pub fn status_json(&self) -> serde_json::Value {
        let out = self
            .cmd()
            .args(["status", "campaign.yaml", "--json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        serde_json::from_str(&stdout_of(&out)).unwrap()
    }

    /// `report campaign.yaml -o r.html`, which must succeed, and the page it wrote.
    pub fn report_page(&self) -> String {
        let out = self
            .cmd()
            .args(["report", "campaign.yaml", "-o", "r.html"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        std::fs::read_to_string(self.path("r.html")).unwrap()
    }

    /// Runs the campaign once and returns what the process did.
    pub fn run(&self) -> std::process::Output {
        self.run_cmd().output().unwrap()
    }

    /// Queries the ledger as any SQL tool would: the plain file or database, no cosmocast code
    /// between.
    pub fn sql(&self, query: &str) -> Vec<Vec<String>> {
        match &self.pg {
            Some(db) => db.query(query),
            None => sql(&self.ledger(), query),
        }
    }
}

/// Queries a ledger file with plain rusqlite.
pub fn sql(ledger: &Path, query: &str) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let mut stmt = conn.prepare(query).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                other => format!("{other:?}"),
            })
            .collect())
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// A minimal valid campaign against `url`, with the given messages block and extra keys.
pub fn campaign_yaml(url: &str, messages: &str, extra: &str) -> String {
    format!(
        "version: 1\nname: test-campaign\napi:\n  url: {url}\n  token: ${{COSMOBOTS_TOKEN}}\n  channel_id: ${{COSMOBOTS_CHANNEL_ID}}\n  channel: whatsapp\n  timeout: 5s\ncontacts:\n  file: contacts.csv\ncontact:\n  external_id: \"{{{{ customer_id }}}}\"\n  first_name: \"{{{{ first_name }}}}\"\n  mobile_phone: \"{{{{ phone }}}}\"\nmessages:\n{messages}{extra}"
    )
}

pub fn stdout_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read(path)
        .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .unwrap_or(false)
}

/// A port of 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}

/// Polls `done` until it holds, failing the test with `what` after `limit`: the one way the
/// tests wait for something another process does.
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// POSTs a body on loopback and returns the status code.
pub fn post_status(url: &str, body: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        client
            .post(url)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}
