//! Pretty-printed JSON objects parsed on every core, the records and
//! warnings still those that reading on one thread gives.
//!
//! [`read_json`](super::read) reads one object after another a line at a
//! time, following brackets to learn where each ends, and parses each: one
//! thread did all of it (27 times `cat` on 200 MB). Here the reading thread
//! only reads buffers and cuts them into runs of about
//! [`A_JOB`](super::runs::A_JOB) bytes, each
//! just before a line that starts with `{` (where a printer such as
//! `evtx_dump` or `jq` starts each object); threads find the objects of each
//! run and parse them.
//!
//! Where a run was cut is a guess, so the threads check it: they follow
//! exactly the rule of the one-thread reader for an object that parses
//! (its lines from the first that is not blank to the first after which its
//! brackets are closed, with the same parses at 64, 128, … lines), and stop
//! at anything else: an object that does not parse, a line over the bound,
//! or a run ending inside an object. The one-thread reader then takes over
//! from that object's first line, with the text read ahead handed back to
//! it, and reads the rest of the file. So every broken object, every object
//! a cut fell into, and the end of the file are read by the one code that
//! words their warnings.

use super::json;
use super::ordered;
use super::read::{json_record, Brackets, Item, LinesRead, FIRST_CHECK_LINES, MAX_RECORD_BYTES};
use super::runs::{Job, OnError, Runs};
use std::cell::{Cell, RefCell};
use std::io::BufRead;

/// What a thread made of a run: its objects' records and warnings, and
/// where it stopped, if before the run's end.
#[derive(Default)]
struct Run {
    read: LinesRead,
    /// The object the one-thread reader must take: its first byte in the
    /// run's text, and the number of the line before it.
    stop: Option<(usize, u64)>,
    /// How much of `read.text` (the run's buffer) is its text.
    len: usize,
}

/// What the one-thread reader must read before the rest of the input:
/// the text read ahead from the first object it has to take.
pub struct Handback {
    /// The text, from the first line of that object; whole lines, but for
    /// a last line the input ended or failed in.
    pub text: Vec<u8>,
    /// The number of the line before it.
    pub before: u64,
    /// Reading failed after the text: the error, to be returned once the
    /// text is read.
    pub failed: Option<std::io::Error>,
}

