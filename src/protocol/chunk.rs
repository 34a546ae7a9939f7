//! SCP v2 framing: `chunked 1.0,<M>,<B>\n` + M bytes of metadata + B bytes of body.
//!
//! This module knows nothing about what a chunk means; it only reads and
//! writes frames. Lengths are bytes (scp2.md §3). Reading never allocates more
//! than the bytes that actually arrived: the metadata is read into a buffer
//! capped by [`MAX_METADATA_BYTES`], and the body is handed out as a
//! [`BodyReader`] that streams exactly B bytes, so a chunk that declares 10 GB
//! and sends 10 bytes costs 10 bytes and ends in a "truncated body" error.

use crate::error::{excerpt, Error, Position};
use std::io::{self, BufRead, Read, Write};

/// Largest metadata block accepted. A getinfo carrying 100,000 patterns in its
/// arguments is a few MB; anything beyond this cap is not a real splunkd request.
pub const MAX_METADATA_BYTES: u64 = 64 << 20;

/// Longest header line accepted (`chunked 1.0,` plus two 20-digit numbers and
/// generous whitespace): a longer line is not a header.
const MAX_HEADER_LINE: usize = 256;

/// The two lengths a header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes of JSON metadata that follow the header line.
    pub metadata_len: u64,
    /// Bytes of body that follow the metadata.
    pub body_len: u64,
}

/// Parse one header line (without its LF) as splunklib's reader does:
/// `chunked\s+1.0\s*,\s*(\d+)\s*,\s*(\d+)\s*`. Returns a description of what
/// is wrong otherwise.
pub fn parse_header(line: &[u8]) -> Result<Header, String> {
    let bad = || {
        format!(
            "expected a header `chunked 1.0,<metadata length>,<body length>`, found {}",
            describe(line)
        )
    };
    let rest = line.strip_prefix(b"chunked").ok_or_else(bad)?;
    let trimmed = trim_start(rest);
    if trimmed.len() == rest.len() {
        return Err(bad());
    }
    let rest = trimmed.strip_prefix(b"1.0").ok_or_else(bad)?;
    let rest = trim_start(rest).strip_prefix(b",").ok_or_else(bad)?;
    let (metadata_len, rest) = parse_len(trim_start(rest), "metadata").map_err(|e| e.unwrap_or_else(bad))?;
    let rest = trim_start(rest).strip_prefix(b",").ok_or_else(bad)?;
    let (body_len, rest) = parse_len(trim_start(rest), "body").map_err(|e| e.unwrap_or_else(bad))?;
    if !trim_start(rest).is_empty() {
        return Err(bad());
    }
    Ok(Header { metadata_len, body_len })
}

/// What stands where a header should, for an error message. Only a line that
/// starts like a header is quoted: anything else may be the inside of a
/// misframed metadata block, session key included, so it is only measured.
fn describe(line: &[u8]) -> String {
    if line.starts_with(b"chunked") {
        format!("\"{}\"", excerpt(line, 40))
    } else {
        format!("{} bytes that do not start with \"chunked\"", line.len())
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &bytes[n..]
}

/// Parse an unsigned decimal length; `Err(None)` means "not a number here".
fn parse_len<'a>(bytes: &'a [u8], what: &str) -> Result<(u64, &'a [u8]), Option<String>> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err(None);
    }
    let mut value: u64 = 0;
    for &d in &bytes[..digits] {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| Some(format!("the {what} length does not fit in 64 bits")))?;
    }
    Ok((value, &bytes[digits..]))
}

/// Reads frames from splunkd and keeps count of chunks and bytes, so every
/// error can say where it happened.
pub struct ChunkReader<R> {
    inner: R,
    offset: u64,
    chunk: u64,
}

impl<R: BufRead> ChunkReader<R> {
    /// Wrap a buffered request stream (stdin in production).
    pub fn new(inner: R) -> Self {
        ChunkReader {
            inner,
            offset: 0,
            chunk: 0,
        }
    }

    /// Where the reader is: the current chunk number and byte offset.
    pub fn position(&self) -> Position {
        Position {
            chunk: self.chunk,
            offset: self.offset,
        }
    }

    fn framing(&self, detail: String) -> Error {
        Error::Framing {
            at: self.position(),
            detail,
        }
    }

