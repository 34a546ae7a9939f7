//! The command's arguments, declared once in [`OPTIONS`].
//!
//! splunkd hands arguments over in getinfo's `searchinfo.args`, already
//! tokenised and unquoted (`patterns="*a* *b*"` arrives as `patterns=*a* *b*`).
//! Each must be `name=value` with a name from the table; the same table feeds
//! the error text, and tests check `searchbnf.conf` and the README against it.
//!
//! The map phase is started by splunkd from the `streaming_preop` string the
//! reduce phase writes ([`Options::map_preop`]). That string carries every
//! option the map needs, each value quoted and with every byte outside a small
//! safe set percent-encoded, so no reading of splunkd's tokeniser (quotes,
//! backslashes, `=`, commas it strips, `|` and `[` it interprets) can change a
//! value on its way to the indexers; the map process decodes them again.

use super::lists::Lists;
use super::profile::{Profile, V4};
use crate::engine::wildcard::{PatternSet, DEFAULT_PATTERNS};
use crate::error::Error;

/// One option's declaration: its name, value syntax, default and meaning.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The name typed before `=`.
    pub name: &'static str,
    /// The value's syntax, as shown in help text.
    pub syntax: &'static str,
    /// The default, as shown in help text.
    pub default: &'static str,
    /// What the option does.
    pub doc: &'static str,
}

/// Every option the command accepts.
pub const OPTIONS: [OptionSpec; 8] = [
    OptionSpec {
        name: "patterns",
        syntax: "<wildcard> <wildcard> ...",
        default: "*pastebin* *textbin* *ngrok.io* *discord* *duckdns.org* *pasteio.com*",
        doc: "space-separated Splunk wildcards (`*` = any characters, case-insensitive) that replace the ESCU list",
    },
    OptionSpec {
        name: "field",
        syntax: "<field name>",
        default: "QueryName",
        doc: "the field whose values are matched against the patterns",
    },
    OptionSpec {
        name: "max_groups",
        syntax: "<integer 1..100000000>",
        default: "1000000",
        doc: "stop the search with an error when more distinct result rows than this would be produced",
    },
    OptionSpec {
        name: "max_chunk_bytes",
        syntax: "<integer 1024..17179869184>",
        default: "1073741824",
        doc: "stop the search with an error when one request body from splunkd is larger than this",
    },
    OptionSpec {
        name: "list",
        syntax: "<list name>",
        default: "escu_v1",
        doc: "the pattern list of the app's lookup to match (escu_v1, escu_v13, extended, or one of your own); \
              the default is the ESCU version's own list (escu_v13 with escu_version=13)",
    },
    OptionSpec {
        name: "escu_version",
        syntax: "4|13",
        default: "4",
        doc: "which ESCU search to reproduce: 4 (six by-fields, ESCU v1-v4) or 13 (the CIM fields of ESCU v13)",
    },
    OptionSpec {
        name: "distributed",
        syntax: "<bool>",
        default: "false",
        doc: "true: match and pre-aggregate on the indexers (a map phase), merge on the search head",
    },
    OptionSpec {
        name: "phase",
        syntax: "map|reduce",
        default: "reduce",
        doc: "internal: the command sets phase=map itself in the map phase it asks splunkd to run on the indexers",
    },
];

/// The parsed arguments of one search.
#[derive(Debug, Clone)]
pub struct Options {
    /// Raw wildcard patterns (bytes as typed).
    pub patterns: Vec<String>,
    /// The compiled matcher for `patterns`.
    pub matcher: PatternSet,
    /// The field matched against the patterns.
    pub field: String,
    /// Cap on distinct groups.
    pub max_groups: usize,
    /// Cap on one request body.
    pub max_chunk_bytes: u64,
    /// Ask splunkd to run a map phase (matching and partial aggregation) on
    /// the indexers before this reduce phase.
    pub distributed: bool,
    /// Which phase this process is.
    pub phase: Phase,
    /// `list=`: a pattern list of the lookups (`None`: the version's own).
    pub list: Option<String>,
    /// `patterns=` was given: it replaces any list.
    pub explicit_patterns: bool,
    /// Which ESCU search is reproduced.
    pub profile: Profile,
    /// Each pattern's category, when the patterns came from a list other
    /// than the version's own (the result then gains `category` and
    /// `matched_pattern` columns).
    pub categories: Option<Vec<String>>,
}

