//! Entry points for the fuzz targets (`fuzz/`) and the benchmark's bare client loop: they reach
//! the crate's insides through here, so the rest of the crate stays private.

use std::path::Path;
use std::sync::Arc;

/// Any campaign text: parsed, checked, and its templates compiled against a fixed header and
/// rendered for its rows.
pub fn campaign(text: &str) {
    let file = Path::new("/nonexistent/fuzz/campaign.yaml");
    let Ok(campaign) = crate::campaign::parse(file, text.to_string()) else {
        return;
    };
    let csv = "customer_id,first_name,phone,plan\nC1,Ana,5511999990001,gold\n";
    let Ok(mut reader) = crate::contacts::ContactReader::from_reader(
        Path::new("fuzz.csv"),
        Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
        None,
        None,
    ) else {
        return;
    };
    let Ok(renderer) = crate::render::Renderer::new(&campaign, reader.headers.clone()) else {
        return;
    };
    let renderer = Arc::new(renderer);
    while let Some(Ok(row)) = reader.next() {
        let _ = renderer.included(&row, Path::new("fuzz.csv"));
        if let Ok(r) = renderer.render(&row, Path::new("fuzz.csv")) {
            let _ = serde_json::to_vec(&r.request);
        }
    }
}

/// Any bytes as a contact file, as the campaign would read it undeclared and declared
/// windows-1252 with `;`: every row read, and each row's line after the header.
pub fn contacts(data: &[u8]) {
    let windows_1252 = encoding_rs::Encoding::for_label(b"windows-1252");
    for (delimiter, encoding) in [(None, None), (Some(b';'), windows_1252)] {
        let Ok(reader) = crate::contacts::ContactReader::from_bytes(
            Path::new("fuzz.csv"),
            Box::new(std::io::Cursor::new(data.to_vec())),
            delimiter,
            encoding,
        ) else {
            continue;
        };
        for row in reader.flatten() {
            assert!(row.line >= 2, "a data row starts after the header");
        }
    }
}

/// The benchmark's bare loop of cosmocast's own HTTP client (`examples/client_loop.rs`): `n`
/// requests of `body` over `concurrency` kept connections; returns requests per second.
pub async fn client_loop(
    url: &str,
    body: Vec<u8>,
    n: u64,
    concurrency: usize,
) -> Result<f64, String> {
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::send::client::{Client, Credentials};
    use crate::send::retry::Attempt;

    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let creds = Credentials {
        token: "bench",
        token_origin: "the benchmark",
        channel_id: "bench",
        channel_id_origin: "the benchmark",
    };
    let client = Client::new(
        &url,
        &creds,
        std::time::Duration::from_secs(30),
        concurrency,
    )
    .map_err(|e| e.to_string())?;
    let body = bytes::Bytes::from(body);
    let next = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, body) = (client.clone(), next.clone(), body.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                match client.send(body.clone()).await {
                    Attempt::Response { status: 200, .. } => {}
                    other => return Err(format!("{other:?}")),
                }
            }
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
