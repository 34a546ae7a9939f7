//! Request metadata over arbitrary bytes: never a panic; the result agrees
//! with a plain reading of the JSON (see `reference`); error texts are short
//! and never carry request content beyond a 20-character action excerpt;
//! error replies are valid JSON that round-trips the text.
#![no_main]

use abusedweb::protocol::metadata::{error_reply, parse_request, Action, MAX_ARGS};
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

/// The entries of a JSON object whose key is in `keep`, in order, repeats
/// kept (a `Value` keeps only the last of a repeated key, which would hide
/// them). Other values are skipped unread, as the command skips them.
struct Entries(Vec<(String, Box<RawValue>)>);

struct EntriesVisitor(&'static [&'static str]);

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Entries;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
        let mut all = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.0.contains(&key.as_str()) {
                all.push((key, map.next_value::<Box<RawValue>>()?));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Entries(all))
    }
}

fn entries(json: &[u8], keep: &'static [&'static str]) -> Option<Entries> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let e = de.deserialize_map(EntriesVisitor(keep)).ok()?;
    de.end().ok()?;
    Some(e)
}

impl Entries {
    /// The raw text of `key`'s value; `Err` when the key is repeated.
    fn raw(&self, key: &str) -> Result<Option<&str>, ()> {
        let mut found = self.0.iter().filter(|(k, _)| k == key);
        let first = found.next();
        if found.next().is_some() {
            return Err(());
        }
        Ok(first.map(|(_, raw)| raw.get()))
    }

    /// The value of `key` decoded; `Err` when the key is repeated or its
    /// value does not decode (a lone surrogate escape, say).
    fn get(&self, key: &str) -> Result<Option<Value>, ()> {
        match self.raw(key)? {
            None => Ok(None),
            Some(raw) => serde_json::from_str(raw).map(Some).map_err(|_| ()),
        }
    }
}

/// The request as the contract reads it: UTF-8 text, a JSON object whose
/// `action` is "getinfo" or "execute", `finished` a boolean or null, and for
/// getinfo `searchinfo.args` an array of at most MAX_ARGS strings (or
/// null/absent); a repeated key among those the command reads is refused;
/// nothing else is decoded.
fn reference(data: &[u8]) -> Option<(Action, bool, Vec<String>)> {
    std::str::from_utf8(data).ok()?;
    serde_json::from_slice::<IgnoredAny>(data).ok()?;
    if data.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let top = entries(data, &["action", "finished", "searchinfo"])?;
    let action = match top.get("action").ok()??.as_str()? {
        "getinfo" => Action::Getinfo,
        "execute" => Action::Execute,
        _ => return None,
    };
    let finished = match top.get("finished").ok()? {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return None,
    };
    // `searchinfo` is kept as raw text: only `args` inside it is decoded.
    let searchinfo = top.raw("searchinfo").ok()?;
    let mut args = Vec::new();
    if action == Action::Getinfo {
        match searchinfo.map(|raw| (raw, raw.trim_start().as_bytes()[0])) {
            None => {}
            Some((_, b'n')) => {}
            Some((raw, b'{')) => {
                let info = entries(raw.as_bytes(), &["args"])?;
                match info.get("args").ok()? {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => {
                        if items.len() > MAX_ARGS {
                            return None;
                        }
                        for item in items {
                            args.push(item.as_str()?.to_string());
                        }
                    }
                    Some(_) => return None,
                }
            }
            Some(_) => return None,
        }
    }
    Some((action, finished, args))
}

fuzz_target!(|data: &[u8]| {
    let got = parse_request(data);
    let want = reference(data);
    match (&got, &want) {
        (Ok(r), Some((action, finished, args))) => {
            assert_eq!((r.action, r.finished, &r.args), (*action, *finished, args));
        }
        (Err(e), None) => {
            // At most a 20-character excerpt of request content, each
            // character escaped to at most 10 (`\u{10ffff}`).
            assert!(e.chars().count() <= 300, "error text too long: {e}");
            let reply: Value = serde_json::from_slice(&error_reply(e)).expect("error reply is JSON");
            assert_eq!(reply["error"].as_str(), Some(e.as_str()));
            assert_eq!(reply["inspector"]["messages"][0][1].as_str(), Some(e.as_str()));
        }
        _ => panic!("parse_request {got:?} but the reference reads {want:?}"),
    }
});
