//! Helper threads start on another CPU than the thread that spawns them.
//!
//! On the 2-CPU benchmark machine (Linux 6.18), a new thread started on its
//! creator's CPU, and the load balancer moved one of the two about a
//! millisecond later. The body reader ([`crate::codec::ahead`]) was then
//! started afresh for each chunk, which takes 2 to 3 ms at a 1% match rate:
//! for half of every chunk the reader and the decoder took turns on one CPU
//! while the other idled. The reply's sort and write helpers, started once
//! a search, met the same. (The body reader's thread is now started once and
//! kept; it too moves away when it starts.)
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

/// Where the creating thread runs and where it may run, noted before it
/// spawns a helper, for the helper to move away from.
#[derive(Clone, Copy)]
pub struct Away {
    #[cfg(target_os = "linux")]
    from: Option<(usize, rustix::thread::CpuSet)>,
}

impl Away {
    /// Note the calling thread's CPU and the CPUs it may use: call on the
    /// thread about to spawn the helper.
    pub fn from_here() -> Self {
        Away {
            #[cfg(target_os = "linux")]
            from: rustix::thread::sched_getaffinity(None)
                .ok()
                .map(|allowed| (rustix::thread::sched_getcpu(), allowed)),
        }
    }

    /// Move the calling thread (the new helper) off the creator's CPU, then
    /// let it run anywhere the creator may. Returns the CPU it moved to, or
    /// `None` when it stayed (no other CPU, or the system refused).
    pub fn go(self) -> Option<usize> {
        #[cfg(target_os = "linux")]
        {
            use rustix::thread::{sched_getcpu, sched_setaffinity};
            let (here, allowed) = self.from?;
            let mut others = allowed;
            others.unset(here);
            if others.count() == 0 {
                return None;
            }
            sched_setaffinity(None, &others).ok()?;
            // Read while the mask still leaves `here` out: the kernel has
            // moved this thread before the call returned.
            let moved = sched_getcpu();
            let _ = sched_setaffinity(None, &allowed);
            Some(moved)
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
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
        let here = away.from.expect("Linux tells a thread its CPU and mask").0;
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

    fn same(a: &CpuSet, b: &CpuSet) -> bool {
        (0..CpuSet::MAX_CPU).all(|c| a.is_set(c) == b.is_set(c))
    }
}
