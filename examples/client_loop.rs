//! The benchmark's third reference: cosmocast's own HTTP client (one kept connection per sender)
//! in a bare loop: no CSV, no templates, no ledger. `bench/run.sh` runs it beside the reqwest
//! loop, against the same server at the same concurrency, so the gap between this rate and
//! cosmocast's is the campaign's own work.
//!
//!   cargo run --release --example client_loop -- URL BODY_FILE REQUESTS CONCURRENCY

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cosmocast::send::client::Client;
use cosmocast::send::retry::Attempt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, body, n, concurrency] = args.as_slice() else {
        return Err("usage: client_loop URL BODY_FILE REQUESTS CONCURRENCY".into());
    };
    let url = reqwest::Url::parse(url)?;
    let body = bytes::Bytes::from(std::fs::read(body)?);
    let n: u64 = n.parse()?;
    let concurrency: usize = concurrency.parse()?;
    let client = Client::new(
        url,
        ("bench", "the benchmark"),
        ("bench", "the benchmark"),
        Duration::from_secs(30),
        concurrency,
    )
    .map_err(|e| e.to_string())?;
    let next = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (mut conn, next, body) = (client.connection(), next.clone(), body.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                match conn.send(body.clone()).await {
                    Attempt::Response { status: 200, .. } => {}
                    other => return Err(format!("{other:?}")),
                }
            }
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{:.0}", n as f64 / secs);
    Ok(())
}
