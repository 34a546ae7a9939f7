//! Whole inputs through `abusedweb scan`'s reader: format detection, gzip,
//! EVTX chunk by chunk, JSON lines and arrays, XmlWinEventLog. Whatever the
//! bytes, reading ends with records, warnings or a reason the input was
//! skipped: never a panic, a hang or unbounded memory. Read by one thread
//! and by three (EVTX chunks rendered, JSON lines and pretty-printed
//! objects parsed in runs of a few hundred bytes), it gives the same items
//! in the same order; and every JSON record the runs' parser takes as it
//! goes from value to value equals its text parsed alone (an assertion in
//! `json::Parser` under the fuzzers).
#![no_main]

use abusedweb::scan::read::{read_input, Item};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let read = |threads: usize| {
        let mut items = Vec::new();
        let read = read_input(
            Box::new(Cursor::new(data.to_vec())),
            &mut |item| match item {
                Item::Warning(w) => {
                    assert!(!w.trim().is_empty(), "a warning without a text");
                    items.push(w);
                }
                Item::Record(r) => items.push(format!("{r:?}")),
            },
            threads,
        );
        // An input that is none of the formats gives nothing but its reason.
        if read.is_err() {
            assert!(items.is_empty(), "an unread input gave records or warnings");
        }
        (read.is_ok(), items)
    };
    assert_eq!(read(1), read(3), "the threads changed what was read");
});
