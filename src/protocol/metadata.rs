//! The JSON metadata of requests (what splunkd asks) and replies (what we answer).
//!
//! Requests are read in three steps so that memory stays proportional to what
//! the command keeps and no message ever echoes a value: the syntax is checked
//! without building anything (`IgnoredAny`); the top-level object is read with
//! every key but `action`, `finished` and `searchinfo` skipped, and
//! `searchinfo` kept as raw text; from it only `args` is read, element by
//! element, refusing more than [`MAX_ARGS`]. serde's own type errors quote the
//! offending value (which could be a session key or search text), so every
//! type check here is ours and names the key instead.

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::fmt;

/// Most entries `searchinfo.args` may hold. The command has four options and
/// refuses repeats, so a longer list can only be a mistake or an attack, and
/// refusing it early keeps a huge argument list from being materialised.
pub const MAX_ARGS: usize = 64;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The first request: describe yourself.
    Getinfo,
    /// Every later request: process this body.
    Execute,
}

/// The parts of a request's metadata the command uses. Everything else
/// (session key, search text, splunkd URI, dispatch_dir) is ignored on
/// purpose and never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `action`.
    pub action: Action,
    /// `finished`: splunkd has no more input after this chunk.
    pub finished: bool,
    /// `searchinfo.args` of a getinfo request (empty for execute).
    pub args: Vec<String>,
}

/// The top level: three keys kept as raw text, every other key skipped unread.
#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow)]
    action: Option<&'a RawValue>,
    #[serde(borrow)]
    finished: Option<&'a RawValue>,
    #[serde(borrow)]
    searchinfo: Option<&'a RawValue>,
}

/// `searchinfo`: only `args` is read.
#[derive(Deserialize)]
struct SearchInfo {
    args: Option<Args>,
}

/// `searchinfo.args`, or why it was refused (our text, never a value).
enum Args {
    List(Vec<String>),
    Refused(String),
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ArgsVisitor)
    }
}

struct ArgsVisitor;

impl ArgsVisitor {
    fn refuse<E>(what: &str) -> Result<Args, E> {
        Ok(Args::Refused(format!(
            "\"searchinfo.args\" is {what} where an array was expected"
        )))
    }
}

