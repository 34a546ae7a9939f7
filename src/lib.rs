//! `abusedweb`: Splunk's ESCU detection "Windows Abused Web Services"
//! (T1102) as a native custom search command speaking the chunked protocol
//! (SCP v2).
//!
//! The modules follow the data, one layer a folder:
//!
//! * [`protocol`]: frames in and out ([`protocol::chunk`]: `chunked 1.0,M,B\n` +
//!   metadata + body) and what a request asks and a reply says
//!   ([`protocol::metadata`], JSON);
//! * [`codec`]: the CSV body codec ([`codec::body`]) with `__mv_` fields
//!   ([`codec::multivalue`]), and the skimmer that passes over rows which
//!   cannot match without tokenising them ([`codec::skim`]);
//! * [`engine`]: matching and grouping events, with no protocol and no I/O:
//!   the Splunk wildcard matcher compiled once per search ([`engine::wildcard`]),
//!   the search for its literals over whole bodies ([`engine::prefilter`])
//!   and `stats count min(_time) max(_time) by …` ([`engine::aggregate`],
//!   with a cache hint for its reply, [`engine::prefetch`]);
//! * [`command`]: the SCP v2 front-end: getinfo answer and execute loop
//!   wiring the above together, and the command's arguments declared in one
//!   table ([`command::options`]);
//! * [`scan`]: the second front-end, `abusedweb scan FILE...`: the same
//!   detection over EVTX, JSON and XmlWinEventLog files, outside Splunk;
//! * [`guard`]: panics become error replies;
//! * [`pipe`]: stdin's pipe widened so splunkd can run ahead of the command;
//! * [`placement`]: helper threads started on another CPU than their creator's;
//! * [`error`]: the error type whose text the user sees.

#![deny(missing_docs)]

pub mod codec;
pub mod command;
pub mod engine;
pub mod error;
pub mod guard;
pub mod pipe;
pub mod placement;
pub mod protocol;
pub mod scan;
