//! Work shared among threads, its results taken back in the order it was
//! handed out: how one large file's pieces (EVTX chunks, runs of JSON
//! lines, pretty-printed objects or XML events) are read on every core while
//! the records and warnings still come as one thread reads them.

use std::collections::BTreeMap;
use std::sync::{mpsc, Mutex};

/// Jobs handed to each thread and not yet taken back: enough that a thread
/// rarely waits for the next, few enough that memory stays a few jobs a
/// thread.
pub const JOBS_IN_FLIGHT: usize = 4;

/// Run `work` on `threads` threads over the jobs `next` gives until it gives
/// `None`, and hand each result to `take` on this thread, in the order of
/// the jobs. At most [`JOBS_IN_FLIGHT`] jobs a thread are out at once, and
/// no new one while those out weigh more than `budget` by `weight` (the
/// bytes they hold), so memory is bounded whatever the jobs' sizes. A
/// panic in `work` (a bug) is carried back and resumed here when its job's
/// turn comes, as if the work had run on this thread. With one thread, the
/// work runs here, job by job: the readers have one path for any count.
pub fn in_order<J: Send, R: Send>(
    threads: usize,
    (weight, budget): (&dyn Fn(&J) -> usize, usize),
    next: &mut dyn FnMut() -> Option<J>,
    work: &(dyn Fn(J) -> R + Sync),
    take: &mut dyn FnMut(R),
) {
    if threads <= 1 {
        while let Some(job) = next() {
            take(work(job));
        }
        return;
    }
    let in_flight = (threads * JOBS_IN_FLIGHT) as u64;
    // The weights of the jobs out, oldest first, and their sum.
    let mut weights = std::collections::VecDeque::new();
    let mut out_weight = 0usize;
    let (jobs, to_work) = mpsc::sync_channel::<(u64, J)>(in_flight as usize);
    let to_work = Mutex::new(to_work);
    let (worked, done) = mpsc::channel::<(u64, std::thread::Result<R>)>();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (to_work, worked) = (&to_work, worked.clone());
                scope.spawn(move || loop {
                    // The lock is held only while waiting for a job.
                    let job = to_work.lock().map_or(Err(mpsc::RecvError), |r| r.recv());
                    let Ok((number, job)) = job else { break };
                    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(job)));
                    if worked.send((number, out)).is_err() {
                        break;
                    }
                })
            })
            .collect();
        drop(worked);
        // Results that came back before one handed out ahead of them.
        let mut waiting: BTreeMap<u64, std::thread::Result<R>> = BTreeMap::new();
        let (mut sent, mut taken) = (0u64, 0u64);
        let mut take_back = |sent: u64,
                             taken: &mut u64,
                             keep: u64,
                             weights: &mut std::collections::VecDeque<usize>,
                             out_weight: &mut usize| {
            while sent - *taken > keep || *out_weight > budget {
                let out = loop {
                    if let Some(out) = waiting.remove(taken) {
                        break out;
                    }
                    let (number, out) = done.recv().expect("a worker hands back every job it takes");
                    waiting.insert(number, out);
                };
                *taken += 1;
                *out_weight -= weights.pop_front().unwrap_or(0);
                match out {
                    Ok(out) => take(out),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        };
        while let Some(job) = next() {
            let w = weight(&job);
            weights.push_back(w);
            out_weight += w;
            if jobs.send((sent, job)).is_err() {
                unreachable!("the workers wait for jobs until the sender is dropped");
            }
            sent += 1;
            take_back(sent, &mut taken, in_flight, &mut weights, &mut out_weight);
        }
        take_back(sent, &mut taken, 0, &mut weights, &mut out_weight);
        drop(jobs);
        // Joined here, not left to the scope: a join waits for the thread
        // to be gone, its thread-locals freed, so no leak checker sees them.
        for w in workers {
            if let Err(panic) = w.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs of uneven cost come back in the order they were handed out,
    /// whatever the number of threads.
    #[test]
    fn results_come_back_in_the_order_of_the_jobs() {
        for threads in [1, 2, 3, 8] {
            let mut n = 0u64;
            let mut next = || {
                n += 1;
                (n <= 200).then_some(n - 1)
            };
            let work = |i: u64| {
                // later jobs often finish first
                std::thread::sleep(std::time::Duration::from_micros((200 - i) % 7 * 50));
                i * i
            };
            let mut got = Vec::new();
            in_order(threads, (&|_| 1, usize::MAX), &mut next, &work, &mut |r| got.push(r));
            assert_eq!(got, (0..200u64).map(|i| i * i).collect::<Vec<_>>(), "{threads} threads");
        }
    }

    /// A panic in the work reaches the caller, after the results before it.
    #[test]
    fn a_panic_in_the_work_is_resumed_in_its_turn() {
        let mut got = Vec::new();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut n = 0u32;
            let mut next = || {
                n += 1;
                (n <= 50).then_some(n - 1)
            };
            let work = |i: u32| {
                assert!(i != 20, "job 20 fails");
                i
            };
            in_order(3, (&|_| 1, usize::MAX), &mut next, &work, &mut |r| got.push(r));
        }));
        assert!(caught.is_err());
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    }

    /// Jobs heavier than the budget go out one at a time: the next is
    /// handed out only once the one before is taken back.
    #[test]
    fn the_budget_bounds_the_weight_out() {
        let out = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let mut n = 0u64;
        let mut next = || {
            n += 1;
            let was = out.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            most.fetch_max(was + 1, std::sync::atomic::Ordering::SeqCst);
            (n <= 30).then_some(n)
        };
        let work = |i: u64| {
            std::thread::sleep(std::time::Duration::from_micros(100));
            i
        };
        let mut got = Vec::new();
        in_order(4, (&|_| 10, 5), &mut next, &work, &mut |r| {
            out.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            got.push(r);
        });
        assert_eq!(got, (1..=30).collect::<Vec<_>>());
        // each job taken back before the next was asked for
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
