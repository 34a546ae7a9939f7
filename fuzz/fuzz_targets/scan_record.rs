//! `abusedweb scan`'s field extraction over arbitrary text: one XmlWinEventLog
//! `<Event>` and one JSON object (any layout), never a panic; what comes out
//! is consistent: entity decoding leaves no more text than went in, `answer`
//! pieces come from QueryResults, an epoch time is digits with at most one
//! `.` (or a leading `-`), doubtful JSON values at most one per field.
#![no_main]

use abusedweb::scan::record::{answers, basename, decode_entities, epoch_text, from_json, from_xml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (record, _problems) = from_xml(&text);
    if let Ok(fields) = abusedweb::scan::json::parse(data) {
        // at most one doubtful value per text field (eight of them), each named
        let mut problems = Vec::new();
        let _ = from_json(&fields, &mut problems);
        assert!(problems.len() <= 8, "{problems:?}");
        assert!(problems.iter().all(|p| p.starts_with("field ")), "{problems:?}");
    }
    let decoded = match decode_entities(&text) {
        Ok(s) => s.into_owned(),
        Err((s, _)) => s,
    };
    assert!(decoded.len() <= text.len());
    for a in answers(&text) {
        assert!(!a.is_empty() && !a.contains(';'));
    }
    let _ = basename(&text);
    if let Some(t) = epoch_text(&text) {
        let t = t.strip_prefix('-').unwrap_or(&t);
        assert!(t.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
        assert!(t.matches('.').count() <= 1);
    }
    if let Some(r) = record {
        if let Some(q) = r.query_results {
            let _ = answers(&q);
        }
    }
});
