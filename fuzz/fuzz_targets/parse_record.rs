//! Every parser must turn any input into an event or an error, never a panic.
//! Run: `cargo +nightly fuzz run parse_record` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdr_domain::telemetry::parsers::{parse_record, split_records, ParseContext, SshdPidTracker};
use xdr_domain::telemetry::SourceType;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let source = SourceType::ALL[selector as usize % SourceType::ALL.len()];
    let ctx = ParseContext::received_at(chrono::DateTime::parse_from_rfc3339("2026-12-31T23:59:59Z").unwrap().to_utc());
    let mut tracker = SshdPidTracker::new();
    for record in split_records(source, text) {
        if let Ok(mut event) = parse_record(source, &record, &ctx) {
            tracker.attribute(&mut event);
        }
    }
});
