//! Splunk wildcard matching, compiled once per search.
//!
//! A pattern is Splunk's `field IN ("…")` value: `*` matches any run of
//! bytes (newlines included), every other byte is literal, and letters
//! compare ASCII-case-insensitively (non-ASCII bytes compare exactly).
//!
//! Nearly every pattern has one of four shapes: `*lit*`, `lit*`, `*lit` or
//! `lit`. The literals of `*lit*` patterns go into one Aho-Corasick automaton
//! asked only "is any of them in the value?" (its fastest question, with a
//! SIMD prefilter for small sets). The literals of the other shapes go into a
//! second automaton whose hits count when their position fits the pattern's
//! shape (at the start, at the end, or the whole value). A pattern with a `*`
//! inside (`*tunnel.*.ngrok.com*`) puts its longest segment into that second
//! automaton too, and its full segment check runs only on values holding
//! that segment, so a list with a few such patterns costs no scan per value.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

/// How a literal must sit in a value for its pattern to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Prefix,
    Suffix,
    Exact,
    /// The longest segment of `segmented[i]`: check the whole pattern.
    Segment(usize),
}

/// A pattern with `*` between literal segments, e.g. `*paste*bin*`.
#[derive(Debug, Clone)]
struct Segmented {
    anchored_start: bool,
    anchored_end: bool,
    segments: Vec<Vec<u8>>,
}

/// Above this many literals an automaton is built case-sensitive over
/// lowercased literals, and values are lowercased before the search: building
/// with ASCII case folding is about 3.5 times slower (2.5 s for 100,000
/// patterns), while for small sets the folding automaton matches fastest.
const FOLD_BEFORE_BUILD: usize = 1000;

/// Most literals an automaton is given aho-corasick's prefilter for (Teddy
/// serves up to 64); past them each value walks the automaton byte by byte.
const PREFILTER_UP_TO: usize = 64;

/// An automaton over some literals, and the pattern each literal stands for.
#[derive(Debug, Clone)]
struct Literals {
    automaton: AhoCorasick,
    /// Holds lowercased literals: lowercase values first.
    lowercase_values: bool,
    /// The pattern list index of each literal.
    pattern: Vec<usize>,
}

impl Literals {
    fn build(mut literals: Vec<Vec<u8>>, pattern: Vec<usize>) -> Result<Option<Self>, PatternError> {
        if literals.is_empty() {
            return Ok(None);
        }
        let lowercase_values = literals.len() > FOLD_BEFORE_BUILD;
        if lowercase_values {
            literals.iter_mut().for_each(|l| l.make_ascii_lowercase());
        }
        let automaton = AhoCorasick::builder()
            // Beyond Teddy's 64 literals aho-corasick falls back to a
            // rare-byte prefilter, which on DNS names (common letters, short
            // values) costs more than it saves: 10^6 events against the
            // 110 contains-literals of `extended` took 1.8 G instructions in
            // the prefilter alone.
            .prefilter(literals.len() <= PREFILTER_UP_TO)
            .ascii_case_insensitive(!lowercase_values)
            .match_kind(MatchKind::Standard)
            .kind(if lowercase_values {
                None
            } else {
                Some(AhoCorasickKind::DFA)
            })
            .build(&literals)
            .map_err(|e| PatternError::Build(e.to_string()))?;
        Ok(Some(Literals {
            automaton,
            lowercase_values,
            pattern,
        }))
    }

    /// Run `f` over the value as this automaton must see it (lowercased
    /// when its literals are).
    fn with_value<T>(&self, value: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
        if !self.lowercase_values {
            return f(value);
        }
        let mut stack = [0u8; 256];
        let mut heap = Vec::new();
        let lowered = if value.len() <= stack.len() {
            &mut stack[..value.len()]
        } else {
            heap.extend_from_slice(value);
            &mut heap[..]
        };
        lowered.copy_from_slice(value);
        lowered.make_ascii_lowercase();
        f(lowered)
    }
}

/// The compiled pattern list of one search.
#[derive(Debug, Clone)]
pub struct PatternSet {
    /// Literals of `*lit*` patterns.
    contains: Option<Literals>,
    /// Literals of the other shapes, and the longest segment of each
    /// segmented pattern.
    shaped: Option<Literals>,
    /// The shape of each literal of `shaped`.
    shapes: Vec<Shape>,
    segmented: Vec<Segmented>,
    /// The first pattern that is only `*`s, if any.
    match_all: Option<usize>,
    /// One literal per pattern that every value it matches holds.
    required: Vec<Vec<u8>>,
}

