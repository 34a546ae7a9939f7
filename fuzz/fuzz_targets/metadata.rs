//! Request metadata over arbitrary bytes: never a panic; the result agrees
//! with a plain reading of the JSON (see `reference`); error texts are short
//! and never carry request content beyond a 20-character action excerpt;
//! error replies are valid JSON that round-trips the text.
#![no_main]

use abusedweb::metadata::{error_reply, parse_request, Action, MAX_ARGS};
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

/// A JSON object's entries in order, duplicates kept (a `Value` keeps only
/// the last of a repeated key, which would hide them).
struct Entries(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut all = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    all.push(entry);
                }
                Ok(Entries(all))
            }
        }
        d.deserialize_map(V)
    }
}

impl Entries {
    /// The value of `key`; `Err` when the key is repeated.
    fn get(&self, key: &str) -> Result<Option<Value>, ()> {
        let mut found = self.0.iter().filter(|(k, _)| k == key);
        let first = found.next();
        if found.next().is_some() {
            return Err(());
        }
        Ok(first.map(|(_, raw)| serde_json::from_str(raw.get()).unwrap()))
    }
}

/// The request as the contract reads it: a JSON object whose `action` is
/// "getinfo" or "execute", `finished` a boolean or null, and for getinfo
/// `searchinfo.args` an array of at most MAX_ARGS strings (or null/absent);
/// a repeated key among those the command reads is refused.
fn reference(data: &[u8]) -> Option<(Action, bool, Vec<String>)> {
    serde_json::from_slice::<Value>(data).ok()?.as_object()?;
    let top: Entries = serde_json::from_slice(data).ok()?;
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
    let searchinfo = top.get("searchinfo").ok()?;
    let mut args = Vec::new();
    if action == Action::Getinfo {
        match searchinfo {
            None | Some(Value::Null) => {}
            Some(Value::Object(_)) => {
                let raw = top.0.iter().find(|(k, _)| k == "searchinfo").unwrap().1.get();
                let info: Entries = serde_json::from_str(raw).ok()?;
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
            assert!(e.chars().count() <= 160, "error text too long: {e}");
            let reply: Value = serde_json::from_slice(&error_reply(e)).expect("error reply is JSON");
            assert_eq!(reply["error"].as_str(), Some(e.as_str()));
            assert_eq!(reply["inspector"]["messages"][0][1].as_str(), Some(e.as_str()));
        }
        _ => panic!("parse_request {got:?} but the reference reads {want:?}"),
    }
});
