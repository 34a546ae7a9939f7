//! `abusedweb`: Splunk's ESCU detection "Windows Abused Web Services"
//! (T1102) as a native custom search command speaking the chunked protocol
//! (SCP v2).
//!
//! The modules follow the data:
//!
//! * [`chunk`]: frames in and out (`chunked 1.0,M,B\n` + metadata + body);
//! * [`metadata`]: what a request asks and what a reply says (JSON);
//! * [`body`] and [`multivalue`]: the CSV body codec with `__mv_` fields;
//! * [`engine`]: matching and grouping events, with no protocol and no I/O;
//! * [`wildcard`]: the Splunk wildcard matcher, compiled once per search;
//! * [`aggregate`]: `stats count min(_time) max(_time) by …`;
//! * [`options`]: the command's arguments, declared in one table;
//! * [`command`]: getinfo answer and execute loop wiring the above together;
//! * [`guard`]: panics become error replies;
//! * [`error`]: the error type whose text the user sees.

#![deny(missing_docs)]

pub mod aggregate;
pub mod body;
pub mod chunk;
pub mod command;
pub mod engine;
pub mod error;
pub mod guard;
pub mod metadata;
pub mod multivalue;
pub mod options;
pub mod wildcard;