/// A pattern the matcher refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern list is empty.
    #[error("no patterns given")]
    Empty,
    /// A pattern is the empty string.
    #[error("a pattern is empty")]
    EmptyPattern,
    /// Building the automaton failed (too large).
    #[error("the patterns cannot be compiled: {0}")]
    Build(String),
}

impl PatternSet {
    /// Compile `patterns` (Splunk wildcards) into one matcher.
    pub fn new<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Self, PatternError> {
        if patterns.is_empty() {
            return Err(PatternError::Empty);
        }
        let (mut contains, mut contains_pattern) = (Vec::new(), Vec::new());
        let (mut shaped, mut shaped_pattern, mut shapes) = (Vec::new(), Vec::new(), Vec::new());
        let mut segmented = Vec::new();
        let mut match_all = None;
        let mut required = Vec::new();
        for (index, p) in patterns.iter().enumerate() {
            let p = p.as_ref();
            if p.is_empty() {
                return Err(PatternError::EmptyPattern);
            }
            let starts = p.first() == Some(&b'*');
            let ends = p.last() == Some(&b'*');
            let mut segments: Vec<Vec<u8>> = p
                .split(|&b| b == b'*')
                .filter(|s| !s.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            if let Some(longest) = segments.iter().max_by_key(|s| s.len()) {
                required.push(longest.clone());
            }
            match segments.len() {
                0 => {
                    match_all.get_or_insert(index);
                }
                1 if starts && ends => {
                    contains.append(&mut segments);
                    contains_pattern.push(index);
                }
                1 => {
                    shaped.append(&mut segments);
                    shaped_pattern.push(index);
                    shapes.push(match (starts, ends) {
                        (false, true) => Shape::Prefix,
                        (true, false) => Shape::Suffix,
                        _ => Shape::Exact,
                    });
                }
                _ => {
                    let longest = segments.iter().max_by_key(|s| s.len()).cloned().unwrap_or_default();
                    shaped.push(longest);
                    shaped_pattern.push(index);
                    shapes.push(Shape::Segment(segmented.len()));
                    segmented.push(Segmented {
                        anchored_start: !starts,
                        anchored_end: !ends,
                        segments,
                    });
                }
            }
        }
        Ok(PatternSet {
            contains: Literals::build(contains, contains_pattern)?,
            shaped: Literals::build(shaped, shaped_pattern)?,
            shapes,
            segmented,
            match_all,
            required,
        })
    }

    /// Literals of which every value that matches holds at least one
    /// (ASCII-case-insensitively): each pattern's longest segment. `None`
    /// when a pattern is only `*`s, which matches values without any.
    /// Serves the [`Prefilter`](super::prefilter::Prefilter).
    pub fn required_literals(&self) -> Option<&[Vec<u8>]> {
        match self.match_all {
            Some(_) => None,
            None => Some(&self.required),
        }
    }

    /// A value that holds one of the [`required_literals`](Self::required_literals)
    /// starting inside it matches: every pattern is `*literal*`, and no
    /// literal holds a byte that ends a cell of a chunk body (`,` `"` CR
    /// LF), so one that starts inside a cell's value also ends inside it.
    /// The decoder then vouches for rows whose prefilter hit lies in the
    /// matched field ([`Event::holds_literal`](super::Event::holds_literal))
    /// and the value need not be searched again.
    pub fn any_literal_matches(&self) -> bool {
        self.shaped.is_none()
            && self.match_all.is_none()
            && self
                .required
                .iter()
                .all(|l| !l.is_empty() && !l.iter().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')))
    }

    /// The index (in the list given to [`PatternSet::new`]) of the first
    /// pattern that matches `value`, if any. Slower than [`is_match`](Self::is_match)
    /// (every literal hit is looked at): for labelling result rows, not for
    /// the per-event path.
    pub fn first_match(&self, value: &[u8]) -> Option<usize> {
        if value.is_empty() {
            return None;
        }
        let mut best = self.match_all;
        let mut consider = |i: usize| {
            if best.is_none_or(|b| i < b) {
                best = Some(i);
            }
        };
        if let Some(lits) = &self.contains {
            lits.with_value(value, |hay| {
                for m in lits.automaton.find_overlapping_iter(hay) {
                    consider(lits.pattern[m.pattern().as_usize()]);
                }
            });
        }
        if let Some(lits) = &self.shaped {
            lits.with_value(value, |hay| {
                for m in lits.automaton.find_overlapping_iter(hay) {
                    let literal = m.pattern().as_usize();
                    if self.fits(self.shapes[literal], m.start(), m.end(), hay) {
                        consider(lits.pattern[literal]);
                    }
                }
            });
        }
        best
    }

    /// Does a hit of a `shaped` literal at `start..end` of `hay` make its
    /// pattern match?
    fn fits(&self, shape: Shape, start: usize, end: usize, hay: &[u8]) -> bool {
        match shape {
            Shape::Prefix => start == 0,
            Shape::Suffix => end == hay.len(),
            Shape::Exact => start == 0 && end == hay.len(),
            Shape::Segment(i) => self.segmented[i].is_match(hay),
        }
    }

    /// Whether matching a value costs more than remembering its verdict
    /// ([`super::verdicts`]): an automaton past [`PREFILTER_UP_TO`]
    /// literals walks every byte of every value, through tables larger
    /// than the caches. Remembering took 0.83x the time with 1,000
    /// patterns, 0.74x with 10,000 and 0.91x with 100,000 (10^6 events,
    /// 1% match), 1.00x with 100; a short list's prefiltered DFA answers
    /// faster than a hash.
    pub fn costly(&self) -> bool {
        [&self.contains, &self.shaped]
            .into_iter()
            .flatten()
            .any(|lits| lits.pattern.len() > PREFILTER_UP_TO)
    }

    /// Does `value` match any pattern? An empty value never matches: in
    /// Splunk an empty field is an absent field.
    pub fn is_match(&self, value: &[u8]) -> bool {
        if value.is_empty() {
            return false;
        }
        if self.match_all.is_some() {
            return true;
        }
        if let Some(lits) = &self.contains {
            if lits.with_value(value, |hay| lits.automaton.is_match(hay)) {
                return true;
            }
        }
        match &self.shaped {
            // Most values hold none of these literals: ask the cheap
            // question first, then look at where each hit sits.
            Some(lits) => lits.with_value(value, |hay| {
                lits.automaton.is_match(hay)
                    && lits
                        .automaton
                        .find_overlapping_iter(hay)
                        .any(|m| self.fits(self.shapes[m.pattern().as_usize()], m.start(), m.end(), hay))
            }),
            None => false,
        }
    }
}

impl Segmented {
    fn is_match(&self, value: &[u8]) -> bool {
        let (first, rest) = self.segments.split_first().expect("at least two segments");
        let (last, middle) = rest.split_last().expect("at least two segments");
        let mut from = 0;
        if self.anchored_start {
            if !starts_with_ci(value, first) {
                return false;
            }
            from = first.len();
        } else {
            match find_ci(&value[from..], first) {
                Some(i) => from += i + first.len(),
                None => return false,
            }
        }
        // The last segment's earliest allowed start.
        let end_limit = if self.anchored_end {
            if value.len() < last.len() + from || !value[value.len() - last.len()..].eq_ignore_ascii_case(last) {
                return false;
            }
            value.len() - last.len()
        } else {
            value.len()
        };
        // Greedy leftmost placement of the middle segments is optimal for `*`-only globs.
        for seg in middle {
            match find_ci(&value[from..end_limit], seg) {
                Some(i) => from += i + seg.len(),
                None => return false,
            }
        }
        if self.anchored_end {
            true
        } else {
            find_ci(&value[from..], last).is_some()
        }
    }
}

fn starts_with_ci(value: &[u8], lit: &[u8]) -> bool {
    value.len() >= lit.len() && value[..lit.len()].eq_ignore_ascii_case(lit)
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

/// The six patterns of ESCU's search (with the upstream `""*textbin*""`
/// quoting slip read as `*textbin*`).
pub const DEFAULT_PATTERNS: [&str; 6] = [
    "*pastebin*",
    "*textbin*",
    "*ngrok.io*",
    "*discord*",
    "*duckdns.org*",
    "*pasteio.com*",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str], value: &str) -> bool {
        PatternSet::new(patterns).unwrap().is_match(value.as_bytes())
    }

    #[test]
    fn default_patterns_are_case_insensitive_contains() {
        let set = PatternSet::new(&DEFAULT_PATTERNS).unwrap();
        for hit in [
            "pastebin.com",
            "PASTEBIN.COM",
            "x.ngrok.io.",
            "cdn.discordapp.com",
            "a.DuckDns.org",
            "textbin.net",
        ] {
            assert!(set.is_match(hit.as_bytes()), "{hit}");
        }
        for miss in ["pastebim.com", "ngrok.com", "ngrokxio", "duckdns.or", "", "pasteio.co"] {
            assert!(!set.is_match(miss.as_bytes()), "{miss}");
        }
    }

    /// A literal decides only where every pattern is `*literal*` and no
    /// literal can reach past a cell's value.
    #[test]
    fn a_literal_decides_for_contains_patterns_only() {
        assert!(PatternSet::new(&DEFAULT_PATTERNS).unwrap().any_literal_matches());
        assert!(PatternSet::new(&["*pastebin*", "**ngrok.io**"])
            .unwrap()
            .any_literal_matches());
        for not in [
            &["*pastebin*", "paste*"][..],
            &["*pastebin*", "*.io"],
            &["pastebin.com"],
            &["*paste*bin*"],
            &["*pastebin*", "*"],
            &["*a,b*"],
            &["*a\"b*"],
            &["*a\rb*"],
        ] {
            assert!(!PatternSet::new(not).unwrap().any_literal_matches(), "{not:?}");
        }
    }

    #[test]
    fn shapes_anchor_where_splunk_does() {
        assert!(m(&["paste*"], "PasteBin.com"));
        assert!(!m(&["paste*"], "xpaste"));
        assert!(m(&["*.io"], "a.ngrok.IO"));
        assert!(!m(&["*.io"], "a.io."));
        assert!(m(&["pastebin.com"], "PASTEBIN.com"));
        assert!(!m(&["pastebin.com"], "pastebin.com."));
        assert!(m(&["*"], "anything"));
        assert!(!m(&["*"], ""));
        assert!(m(&["**a**"], "xAx"));
    }

    #[test]
    fn segmented_patterns() {
        assert!(m(&["*paste*bin*"], "xpastexbinx"));
        assert!(m(&["paste*bin"], "paste.bin"));
        assert!(!m(&["paste*bin"], "paste.bin."));
        assert!(m(&["a*a"], "aa"));
        assert!(!m(&["a*a"], "a"));
        assert!(m(&["ab*b*bc"], "abbbc"));
        assert!(!m(&["ab*b*bc"], "abbc"));
        assert!(m(&["*a*\n*"], "xa\ny"));
    }

    #[test]
    fn non_ascii_is_exact_and_newlines_are_literal_to_star() {
        assert!(m(&["*é*"], "café"));
        assert!(!m(&["*É*"], "café"));
        assert!(m(&["*a*"], "\nA\n"));
    }

    #[test]
    fn mixed_shapes_in_one_automaton() {
        let set = PatternSet::new(&["*discord*", "ngrok*", "*.org", "t.me"]).unwrap();
        assert!(set.is_match(b"NGROK.x"));
        assert!(set.is_match(b"duckdns.ORG"));
        assert!(set.is_match(b"T.ME"));
        assert!(!set.is_match(b"xt.me"));
        assert!(!set.is_match(b"org.x"));
    }

    #[test]
    fn large_sets_fold_case_the_same_way() {
        let mut patterns: Vec<String> = (0..FOLD_BEFORE_BUILD + 5).map(|i| format!("*x{i}.Invalid*")).collect();
        patterns.extend([
            "PASTE*".to_string(),
            "*.ORG".to_string(),
            "T.me".to_string(),
            "*a*É*".to_string(),
        ]);
        let set = PatternSet::new(&patterns).unwrap();
        assert!(set.contains.as_ref().is_some_and(|l| l.lowercase_values));
        for (value, want) in [
            ("X12.INVALID", true),
            ("pastebin.com", true),
            ("xpaste", false),
            ("duckdns.org", true),
            ("t.ME", true),
            ("xt.me", false),
            ("AÉ", true),
            ("aé", false),
        ] {
            assert_eq!(set.is_match(value.as_bytes()), want, "{value}");
        }
        let long = format!("{}pastebin", "y".repeat(300));
        assert!(!set.is_match(long.as_bytes()));
        assert!(set.is_match(format!("PASTE{long}").as_bytes()));
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(PatternSet::new::<&str>(&[]).unwrap_err(), PatternError::Empty);
        assert_eq!(PatternSet::new(&[""]).unwrap_err(), PatternError::EmptyPattern);
    }
}

#[cfg(test)]
mod first_match_tests {
    use super::*;

    #[test]
    fn first_match_is_the_earliest_pattern_in_list_order_whatever_its_shape() {
        let set = PatternSet::new(&["*bin.com", "*tunnel.*.ngrok.com*", "pastebin*", "*paste*", "*x*y*"]).unwrap();
        assert_eq!(set.first_match(b"pastebin.com"), Some(0));
        assert_eq!(set.first_match(b"pastebin.org"), Some(2));
        assert_eq!(set.first_match(b"a.paste.org"), Some(3));
        assert_eq!(set.first_match(b"TUNNEL.us.NGROK.com"), Some(1));
        assert_eq!(set.first_match(b"tunnel.ngrok.com"), None);
        assert_eq!(set.first_match(b"axbyc"), Some(4));
        assert_eq!(set.first_match(b""), None);
        for v in [&b"pastebin.com"[..], b"tunnel.ngrok.com", b"axbyc", b"zzz"] {
            assert_eq!(set.is_match(v), set.first_match(v).is_some(), "{v:?}");
        }
    }
}
