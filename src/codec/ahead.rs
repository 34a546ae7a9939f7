//! Reading a chunk body ahead, on a second thread.
//!
//! One core skims a body about as fast as the kernel copies it out of a pipe
//! or the page cache, so on one thread the two take turns. Here a worker
//! thread reads whole windows straight from the body reader and runs the
//! prefilter over each ([`Hits`]), while the decoding thread skims and
//! tokenises the window before. Windows circulate between the two and every
//! byte is read into place once: the decoder copies only the unfinished
//! record at the end of one window into the headroom the worker left free at
//! the front of the next.
//!
//! When it searches whole windows and still keeps ahead, the worker also
//! skims rows ahead ([`skim_runs`]), knowing where they start from the
//! parity of the quotes it has read since the body began; the decoder takes
//! a stretch's answer when it stands at the stretch's first row, and skims
//! the rest itself.
//!
//! The worker runs on one thread kept for the whole search ([`pool`]), which
//! each body's decoding hands a job that borrows the body: a thread started
//! afresh for each chunk took 100-300 µs to run, the kept one is woken in a
//! fraction of that. Until the worker takes the body's reader ([`Body`]),
//! the decoder reads on and decodes by itself rather than wait for its first
//! window.
//!
//! The worker reads no further than the body reader lets it (the declared
//! body), and at most two windows ahead. Read errors travel with the bytes
//! read before them, so the decoder reports them at the same row as when it
//! read for itself.

use crate::codec::skim::{odd_quotes, skim_runs, Run};
use crate::engine::prefilter::Prefilter;
use crate::placement::{self, Away};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// At most this many prefilter hits, and as many skimmed runs, are kept per
/// window (a window full of them would otherwise need a list as large as
/// itself); the decoder searches and skims past the last one itself. Under
/// the fuzzers, 4, so that their inputs fill the lists too.
const MAX_HITS: usize = if cfg!(fuzzing) { 4 } else { 1 << 14 };

/// The worker searches at least this many eighths of each window, and more
/// while the decoder keeps it waiting; the decoder searches the rest.
/// Reading is most of the worker's work: with all the searching it was the
/// busier thread at a 1% match rate, and the idle one at 20%.
const LEAST_EIGHTHS: usize = 2;

/// The dial's top: past 8 eighths searched, the worker also skims
/// `eighths - 8` eighths of each window ([`Hits::skim`]), so it takes the
/// skimming only where the decoder is the busier thread (20% match, many
/// groups), not where the two were balanced already (1%).
const MOST_EIGHTHS: usize = 16;

/// What the decoder and the worker tell each other while a body is read.
#[derive(Debug)]
pub struct Shared {
    /// Set by the decoder once the body's header is read: search windows
    /// with the prefilter (and skim their rows, of [`Self::fields`] fields).
    search: AtomicBool,
    /// The header's field count, which every row must have.
    fields: AtomicUsize,
    /// Set by the decoder when it had to wait for a window.
    starved: AtomicBool,
    /// How many eighths of each window the worker searches, then (past 8)
    /// skims too: one less after the decoder waited, one more after the
    /// worker found the window it filled before still waiting to be taken,
    /// the same otherwise. (One more whenever the decoder had not waited
    /// kept the worker the busier thread: at a 1% match rate the decoder
    /// then waited for a quarter of each chunk, the worker hardly at all.)
    eighths: AtomicUsize,
    /// The split stays at `eighths` (tests exercise each way of sharing the
    /// work so, whatever the threads' speeds).
    pinned: bool,
    /// Reads the decoder made itself while the worker was starting.
    reads_here: AtomicUsize,
    /// The worker is about to take the body: the decoder reads no more, so
    /// that the worker does not wait for the lock while the decoder takes
    /// it again and again.
    taking: AtomicBool,
    /// Tests: the worker takes the body only after the decoder made this
    /// many reads of its own (or finished), so that the decoder's reading
    /// on while a new thread starts happens whatever the threads' speeds.
    hold: usize,
    /// Tests: the decoder never reads on while the worker starts, but waits
    /// for its windows, so that the worker reads the body even when its
    /// thread is busy with another test's body first.
    patient: bool,
    /// The decoder is done with the body: a held worker stops waiting.
    done: AtomicBool,
}

impl Shared {
    /// Signals for one body, the worker searching `eighths` of each window
    /// to begin with (and throughout, if `pinned`).
    pub fn new(eighths: usize, pinned: bool) -> Self {
        Shared {
            pinned,
            search: AtomicBool::new(false),
            fields: AtomicUsize::new(0),
            starved: AtomicBool::new(false),
            eighths: AtomicUsize::new(eighths.clamp(LEAST_EIGHTHS, MOST_EIGHTHS)),
            reads_here: AtomicUsize::new(0),
            taking: AtomicBool::new(false),
            hold: 0,
            patient: false,
            done: AtomicBool::new(false),
        }
    }