/// The part of a distributed search a process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The reporting command the user typed: merges events and partial rows
    /// into the result (the only phase when `distributed=false`).
    Reduce,
    /// The `streaming_preop` the reduce asked for: matches a request's events
    /// and answers it with one partial row per group.
    Map,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            patterns: DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect(),
            matcher: PatternSet::new(&DEFAULT_PATTERNS).expect("default patterns compile"),
            field: "QueryName".into(),
            max_groups: 1_000_000,
            max_chunk_bytes: 1 << 30,
            distributed: false,
            phase: Phase::Reduce,
            list: None,
            explicit_patterns: false,
            profile: V4,
            categories: None,
        }
    }
}

/// Bytes a preop value may carry as they are: nothing splunkd's tokeniser or
/// search language could read as syntax (quotes, backslashes, `=`, `,`, `|`,
/// brackets, `$`, `%` itself, control and non-ASCII bytes are encoded).
fn preop_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b' ' | b'*' | b'.' | b'_' | b'-' | b':' | b'/' | b'@' | b'+')
}

/// Percent-encode `value` for the preop string (see [`preop_safe`]).
fn preop_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if preop_safe(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undo [`preop_encode`]; `None` when the value is not such an encoding.
fn preop_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Splunk's boolean spellings.
fn parse_bool(name: &str, value: &str) -> Result<bool, Error> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "y" => Ok(true),
        "false" | "f" | "0" | "no" | "n" => Ok(false),
        _ => Err(bad(format!(
            "invalid value for option {name}: expected true or false, got \"{}\"",
            crate::error::excerpt(value.as_bytes(), 24)
        ))),
    }
}

fn valid_names() -> String {
    OPTIONS
        .iter()
        .map(|o| format!("{}={}", o.name, o.syntax))
        .collect::<Vec<_>>()
        .join(", ")
}

fn bad(detail: String) -> Error {
    Error::Option(format!("{detail}. Valid options: {}", valid_names()))
}

/// Is `name` a field name splunkd could send: letters, digits, `_`, `.`,
/// `-`, `:` (as in `tag::eventtype`), not starting with a digit?
fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
        && name.len() <= 256
}

fn parse_int(name: &str, value: &str, min: u64, max: u64) -> Result<u64, Error> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(format!(
            "invalid value for option {name}: expected an integer from {min} to {max}, got \"{}\"",
            crate::error::excerpt(value.as_bytes(), 24)
        ))),
    }
}

