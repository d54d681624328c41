//! The benchmark's second reference: a bare loop of reqwest, the HTTP client cosmocast's senders
//! use, built with little more than its defaults and nothing around it (no CSV, no templates, no
//! ledger). `bench/run.sh` runs it against the same server at the same concurrency, so what
//! cosmocast's own client settings and work cost shows as the gap to this rate.
//!
//!   cargo run --release --example reqwest_loop -- URL BODY_FILE REQUESTS CONCURRENCY

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, body, n, concurrency] = args.as_slice() else {
        return Err("usage: reqwest_loop URL BODY_FILE REQUESTS CONCURRENCY".into());
    };
    let url = url::Url::parse(url)?;
    let body = bytes::Bytes::from(std::fs::read(body)?);
    let n: u64 = n.parse()?;
    let concurrency: usize = concurrency.parse()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, body, url) = (client.clone(), next.clone(), body.clone(), url.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let resp = client
                    .post(url.clone())
                    .header("token", "bench")
                    .header("channel_id", "bench")
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                resp.bytes().await?;
            }
            Ok::<(), reqwest::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{:.0}", n as f64 / secs);
    Ok(())
}
