//! Request metadata over arbitrary bytes: never a panic; the result agrees
//! with a plain reading of the JSON; error texts are short and never carry
//! request content beyond a 20-character action excerpt; error replies are
//! valid JSON that round-trips the text.
#![no_main]

use abusedweb::metadata::{error_reply, parse_request, Action};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The request as the contract reads it, from a generic JSON parse.
fn reference(data: &[u8]) -> Option<(Action, bool, Vec<String>)> {
    let Value::Object(map) = serde_json::from_slice::<Value>(data).ok()? else {
        return None;
    };
    let action = match map.get("action")?.as_str()? {
        "getinfo" => Action::Getinfo,
        "execute" => Action::Execute,
        _ => return None,
    };
    let finished = match map.get("finished") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return None,
    };
    let mut args = Vec::new();
    if action == Action::Getinfo {
        match map.get("searchinfo") {
            None | Some(Value::Null) => {}
            Some(Value::Object(s)) => match s.get("args") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        args.push(item.as_str()?.to_string());
                    }
                }
                Some(_) => return None,
            },
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