    /// Tests: keep the worker from taking the body until the decoder has
    /// made `reads` reads of its own ([`Body::while_starting`]).
    pub fn hold_worker(mut self, reads: usize) -> Self {
        self.hold = reads;
        self
    }

    /// Tests: the decoder waits for the worker rather than read on while
    /// it starts.
    pub fn wait_for_worker(mut self, patient: bool) -> Self {
        self.patient = patient;
        self
    }

    /// The header is read: search (when `skimming`) and skim rows of `fields` fields.
    pub fn header_read(&self, skimming: bool, fields: usize) {
        self.fields.store(fields, Ordering::Relaxed);
        self.search.store(skimming, Ordering::Release);
    }

    /// The decoder is done with the body, whether it ended or failed: a
    /// worker held back from it ([`Self::hold_worker`]) stops waiting.
    pub fn body_done(&self) {
        self.done.store(true, Ordering::Release);
    }

    /// How many eighths the worker searched last: where the next body starts.
    pub fn eighths(&self) -> usize {
        self.eighths.load(Ordering::Relaxed)
    }

    /// Where to stop searching, and skimming, in the window `start..end`
    /// this time; `ahead`: the worker's last window had to wait for the
    /// decoder to take the one before.
    fn cut(&self, start: usize, end: usize, ahead: bool) -> (usize, usize) {
        let starved = self.starved.swap(false, Ordering::Relaxed);
        let eighths = match (starved, ahead, self.eighths()) {
            (_, _, e) if self.pinned => e,
            (true, _, e) => e.saturating_sub(1).max(LEAST_EIGHTHS),
            (false, true, e) => (e + 1).min(MOST_EIGHTHS),
            (false, false, e) => e,
        };
        self.eighths.store(eighths, Ordering::Relaxed);
        let at = |e: usize| if e >= 8 { end } else { start + (end - start) / 8 * e };
        (at(eighths.min(8)), at(eighths.saturating_sub(8)))
    }
}

/// How many windows circulate through the worker (the decoder holds one more).
pub const WINDOWS_AHEAD: usize = 2;

/// The thread the workers run on, started on first use and kept (`None`
/// when it cannot be started: the decoder then reads every body itself).
///
/// One thread, started once: the worker of one body at a time. Tests that
/// decode on several threads at once queue their workers behind each other
/// on it, and their decoders read on by themselves meanwhile. Like every
/// helper, it starts off its creator's CPU ([`crate::placement`]). The
/// program stops it before it exits ([`stop`]).
pub fn pool() -> Option<Arc<rayon_core::ThreadPool>> {
    KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pool()
}

/// Stop the kept thread ([`pool`]) and wait for it to end; later bodies are
/// read by the decoder alone. The program calls this before it exits:
/// under Wine, a thread still alive (asleep, waiting for work) when the
/// process ends made Wine print `wine client error` on stderr.
pub fn stop() {
    let stopping = KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).stop();
    stopping.join();
}

/// The CPU the kept thread moved to when it started (`usize::MAX`: it did
/// not move), which the decoders keep off ([`crate::placement::Apart`]).
pub fn worker_cpu() -> Option<usize> {
    Some(WORKER_CPU.load(Ordering::Relaxed)).filter(|&c| c != usize::MAX)
}

static WORKER_CPU: AtomicUsize = AtomicUsize::new(usize::MAX);

thread_local! {
    /// The kept thread's hold off its creator's CPU, let go of by the
    /// first body after [`placement::APART_FOR`].
    static WORKER_APART: std::cell::RefCell<placement::Apart> = std::cell::RefCell::default();
}

/// The program's kept thread.
static KEPT: Mutex<Kept> = Mutex::new(Kept {
    pool: None,
    thread: None,
    stopped: false,
});

/// A kept thread's pool and its handle ([`pool`], [`stop`]).
struct Kept {
    pool: Option<Arc<rayon_core::ThreadPool>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Stopped (or could not start): no thread is started again.
    stopped: bool,
}

impl Kept {
    /// The pool, started now if it is not yet.
    fn pool(&mut self) -> Option<Arc<rayon_core::ThreadPool>> {
        if self.stopped {
            return None;
        }
        if self.pool.is_none() {
            let away = Away::from_here();
            let mut handle = None;
            let built = rayon_core::ThreadPoolBuilder::new()
                .num_threads(1)
                .spawn_handler(|thread| {
                    let builder = std::thread::Builder::new().name("abusedweb-read".into());
                    handle = Some(builder.spawn(move || {
                        WORKER_APART.with_borrow_mut(|apart| {
                            if let Some(cpu) = away.go_and_stay_apart(apart) {
                                WORKER_CPU.store(cpu, Ordering::Relaxed);
                            }
                        });
                        thread.run()
                    })?);
                    Ok(())
                })
                .build();
            match built {
                Ok(pool) => {
                    self.pool = Some(Arc::new(pool));
                    self.thread = handle;
                }
                // Not tried again: every later body is read by its decoder.
                Err(_) => self.stopped = true,
            }
        }
        self.pool.clone()
    }

