//! The whole command over arbitrary bytes: `command::run` must answer with
//! well-formed chunks and end either cleanly (exit 0) or with exactly one
//! error reply as its last chunk (exit 1). Panics, hangs and allocations far
//! beyond the input are findings (libFuzzer's -timeout and -rss_limit_mb).
//! (The reply may be much larger than the request: multivalue by-fields form
//! a cartesian product of groups, by design.)
//!
//! Inputs that start with `c` are fed as they are (real captures begin with
//! `chunked`). Any other first byte selects a valid getinfo request that is
//! sent first, so the fuzzer spends its time on execute requests and bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../reply_check.rs"]
mod reply_check;

const GETINFOS: [&str; 5] = [
    r#"{"action":"getinfo","searchinfo":{"args":[],"session_key":"k"}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["patterns=* "]}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["patterns=*a* b*c *.io x*y*z","max_groups=3"]}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["field=teststring","patterns=*t*","max_chunk_bytes=1024"]}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["field=Computer","patterns=*"]}}"#,
];

fuzz_target!(|data: &[u8]| {
    let input: Vec<u8> = match data.first() {
        None | Some(b'c') => data.to_vec(),
        Some(&sel) => {
            let meta = GETINFOS[usize::from(sel) % GETINFOS.len()];
            let mut v = format!("chunked 1.0,{},0\n{meta}", meta.len()).into_bytes();
            v.extend_from_slice(&data[1..]);
            v
        }
    };
    let mut out = Vec::new();
    let code = abusedweb::command::run(&input[..], &mut out);
    if let Err(e) = reply_check::check_conversation(&out, code) {
        panic!("{e}\noutput: {:?}", String::from_utf8_lossy(&out));
    }
});
