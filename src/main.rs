//! Entry point: splunkd spawns this program and talks to it over stdin and
//! stdout. Everything happens in the library; this only wires the pipes.

use std::io::{self, Write};

fn main() {
    abusedweb::guard::install_quiet_hook();
    let stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    let code = abusedweb::guard::run_guarded(&mut stdout, |out| abusedweb::command::run(stdin, out));
    let _ = stdout.flush();
    std::process::exit(code);
}