    /// Read the next header. `Ok(None)` is a clean end of stream at a chunk
    /// boundary (splunkd closed stdin). Blank lines before a header are
    /// skipped: splunklib wrote a stray LF after its getinfo reply for years
    /// and splunkd tolerated it, so we tolerate the same on input.
    pub fn next_header(&mut self) -> Result<Option<Header>, Error> {
        self.chunk += 1;
        // Skip stray CR/LF between chunks.
        loop {
            let at = self.position();
            let buf = fill(&mut self.inner).map_err(|e| Error::Framing {
                at,
                detail: format!("reading the header failed: {e}"),
            })?;
            if buf.is_empty() {
                return Ok(None);
            }
            let skip = buf.iter().take_while(|&&b| b == b'\n' || b == b'\r').count();
            if skip == 0 {
                break;
            }
            self.inner.consume(skip);
            self.offset += skip as u64;
        }
        let mut line = [0u8; MAX_HEADER_LINE];
        let mut len = 0;
        loop {
            let at = self.position();
            let buf = fill(&mut self.inner).map_err(|e| Error::Framing {
                at,
                detail: format!("reading the header failed: {e}"),
            })?;
            if buf.is_empty() {
                return Err(self.framing(format!(
                    "the stream ended inside a chunk header (no LF after {})",
                    describe(&line[..len])
                )));
            }
            let room = MAX_HEADER_LINE - len;
            let window = &buf[..buf.len().min(room)];
            if let Some(i) = memchr::memchr(b'\n', window) {
                line[len..len + i].copy_from_slice(&window[..i]);
                len += i;
                self.inner.consume(i + 1);
                break;
            }
            let n = window.len();
            line[len..len + n].copy_from_slice(window);
            len += n;
            self.inner.consume(n);
            if len == MAX_HEADER_LINE {
                return Err(self.framing(format!(
                    "no LF within the first {MAX_HEADER_LINE} bytes of a chunk header ({})",
                    describe(&line[..len])
                )));
            }
        }
        let header = parse_header(&line[..len]).map_err(|d| self.framing(d))?;
        self.offset += len as u64 + 1;
        if header.metadata_len > MAX_METADATA_BYTES {
            return Err(self.framing(format!(
                "metadata length {} exceeds the limit of {MAX_METADATA_BYTES} bytes",
                header.metadata_len
            )));
        }
        Ok(Some(header))
    }

    /// Read exactly `len` bytes of metadata into `buf` (cleared first). The
    /// buffer grows only as bytes arrive, never to a declared size up front.
    pub fn read_metadata(&mut self, len: u64, buf: &mut Vec<u8>) -> Result<(), Error> {
        buf.clear();
        let got = (&mut self.inner)
            .take(len)
            .read_to_end(buf)
            .map_err(|e| self.framing(format!("reading the metadata failed: {e}")))?;
        self.offset += got as u64;
        if (got as u64) < len {
            return Err(self.framing(format!(
                "truncated metadata: the header declared {len} bytes but the stream ended after {got}"
            )));
        }
        Ok(())
    }

    /// Stream the next `len` bytes as the chunk body. The returned reader
    /// reports an `UnexpectedEof` error if the stream ends early.
    pub fn body(&mut self, len: u64) -> BodyReader<'_, R> {
        BodyReader {
            inner: &mut self.inner,
            offset: &mut self.offset,
            declared: len,
            remaining: len,
        }
    }
}

fn fill<R: BufRead>(r: &mut R) -> io::Result<&[u8]> {
    loop {
        match r.fill_buf() {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    r.fill_buf()
}

/// Exactly one chunk body, streamed. Reads stop at the declared length, so the
/// next chunk's header is never consumed.
pub struct BodyReader<'a, R> {
    inner: &'a mut R,
    offset: &'a mut u64,
    declared: u64,
    remaining: u64,
}

impl<R: BufRead> BodyReader<'_, R> {
    /// Bytes of the body not yet read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Read and discard the rest of the body.
    pub fn skip_rest(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }
}

impl<R: BufRead> Read for BodyReader<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || out.is_empty() {
            return Ok(0);
        }
        let want = out.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match self.inner.read(&mut out[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "truncated body: the header declared {} bytes but the stream ended after {}",
                    self.declared,
                    self.declared - self.remaining
                ),
            ));
        }
        self.remaining -= n as u64;
        *self.offset += n as u64;
        Ok(n)
    }
}

/// Write one chunk: header, metadata and body in turn, then a flush. The
/// body is not copied into a frame buffer first, so a large result is held
/// once, not twice. Nothing between the writes can fail but the pipe itself,
/// so a reply is never interleaved with another or cut by our own code.
pub fn write_chunk<W: Write + ?Sized>(out: &mut W, metadata: &[u8], body: &[u8]) -> io::Result<()> {
    out.write_all(format!("chunked 1.0,{},{}\n", metadata.len(), body.len()).as_bytes())?;
    out.write_all(metadata)?;
    out.write_all(body)?;
    out.flush()
}