    /// Start no thread again, and hand over what is left to end (joined
    /// outside the lock, so that a body still being read can finish).
    fn stop(&mut self) -> Stopping {
        self.stopped = true;
        Stopping {
            pool: self.pool.take(),
            thread: self.thread.take(),
        }
    }
}

/// A kept thread being stopped.
struct Stopping {
    pool: Option<Arc<rayon_core::ThreadPool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stopping {
    /// Wait for the thread to end; `true` if it did (or there was none).
    fn join(self) -> bool {
        // Dropping the last reference ends the pool: its thread finishes the
        // job it has (none, between bodies) and returns.
        drop(self.pool);
        self.thread.is_none_or(|t| t.join().is_ok())
    }
}

/// A body's reader, shared by the decoder and the worker.
///
/// The decoder reads the start of a body; the worker, once it runs, reads
/// the rest. A new thread took 100-300 µs to start running here (on a
/// 2-CPU virtual machine, with its move to the other CPU), and the decoder
/// had waited that long at the start of every chunk, about 6% of a search
/// at a 1% match rate: so it reads on and decodes until the worker takes
/// the reader ([`Self::while_starting`]). With the worker's thread kept
/// ([`pool`]) that is a wake-up, not a start, but the reading on stays.
#[derive(Debug)]
pub struct Body<R> {
    reader: R,
    /// The bytes read so far hold an odd number of quotes: the quote state
    /// the worker starts skimming with.
    quoted: bool,
    /// The worker has taken the reader: from then on only it reads, so the
    /// decoder never reads past bytes the worker has yet to hand over.
    taken: bool,
}

impl<R: Read> Body<R> {
    /// The body read by `reader`, nothing read yet.
    pub fn new(reader: R) -> Self {
        Body {
            reader,
            quoted: false,
            taken: false,
        }
    }

    /// Read into `buf` from `from` on ([`fill`]), keeping the quote state.
    pub fn fill(&mut self, buf: &mut [u8], from: usize) -> (usize, Option<io::Result<()>>) {
        let (end, ended) = fill(&mut self.reader, buf, from);
        self.quoted ^= odd_quotes(&buf[from..end]);
        (end, ended)
    }

    /// The reader for the decoder to read on with while the worker of
    /// `shared` starts: `None` once the worker has taken it (or holds it
    /// right now), and the decoder must wait for its windows.
    pub fn while_starting<'b>(body: &'b Mutex<Self>, shared: &Shared) -> Option<MutexGuard<'b, Self>> {
        if shared.patient || shared.taking.load(Ordering::Acquire) {
            return None;
        }
        // The worker's thread may be waking on this CPU (and a new one
        // starts on its creator's, until it moves away, see `placement`),
        // where the decoder would keep it from running: let it run first.
        std::thread::yield_now();
        let body = match body.try_lock() {
            Ok(body) => body,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        if body.taken {
            return None;
        }
        // A held worker (tests) waits for the lock from here on.
        shared.reads_here.fetch_add(1, Ordering::Release);
        Some(body)
    }
}

/// The prefilter's hits in one window: the ones the worker found ahead, and
/// the decoder's own searches where the worker did not look.
#[derive(Debug, Default)]
pub struct Hits {
    /// Every position `Prefilter::find` gives from `from` on, in order,
    /// below `to`.
    list: Vec<usize>,
    /// Start of the worker's search: its literals start at `from` or later.
    from: usize,
    /// The list holds every such position below `to` (`usize::MAX`: in the
    /// whole window).
    to: usize,
    /// The decoder's last own answer, valid for positions up to it.
    cached: Option<usize>,
    /// The worker's skim of the rows it searched, in order ([`skim_runs`]).
    runs: Vec<Run>,
    /// The first run the decoder has not passed yet.
    run: usize,
    /// Where the last [`Self::listed`] answer stands in `list`.
    cursor: std::cell::Cell<usize>,
}

impl Hits {
    /// No hits found ahead: every question is searched for (keeping the
    /// lists' memory for later).
    pub fn forget(&mut self) {
        self.list.clear();
        self.runs.clear();
        self.from = 0;
        self.to = 0;
        self.cached = None;
        self.run = 0;
        self.cursor.set(0);
    }

    /// Search `window` for literals starting at `from` or later, as the
    /// worker does, as far as `cut` (the decoder searches the rest).
    fn search(&mut self, prefilter: &Prefilter, window: &[u8], from: usize, cut: usize) {
        self.forget();
        let list = &mut self.list;
        // A literal whose fingerprint lies below `cut` ends before `reach`.
        let reach = window.len().min(cut.saturating_add(prefilter.longest() - 1));
        let mut to = if reach == window.len() { usize::MAX } else { cut };
        prefilter.find_each(&window[..reach], from, |p| {
            if p >= to {
                return false;
            }
            list.push(p);
            if list.len() == MAX_HITS {
                to = p + 1;
                return false;
            }
            true
        });
        self.from = from;
        self.to = to;
    }

