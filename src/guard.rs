//! Last line of defence: a panic becomes an error reply, not a crash.
//!
//! No input should reach a panic, but if one does, splunkd must still get a
//! well-formed reply with `finished: true` and an error text, and the process
//! must exit non-zero. Replies are written whole (see
//! [`write_chunk`]), so a panic can never leave a
//! half-written chunk behind, and the default panic hook is replaced so that
//! nothing is printed to stderr (which splunkd logs at ERROR level).

use crate::protocol::chunk::write_chunk;
use crate::protocol::metadata::error_reply;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Replace the default panic hook with one that only remembers where the
/// panic happened (file and line, never the payload, which could hold data).
pub fn install_quiet_hook() {
    panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown location".into());
        if let Ok(mut slot) = LAST_PANIC.lock() {
            *slot = Some(place);
        }
    }));
}

/// Run `serve` (which returns an exit code); if it panics, answer with an
/// error reply on `output` and return exit code 2.
pub fn run_guarded<W: Write>(output: &mut W, serve: impl FnOnce(&mut W) -> i32) -> i32 {
    match panic::catch_unwind(AssertUnwindSafe(|| serve(&mut *output))) {
        Ok(code) => code,
        Err(_) => {
            let place = LAST_PANIC
                .lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_else(|| "unknown location".into());
            let text = format!("internal error in abusedweb (a bug, please report it): panic at {place}");
            let _ = write_chunk(output, &error_reply(&text), b"");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_reply_and_nonzero_exit() {
        install_quiet_hook();
        let mut out = Vec::new();
        let code = run_guarded(&mut out, |_| panic!("boom with data SECRET"));
        assert_eq!(code, 2);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("chunked 1.0,"), "{text}");
        assert!(text.contains("\"finished\":true"));
        assert!(text.contains("internal error in abusedweb"));
        assert!(text.contains("guard.rs"));
        assert!(!text.contains("SECRET"));
        let _ = panic::take_hook();
    }

    #[test]
    fn normal_exit_codes_pass_through() {
        let mut out = Vec::new();
        assert_eq!(run_guarded(&mut out, |_| 0), 0);
        assert!(out.is_empty());
    }
}
