//! Entry point: splunkd spawns this program with no arguments and talks to
//! it over stdin and stdout; `abusedweb scan FILE...` is the file front-end
//! for responders without Splunk. Everything happens in the library; this
//! only picks the front-end and wires the pipes.

use std::io::{self, Write};

fn main() {
    abusedweb::guard::install_quiet_hook();
    if let Some(args) = abusedweb::scan::requested() {
        std::process::exit(abusedweb::scan::main(args));
    }
    abusedweb::pipe::widen_stdin();
    // Unlocked, so the body can be read ahead on a second thread (a lock
    // guard cannot move between threads); each read takes the lock.
    let stdin = io::stdin();
    let mut stdout = io::stdout().lock();
    let code = abusedweb::guard::run_guarded(&mut stdout, |out| abusedweb::command::run(stdin, out));
    let _ = stdout.flush();
    // The thread kept for reading bodies ahead ends before the process:
    // under Wine a thread still alive at exit makes Wine write to stderr.
    abusedweb::codec::ahead::stop();
    std::process::exit(code);
}
