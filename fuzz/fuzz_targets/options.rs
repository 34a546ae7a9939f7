//! Command arguments over arbitrary text, and the wildcard matcher against a
//! plain reference. Input: `arg\narg\n...\0value\nvalue\n...`.
//!
//! Every argument list either parses or fails with a message that lists the
//! valid options; a parsed pattern list matches exactly what a naive Splunk
//! wildcard matcher (`*` = any bytes, ASCII case-insensitive, empty value
//! never matches) matches; and the map-phase preop built from any parsed
//! options, split and unquoted as splunkd does, parses back to the same
//! patterns, field and caps.
#![no_main]

use abusedweb::command::options::{Options, Phase};
use libfuzzer_sys::fuzz_target;

/// Classic glob matching with backtracking to the last `*`: O(n·m).
fn reference_match(pattern: &[u8], value: &[u8]) -> bool {
    if value.is_empty() {
        return false;
    }
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, v));
            p += 1;
        } else if p < pattern.len() && pattern[p].eq_ignore_ascii_case(&value[v]) {
            p += 1;
            v += 1;
        } else if let Some((sp, sv)) = star {
            p = sp + 1;
            v = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

fuzz_target!(|data: &[u8]| {
    let (args, values) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let args: Vec<String> = String::from_utf8_lossy(args).split('\n').map(str::to_string).collect();
    match Options::parse(&args) {
        Ok(opts) => {
            assert!((1..=100_000_000).contains(&opts.max_groups));
            assert!((1024..=16 << 30).contains(&opts.max_chunk_bytes));
            assert!(!opts.field.is_empty() && !opts.field.contains(['/', '\\', '\0']));
            assert!(!opts.patterns.is_empty());
            let preop = opts.map_preop();
            let mut tokens = vec![String::new()];
            let mut quoted = false;
            for c in preop.chars() {
                match c {
                    '"' => quoted = !quoted,
                    c if c.is_whitespace() && !quoted => tokens.push(String::new()),
                    c => tokens.last_mut().unwrap().push(c),
                }
            }
            assert!(!quoted && tokens.remove(0) == "abusedweb", "{preop}");
            let map = Options::parse(&tokens).unwrap_or_else(|e| panic!("{preop}: {e}"));
            assert_eq!(map.phase, Phase::Map);
            assert_eq!(
                (&map.patterns, &map.field, map.max_groups, map.max_chunk_bytes),
                (&opts.patterns, &opts.field, opts.max_groups, opts.max_chunk_bytes),
                "{preop}"
            );
            assert_eq!(map.profile, opts.profile, "{preop}");
            if !opts.explicit_patterns {
                // A list travels by name: the version's own when none was given.
                let list = opts.list.clone().unwrap_or_else(|| opts.profile.list.to_string());
                assert_eq!(map.list.as_deref(), Some(list.as_str()), "{preop}");
            }
            for value in values.split(|&b| b == b'\n').take(16) {
                let want = opts.patterns.iter().any(|p| reference_match(p.as_bytes(), value));
                assert_eq!(
                    opts.matcher.is_match(value),
                    want,
                    "patterns {:?} value {:?}",
                    opts.patterns,
                    String::from_utf8_lossy(value)
                );
            }
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains(". Valid options: patterns="), "{text}");
            assert!(text.chars().count() <= 600, "option error too long: {text}");
        }
    }
});
