//! Helper threads start on another CPU than the thread that spawns them.
//!
//! On the 2-CPU benchmark machine (Linux 6.18), a new thread started on its
//! creator's CPU, and the load balancer moved one of the two about a
//! millisecond later. The body reader ([`crate::codec::ahead`]) was then
//! started afresh for each chunk, which takes 2 to 3 ms at a 1% match rate:
//! for half of every chunk the reader and the decoder took turns on one CPU
//! while the other idled. The reply's sort and write helpers, started once
//! a search, met the same. (The body reader's thread is now started once and
//! kept; it moves away when it starts, and stays away for a while.)
//!
//! Threads that hand each other work are also kept apart for the first
//! [`APART_FOR`] of a search ([`Apart`]).
//!
//! A thread that calls [`Away::go`] first thing leaves its creator's CPU at
//! once: its CPU mask is set to the other CPUs the creator may use, which
//! moves it, and then set back, so that from then on the scheduler places it
//! as it would any thread (nothing stays pinned). With no other CPU allowed
//! (one CPU, or a cgroup's cpuset of one), or on another system, nothing
//! happens.

/// Spawn `f` on a scoped thread from `builder` that first moves off the
/// calling thread's CPU ([`Away`]): how every helper thread is started.
pub fn spawn_scoped<'scope, 'env, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    builder: std::thread::Builder,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::io::Result<std::thread::ScopedJoinHandle<'scope, T>> {
    let away = Away::from_here();
    builder.spawn_scoped(scope, move || {
        away.go();
        f()
    })
}

/// Keeps a thread off the CPU of the thread it hands work to (the decoder
/// off the body reader's, and the reader off the decoder's) for the first
/// [`APART_FOR`] of a search, then lets it run anywhere again.
///
/// Two threads that hand each other work wake each other, and Linux was
/// seen (on a 2-CPU virtual machine, whose idle CPU looks taken to the
/// scheduler) to wake a sleeping thread on the CPU of the thread that woke
/// it: the decoder, woken by the body reader, joined it on its CPU, and the
/// two took turns there for the first 20 ms of a search (of 45), the other
/// CPU idle, until the load balancer parted them. Moved off and let run
/// anywhere again at once, the decoder was woken back onto the reader's CPU
/// at the next window; each thread keeping off the CPU the other had at
/// that moment made them swap CPUs from body to body. So the two are kept
/// apart once: the reader keeps off the CPU of the thread that started it
/// ([`Away::go_and_stay_apart`]), and the decoder keeps off the CPU the reader
/// went to ([`Apart::keep_off`]). On a larger machine each only leaves out
/// one CPU. Both let go after [`APART_FOR`]: by then the scheduler keeps
/// them apart by itself, and a thread held off a CPU could not escape
/// another program busy on its own (a kernel thread took one CPU for 25 ms
/// in one search, and the held decoder waited it out).
#[derive(Debug, Default)]
pub struct Apart {
    #[cfg(target_os = "linux")]
    allowed: Option<rustix::thread::CpuSet>,
    /// When [`Self::keep_off`] was called.
    since: Option<std::time::Instant>,
}

/// How long two threads are held apart ([`Apart`]): the load balancer
/// parted them by itself after 20-30 ms.
pub const APART_FOR: std::time::Duration = std::time::Duration::from_millis(100);