    /// Skim the rows of `window` the search covered ([`skim_runs`]) as far
    /// as `cut`, from its start at quote state `quoted`; returns the quote
    /// state at the window's end.
    fn skim(&mut self, window: &[u8], quoted: bool, fields: usize, cut: usize) -> bool {
        // Rows ending below `to` hold only listed hits.
        let upto = window.len().min(self.to).min(cut).max(self.from);
        // The skim asks at rising row starts: walking the list once answers
        // them all (a binary search for each was a sixth of the skim's time
        // at a 20% match rate). Not `listed`, which also answers questions
        // that fall back: its fallbacks kept the skim's loop from being
        // inlined, 1.03-1.05x the CPU.
        let list = &self.list;
        let mut i = 0;
        let listed = |from: usize| {
            while list.get(i).is_some_and(|&p| p < from) {
                i += 1;
            }
            list.get(i).copied().unwrap_or(usize::MAX)
        };
        let quoted = skim_runs(
            &window[..upto],
            self.from,
            quoted,
            fields,
            listed,
            (&mut self.runs, MAX_HITS),
        );
        quoted ^ odd_quotes(&window[upto..])
    }

    /// The worker's answer for a skim from `pos`, if it skimmed from there.
    /// Asked with `pos` increasing.
    pub fn run_at(&mut self, pos: usize) -> Option<Run> {
        while self.runs.get(self.run).is_some_and(|r| r.from < pos) {
            self.run += 1;
        }
        self.runs.get(self.run).filter(|r| r.from == pos).copied()
    }

    /// Where the next run after `pos` starts: the decoder's own skim from
    /// `pos` stops there, to take that run's answer.
    pub fn next_run(&self, pos: usize) -> Option<usize> {
        self.runs[self.run.min(self.runs.len())..]
            .iter()
            .map(|r| r.from)
            .find(|&from| from > pos)
    }

    /// What `prefilter.find(window, from)` gives (`usize::MAX` for `None`),
    /// for `from` at a row start. Rows are not searched twice: below the
    /// worker's `from` (the unfinished record carried over from the previous
    /// window) the decoder searches only as far as a literal starting there
    /// can reach, and past the worker's list it searches for itself.
    ///
    /// Why the list answers for any row start `r`: a literal holds no LF and
    /// the byte before `r` is one, so no occurrence spans `r`. Each entry is
    /// `find` from just after the one before; an occurrence starting at `r`
    /// or later, when it is the first, starts after the last entry below `r`
    /// and so is the first entry at `r` or later.
    pub fn next(&mut self, prefilter: &Prefilter, window: &[u8], from: usize) -> usize {
        if from >= self.from && from < self.to {
            if let Some(h) = self.listed(from) {
                return h;
            }
        }
        if let Some(h) = self.cached {
            if h >= from {
                return h;
            }
        }
        let h = if from < self.from {
            // An occurrence starting before the worker's start ends within
            // `longest - 1` bytes after it; one starting later may not fit
            // this far and is the worker's.
            let reach = window.len().min(self.from.saturating_add(prefilter.longest() - 1));
            match prefilter.find(&window[..reach], from) {
                Some(h) if h < self.from => h,
                other => other
                    .unwrap_or(usize::MAX)
                    .min(self.after(prefilter, window, self.from)),
            }
        } else {
            self.after(prefilter, window, from)
        };
        self.cached = Some(h);
        h
    }

    /// The answer at `from`, at or past the worker's start: listed, or
    /// searched for past what the worker searched. Below `to`, no position
    /// between `from` and `to` is one when none is listed: it would be
    /// `find` from just after the last entry below `from` (or from the
    /// worker's start), since its occurrence starts at `from` or later.
    fn after(&self, prefilter: &Prefilter, window: &[u8], from: usize) -> usize {
        if from < self.to {
            if let Some(h) = self.listed(from) {
                return h;
            }
            return prefilter.find_past(window, from, self.to).unwrap_or(usize::MAX);
        }
        prefilter.find(window, from).unwrap_or(usize::MAX)
    }

    /// Whether a literal starts in `from..end`, where the worker's list
    /// covers all of `from..end` (it holds every literal's start there);
    /// `None` elsewhere (not known). The decoder asks it of the matched
    /// field's cell in a row it tokenises ([`crate::codec::body::Row::holds_literal`]).
    pub fn listed_within(&self, from: usize, end: usize) -> Option<bool> {
        (from >= self.from && end <= self.to).then(|| self.listed(from).is_some_and(|h| h < end))
    }

