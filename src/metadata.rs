//! The JSON metadata of requests (what splunkd asks) and replies (what we answer).
//!
//! Requests are parsed into a `serde_json::Value` first and then read key by
//! key, so that every message we produce names the key that was wrong and
//! never echoes a value: serde's own type errors quote the offending value,
//! which could be a session key or search text.

use serde_json::{json, Map, Value};

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

/// Parse one request's metadata. The error text describes the problem
/// without quoting request content beyond a short action name.
pub fn parse_request(bytes: &[u8]) -> Result<Request, String> {
    if bytes.is_empty() {
        return Err("the request has no metadata (length 0)".into());
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
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
    let Value::Object(map) = value else {
        return Err(format!(
            "the metadata is JSON {} where an object was expected",
            kind(&value)
        ));
    };
    let action = match map.get("action") {
        Some(Value::String(s)) if s == "getinfo" => Action::Getinfo,
        Some(Value::String(s)) if s == "execute" => Action::Execute,
        Some(Value::String(s)) => {
            return Err(format!(
                "unknown action \"{}\" (expected \"getinfo\" or \"execute\")",
                crate::error::excerpt(s.as_bytes(), 20)
            ))
        }
        Some(other) => return Err(format!("\"action\" is {} where a string was expected", kind(other))),
        None => return Err("the metadata has no \"action\"".into()),
    };
    let finished = match map.get("finished") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("\"finished\" is {} where a boolean was expected", kind(other))),
    };
    let args = match action {
        Action::Getinfo => read_args(&map)?,
        Action::Execute => Vec::new(),
    };
    Ok(Request { action, finished, args })
}

fn read_args(map: &Map<String, Value>) -> Result<Vec<String>, String> {
    let searchinfo = match map.get("searchinfo") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(s)) => s,
        Some(other) => {
            return Err(format!(
                "\"searchinfo\" is {} where an object was expected",
                kind(other)
            ))
        }
    };
    match searchinfo.get("args") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "searchinfo.args[{i}] is {} where a string was expected",
                    kind(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "\"searchinfo.args\" is {} where an array was expected",
            kind(other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The getinfo answer: a reporting command that needs exactly these fields.
pub fn getinfo_reply(required_fields: &[&str]) -> Vec<u8> {
    let reply = json!({"type": "reporting", "required_fields": required_fields});
    serde_json::to_vec(&reply).expect("serialising a JSON value cannot fail")
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
    /// Seconds spent from the first execute request to the final reply.
    pub seconds: f64,
}

/// The final reply's metadata: finished, plus inspector metrics in
/// splunklib's `metric.<name>` = [seconds, invocations, input, output] form.
pub fn final_reply(m: &Metrics) -> Vec<u8> {
    let reply = json!({
        "finished": true,
        "inspector": {
            "metric.abusedweb.match": [m.seconds, m.chunks, m.events_read, m.events_matched],
            "metric.abusedweb.stats": [m.seconds, 1, m.memberships, m.groups],
        }
    });
    serde_json::to_vec(&reply).expect("serialising a JSON value cannot fail")
}

/// A fatal error reply: both `error` and an inspector ERROR message, so every
/// splunkd version shows the text (scp2.md §18.7).
pub fn error_reply(text: &str) -> Vec<u8> {
    let reply = json!({
        "finished": true,
        "error": text,
        "inspector": {"messages": [["ERROR", text]]}
    });
    serde_json::to_vec(&reply).expect("serialising a JSON value cannot fail")
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
            getinfo_reply(&["_time", "QueryName"]),
            br#"{"required_fields":["_time","QueryName"],"type":"reporting"}"#
        );
        let e: Value = serde_json::from_slice(&error_reply("boom \"x\"")).unwrap();
        assert_eq!(e["error"], "boom \"x\"");
        assert_eq!(e["inspector"]["messages"][0][0], "ERROR");
        assert_eq!(e["finished"], true);
        let f: Value = serde_json::from_slice(&final_reply(&Metrics {
            events_read: 5,
            ..Metrics::default()
        }))
        .unwrap();
        assert_eq!(f["inspector"]["metric.abusedweb.match"][2], 5);
    }
}