/// Read the rest of a file of pretty-printed objects after line `number`
/// (the one-thread reader stands between two objects, none broken), on
/// `threads` threads. `Ok(None)` when every object was read here;
/// otherwise what the one-thread reader must read on with.
pub fn read_objects(
    input: &mut dyn BufRead,
    number: u64,
    each: &mut dyn FnMut(Item<'_>),
    threads: usize,
) -> std::io::Result<Option<Handback>> {
    let spare: RefCell<Vec<Vec<u8>>> = Default::default();
    let mut runs = Runs::new(input, number, b"\n{", 1, OnError::Lines);
    // The one-thread reader must take over: no more runs.
    let stop = Cell::new(false);
    let mut next = || {
        let text = spare.borrow_mut().pop().unwrap_or_default();
        (!stop.get()).then(|| runs.next(text)).flatten()
    };
    // The one-thread reader's text, from the first object a thread stopped at.
    let mut handback: Option<Handback> = None;
    let weight = |job: &Job| job.buf.len();
    ordered::in_order(
        threads,
        (&weight, 2 * MAX_RECORD_BYTES),
        &mut next,
        &objects,
        &mut |mut run: Run| {
            let (buf, len) = (std::mem::take(&mut run.read.text), run.len);
            let text = &buf[..len];
            if let Some(h) = &mut handback {
                // read ahead past the stop: the one-thread reader's
                h.text.extend_from_slice(text);
            } else {
                run.read.hand_on(each);
                if let Some((at, before)) = run.stop {
                    stop.set(true);
                    handback = Some(Handback {
                        text: text[at..].to_vec(),
                        before,
                        failed: None,
                    });
                }
            }
            spare.borrow_mut().push(buf);
        },
    );
    let mut handback = match handback {
        Some(mut h) => {
            h.text.append(&mut runs.carry);
            h
        }
        None if runs.gave_up => Handback {
            text: std::mem::take(&mut runs.carry),
            before: runs.lfs,
            failed: None,
        },
        // Every object read here (or reading failed after the last).
        None => return runs.failed.map_or(Ok(None), Err),
    };
    let mut failed = runs.failed.take();
    if !runs.ended {
        // Stopped early: the text's last line is read to its end.
        finish_line(runs.input(), &mut handback.text, &mut failed);
    }
    handback.failed = failed;
    Ok(Some(handback))
}

/// Read the rest of the last line of `text` (begun, not ended) from
/// `input`, keeping at most `MAX_RECORD_BYTES + 1` bytes of it, as the
/// one-thread reader keeps of a line (one longer than the bound is skipped
/// as too long). When reading fails, the line is dropped, unread.
fn finish_line(input: &mut dyn BufRead, text: &mut Vec<u8>, failed: &mut Option<std::io::Error>) {
    let line_start = memchr::memrchr(b'\n', text).map_or(0, |i| i + 1);
    if line_start == text.len() {
        return;
    }
    loop {
        let buf = match input.fill_buf() {
            Ok([]) => return,
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                *failed = Some(e);
                text.truncate(line_start);
                return;
            }
        };
        let (n, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = (MAX_RECORD_BYTES + 1).saturating_sub(text.len() - line_start);
        text.extend_from_slice(&buf[..n.min(room)]);
        input.consume(n);
        if done {
            return;
        }
    }
}

/// A thread's work: the objects of one run, each parsed where the
/// one-thread reader would parse it, up to the first object that reader
/// must take (module doc).
fn objects(job: Job) -> Run {
    let mut run = Run::default();
    let read = &mut run.read;
    let text = job.text();
    // (a run starts at a line's start: the lines before are its LFs)
    let mut number = job.lfs;
    // The object begun: its first byte and the number of the line before.
    let mut object: Option<(usize, u64)> = None;
    let mut brackets = Brackets::default();
    let mut spans = 0u64;
    let mut parser = json::Parser::new(text);
    // A record packed to cross back to the reading thread, or a warning.
    let mut keep = |item: Item<'_>| match item {
        Item::Record(s) => read.items.push(Ok(s.pack(&mut read.arena))),
        Item::Warning(w) => read.items.push(Err(w)),
    };
    let mut at = 0;
    while at < text.len() {
        let line = at;
        number += 1;
        let (start, before) = match object {
            Some(o) => o,
            None => {
                // A blank line: whitespace up to its LF (or the end).
                let blank = text[at..].iter().find(|b| !b.is_ascii_whitespace() || **b == b'\n');
                if blank.is_none_or(|b| *b == b'\n') {
                    at = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |i| at + i + 1);
                    if at - line > MAX_RECORD_BYTES {
                        // too long, even blank: the one-thread reader's
                        run.stop = Some((line, number - 1));
                        break;
                    }
                    continue;
                }
                // An object that parses, alone on its lines: what
                // following its brackets to its last line and parsing it
                // there gives (a line within the bound, its brackets closed
                // only where it ends, no check between finding it broken),
                // without following them.
                if let Some((fields, end)) = parser.record(at) {
                    if end - at <= MAX_RECORD_BYTES {
                        json_record(&fields, &|| format!("line {number}"), &mut keep);
                        number += memchr::memchr_iter(b'\n', &text[at..end]).count() as u64
                            + u64::from(text[end - 1] != b'\n')
                            - 1;
                        at = end;
                        continue;
                    }
                }
                brackets = Brackets::default();
                spans = 0;
                *object.insert((at, number - 1))
            }
        };
        spans += 1;
        let closed;
        (at, closed) = brackets.line(text, at);
        if at - line > MAX_RECORD_BYTES {
            run.stop = object;
            break;
        }
        let parsed = if closed {
            json::parse(&text[start..at])
        } else if at - start > MAX_RECORD_BYTES {
            run.stop = object;
            break;
        } else if spans >= FIRST_CHECK_LINES && spans.is_power_of_two() {
            // The one-thread reader parses it here, and reads on only when
            // the text ends too soon.
            match json::parse(&text[start..at]) {
                Err(e) if e.is_eof() => continue,
                _ => {
                    run.stop = object;
                    break;
                }
            }
        } else {
            continue;
        };
        let Ok(v) = parsed else {
            run.stop = object;
            break;
        };
        json_record(&v, &|| format!("line {}", before + 1), &mut keep);
        object = None;
    }
    if run.stop.is_none() {
        // The run ended inside an object: it is the one-thread reader's.
        run.stop = object;
    }
    (run.read.text, run.len) = (job.buf, job.len);
    run
}
