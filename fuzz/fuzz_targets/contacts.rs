//! Any bytes as a contact file: every row read, as UTF-8 and as windows-1252.
#![no_main]

use std::path::Path;

use cosmocast::contacts::ContactReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (delimiter, encoding) in [(None, None), (Some(b';'), Some(encoding_label()))] {
        let source: Box<dyn std::io::Read + Send> = match encoding {
            None => Box::new(std::io::Cursor::new(data.to_vec())),
            Some(enc) => Box::new(cosmocast::contacts::decoding_reader(
                std::io::Cursor::new(data.to_vec()),
                enc,
            )),
        };
        let Ok(reader) =
            ContactReader::from_reader(Path::new("fuzz.csv"), source, delimiter, encoding)
        else {
            continue;
        };
        for row in reader {
            if let Ok(row) = row {
                assert!(row.line >= 2, "a data row starts after the header");
            }
        }
    }
});

fn encoding_label() -> &'static cosmocast::contacts::Encoding {
    cosmocast::contacts::Encoding::for_label(b"windows-1252").unwrap()
}