impl Apart {
    /// Nothing changed yet: call on the thread to keep apart.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep the calling thread off `cpu` (moving it if it runs there), the
    /// first time it is called; later calls let it run anywhere again once
    /// [`APART_FOR`] has passed ([`Self::relax`]). Nothing happens with no
    /// other CPU allowed, or on another system.
    pub fn keep_off(&mut self, cpu: usize) {
        if self.since.is_some() {
            self.relax();
            return;
        }
        self.since = Some(std::time::Instant::now());
        #[cfg(target_os = "linux")]
        {
            use rustix::thread::{sched_getaffinity, sched_setaffinity};
            let Ok(allowed) = sched_getaffinity(None) else {
                return;
            };
            let mut others = allowed;
            others.unset(cpu);
            if others.count() > 0 && sched_setaffinity(None, &others).is_ok() {
                self.allowed = Some(allowed);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = cpu;
    }

    /// Let the thread run anywhere it could before, once [`APART_FOR`]
    /// has passed since it was kept off.
    pub fn relax(&mut self) {
        if self.since.is_some_and(|t| t.elapsed() >= APART_FOR) {
            self.restore();
        }
    }

    /// Let the thread run anywhere it could before, now.
    fn restore(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(allowed) = self.allowed.take() {
            let _ = rustix::thread::sched_setaffinity(None, &allowed);
        }
    }
}

impl Drop for Apart {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Where the creating thread runs, noted before it spawns a helper, for the
/// helper to move away from (the helper starts with the creator's CPU mask,
/// which [`Apart`] reads and gives back).
#[derive(Clone, Copy)]
pub struct Away {
    #[cfg(target_os = "linux")]
    cpu: usize,
}

impl Away {
    /// Note the calling thread's CPU: call on the thread about to spawn the
    /// helper.
    pub fn from_here() -> Self {
        Away {
            #[cfg(target_os = "linux")]
            cpu: rustix::thread::sched_getcpu(),
        }
    }

    /// Move the calling thread (the new helper) off the creator's CPU, and
    /// keep it off ([`Apart`]) until it calls [`Apart::relax`] after
    /// [`APART_FOR`]. Returns the CPU it moved to, or `None` when it stayed.
    pub fn go_and_stay_apart(self, apart: &mut Apart) -> Option<usize> {
        #[cfg(target_os = "linux")]
        {
            apart.keep_off(self.cpu);
            // Read while the mask still leaves the creator's CPU out: the
            // kernel has moved this thread before the call returned.
            apart.allowed.is_some().then(rustix::thread::sched_getcpu)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = apart;
            None
        }
    }

    /// Move the calling thread (the new helper) off the creator's CPU, then
    /// let it run anywhere the creator may. Returns the CPU it moved to, or
    /// `None` when it stayed (no other CPU, or the system refused).
    pub fn go(self) -> Option<usize> {
        // Kept off the creator's CPU just long enough to move; dropped, the
        // hold gives back the mask the thread was started with (its
        // creator's).
        self.go_and_stay_apart(&mut Apart::new())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

    #[test]
    fn a_helper_starts_on_another_allowed_cpu_and_keeps_the_whole_mask() {
        let allowed = sched_getaffinity(None).expect("the test thread's mask");
        let away = Away::from_here();
        let here = away.cpu;
        let (moved, mask) = std::thread::scope(|s| {
            s.spawn(|| (away.go(), sched_getaffinity(None).expect("the helper's mask")))
                .join()
                .expect("the helper ran")
        });
        if allowed.count() < 2 {
            assert_eq!(moved, None, "with one CPU allowed the helper stays");
        } else {
            let cpu = moved.expect("another CPU was allowed");
            assert_ne!(cpu, here, "the helper left its creator's CPU");
            assert!(allowed.is_set(cpu), "and went to one the creator may use");
        }
        assert!(same(&mask, &allowed), "the helper may run anywhere its creator may");
    }

    #[test]
    fn with_one_cpu_allowed_a_helper_stays_and_keeps_it() {
        let moved_and_mask = std::thread::spawn(|| {
            let mut one = CpuSet::new();
            one.set(rustix::thread::sched_getcpu());
            sched_setaffinity(None, &one).expect("a thread may narrow its own mask");
            let away = Away::from_here();
            std::thread::scope(|s| {
                s.spawn(|| (away.go(), sched_getaffinity(None).expect("the helper's mask")))
                    .join()
                    .expect("the helper ran")
            })
        })
        .join()
        .expect("the test thread ran");
        let (moved, mask) = moved_and_mask;
        assert_eq!(moved, None);
        assert_eq!(mask.count(), 1, "the helper's mask is its creator's single CPU");
    }

    /// A thread kept apart leaves the CPU and keeps off it; after
    /// `APART_FOR` it may run anywhere again.
    #[test]
    fn a_thread_kept_apart_keeps_off_the_cpu_for_a_while() {
        std::thread::spawn(|| {
            let allowed = sched_getaffinity(None).expect("the thread's mask");
            let here = rustix::thread::sched_getcpu();
            let mut apart = Apart::new();
            apart.keep_off(here);
            let mask = sched_getaffinity(None).expect("the thread's mask");
            if allowed.count() < 2 {
                assert!(same(&mask, &allowed), "with one CPU the thread stays");
                return;
            }
            assert!(!mask.is_set(here), "kept off its CPU");
            assert_ne!(rustix::thread::sched_getcpu(), here, "and moved");
            assert_eq!(mask.count(), allowed.count() - 1);
            apart.keep_off(here);
            assert!(
                !sched_getaffinity(None).expect("mask").is_set(here),
                "too soon to let go"
            );
            std::thread::sleep(APART_FOR);
            apart.relax();
            assert!(same(&sched_getaffinity(None).expect("mask"), &allowed), "let go");
            // Dropped (the decoder lets go before the reply, whose helper
            // threads inherit its mask), it lets go at once.
            let mut apart = Apart::new();
            apart.keep_off(rustix::thread::sched_getcpu());
            assert_eq!(sched_getaffinity(None).expect("mask").count(), allowed.count() - 1);
            drop(apart);
            assert!(
                same(&sched_getaffinity(None).expect("mask"), &allowed),
                "let go when dropped"
            );
        })
        .join()
        .expect("the test thread ran");
    }

    fn same(a: &CpuSet, b: &CpuSet) -> bool {
        (0..CpuSet::MAX_CPU).all(|c| a.is_set(c) == b.is_set(c))
    }
}
