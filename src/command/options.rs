//! The command's arguments, declared once in [`OPTIONS`].
//!
//! splunkd hands arguments over in getinfo's `searchinfo.args`, already
//! tokenised and unquoted (`patterns="*a* *b*"` arrives as `patterns=*a* *b*`).
//! Each must be `name=value` with a name from the table; the same table feeds
//! the error text, and tests check `searchbnf.conf` and the README against it.

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
pub const OPTIONS: [OptionSpec; 4] = [
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            patterns: DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect(),
            matcher: PatternSet::new(&DEFAULT_PATTERNS).expect("default patterns compile"),
            field: "QueryName".into(),
            max_groups: 1_000_000,
            max_chunk_bytes: 1 << 30,
        }
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
    /// Parse getinfo's `searchinfo.args`.
    pub fn parse(args: &[String]) -> Result<Options, Error> {
        let mut opts = Options::default();
        let mut seen: Vec<&str> = Vec::new();
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
            match spec.name {
                "patterns" => {
                    let patterns: Vec<String> = value.split_ascii_whitespace().map(str::to_string).collect();
                    opts.matcher = PatternSet::new(&patterns)
                        .map_err(|e| bad(format!("invalid value for option patterns: {e}")))?;
                    opts.patterns = patterns;
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
                _ => unreachable!("every declared option is handled"),
            }
        }
        Ok(opts)
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
        ] {
            let e = Options::parse(&args(&[a])).unwrap_err().to_string();
            assert!(e.contains(want), "{a}: {e}");
            assert!(e.contains("Valid options: patterns="), "{e}");
        }
        let e = Options::parse(&args(&["field=a", "field=b"])).unwrap_err().to_string();
        assert!(e.contains("given twice"));
    }
}
