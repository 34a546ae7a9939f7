//! The whole command over arbitrary bytes: `command::run` must answer with
//! well-formed chunks and end either cleanly (exit 0) or with exactly one
//! error reply as its last chunk (exit 1). Panics, hangs and allocations far
//! beyond the input are findings (libFuzzer's -timeout and -rss_limit_mb).
//! (The reply may be much larger than the request: multivalue by-fields form
//! a cartesian product of groups, by design.)
//!
//! Inputs that start with `c` are fed as they are (real captures begin with
//! `chunked`). Any other first byte selects a valid getinfo request that is
//! sent first (`reply_check::request_stream_input`), so the fuzzer spends its
//! time on execute requests and bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../reply_check.rs"]
mod reply_check;

fuzz_target!(|data: &[u8]| {
    let input = reply_check::request_stream_input(data);
    let mut out = Vec::new();
    let code = abusedweb::command::run(&input[..], &mut out);
    if let Err(e) = reply_check::check_conversation(&out, code) {
        panic!("{e}\noutput: {:?}", String::from_utf8_lossy(&out));
    }
});