    /// The first listed hit at `from` or later. The decoder asks with
    /// `from` rising through the window (row starts, then the matched cell
    /// of a row it tokenises): each answer starts from the last one's place
    /// and steps on a few entries, so the list is mostly walked once per
    /// window rather than searched for every row (a binary search over
    /// thousands of hits was 5% of the samples at a 20% match rate); past
    /// those few steps, or asked for an earlier position, it searches.
    fn listed(&self, from: usize) -> Option<usize> {
        let list = &self.list;
        let mut i = self.cursor.get().min(list.len());
        if i > 0 && list[i - 1] >= from {
            i = list.partition_point(|&p| p < from);
        } else {
            let steps = list.len().min(i + 8);
            while i < steps && list[i] < from {
                i += 1;
            }
            if i == steps && list.get(i).is_some_and(|&p| p < from) {
                i += list[i..].partition_point(|&p| p < from);
            }
        }
        self.cursor.set(i);
        list.get(i).copied()
    }
}

/// A window the worker filled.
pub struct Filled {
    /// The window; its bytes before `start` are free for the decoder.
    pub buf: Vec<u8>,
    /// Where the body's bytes start in `buf`.
    pub start: usize,
    /// Where they end.
    pub end: usize,
    /// The prefilter's hits among them (none when not asked for).
    pub hits: Hits,
    /// `None`: more of the body follows. `Some(Ok)`: the body ended here.
    /// `Some(Err)`: reading failed after these bytes.
    pub ended: Option<io::Result<()>>,
}

/// A window handed back, with the memory of its hits and runs.
type Spare = (Vec<u8>, Hits);

/// The decoder's end of a worker reading one body ahead.
pub struct Ahead<'scope> {
    filled: Receiver<Filled>,
    empty: SyncSender<Spare>,
    /// The windows the worker held when it stopped (nothing if it panicked).
    returned: Receiver<Vec<Vec<u8>>>,
    shared: &'scope Shared,
}

impl<'scope> Ahead<'scope> {
    /// Start a worker in `scope` ([`pool`]) reading the rest of `body` into
    /// `windows` (each as long as the decoder's), leaving `headroom` bytes
    /// free at the front of each, and searching each with `prefilter` as
    /// `shared` says.
    pub fn start<'env: 'scope, R: Read + Send>(
        scope: &'scope rayon_core::Scope<'env>,
        body: &'env Mutex<Body<R>>,
        prefilter: Option<&'env Prefilter>,
        shared: &'env Shared,
        windows: Vec<Vec<u8>>,
        headroom: usize,
    ) -> Self {
        let (filled_tx, filled) = sync_channel(1);
        let (empty, empty_rx) = sync_channel(WINDOWS_AHEAD);
        for w in windows.into_iter().take(WINDOWS_AHEAD) {
            empty
                .send((w, Hits::default()))
                .expect("the channel has room for every window");
        }
        let (returned_tx, returned) = sync_channel(1);
        scope.spawn(move |_| {
            // A panic would otherwise resume in the decoder when the scope
            // ends; caught, it drops the channels, and the decoder reports
            // the worker gone ([`Self::next`]) as it would a failed thread.
            let windows = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                work(body, prefilter, shared, headroom, empty_rx, filled_tx)
            }));
            if let Ok(windows) = windows {
                let _ = returned_tx.send(windows);
            }
        });
        Ahead {
            filled,
            empty,
            returned,
            shared,
        }
    }

    /// The next window if the worker has filled one already.
    pub fn ready(&self) -> Option<Filled> {
        self.filled.try_recv().ok()
    }

    /// The next window, waiting for the worker; an error when the worker is
    /// gone without having reported the end of the body.
    pub fn next(&self) -> io::Result<Filled> {
        let gone = || io::Error::other("the thread reading the body ahead stopped");
        match self.filled.try_recv() {
            Ok(f) => Ok(f),
            Err(TryRecvError::Empty) => {
                self.shared.starved.store(true, Ordering::Relaxed);
                self.filled.recv().map_err(|_| gone())
            }
            Err(TryRecvError::Disconnected) => Err(gone()),
        }
    }

    /// Hand a window (and its hit list's memory) back to be filled again.
    pub fn give_back(&self, window: Vec<u8>, hits: Hits) {
        // After the body's end the worker takes no more windows; then this
        // one is just dropped.
        let _ = self.empty.try_send((window, hits));
    }

    /// Wait for the worker to stop and take back the windows it held.
    pub fn finish(self) -> Vec<Vec<u8>> {
        let Ahead {
            filled,
            empty,
            returned,
            shared,
        } = self;
        shared.body_done();
        drop(empty);
        drop(filled);
        returned.recv().unwrap_or_default()
    }
}