impl<'de> Visitor<'de> for ArgsVisitor {
    type Value = Args;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
        let mut list = Vec::new();
        let mut i = 0;
        while let Some(item) = seq.next_element::<Item>()? {
            if i == MAX_ARGS {
                // Skip the rest unread: the answer is already known.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(Args::Refused(format!(
                    "\"searchinfo.args\" has more than {MAX_ARGS} entries"
                )));
            }
            match item {
                Item::Text(s) => list.push(s),
                Item::Other(kind) => {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(Args::Refused(format!(
                        "searchinfo.args[{i}] is {kind} where a string was expected"
                    )));
                }
            }
            i += 1;
        }
        Ok(Args::List(list))
    }
    fn visit_unit<E>(self) -> Result<Args, E> {
        Ok(Args::List(Vec::new()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Args, E> {
        Self::refuse("a boolean")
    }
    fn visit_i64<E>(self, _: i64) -> Result<Args, E> {
        Self::refuse("a number")
    }
    fn visit_u64<E>(self, _: u64) -> Result<Args, E> {
        Self::refuse("a number")
    }
    fn visit_f64<E>(self, _: f64) -> Result<Args, E> {
        Self::refuse("a number")
    }
    fn visit_str<E>(self, _: &str) -> Result<Args, E> {
        Self::refuse("a string")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Args, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Self::refuse("an object")
    }
}

/// One element of `args`: a string is kept, anything else is only named.
enum Item {
    Text(String),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, s: &str) -> Result<Item, E> {
                Ok(Item::Text(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Item, E> {
                Ok(Item::Text(s))
            }
            fn visit_unit<E>(self) -> Result<Item, E> {
                Ok(Item::Other("null"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Item, E> {
                Ok(Item::Other("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Item, E> {
                Ok(Item::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Item, E> {
                Ok(Item::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Item, E> {
                Ok(Item::Other("a number"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::Other("an array"))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Item::Other("an object"))
            }
        }
        d.deserialize_any(ItemVisitor)
    }
}

/// The JSON kind of a value, from its first byte (the text is valid JSON).
fn kind_of(raw: &[u8]) -> &'static str {
    match raw.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Parse one request's metadata. The error text describes the problem
/// without quoting request content beyond a short action name.
pub fn parse_request(bytes: &[u8]) -> Result<Request, String> {
    if bytes.is_empty() {
        return Err("the request has no metadata (length 0)".into());
    }
    // JSON is UTF-8 throughout; checking it once here also covers the keys
    // and values that are skipped unread below.
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(format!("the metadata is not valid UTF-8 (at byte {})", e.valid_up_to()));
    }
    serde_json::from_slice::<IgnoredAny>(bytes).map_err(|e| {
        format!(
            "the metadata is not valid JSON ({} at line {} column {})",
            match e.classify() {
                serde_json::error::Category::Eof => "it ends early",
                _ => "syntax error",
            },
            e.line(),
            e.column()
        )
    })?;
    let top_kind = kind_of(bytes);
    if top_kind != "an object" {
        return Err(format!("the metadata is JSON {top_kind} where an object was expected"));
    }
    // Valid JSON, an object, and every kept field accepts any JSON value:
    // only a repeated key can still fail, and its message names the key.
    let top: Top<'_> = serde_json::from_slice(bytes).map_err(|e| format!("the metadata object is malformed: {e}"))?;
    let action = match top.action.map(|raw| (kind_of(raw.get().as_bytes()), raw)) {
        None => return Err("the metadata has no \"action\"".into()),
        Some(("a string", raw)) => {
            let name: String = serde_json::from_str(raw.get()).map_err(|e| format!("\"action\" is malformed: {e}"))?;
            match name.as_str() {
                "getinfo" => Action::Getinfo,
                "execute" => Action::Execute,
                _ => {
                    return Err(format!(
                        "unknown action \"{}\" (expected \"getinfo\" or \"execute\")",
                        crate::error::excerpt(name.as_bytes(), 20)
                    ))
                }
            }
        }
        Some((other, _)) => return Err(format!("\"action\" is {other} where a string was expected")),
    };
    let finished = match top.finished.map(|raw| raw.get()) {
        None | Some("null") => false,
        Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(format!(
                "\"finished\" is {} where a boolean was expected",
                kind_of(other.as_bytes())
            ))
        }
    };
    let args = match (action, top.searchinfo) {
        (Action::Getinfo, Some(raw)) => read_args(raw)?,
        _ => Vec::new(),
    };
    Ok(Request { action, finished, args })
}

fn read_args(raw: &RawValue) -> Result<Vec<String>, String> {
    match kind_of(raw.get().as_bytes()) {
        "null" => return Ok(Vec::new()),
        "an object" => {}
        other => return Err(format!("\"searchinfo\" is {other} where an object was expected")),
    }
    let info: SearchInfo = serde_json::from_str(raw.get()).map_err(|e| format!("\"searchinfo\" is malformed: {e}"))?;
    match info.args {
        None => Ok(Vec::new()),
        Some(Args::List(list)) => Ok(list),
        Some(Args::Refused(why)) => Err(why),
    }
}

/// A reply's bytes, keys in sorted order whatever serde_json's features: a
/// dependency of `abusedweb scan` (evtx) turns on `preserve_order`, and the
/// replies must be the same bytes in every build.
fn to_bytes(mut reply: serde_json::Value) -> Vec<u8> {
    reply.sort_all_objects();
    serde_json::to_vec(&reply).expect("serialising a JSON value cannot fail")
}

/// The getinfo answer of the reporting (reduce) phase: the fields it needs,
/// and, for a distributed search, the map phase splunkd is to run first on
/// the indexers (scp2.md §10).
pub fn getinfo_reply(required_fields: &[&str], streaming_preop: Option<&str>) -> Vec<u8> {
    let mut reply = json!({"type": "reporting", "required_fields": required_fields});
    if let Some(preop) = streaming_preop {
        reply["streaming_preop"] = json!(preop);
    }
    to_bytes(reply)
}

/// The getinfo answer of the map phase: a streaming command, so splunkd runs
/// it where the events are (scp2.md §18.6), sending only these fields.
pub fn map_getinfo_reply(required_fields: &[&str]) -> Vec<u8> {
    let reply = json!({"type": "streaming", "required_fields": required_fields});
    to_bytes(reply)
}

/// The answer to a non-final execute request.
pub fn progress_reply() -> &'static [u8] {
    br#"{"finished":false}"#
}

/// Counters shown in the Job Inspector with the final reply.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    /// Execute requests received.
    pub chunks: u64,
    /// Rows read from all bodies.
    pub events_read: u64,
    /// Rows whose match field matched a pattern.
    pub events_matched: u64,
    /// Group memberships counted (after the multivalue product).
    pub memberships: u64,
    /// Distinct groups, i.e. result rows.
    pub groups: u64,
    /// Partial rows from map phases merged.
    pub partial_rows: u64,
    /// Seconds spent from the first execute request to the final reply.
    pub seconds: f64,
}

/// The final reply's metadata: finished, plus inspector metrics in
/// splunklib's `metric.<name>` = [seconds, invocations, input, output] form
/// (`match`: events read, events matched; `stats`: memberships, groups;
/// `merge`: partial rows merged, groups), and, when partial rows from a map
/// phase were merged, an INFO message saying how many, beside the raw events.
pub fn final_reply(m: &Metrics) -> Vec<u8> {
    let reply = json!({
        "finished": true,
        "inspector": {
            "metric.abusedweb.match": [m.seconds, m.chunks, m.events_read, m.events_matched],
            "metric.abusedweb.stats": [m.seconds, 1, m.memberships, m.groups],
            "metric.abusedweb.merge": [m.seconds, m.chunks, m.partial_rows, m.groups],
        }
    });
    let mut reply = reply;
    if m.partial_rows > 0 {
        reply["inspector"]["messages"] = json!([[
            "INFO",
            format!(
                "abusedweb merged {} partial rows from its map phase and {} raw events into {} result rows",
                m.partial_rows, m.events_read, m.groups
            )
        ]]);
    }
    to_bytes(reply)
}

/// A map phase's reply to one request: `finished` mirrored; the last one
/// also carries the process's inspector metrics (events in, events matched,
/// partial rows out), sent once so no reading of how splunkd adds them up
/// can count them twice.
pub fn map_reply(finished: bool, m: &Metrics) -> Vec<u8> {
    let reply = if finished {
        json!({
            "finished": true,
            "inspector": {
                "metric.abusedweb.map": [m.seconds, m.chunks, m.events_read, m.groups],
                "metric.abusedweb.match": [m.seconds, m.chunks, m.events_read, m.events_matched],
            }
        })
    } else {
        json!({"finished": false})
    };
    to_bytes(reply)
}

/// A fatal error reply: both `error` and an inspector ERROR message, so every
/// splunkd version shows the text (scp2.md §18.7).
pub fn error_reply(text: &str) -> Vec<u8> {
    let reply = json!({
        "finished": true,
        "error": text,
        "inspector": {"messages": [["ERROR", text]]}
    });
    to_bytes(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_getinfo_and_ignores_secrets() {
        let meta = br#"{"action":"getinfo","preview":false,"searchinfo":{"args":["patterns=*a*","field=x"],"session_key":"SECRET","search":"%7C%20abusedweb","earliest_time":"0"}}"#;
        let r = parse_request(meta).unwrap();
        assert_eq!(r.action, Action::Getinfo);
        assert_eq!(r.args, vec!["patterns=*a*", "field=x"]);
        assert!(!format!("{r:?}").contains("SECRET"));
    }

    #[test]
    fn refuses_long_argument_lists_and_tolerates_whitespace() {
        let many: Vec<String> = (0..=MAX_ARGS).map(|i| format!("\"a{i}\"")).collect();
        let meta = format!(
            "{{\"action\":\"getinfo\",\"searchinfo\":{{\"args\":[{}]}}}}",
            many.join(",")
        );
        let e = parse_request(meta.as_bytes()).unwrap_err();
        assert!(e.contains("more than 64 entries"), "{e}");
        let r =
            parse_request(b" { \"finished\" : true , \"action\" : \"execute\" , \"x\": [1, {\"y\": null}] } ").unwrap();
        assert!(r.finished);
        let r = parse_request(b"{\"action\":\"getinfo\",\"searchinfo\":{\"args\":null,\"search\":\"%7C\"}}").unwrap();
        assert!(r.args.is_empty());
    }

    #[test]
    fn parses_execute() {
        let r = parse_request(br#"{"action":"execute","finished":true}"#).unwrap();
        assert_eq!((r.action, r.finished), (Action::Execute, true));
        let r = parse_request(br#"{"finished":false,"action":"execute"}"#).unwrap();
        assert!(!r.finished);
    }

    #[test]
    fn errors_name_the_key_never_the_value() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no metadata"),
            (b"{\"action\":", "ends early"),
            (b"{nope}", "syntax error"),
            (b"[1,2]", "JSON an array where an object"),
            (b"{}", "no \"action\""),
            (b"{\"action\":\"explode\"}", "unknown action \"explode\""),
            (b"{\"action\":7}", "\"action\" is a number"),
            (
                b"{\"action\":\"execute\",\"finished\":\"SECRET\"}",
                "\"finished\" is a string",
            ),
            (
                b"{\"action\":\"getinfo\",\"searchinfo\":{\"args\":[\"SECRET\",5]}}",
                "args[1] is a number",
            ),
        ];
        for (input, want) in cases {
            let e = parse_request(input).unwrap_err();
            assert!(e.contains(want), "{e} should contain {want}");
            assert!(!e.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn replies_are_compact_json() {
        assert_eq!(
            getinfo_reply(&["_time", "QueryName"], None),
            br#"{"required_fields":["_time","QueryName"],"type":"reporting"}"#
        );
        let e: serde_json::Value = serde_json::from_slice(&error_reply("boom \"x\"")).unwrap();
        assert_eq!(e["error"], "boom \"x\"");
        assert_eq!(e["inspector"]["messages"][0][0], "ERROR");
        assert_eq!(e["finished"], true);
        let f: serde_json::Value = serde_json::from_slice(&final_reply(&Metrics {
            events_read: 5,
            ..Metrics::default()
        }))
        .unwrap();
        assert_eq!(f["inspector"]["metric.abusedweb.match"][2], 5);
    }
}