impl Options {
    /// Parse getinfo's `searchinfo.args`. In the map phase (`phase=map`
    /// among them) every other value is percent-decoded first, undoing
    /// [`Options::map_preop`].
    pub fn parse(args: &[String]) -> Result<Options, Error> {
        let mut opts = Options::default();
        let mut seen: Vec<&str> = Vec::new();
        let map_phase = args.iter().any(|a| a == "phase=map");
        for arg in args {
            let Some((name, value)) = arg.split_once('=') else {
                return Err(bad(format!(
                    "unexpected argument \"{}\": every argument must be name=value",
                    crate::error::excerpt(arg.as_bytes(), 24)
                )));
            };
            let Some(spec) = OPTIONS.iter().find(|o| o.name == name) else {
                return Err(bad(format!(
                    "unknown option \"{}\"",
                    crate::error::excerpt(name.as_bytes(), 24)
                )));
            };
            if seen.contains(&spec.name) {
                return Err(bad(format!("option {} is given twice", spec.name)));
            }
            seen.push(spec.name);
            let decoded;
            let value = if map_phase && spec.name != "phase" {
                decoded = preop_decode(value).ok_or_else(|| {
                    bad(format!(
                        "invalid value for option {name} in the map phase: \"{}\" is not the percent-encoding \
                         the command writes into its streaming_preop",
                        crate::error::excerpt(value.as_bytes(), 24)
                    ))
                })?;
                decoded.as_str()
            } else {
                value
            };
            match spec.name {
                "patterns" => {
                    let patterns: Vec<String> = value.split_ascii_whitespace().map(str::to_string).collect();
                    opts.matcher = PatternSet::new(&patterns)
                        .map_err(|e| bad(format!("invalid value for option patterns: {e}")))?;
                    opts.patterns = patterns;
                    opts.explicit_patterns = true;
                }
                "field" => {
                    if !is_field_name(value) {
                        return Err(bad(format!(
                            "invalid value for option field: \"{}\" is not a field name",
                            crate::error::excerpt(value.as_bytes(), 24)
                        )));
                    }
                    opts.field = value.to_string();
                }
                "max_groups" => opts.max_groups = parse_int(name, value, 1, 100_000_000)? as usize,
                "max_chunk_bytes" => opts.max_chunk_bytes = parse_int(name, value, 1024, 16 << 30)?,
                "distributed" => opts.distributed = parse_bool(name, value)?,
                "list" => {
                    if !super::lists::is_list_name(value) {
                        return Err(bad(format!(
                            "invalid value for option list: \"{}\" is not a list name (lowercase letters, digits, _)",
                            crate::error::excerpt(value.as_bytes(), 24)
                        )));
                    }
                    opts.list = Some(value.to_string());
                }
                "escu_version" => {
                    opts.profile = value.parse().ok().and_then(Profile::of).ok_or_else(|| {
                        bad(format!(
                            "invalid value for option escu_version: expected 4 or 13, got \"{}\"",
                            crate::error::excerpt(value.as_bytes(), 24)
                        ))
                    })?;
                }
                "phase" => {
                    opts.phase = match value {
                        "map" => Phase::Map,
                        "reduce" => Phase::Reduce,
                        _ => {
                            return Err(bad(format!(
                                "invalid value for option phase: expected map or reduce (the command sets \
                                 phase=map itself in its map phase), got \"{}\"",
                                crate::error::excerpt(value.as_bytes(), 24)
                            )))
                        }
                    }
                }
                _ => unreachable!("every declared option is handled"),
            }
        }
        Ok(opts)
    }

    /// Does this search need the lookups? Only when no `patterns=` was given.
    pub fn needs_lists(&self) -> bool {
        !self.explicit_patterns
    }

    /// Take the patterns from `lists` unless `patterns=` was given: the list
    /// `list=` names, or the ESCU version's own. A list other than the
    /// version's own also labels the result rows with categories.
    pub fn apply_lists(&mut self, lists: &Lists) -> Result<(), Error> {
        if self.explicit_patterns {
            return Ok(());
        }
        let name = self.list.clone().unwrap_or_else(|| self.profile.list.to_string());
        let entries = lists.get(&name)?;
        let patterns: Vec<String> = entries.iter().map(|e| e.pattern.clone()).collect();
        self.matcher =
            PatternSet::new(&patterns).map_err(|e| Error::Option(format!("the pattern list {name}: {e}")))?;
        self.patterns = patterns;
        self.categories = (name != self.profile.list).then(|| entries.iter().map(|e| e.category.clone()).collect());
        Ok(())
    }

