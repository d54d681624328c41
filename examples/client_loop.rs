//! The benchmark's third reference: cosmocast's own `Client` (reqwest as the senders build it, a
//! kept connection per sender) in a bare loop: no CSV, no templates, no ledger. `bench/run.sh`
//! runs it beside the plain reqwest loop, against the same server at the same concurrency, so the
//! gap between this rate and cosmocast's is the campaign's own work.
//!
//!   cargo run --release --example client_loop -- URL BODY_FILE REQUESTS CONCURRENCY

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, body, n, concurrency] = args.as_slice() else {
        return Err("usage: client_loop URL BODY_FILE REQUESTS CONCURRENCY".into());
    };
    let rate = cosmocast::fuzzing::client_loop(
        url,
        std::fs::read(body)?,
        n.parse()?,
        concurrency.parse()?,
    )
    .await?;
    println!("{rate:.0}");
    Ok(())
}
