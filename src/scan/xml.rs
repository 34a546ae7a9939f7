//! XmlWinEventLog events parsed on every core, the records and warnings
//! still those that reading on one thread gives.
//!
//! An event is the text from the end of one `</Event>` to the end of the
//! next, parsed from its first `<Event`: cut there, the text is runs of
//! whole events ([`runs`](super::runs)), each parsed by a thread as the
//! one-thread reader in `read` parses it. Only an event's number in the file
//! depends on the runs before, so a thread's warnings name the event by its
//! number in the run, and the reading thread, taking the runs back in order,
//! adds the events before. Text with no `</Event>` for a megabyte is left to
//! the one-thread reader, which reads the rest of the file (and, past 16 MiB,
//! skips it with its warning).

use super::ordered;
use super::read::{needles, Item, Needles, MAX_RECORD_BYTES};
use super::record::{self, Packed, Sysmon};
use super::runs::{Job, OnError, Runs};
use std::cell::RefCell;
use std::io::BufRead;

/// What a run's events gave, in order.
enum Said {
    Record(Packed),
    /// A warning about the run's `event`-th event (from 1), which starts
    /// on `line`.
    Event {
        event: u64,
        line: u64,
        what: String,
    },
    /// A warning that names no event.
    Plain(String),
}

/// A run read: what its events gave (the records' values in `arena`), how
/// many events it held, and its text's buffer back for the next run.
#[derive(Default)]
struct Read {
    arena: String,
    said: Vec<Said>,
    events: u64,
    text: Vec<u8>,
}

/// Where the one-thread reader reads on: the text read ahead, from just
/// after an `</Event>` (or the file's start), the line that text starts
/// on, and the events before it.
pub struct Rest {
    /// The text read, no `</Event>` in it.
    pub text: Vec<u8>,
    /// The line its first byte is on.
    pub line: u64,
    /// The events read before it.
    pub events: u64,
}

/// Read the events of `input`, from its start, on `threads` threads.
/// `Ok(None)` when every event was read here; otherwise where the
/// one-thread reader must read on.
pub fn read_events(
    input: &mut dyn BufRead,
    each: &mut dyn FnMut(Item<'_>),
    threads: usize,
) -> std::io::Result<Option<Rest>> {
    let spare: RefCell<Vec<Vec<u8>>> = Default::default();
    let end = needles().event_end.needle();
    let mut runs = Runs::new(input, 0, end, end.len(), OnError::Records);
    let mut next = || runs.next(spare.borrow_mut().pop().unwrap_or_default());
    let mut events = 0u64;
    let weight = |job: &Job| job.buf.len();
    ordered::in_order(
        threads,
        (&weight, 2 * MAX_RECORD_BYTES),
        &mut next,
        &events_of,
        &mut |read: Read| {
            for said in read.said {
                match said {
                    Said::Record(packed) => each(Item::Record(Sysmon::unpack(&packed, &read.arena))),
                    Said::Event { event, line, what } => {
                        each(Item::Warning(format!("event {} (line {line}): {what}", events + event)))
                    }
                    Said::Plain(w) => each(Item::Warning(w)),
                }
            }
            events += read.events;
            spare.borrow_mut().push(read.text);
        },
    );
    if runs.gave_up {
        return Ok(Some(Rest {
            text: std::mem::take(&mut runs.carry),
            line: runs.lfs + 1,
            events,
        }));
    }
    runs.failed.map_or(Ok(None), Err)
}

/// A thread's work: the events of one run, read as the one-thread reader
/// reads them, with the same warnings, at the same lines.
fn events_of(job: Job) -> Read {
    let Needles {
        event_end, event_start, ..
    } = needles();
    let mut read = Read::default();
    let text = job.text();
    // The line `text[at]` is on, counted on from the last asked about
    // (events, and their warnings, come in order).
    let (mut known, mut line) = (0usize, job.lfs + 1);
    // The line the text from `at` starts on: that of its first byte that
    // is not blank.
    let mut start_line = |at: usize| {
        let first = text[at..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(text.len(), |i| at + i);
        line += memchr::memchr_iter(b'\n', &text[known..first]).count() as u64;
        known = first;
        line
    };
    let mut from = 0;
    while let Some(at) = event_end.find(&text[from..]) {
        let end = from + at + event_end.needle().len();
        let piece = &text[from..end];
        match event_start.find(piece) {
            Some(start) => {
                read.events += 1;
                let event = read.events;
                let xml = match std::str::from_utf8(&piece[start..]) {
                    Ok(xml) => std::borrow::Cow::Borrowed(xml),
                    Err(_) => {
                        read.said.push(Said::Event {
                            event,
                            line: start_line(from),
                            what: "not UTF-8, read with replacement characters".into(),
                        });
                        String::from_utf8_lossy(&piece[start..])
                    }
                };
                let (s, problems) = record::from_xml(&xml);
                for what in problems {
                    let line = start_line(from);
                    read.said.push(Said::Event { event, line, what });
                }
                if let Some(s) = s {
                    read.said.push(Said::Record(s.pack(&mut read.arena)));
                }
            }
            None => read.said.push(Said::Plain(format!(
                "line {}: </Event> without <Event",
                start_line(from)
            ))),
        }
        from = end;
    }
    // Only the file's last run ends in anything but an event's end.
    if !text[from..].iter().all(u8::is_ascii_whitespace) {
        read.said.push(Said::Plain(format!(
            "line {}: event cut short at the end of the file",
            start_line(from)
        )));
    }
    read.text = job.buf;
    read
}