/// Read from `body` into `buf` from `from` on, until it is full (`None`),
/// the body ends (`Some(Ok)`) or a read fails (`Some(Err)`); returns where
/// the bytes read end. The worker fills its windows this way, and the
/// decoder when it reads for itself.
pub fn fill<R: Read + ?Sized>(body: &mut R, buf: &mut [u8], from: usize) -> (usize, Option<io::Result<()>>) {
    let mut end = from;
    while end < buf.len() {
        match body.read(&mut buf[end..]) {
            Ok(0) => return (end, Some(Ok(()))),
            Ok(n) => end += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (end, Some(Err(e))),
        }
    }
    (end, None)
}

/// The worker: fill each window it is given, search it, pass it on; stop
/// after the body's end or a failed read, or when the decoder hangs up.
fn work<R: Read>(
    body: &Mutex<Body<R>>,
    prefilter: Option<&Prefilter>,
    shared: &Shared,
    headroom: usize,
    empty: Receiver<Spare>,
    filled: SyncSender<Filled>,
) -> Vec<Vec<u8>> {
    WORKER_APART.with_borrow_mut(placement::Apart::relax);
    while shared.reads_here.load(Ordering::Acquire) < shared.hold && !shared.done.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    shared.taking.store(true, Ordering::Release);
    let mut body = body.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    body.taken = true;
    let mut quoted = body.quoted;
    let body = &mut body.reader;
    // The body's first window to be searched goes to the decoder as soon
    // as it is read: the decoder, which has just started this thread, would
    // otherwise wait for its search, and searches it itself while this
    // thread reads the next.
    let mut first = true;
    // The last window had to wait for the decoder to take the one before.
    let mut ahead = false;
    while let Ok((mut buf, mut hits)) = empty.recv() {
        let start = headroom.min(buf.len() - 1);
        let (end, ended) = fill(&mut *body, &mut buf, start);
        match prefilter {
            Some(p) if shared.search.load(Ordering::Acquire) => {
                // After the body's last window the worker idles while the
                // decoder works through the windows it holds: search and skim
                // all of this one, and leave the split for the next body as
                // it is.
                let (search, skim) = if ended.is_some() {
                    (end, end)
                } else if std::mem::take(&mut first) {
                    // The decoder's wait for it says nothing of the split.
                    shared.starved.store(false, Ordering::Relaxed);
                    (start, start)
                } else {
                    shared.cut(start, end, ahead)
                };
                hits.search(p, &buf[..end], start, search);
                quoted = hits.skim(&buf[..end], quoted, shared.fields.load(Ordering::Relaxed), skim);
            }
            _ => {
                hits.forget();
                quoted ^= odd_quotes(&buf[start..end]);
            }
        }
        let last = ended.is_some();
        let window = Filled {
            buf,
            start,
            end,
            hits,
            ended,
        };
        let sent = match filled.try_send(window) {
            Ok(()) => {
                ahead = false;
                Ok(())
            }
            Err(TrySendError::Full(window)) => {
                ahead = true;
                filled.send(window).map_err(|_| ())
            }
            Err(TrySendError::Disconnected(_)) => Err(()),
        };
        if sent.is_err() || last {
            break;
        }
    }
    // The windows not filled go back to the decoder once it hangs up.
    empty.iter().map(|(w, _)| w).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefilter() -> Prefilter {
        Prefilter::new(&[b"pastebin".to_vec(), b"ngrok.io".to_vec()]).expect("a prefilter")
    }

    /// The list's answers, however they are asked for (rising, falling,
    /// far ahead, the same twice), are those of a search of the whole list.
    #[test]
    fn listed_answers_as_a_search_in_any_order() {
        let mut next = crate::engine::aggregate::xorshift(7);
        for len in [0usize, 1, 2, 9, 40, 300] {
            let mut hits = Hits::default();
            let mut p = 0;
            for _ in 0..len {
                p += 1 + next(20) as usize;
                hits.list.push(p);
            }
            let top = p + 30;
            for _ in 0..2000 {
                let from = match next(4) {
                    0 => next(top as u64) as usize,
                    // Mostly rising a little, as the decoder asks.
                    _ => (hits.cursor.get() * 11 + next(40) as usize).min(top),
                };
                let want = hits.list.get(hits.list.partition_point(|&h| h < from)).copied();
                assert_eq!(hits.listed(from), want, "len {len}, from {from}");
            }
        }
    }

    /// Every lookup, from every row start, split anywhere, with any cap,
    /// answers as `Prefilter::find` over the whole window does.
    #[test]
    fn hits_found_ahead_answer_as_a_search_of_the_whole_window() {
        let p = prefilter();
        let rows: &[&[u8]] = &[
            b"a,PASTEBIN.com,x\n",
            b"b,c,d\n",
            b"ngrok.io,pastebin,ngrok.iongrok.io\n",
            b"e,pasteb,in\n",
            b"xpastebinx,,\n",
            b"z,z,z\n",
        ];
        let window: Vec<u8> = rows.concat();
        let starts: Vec<usize> = std::iter::once(0)
            .chain(
                window
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        for split in 0..window.len() {
            for (cap, cut) in [1, 2, 3, usize::MAX]
                .into_iter()
                .flat_map(|c| [(c, split + 9), (c, usize::MAX)])
            {
                for first in 0..starts.len() {
                    let mut hits = Hits::default();
                    hits.search(&p, &window, split, cut);
                    if cap < hits.list.len() {
                        hits.to = hits.list[cap - 1] + 1;
                        hits.list.truncate(cap);
                    }
                    for &r in &starts[first..] {
                        let want = p.find(&window, r).unwrap_or(usize::MAX);
                        assert_eq!(
                            hits.next(&p, &window, r),
                            want,
                            "split {split}, cap {cap}, cut {cut}, row start {r}"
                        );
                    }
                }
            }
        }
    }

    /// The split moves toward the idle thread only: one eighth less after
    /// the decoder waited, one more after the worker did, none when neither
    /// did; it stays within its bounds, and where tests pin it.
    #[test]
    fn the_split_moves_only_toward_the_thread_that_waited() {
        let shared = Shared::new(8, false);
        let cut = |ahead| shared.cut(0, 800, ahead);
        assert_eq!(cut(false), (800, 0), "neither waited: 8 eighths still");
        assert_eq!(shared.eighths(), 8);
        assert_eq!(cut(true), (800, 100), "the worker waited: it also skims an eighth");
        shared.starved.store(true, Ordering::Relaxed);
        assert_eq!(
            cut(true),
            (800, 0),
            "the decoder waited, which outweighs the worker's wait"
        );
        shared.starved.store(true, Ordering::Relaxed);
        assert_eq!(cut(false), (700, 0), "the decoder searches an eighth");
        assert_eq!(cut(false), (700, 0), "and the wait is counted once");
        for _ in 0..20 {
            shared.starved.store(true, Ordering::Relaxed);
            cut(false);
        }
        assert_eq!(shared.eighths(), LEAST_EIGHTHS);
        for _ in 0..20 {
            cut(true);
        }
        assert_eq!(shared.eighths(), MOST_EIGHTHS);
        assert_eq!(cut(false), (800, 800));

        let pinned = Shared::new(5, true);
        pinned.starved.store(true, Ordering::Relaxed);
        assert_eq!(pinned.cut(0, 800, false), (500, 0));
        assert_eq!(pinned.cut(0, 800, true), (500, 0));
    }

    /// The body's first searched window comes unsearched, for the decoder
    /// to search while the worker reads on; the next ones come searched.
    #[test]
    fn the_first_window_comes_as_soon_as_it_is_read() {
        let rows = b"x,pastebin.com,y\n".repeat(20);
        let body = Mutex::new(Body::new(&rows[..]));
        let p = prefilter();
        let shared = Shared::new(8, false);
        shared.header_read(true, 3);
        let searched = pool().expect("a thread").in_place_scope(|s| {
            let ahead = Ahead::start(s, &body, Some(&p), &shared, vec![vec![0; 100], vec![0; 100]], 10);
            let mut searched = Vec::new();
            loop {
                let f = ahead.next().expect("a window");
                searched.push((f.hits.to > f.start, f.hits.list.len()));
                let done = f.ended.is_some();
                ahead.give_back(f.buf, f.hits);
                if done {
                    break;
                }
            }
            ahead.finish();
            searched
        });
        assert!(searched.len() > 2, "several windows: {searched:?}");
        assert_eq!(searched[0], (false, 0), "the first is not searched");
        assert!(
            searched[1..].iter().all(|&(s, hits)| s && hits > 0),
            "the rest are: {searched:?}"
        );
    }

    /// The worker fills windows from the body, leaves the headroom free,
    /// stops at the end and hands back the windows it still held.
    #[test]
    fn the_worker_fills_windows_and_reports_the_end() {
        let body: Vec<u8> = (0..100u8).collect();
        let body = Mutex::new(Body::new(&body[..]));
        let shared = Shared::new(8, false);
        let (got, spare) = pool().expect("a thread").in_place_scope(|s| {
            let ahead = Ahead::start(s, &body, None, &shared, vec![vec![0; 40], vec![0; 40]], 8);
            let mut got = Vec::new();
            loop {
                let f = ahead.next().expect("a window");
                assert_eq!(f.start, 8);
                got.extend_from_slice(&f.buf[f.start..f.end]);
                let done = f.ended.is_some();
                ahead.give_back(f.buf, f.hits);
                if done {
                    break;
                }
            }
            (got, ahead.finish())
        });
        assert_eq!(got, (0..100u8).collect::<Vec<_>>());
        assert!(!spare.is_empty(), "the windows come back");
    }

    /// Bodies after the first are read on the same thread, kept between
    /// them: no thread is started per chunk.
    #[test]
    fn the_worker_thread_is_kept_across_bodies() {
        struct Noted<'a>(&'a [u8], &'a Mutex<Vec<(std::thread::ThreadId, Option<String>)>>);
        impl Read for Noted<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let t = std::thread::current();
                self.1
                    .lock()
                    .expect("no panic")
                    .push((t.id(), t.name().map(String::from)));
                self.0.read(buf)
            }
        }
        let bytes: Vec<u8> = (0..100u8).collect();
        let readers = Mutex::new(Vec::new());
        for _ in 0..3 {
            let body = Mutex::new(Body::new(Noted(&bytes, &readers)));
            let shared = Shared::new(8, false);
            pool().expect("a thread").in_place_scope(|s| {
                let ahead = Ahead::start(s, &body, None, &shared, vec![vec![0; 40], vec![0; 40]], 8);
                loop {
                    let f = ahead.next().expect("a window");
                    if f.ended.is_some() {
                        break;
                    }
                    ahead.give_back(f.buf, f.hits);
                }
                ahead.finish();
            });
        }
        let readers = readers.into_inner().expect("no panic");
        assert!(readers.len() >= 3, "{readers:?}");
        assert!(
            readers.iter().all(|r| r == &readers[0]),
            "one thread read all: {readers:?}"
        );
        assert_ne!(readers[0].0, std::thread::current().id());
        assert_eq!(readers[0].1.as_deref(), Some("abusedweb-read"));
    }

    /// A kept thread ends when stopped, after the job it runs; no thread is
    /// started again, and later bodies are read without one.
    #[test]
    fn a_stopped_thread_ends_and_is_not_started_again() {
        let mut kept = Kept {
            pool: None,
            thread: None,
            stopped: false,
        };
        let pool = kept.pool().expect("a thread");
        let again = kept.pool().expect("the same thread");
        assert!(Arc::ptr_eq(&pool, &again), "one pool is kept");
        let (ran_tx, ran) = sync_channel(1);
        pool.spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let _ = ran_tx.send(std::thread::current().name().map(String::from));
        });
        drop((pool, again));
        let stopping = kept.stop();
        let thread = stopping.thread.as_ref().expect("its handle").thread().clone();
        assert!(stopping.join(), "the thread ended without a panic");
        assert_eq!(
            ran.try_recv().ok().flatten().as_deref(),
            Some("abusedweb-read"),
            "the job it held ran before it ended"
        );
        assert_eq!(thread.name(), Some("abusedweb-read"));
        assert!(kept.pool().is_none(), "no thread after a stop");
    }

    /// A worker that panics is reported gone, and the panic stays on its
    /// thread, which then serves the next body.
    #[test]
    fn a_worker_that_panics_is_reported_gone() {
        struct Panics;
        impl Read for Panics {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                panic!("a reader that panics (expected by this test)");
            }
        }
        let body = Mutex::new(Body::new(Panics));
        let shared = Shared::new(8, false);
        let (error, spare) = pool().expect("a thread").in_place_scope(|s| {
            let ahead = Ahead::start(s, &body, None, &shared, vec![vec![0; 32], vec![0; 32]], 4);
            let error = ahead.next().err().expect("no window").to_string();
            (error, ahead.finish())
        });
        assert_eq!(error, "the thread reading the body ahead stopped");
        assert!(spare.is_empty(), "its windows are gone with it");
        let bytes = [7u8; 50];
        let body = Mutex::new(Body::new(&bytes[..]));
        let read = pool().expect("a thread").in_place_scope(|s| {
            let ahead = Ahead::start(s, &body, None, &shared, vec![vec![0; 32], vec![0; 32]], 4);
            let mut read = 0;
            loop {
                let f = ahead.next().expect("a window");
                read += f.end - f.start;
                if f.ended.is_some() {
                    break;
                }
                ahead.give_back(f.buf, f.hits);
            }
            ahead.finish();
            read
        });
        assert_eq!(read, 50);
    }

    /// A failed read arrives after the bytes read before it.
    #[test]
    fn a_failed_read_follows_the_bytes_before_it() {
        struct Fails(usize);
        impl Read for Fails {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = self.0.min(buf.len()).min(7);
                buf[..n].fill(b'x');
                self.0 -= n;
                Ok(n)
            }
        }
        let body = Mutex::new(Body::new(Fails(50)));
        let shared = Shared::new(8, false);
        let (bytes, error) = pool().expect("a thread").in_place_scope(|s| {
            let ahead = Ahead::start(s, &body, None, &shared, vec![vec![0; 32], vec![0; 32]], 4);
            let mut bytes = 0;
            let error = loop {
                let f = ahead.next().expect("a window");
                bytes += f.end - f.start;
                match f.ended {
                    None => ahead.give_back(f.buf, f.hits),
                    Some(end) => break end,
                }
            };
            ahead.finish();
            (bytes, error)
        });
        assert_eq!(bytes, 50);
        assert_eq!(error.expect_err("the read failed").to_string(), "disk on fire");
    }
}
