//! A file's text cut into runs of whole records for other threads to
//! parse: the reading thread only reads buffers and cuts them, each run
//! ending where a record may end (for pretty-printed JSON before a line
//! that starts with `{`, for XmlWinEventLog after `</Event>`), so that
//! reading is no longer the work of the one thread that also parses.
//!
//! A cut is found by searching each read backwards from its end for the
//! last place, and reads go straight into the run's buffer, so the reading
//! thread looks at most bytes only to count line ends. When no cut comes for [`NO_CUT_BEYOND`] bytes the text is no run
//! of such records: the runs end, and the text read is left to the caller's
//! one-thread reader, which reads on from it.

use memchr::memmem::FinderRev;
use std::io::BufRead;

/// Bytes of text handed to a thread at a time (in the unit tests and under
/// the fuzzers a few hundred, so that short texts make many runs).
pub const A_JOB: usize = if cfg!(test) || cfg!(fuzzing) { 300 } else { 256 << 10 };

/// Text with no cut for this many bytes is no run of records: the
/// one-thread reader takes it (see the module doc).
pub const NO_CUT_BEYOND: usize = 4 * A_JOB;

/// Bytes asked of the input at a time: read straight into a run's buffer
/// (a `BufReader` passes a read at least its size through), where taking
/// its buffer and copying it cost the reading thread a second pass.
pub const READ: usize = if cfg!(test) || cfg!(fuzzing) { 100 } else { 128 << 10 };

/// A run for a thread: its text, and how many line ends came before it in
/// the file (its first byte is on the line after that many).
pub struct Job {
    /// The line ends in the file before the run's first byte.
    pub lfs: u64,
    /// The run's text, `buf[..len]`: whole records, but for the last
    /// run's end. The buffer is longer, and handed back for the next run
    /// (its bytes past `len` written once, not again for every run).
    pub buf: Vec<u8>,
    /// How much of `buf` is the run's.
    pub len: usize,
}

impl Job {
    /// The run's text.
    pub fn text(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// What a read error keeps of the text read since the last cut.
#[derive(Clone, Copy)]
pub enum OnError {
    /// Its whole lines: a one-thread reader reading by lines saw those
    /// before it met the error.
    Lines,
    /// Nothing: a one-thread reader reading records saw none of it whole.
    Records,
}

/// The reading side: [`Runs::next`] gives one run after another.
pub struct Runs<'a> {
    input: &'a mut dyn BufRead,
    /// The text a run may end at...
    cut: FinderRev<'static>,
    /// ...and where, from the text's start.
    cut_at: usize,
    on_error: OnError,
    /// The line ends before the next run.
    pub lfs: u64,
    /// The text read past the last run's cut: the next run's start, or,
    /// once [`Self::gave_up`], the one-thread reader's.
    pub carry: Vec<u8>,
    /// The input ended, or reading it failed.
    pub ended: bool,
    /// Reading failed: the error, once the runs before it are read.
    pub failed: Option<std::io::Error>,
    /// No cut came for [`NO_CUT_BEYOND`] bytes: `carry` holds that text.
    pub gave_up: bool,
}

impl<'a> Runs<'a> {
    /// Runs of `input`'s text from here, `lfs` line ends read before; a run
    /// ends `cut_at` bytes into an occurrence of `cut`.
    pub fn new(input: &'a mut dyn BufRead, lfs: u64, cut: &'static [u8], cut_at: usize, on_error: OnError) -> Self {
        debug_assert!(cut_at > 0 && cut_at <= cut.len(), "a run is never empty");
        Runs {
            input,
            cut: FinderRev::new(cut),
            cut_at,
            on_error,
            lfs,
            carry: Vec::new(),
            ended: false,
            failed: None,
            gave_up: false,
        }
    }

    /// The input, to read on from where the runs stopped.
    pub fn input(&mut self) -> &mut dyn BufRead {
        self.input
    }

    /// The last cut in `text[from..]`, as an offset in `text`.
    fn last_cut(&self, text: &[u8], from: usize) -> Option<usize> {
        self.cut.rfind(&text[from..]).map(|i| from + i + self.cut_at)
    }

    /// The next run, read into `buf` (a spare buffer, its content
    /// dropped): about [`A_JOB`] bytes ending at the last cut read, or the
    /// rest of the input. `None` at the end of the input, after a read
    /// error, or once no cut came (then [`Self::gave_up`]).
    pub fn next(&mut self, mut buf: Vec<u8>) -> Option<Job> {
        if self.ended || self.gave_up {
            return None;
        }
        let mut len = self.carry.len();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf[..len].copy_from_slice(&self.carry);
        self.carry.clear();
        let mut cut = self.last_cut(&buf[..len], 0);
        loop {
            if len >= A_JOB {
                if let Some(at) = cut {
                    self.carry.extend_from_slice(&buf[at..len]);
                    len = at;
                    break;
                }
                if len > NO_CUT_BEYOND {
                    buf.truncate(len);
                    self.carry = buf;
                    self.gave_up = true;
                    return None;
                }
            }
            if buf.len() < len + READ {
                buf.resize(len + READ, 0);
            }
            match self.input.read(&mut buf[len..len + READ]) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(n) => {
                    // (a cut may begin in the text before)
                    let from = len.saturating_sub(self.cut.needle().len() - 1);
                    len += n;
                    if let Some(at) = self.last_cut(&buf[..len], from) {
                        cut = Some(at);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed = Some(e);
                    self.ended = true;
                    len = match self.on_error {
                        OnError::Lines => memchr::memrchr(b'\n', &buf[..len]).map_or(0, |i| i + 1),
                        OnError::Records => cut.unwrap_or(0),
                    };
                    break;
                }
            }
        }
        let job = Job {
            lfs: self.lfs,
            buf,
            len,
        };
        self.lfs += memchr::memchr_iter(b'\n', job.text()).count() as u64;
        (len > 0).then_some(job)
    }
}
