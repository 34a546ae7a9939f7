//! The pipe splunkd writes requests into.
//!
//! Linux gives a pipe 64 KiB of buffer: splunkd can then only get 64 KiB
//! ahead of the command, and while the command works through its windows
//! (three of 256 KiB in flight), splunkd waits; the two take turns instead
//! of running side by side. Widening the pipe to a megabyte lets them overlap.
//! It changes nothing else: the same bytes arrive in the same order.

/// How far splunkd may run ahead: a megabyte, more than the body decoder's
/// windows in flight (three of [`crate::codec::body::WINDOW`]).
pub const AHEAD: usize = 1 << 20;

/// Widen stdin's pipe to [`AHEAD`] bytes when stdin is a pipe on Linux.
/// Anything else (a file, a terminal, a limit below it in
/// `/proc/sys/fs/pipe-max-size`, another system) leaves stdin as it is: the
/// only cost of not widening is speed.
pub fn widen_stdin() {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsFd;
        let _ = rustix::pipe::fcntl_setpipe_size(std::io::stdin().as_fd(), AHEAD);
    }
}
