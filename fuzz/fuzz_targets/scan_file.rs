//! Whole inputs through `abusedweb scan`'s reader: format detection, gzip,
//! EVTX chunk by chunk, JSON lines and arrays, XmlWinEventLog. Whatever the
//! bytes, reading ends with records, warnings or a reason the input was
//! skipped: never a panic, a hang or unbounded memory.
#![no_main]

use abusedweb::scan::read::{read_input, Item};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let mut items = 0usize;
    let read = read_input(Box::new(Cursor::new(data.to_vec())), &mut |item| {
        items += 1;
        if let Item::Warning(w) = item {
            assert!(!w.trim().is_empty(), "a warning without a text");
        }
    });
    // An input that is none of the formats gives nothing but its reason.
    if read.is_err() {
        assert_eq!(items, 0, "an unread input gave records or warnings");
    }
});
