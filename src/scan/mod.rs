//! `abusedweb scan`: the detection over exported logs (EVTX, JSON,
//! XmlWinEventLog, gzip-compressed or not), outside Splunk. A second
//! front-end to the engine, beside [`crate::command`]: the options, pattern
//! lists, matcher and aggregation are the command's own, so the same events
//! give the same columns and rows.
//!
//! * `cli`: the command line, the loop feeding the engine, the output formats;
//! * `read`: format detection and one reader per format;
//! * `ordered`: one file's pieces read on every core, taken back in order;
//! * `runs`: a file's text cut into runs of whole records for threads;
//! * `xml`: XmlWinEventLog events parsed in runs on every core;
//! * `pretty`: a file of pretty-printed JSON objects parsed in runs on every
//!   core, the one-thread reader in `read` taking any object a run stops at;
//! * [`record`]: the Sysmon add-on's field extraction for EventCode 22;
//! * [`json`]: a JSON record's fields read from its text, without its tree.
//!
//! Behind the cargo feature `scan` (on by default): the Splunk app's
//! programs are built without it (Cargo.toml says why) and answer `scan`
//! with an error.

#[cfg(feature = "scan")]
mod cli;
pub mod json;
#[cfg(feature = "scan")]
mod ordered;
#[cfg(feature = "scan")]
mod pretty;
#[cfg(feature = "scan")]
pub mod read;
pub mod record;
#[cfg(feature = "scan")]
mod runs;
#[cfg(feature = "scan")]
mod xml;

#[cfg(feature = "scan")]
pub use cli::*;

use std::ffi::OsString;

/// The program's arguments when its first is `scan`; `None` otherwise, as
/// when splunkd starts it (with no arguments) for the search command.
pub fn requested() -> Option<Vec<OsString>> {
    let args: Vec<OsString> = std::env::args_os().collect();
    (args.get(1).is_some_and(|a| a == "scan")).then_some(args)
}

/// `abusedweb scan` in a program built without the `scan` feature (the
/// Splunk app's): an error, exit status 2.
#[cfg(not(feature = "scan"))]
pub fn main(_args: Vec<OsString>) -> i32 {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "abusedweb scan: this program was built without the scan feature (the Splunk app's programs are); build it with `cargo build --release`"
    );
    2
}