    /// The `streaming_preop` a distributed reduce asks splunkd to run on the
    /// indexers: this command in its map phase with every option the map
    /// reads, each quoted and percent-encoded (see the module docs).
    pub fn map_preop(&self) -> String {
        // The map reads a list from its own copy of the lookups (the one
        // splunkd replicates with the app), so a list travels by name.
        let (source, value) = match (&self.list, self.explicit_patterns) {
            (_, true) => ("patterns", self.patterns.join(" ")),
            (Some(list), false) => ("list", list.clone()),
            (None, false) => ("list", self.profile.list.to_string()),
        };
        let values = [
            (source, value),
            ("escu_version", self.profile.escu_version.to_string()),
            ("field", self.field.clone()),
            ("max_groups", self.max_groups.to_string()),
            ("max_chunk_bytes", self.max_chunk_bytes.to_string()),
        ];
        let mut preop = String::from("abusedweb phase=\"map\"");
        for (name, value) in values {
            preop.push_str(&format!(" {name}=\"{}\"", preop_encode(&value)));
        }
        preop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let o = Options::parse(&[]).unwrap();
        assert_eq!(o.patterns.len(), 6);
        assert_eq!(o.field, "QueryName");
        assert!(o.matcher.is_match(b"pastebin.com"));
        assert!(!o.distributed);
        assert_eq!(o.phase, Phase::Reduce);
    }

    #[test]
    fn the_preop_round_trips_through_quote_stripping() {
        let o = Options::parse(&args(&[
            r#"patterns=*a"b* *c=d* *e\f* *100%* *x,y* *[z]|$w*"#,
            "field=tag::query",
            "max_groups=7",
            "distributed=true",
        ]))
        .unwrap();
        let preop = o.map_preop();
        assert!(preop.starts_with(r#"abusedweb phase="map" patterns=""#), "{preop}");
        for bad in ['\\', ',', '|', '[', '$', '='] {
            let values: String = preop.split('"').skip(1).step_by(2).collect();
            assert!(!values.contains(bad), "{bad} left in {preop}");
        }
        // splunkd splits on blanks outside quotes and strips the quotes into `args`.
        let mut args = vec![String::new()];
        let mut quoted = false;
        for c in preop.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => args.push(String::new()),
                c => args.last_mut().unwrap().push(c),
            }
        }
        assert_eq!(args.remove(0), "abusedweb");
        let m = Options::parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(m.phase, Phase::Map);
        assert_eq!(m.patterns, o.patterns);
        assert_eq!((m.field.as_str(), m.max_groups), ("tag::query", 7));
    }

    #[test]
    fn parses_every_option() {
        let o = Options::parse(&args(&[
            "patterns=*a.com  b*",
            "field=query",
            "max_groups=5",
            "max_chunk_bytes=2048",
        ]))
        .unwrap();
        assert_eq!(o.patterns, ["*a.com", "b*"]);
        assert!(o.matcher.is_match(b"x.A.COM") && !o.matcher.is_match(b"pastebin.com"));
        assert_eq!((o.field.as_str(), o.max_groups, o.max_chunk_bytes), ("query", 5, 2048));
    }

    #[test]
    fn errors_name_the_option_and_list_valid_ones() {
        for (a, want) in [
            ("nope=1", "unknown option \"nope\""),
            ("positional", "must be name=value"),
            ("patterns=", "option patterns: no patterns"),
            ("patterns=   ", "option patterns: no patterns"),
            ("field=a/b", "option field"),
            ("field=", "option field"),
            ("max_groups=0", "option max_groups"),
            ("max_groups=x", "option max_groups"),
            ("max_chunk_bytes=99999999999999999999", "option max_chunk_bytes"),
            ("distributed=maybe", "option distributed"),
            ("phase=combine", "option phase"),
        ] {
            let e = Options::parse(&args(&[a])).unwrap_err().to_string();
            assert!(e.contains(want), "{a}: {e}");
            assert!(e.contains("Valid options: patterns="), "{e}");
        }
        let e = Options::parse(&args(&["field=a", "field=b"])).unwrap_err().to_string();
        assert!(e.contains("given twice"));
    }
}
