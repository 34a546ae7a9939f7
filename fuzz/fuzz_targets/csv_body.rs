//! CSV bodies and `__mv_` values over arbitrary bytes.
//!
//! * Decoding never panics and gives the same rows, values and errors
//!   whatever the size of the reads from the body (1 to 16 bytes at a time
//!   against the whole slice).
//! * Skimming for the six default literals (the candidate scan) gives the
//!   same row count and error, and hands over the tokeniser's rows less only
//!   rows none of whose values holds a literal; so does skimming for ESCU
//!   v13's 35 or the app's `extended` list (the search's eight or sixteen
//!   buckets shared, on CPUs with AVX2 or AVX-512), one or the other by the
//!   input's length.
//! * `__mv_` decoding: whatever decodes re-encodes to the same bytes, and any
//!   list of values survives encode → decode.
#![no_main]

use abusedweb::codec::body::Decoder;
use abusedweb::codec::multivalue;
use abusedweb::command::lists::Lists;
use abusedweb::engine::prefilter::Prefilter;
use abusedweb::engine::wildcard::{PatternSet, DEFAULT_PATTERNS};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::io::Read;

const FIELDS: [&str; 9] = [
    "_time",
    "Image",
    "QueryName",
    "QueryStatus",
    "process_name",
    "QueryResults",
    "Computer",
    "teststring",
    "text",
];

/// A reader that hands out at most `step` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.len().min(out.len()).min(self.step);
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

type Rows = Vec<(u64, u64, Vec<Result<Vec<Vec<u8>>, usize>>)>;

thread_local! {
    // One decoder per way of reading, reused across inputs as the command
    // reuses its decoder across the chunks of a search: state left behind by
    // one body (a grown window, a failed decode) must not change the next.
    static DECODERS: [RefCell<Decoder>; 2] = [RefCell::new(Decoder::new(&FIELDS)), RefCell::new(Decoder::new(&FIELDS))];
    static SKIMMING: RefCell<Decoder> = RefCell::new(skimming(&literals()));
    static SKIMMING_LISTS: [(RefCell<Decoder>, Vec<Vec<u8>>); 2] = ["escu_v13", "extended"].map(|name| {
        let literals = list_literals(name);
        (RefCell::new(skimming(&literals)), literals)
    });
}

/// A decoder skimming for `literals` (reading every row where no
/// prefilter serves them).
fn skimming(literals: &[Vec<u8>]) -> Decoder {
    let mut d = Decoder::new(&FIELDS);
    if let Some(prefilter) = Prefilter::new(literals) {
        d.skim_with(prefilter, 0);
    }
    d
}

/// The literals of the six default patterns (`*pastebin*` → `pastebin`).
fn literals() -> Vec<Vec<u8>> {
    DEFAULT_PATTERNS.iter().map(|p| p.trim_matches('*').as_bytes().to_vec()).collect()
}

/// The literals of the patterns of the app's list `name`, from its lookup.
fn list_literals(name: &str) -> Vec<Vec<u8>> {
    let lookup = include_str!("../../lookups/abused_web_services.csv");
    let lists = Lists::parse(lookup, "abused_web_services.csv", None).expect("the shipped lookup");
    let patterns: Vec<&str> = lists
        .get(name)
        .expect("a shipped list")
        .iter()
        .map(|e| e.pattern.as_str())
        .collect();
    PatternSet::new(&patterns)
        .expect("its patterns")
        .required_literals()
        .expect("literals")
        .to_vec()
}

/// The candidate scan against the tokeniser's rows (`whole`): the same
/// row count and error, and the tokeniser's rows less only rows none of
/// whose values holds one of `literals`.
fn skims_as_it_tokenises(
    decoder: &RefCell<Decoder>,
    literals: &[Vec<u8>],
    data: &[u8],
    step: usize,
    whole: &(Result<u64, String>, Rows),
) {
    let (skim_result, skimmed, skipped) = {
        let mut d = decoder.borrow_mut();
        let (result, rows) = decode_with(&mut d, Trickle { data, step });
        (result, rows, d.skipped())
    };
    assert_eq!(skim_result, whole.0);
    let holds = |fields: &Vec<Result<Vec<Vec<u8>>, usize>>| {
        fields.iter().flatten().flatten().any(|v| {
            literals
                .iter()
                .any(|l| v.windows(l.len()).any(|w| w.eq_ignore_ascii_case(l)))
        })
    };
    let mut handed = skimmed.iter().peekable();
    for row in &whole.1 {
        if handed.peek() == Some(&row) {
            handed.next();
        } else {
            assert!(!holds(&row.2), "a row that can match was skipped: {row:?}");
        }
    }
    assert!(
        handed.next().is_none(),
        "a row the tokeniser never gave was handed over"
    );
    if let Ok(n) = skim_result {
        assert_eq!(n, skimmed.len() as u64 + skipped);
    }
}

fn decode<R: Read + Send>(which: usize, body: R) -> (Result<u64, String>, Rows) {
    DECODERS.with(|d| decode_with(&mut d[which].borrow_mut(), body))
}

fn decode_with<R: Read + Send>(decoder: &mut Decoder, body: R) -> (Result<u64, String>, Rows) {
    let mut rows = Vec::new();
    let result = decoder.decode(body, 7, 1000, |row| {
        let fields = (0..FIELDS.len())
            .map(|i| row.field(i).values().map(|v| v.map(|c| c.into_owned())).collect())
            .collect();
        rows.push((row.number, row.offset, fields));
        Ok(())
    });
    (result.map_err(|e| e.to_string()), rows)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let whole = decode(0, rest);
    let trickled = decode(
        1,
        Trickle {
            data: rest,
            step: usize::from(mode % 16) + 1,
        },
    );
    assert_eq!(whole, trickled);
    if let Ok(n) = whole.0 {
        assert_eq!(n as usize, whole.1.len());
    }
    // Now and then, a fresh decoder agrees with the reused one (not always:
    // a new decoder's buffer costs more than most inputs).
    if mode % 8 == 0 {
        assert_eq!(whole, decode_with(&mut Decoder::new(&FIELDS), rest));
    }

    // The candidate scan against the tokeniser, for the six and for a longer list.
    let step = usize::from(mode / 16) + 1;
    SKIMMING.with(|d| skims_as_it_tokenises(d, &literals(), rest, step, &whole));
    SKIMMING_LISTS.with(|lists| {
        let (d, list) = &lists[rest.len() % 2];
        skims_as_it_tokenises(d, list, rest, step, &whole)
    });

    // The whole input as one encoded `__mv_` value.
    let decoded: Result<Vec<Vec<u8>>, usize> = multivalue::decode(rest).map(|v| v.map(|c| c.into_owned())).collect();
    match decoded {
        Ok(values) => {
            let mut again = Vec::new();
            multivalue::encode(values.iter().map(Vec::as_slice), &mut again);
            assert_eq!(again, rest, "decode then encode changed the bytes");
        }
        Err(at) => assert!(at <= rest.len()),
    }
    // The input as a list of values (split at NUL) survives encode → decode.
    let values: Vec<&[u8]> = rest.split(|&b| b == 0).collect();
    let mut enc = Vec::new();
    multivalue::encode(values.iter().copied(), &mut enc);
    let back: Vec<Vec<u8>> = multivalue::decode(&enc)
        .map(|v| v.expect("our own encoding decodes").into_owned())
        .collect();
    assert_eq!(back, values);
});
