//! The one error type of the command.
//!
//! Every fatal problem ends the search with a reply that carries this error's
//! text, so each variant says *what* went wrong and *where*: the chunk number
//! (1-based, the getinfo request is chunk 1), the byte offset in the request
//! stream, and for CSV bodies the row and column. Values read from splunkd are
//! never copied into a message beyond short, escaped excerpts of protocol
//! tokens (an action name, an option name): session keys and search text stay
//! out of error replies.

use std::fmt;

/// Where in the request stream a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based number of the chunk being read (getinfo is chunk 1).
    pub chunk: u64,
    /// Byte offset from the start of the request stream.
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chunk {} (byte offset {})", self.chunk, self.offset)
    }
}

/// A fatal problem: the search is stopped and the text is shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The chunk framing (`chunked 1.0,M,B\n`) is broken or truncated.
    #[error("malformed request at {at}: {detail}")]
    Framing {
        /// Where the frame broke.
        at: Position,
        /// What was wrong.
        detail: String,
    },
    /// The metadata JSON is invalid or asks for something out of order.
    #[error("bad request metadata in {at}: {detail}")]
    Metadata {
        /// The request's chunk and its start offset.
        at: Position,
        /// What was wrong.
        detail: String,
    },
    /// The CSV body cannot be decoded.
    #[error("bad CSV body in chunk {chunk}, row {row} (byte offset {offset}){column}: {detail}", column = column_text(.column))]
    Body {
        /// 1-based chunk number.
        chunk: u64,
        /// 1-based data row; 0 is the header line.
        row: u64,
        /// Byte offset in the request stream.
        offset: u64,
        /// The column, when one is to blame.
        column: Option<String>,
        /// What was wrong.
        detail: String,
    },
    /// An argument of the `abusedweb` command is unknown or has a bad value.
    #[error("{0}")]
    Option(String),
    /// A configured limit was exceeded.
    #[error("{0}")]
    Limit(String),
    /// Reading or writing the pipes to splunkd failed.
    #[error("I/O error talking to splunkd: {0}")]
    Io(#[from] std::io::Error),
}

fn column_text(column: &Option<String>) -> String {
    match column {
        Some(name) => format!(", column {name}"),
        None => String::new(),
    }
}

/// Render untrusted bytes for an error message: at most `max` characters,
/// control characters and quotes escaped, so a message can never be used to
/// smuggle large or misleading text.
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_error_names_chunk_row_and_column() {
        let e = Error::Body {
            chunk: 3,
            row: 7,
            offset: 120,
            column: Some("__mv_QueryName".into()),
            detail: "x".into(),
        };
        assert_eq!(
            e.to_string(),
            "bad CSV body in chunk 3, row 7 (byte offset 120), column __mv_QueryName: x"
        );
    }

    #[test]
    fn excerpt_escapes_and_truncates() {
        assert_eq!(excerpt(b"a\"b\nc", 10), "a\\\"b\\nc");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
        assert_eq!(excerpt(b"\xff", 3), "\u{fffd}");
    }
}
