//! Splunk's chunked protocol (SCP v2) on the wire: frames and their JSON
//! metadata. Knows nothing of CSV bodies or of what the command computes.

pub mod chunk;
pub mod metadata;
