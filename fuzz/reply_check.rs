//! What every reply stream of `abusedweb` must look like, whatever the input.
//!
//! Shared by the `request_stream` fuzz target and `tests/hostile.rs`
//! (included with `#[path]`), so the fuzzer and the mutation tests hold the
//! command to the same contract (docs/behaviour.md, points 1, 2 and 4):
//!
//! * the output is a sequence of whole chunks `chunked 1.0,M,B\n` + M bytes
//!   of a JSON object + B bytes, exactly as our writer frames them;
//! * exit code 0: no chunk carries `error`; the first is the getinfo reply, the
//!   middle ones are `{"finished":false}` without a body, and a final reply
//!   (`finished:true` + inspector metrics) ends the stream if present;
//! * exit code 1: the same, except that the last chunk is the error reply
//!   `{"finished":true,"error":E,"inspector":{"messages":[["ERROR",E]]}}`
//!   with B = 0;
//! * any other exit code (2 = a panic caught by the guard) is a failure.
//!
//! A map phase (`phase=map`, getinfo answered `type: streaming`) instead
//! answers every execute request with `finished` mirrored and a body that is
//! empty or partial rows; only its last reply carries inspector metrics.

#![allow(dead_code)]

use serde_json::Value;

/// The getinfo requests the `request_stream` fuzz target can put in front of
/// its input (see [`request_stream_input`]).
pub const SELECTOR_GETINFOS: [&str; 9] = [
    r#"{"action":"getinfo","searchinfo":{"args":[],"session_key":"k"}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["patterns=* "]}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["patterns=*a* b*c *.io x*y*z","max_groups=3"]}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["field=teststring","patterns=*t*","max_chunk_bytes=1024"]}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["field=Computer","patterns=*"]}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["distributed=true"]}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["phase=map","patterns=*a* %2Ab%2A","max_groups=3"]}}"#,
    r#"{"action":"getinfo","searchinfo":{"args":["phase=map","field=query","patterns=*"]}}"#,
    // Seventy two-byte literals: past 64, so values' verdicts are remembered
    // (`src/engine/verdicts.rs`, four slots under the fuzzers).
    r#"{"action":"getinfo","searchinfo":{"args":["patterns=*aa* *ab* *ac* *a.* *a-* *a0* *ae* *a1* *a9* *ba* *bb* *bc* *b.* *b-* *b0* *be* *b1* *b9* *ca* *cb* *cc* *c.* *c-* *c0* *ce* *c1* *c9* *.a* *.b* *.c* *.0* *.e* *.1* *.9* *-a* *-b* *-c* *-0* *-e* *-1* *-9* *0a* *0b* *0c* *0.* *0-* *00* *0e* *01* *09* *ea* *eb* *ec* *e.* *e-* *e0* *ee* *e1* *e9* *1a* *1b* *1c* *1.* *1-* *10* *1e* *11* *19* *9a* *9b*"]}}"#,
];

/// The request stream a `request_stream` fuzz input stands for: inputs that
/// start with `c` (real captures begin with `chunked`) as they are; any other
/// first byte selects a getinfo request that is sent first, so the fuzzer
/// spends its time on execute requests and bodies.
pub fn request_stream_input(data: &[u8]) -> Vec<u8> {
    match data.first() {
        None | Some(b'c') => data.to_vec(),
        Some(&sel) => {
            let meta = SELECTOR_GETINFOS[usize::from(sel) % SELECTOR_GETINFOS.len()];
            let mut v = format!("chunked 1.0,{},0\n{meta}", meta.len()).into_bytes();
            v.extend_from_slice(&data[1..]);
            v
        }
    }
}

/// One reply chunk: its metadata and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub meta: Value,
    pub body: Vec<u8>,
}

/// Split `out` into chunks, strictly: any byte that is not part of a
/// well-formed chunk is an error.
pub fn parse_replies(mut out: &[u8]) -> Result<Vec<Reply>, String> {
    let mut replies = Vec::new();
    while !out.is_empty() {
        let n = replies.len() + 1;
        let eol = out
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("reply {n}: header without LF"))?;
        let line = std::str::from_utf8(&out[..eol]).map_err(|_| format!("reply {n}: header not UTF-8"))?;
        let lens = line
            .strip_prefix("chunked 1.0,")
            .ok_or_else(|| format!("reply {n}: bad header {line:?}"))?;
        let (m, b) = lens
            .split_once(',')
            .ok_or_else(|| format!("reply {n}: bad header {line:?}"))?;
        let number = |s: &str| -> Result<usize, String> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
                return Err(format!("reply {n}: bad length in header {line:?}"));
            }
            s.parse::<usize>()
                .map_err(|_| format!("reply {n}: bad length in header {line:?}"))
        };
        let (m, b) = (number(m)?, number(b)?);
        out = &out[eol + 1..];
        if out.len() < m + b {
            return Err(format!("reply {n}: declares {m}+{b} bytes, {} follow", out.len()));
        }
        let meta: Value =
            serde_json::from_slice(&out[..m]).map_err(|e| format!("reply {n}: metadata is not JSON: {e}"))?;
        if !meta.is_object() {
            return Err(format!("reply {n}: metadata is not an object: {meta}"));
        }
        replies.push(Reply {
            meta,
            body: out[m..m + b].to_vec(),
        });
        out = &out[m + b..];
    }
    Ok(replies)
}

