//! Any campaign text: parsed, checked, and its templates compiled against a fixed header.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/nonexistent/fuzz/campaign.yaml");
    let Ok(campaign) = cosmocast::campaign::parse(file, text.to_string()) else {
        return;
    };
    let csv = "customer_id,first_name,phone,plan\nC1,Ana,5511999990001,gold\n";
    let reader = cosmocast::contacts::ContactReader::from_reader(
        Path::new("fuzz.csv"),
        Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
        None,
        None,
    );
    let Ok(mut reader) = reader else { return };
    let Ok(renderer) = cosmocast::render::Renderer::new(&campaign, reader.headers.clone()) else {
        return;
    };
    let renderer = Arc::new(renderer);
    while let Some(Ok(row)) = reader.next() {
        let _ = renderer.included(&row, Path::new("fuzz.csv"));
        if let Ok(r) = renderer.render(&row, Path::new("fuzz.csv")) {
            let _ = serde_json::to_vec(&r.request);
        }
    }
});
