//! The chunk reader over arbitrary bytes: it must never panic, never allocate
//! a declared length up front, account for every byte it consumes, and give
//! the same frames and errors whatever the read buffering.
#![no_main]

use abusedweb::protocol::chunk::{ChunkReader, Header};
use libfuzzer_sys::fuzz_target;
use std::io::{BufRead, BufReader, Read};

/// What one pass over the stream saw, for comparing buffer sizes.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Header(Header),
    Metadata(Vec<u8>),
    Body(Vec<u8>),
    Error(String),
    End { offset: u64 },
}

fn frames<R: BufRead>(input: R, total: usize, skip_bodies: bool) -> Vec<Event> {
    let mut reader = ChunkReader::new(input);
    let mut events = Vec::new();
    let mut meta = Vec::new();
    for _ in 0..64 {
        let header = match reader.next_header() {
            Ok(Some(h)) => h,
            Ok(None) => {
                events.push(Event::End {
                    offset: reader.position().offset,
                });
                return events;
            }
            Err(e) => {
                events.push(Event::Error(e.to_string()));
                return events;
            }
        };
        events.push(Event::Header(header));
        if let Err(e) = reader.read_metadata(header.metadata_len, &mut meta) {
            assert!(
                meta.capacity() <= 2 * total + 64,
                "metadata buffer {} for {total} input bytes",
                meta.capacity()
            );
            events.push(Event::Error(e.to_string()));
            return events;
        }
        assert_eq!(meta.len() as u64, header.metadata_len);
        assert!(
            meta.capacity() <= 2 * total + 64,
            "metadata buffer {} for {total} input bytes",
            meta.capacity()
        );
        events.push(Event::Metadata(meta.clone()));
        let mut body = reader.body(header.body_len);
        let mut bytes = Vec::new();
        let result = if skip_bodies {
            body.skip_rest()
        } else {
            body.read_to_end(&mut bytes).map(|_| ())
        };
        assert!(bytes.len() as u64 <= header.body_len);
        match result {
            Ok(()) => {
                assert_eq!(body.remaining(), 0);
                if !skip_bodies {
                    assert_eq!(bytes.len() as u64, header.body_len);
                    events.push(Event::Body(bytes));
                }
            }
            Err(e) => {
                events.push(Event::Error(e.to_string()));
                return events;
            }
        }
        assert!(reader.position().offset <= total as u64);
    }
    events
}

fuzz_target!(|data: &[u8]| {
    let Some((&cap, stream)) = data.split_first() else {
        return;
    };
    // Reading straight from the slice: at a clean end every byte is accounted for.
    let mut rest = stream;
    let direct = frames(&mut rest, stream.len(), false);
    if let Some(Event::End { offset }) = direct.last() {
        assert_eq!(*offset, stream.len() as u64);
        assert!(rest.is_empty());
    }
    // Tiny buffers must not change a single frame or error text.
    let cap = usize::from(cap % 16) + 1;
    let buffered = frames(BufReader::with_capacity(cap, stream), stream.len(), false);
    assert_eq!(direct, buffered);
    // Skipping bodies sees the same headers and errors.
    let skipped = frames(BufReader::with_capacity(cap, stream), stream.len(), true);
    let without_bodies: Vec<&Event> = direct.iter().filter(|e| !matches!(e, Event::Body(_))).collect();
    assert_eq!(without_bodies, skipped.iter().collect::<Vec<_>>());
});