/// The header line of a non-empty final result body.
pub const RESULT_HEADER: &[u8] =
    b"Image,QueryName,QueryStatus,\"process_name\",QueryResults,dest,count,firstTime,lastTime\n";

/// The header line of a non-empty map-phase reply body.
pub const PARTIAL_HEADER: &[u8] = b"Image,QueryName,QueryStatus,\"process_name\",QueryResults,Computer,\
\"abusedweb_count\",\"abusedweb_first_time\",\"abusedweb_last_time\"\n";

fn is_map(getinfo: &Reply) -> bool {
    getinfo.meta.get("type") == Some(&Value::String("streaming".into()))
}

fn check_getinfo_reply(r: &Reply) -> Result<(), String> {
    let keys = r.meta.as_object().map_or(0, |o| o.len());
    let preop = r.meta.get("streaming_preop");
    let ok = match r.meta.get("type").and_then(Value::as_str) {
        Some("reporting") => {
            keys == 2
                || (keys == 3
                    && preop
                        .and_then(Value::as_str)
                        .is_some_and(|p| p.starts_with("abusedweb phase=\"map\" ")))
        }
        Some("streaming") => keys == 2,
        _ => false,
    } && r.meta.get("required_fields").is_some_and(Value::is_array)
        && r.body.is_empty();
    if ok {
        Ok(())
    } else {
        Err(format!("reply 1 is not a getinfo reply: {}", r.meta))
    }
}

fn is_progress(r: &Reply) -> bool {
    r.meta == serde_json::json!({"finished": false}) && r.body.is_empty()
}

fn check_final(r: &Reply) -> Result<(), String> {
    let o = r.meta.as_object().ok_or("final reply is not an object")?;
    let ok = o.get("finished") == Some(&Value::Bool(true))
        && o.get("error").is_none()
        && o.get("inspector").is_some_and(Value::is_object)
        && (r.body.is_empty() || r.body.starts_with(RESULT_HEADER));
    if ok {
        Ok(())
    } else {
        Err(format!("bad final reply: {}", r.meta))
    }
}

/// A map phase's reply: `{"finished":false}` or, as the last reply of a
/// clean run, `finished:true` with inspector metrics; either with no body or
/// with partial rows.
fn check_map_reply(r: &Reply, last: bool) -> Result<(), String> {
    let meta_ok = if r.meta == serde_json::json!({"finished": false}) {
        true
    } else {
        let o = r.meta.as_object().ok_or("map reply is not an object")?;
        last && o.len() == 2
            && o.get("finished") == Some(&Value::Bool(true))
            && o.get("inspector").is_some_and(Value::is_object)
    };
    if meta_ok && (r.body.is_empty() || r.body.starts_with(PARTIAL_HEADER)) {
        Ok(())
    } else {
        Err(format!(
            "bad map reply: {} with a body of {} bytes",
            r.meta,
            r.body.len()
        ))
    }
}

/// If `r` is a well-formed error reply, its error text.
pub fn error_text(r: &Reply) -> Option<&str> {
    let o = r.meta.as_object()?;
    let text = o.get("error")?.as_str()?;
    let expected = serde_json::json!({"messages": [["ERROR", text]]});
    let ok = o.len() == 3
        && o.get("finished") == Some(&Value::Bool(true))
        && o.get("inspector") == Some(&expected)
        && !text.is_empty()
        && r.body.is_empty();
    ok.then_some(text)
}

/// Check a whole conversation's output against the contract above. Returns
/// the parsed replies.
pub fn check_conversation(out: &[u8], code: i32) -> Result<Vec<Reply>, String> {
    let replies = parse_replies(out)?;
    let (body, error) = match code {
        0 => (&replies[..], None),
        1 => {
            let (last, rest) = replies.split_last().ok_or("exit code 1 without an error reply")?;
            let text = error_text(last).ok_or_else(|| format!("last reply is not an error reply: {}", last.meta))?;
            (rest, Some(text))
        }
        other => return Err(format!("exit code {other} (2 = a panic became an error reply)")),
    };
    let map = body.first().is_some_and(is_map);
    for (i, r) in body.iter().enumerate() {
        if r.meta.get("error").is_some() {
            return Err(format!("reply {} carries an error but is not the last", i + 1));
        }
        if map && i > 0 {
            check_map_reply(r, i + 1 == body.len() && error.is_none())?;
            continue;
        }
        if i == 0 {
            check_getinfo_reply(r)?;
        } else if i + 1 == body.len() && error.is_none() && !is_progress(r) {
            check_final(r)?;
        } else if !is_progress(r) {
            return Err(format!("reply {} is neither progress nor final: {}", i + 1, r.meta));
        }
    }
    Ok(replies)
}