/// Write one chunk whose body `body` writes straight to `out` once the header
/// has announced `body_len` bytes, so a large body need never be held in
/// memory. Writing a different number of bytes is an error (the reader
/// would lose its framing).
pub fn write_chunk_streamed<W: Write + ?Sized>(
    out: &mut W,
    metadata: &[u8],
    body_len: u64,
    body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    out.write_all(format!("chunked 1.0,{},{}\n", metadata.len(), body_len).as_bytes())?;
    out.write_all(metadata)?;
    let mut counted = Counted { inner: out, bytes: 0 };
    body(&mut counted)?;
    if counted.bytes != body_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a reply body announced {body_len} bytes but wrote {}", counted.bytes),
        ));
    }
    out.flush()
}

/// A writer that counts the bytes it passes on.
struct Counted<'a, W: Write + ?Sized> {
    inner: &'a mut W,
    bytes: u64,
}

impl<W: Write + ?Sized> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_splunkd_header_and_whitespace_variants() {
        let h = Header {
            metadata_len: 17,
            body_len: 32,
        };
        assert_eq!(parse_header(b"chunked 1.0,17,32"), Ok(h));
        assert_eq!(parse_header(b"chunked  1.0 , 17 ,\t32 \r"), Ok(h));
        assert_eq!(parse_header(b"chunked\t1.0,17,32"), Ok(h));
    }

    #[test]
    fn rejects_bad_headers() {
        for bad in [
            &b"chunked1.0,1,2"[..],
            b"chunked 2.0,1,2",
            b"chunked 1.0,1",
            b"chunked 1.0,-1,2",
            b"chunked 1.0,1,2,3",
            b"chunked 1.0,1a,2",
            b"CHUNKED 1.0,1,2",
            b"",
        ] {
            assert!(parse_header(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let e = parse_header(b"chunked 1.0,99999999999999999999999,0").unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
    }

    #[test]
    fn reads_frames_exactly_even_one_byte_at_a_time() {
        let stream = b"chunked 1.0,2,3\n{}abc\nchunked 1.0,0,0\n";
        let reader = io::BufReader::with_capacity(1, &stream[..]);
        let mut r = ChunkReader::new(reader);
        let h = r.next_header().unwrap().unwrap();
        assert_eq!((h.metadata_len, h.body_len), (2, 3));
        let mut meta = Vec::new();
        r.read_metadata(h.metadata_len, &mut meta).unwrap();
        assert_eq!(meta, b"{}");
        let mut body = Vec::new();
        r.body(h.body_len).read_to_end(&mut body).unwrap();
        assert_eq!(body, b"abc");
        // A stray LF before the next header is skipped.
        let h = r.next_header().unwrap().unwrap();
        assert_eq!((h.metadata_len, h.body_len), (0, 0));
        assert_eq!(r.position().chunk, 2);
        assert!(r.next_header().unwrap().is_none());
    }

    #[test]
    fn truncation_is_an_error_not_an_allocation() {
        let stream = b"chunked 1.0,2,10000000000\n{}abc";
        let mut r = ChunkReader::new(&stream[..]);
        let h = r.next_header().unwrap().unwrap();
        let mut meta = Vec::new();
        r.read_metadata(h.metadata_len, &mut meta).unwrap();
        let mut body = r.body(h.body_len);
        let mut sink = Vec::new();
        let e = body.read_to_end(&mut sink).unwrap_err();
        assert!(e
            .to_string()
            .contains("declared 10000000000 bytes but the stream ended after 3"));

        let mut r = ChunkReader::new(&b"chunked 1.0,50,0\n{\"a\""[..]);
        let h = r.next_header().unwrap().unwrap();
        let e = r.read_metadata(h.metadata_len, &mut meta).unwrap_err();
        assert!(e.to_string().contains("truncated metadata"), "{e}");
        assert!(meta.capacity() < 1024);
    }

    #[test]
    fn header_without_lf_or_oversized_metadata_fails() {
        let mut r = ChunkReader::new(&b"chunked 1.0,2,3"[..]);
        assert!(r.next_header().unwrap_err().to_string().contains("no LF"));
        let long = vec![b'x'; 1000];
        let mut r = ChunkReader::new(&long[..]);
        assert!(r.next_header().unwrap_err().to_string().contains("no LF within"));
        let mut r = ChunkReader::new(&b"chunked 1.0,999999999999,0\n"[..]);
        assert!(r.next_header().unwrap_err().to_string().contains("exceeds the limit"));
    }

    #[test]
    fn writes_byte_lengths() {
        let mut out = Vec::new();
        write_chunk(&mut out, "{\"a\":\"测\"}".as_bytes(), "é".as_bytes()).unwrap();
        assert_eq!(out, "chunked 1.0,11,2\n{\"a\":\"测\"}é".as_bytes());
    }
}
