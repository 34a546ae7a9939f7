//! The CSV body codec: splunkd's result rows in, our result rows out.
//!
//! Decoding streams one chunk body through the `csv` crate into a single
//! reused `ByteRecord` and looks fields up by name in each chunk's own header
//! (scp2.md §18.4), so no per-row allocation happens and memory does not grow
//! with the chunk size. A field's values are: the decoded `__mv_<field>` list
//! when that column is non-empty, else the plain column when non-empty, else
//! none (an empty value is an absent value in Splunk).
//!
//! Encoding writes values the way splunkd does: bare only when empty or made
//! of ASCII letters and digits, otherwise quoted with quotes doubled. That
//! also protects values with leading or trailing blanks (scp2.md §18.3).

use crate::error::Error;
use crate::multivalue;
use csv::ByteRecord;
use std::borrow::Cow;
use std::io::Read;

/// The fields one chunk's header provides, resolved to column indexes.
#[derive(Debug, Default, Clone)]
struct Columns {
    plain: Vec<Option<usize>>,
    mv: Vec<Option<usize>>,
}

/// Decodes chunk bodies for a fixed list of wanted field names.
pub struct Decoder {
    wanted: Vec<Vec<u8>>,
    mv_names: Vec<Vec<u8>>,
    columns: Columns,
    header: ByteRecord,
    record: ByteRecord,
}

/// One field of the current row, as found in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// No column, or both the plain and `__mv_` columns are empty.
    Absent,
    /// A single value (the plain column).
    Single(&'a [u8]),
    /// An encoded `__mv_` value list.
    Multi(&'a [u8]),
}

impl<'a> Field<'a> {
    /// Iterate over the values of this field; a broken `__mv_` encoding
    /// yields `Err(byte offset inside the field)`.
    pub fn values(self) -> FieldValues<'a> {
        match self {
            Field::Absent => FieldValues::Done,
            Field::Single(v) => FieldValues::One(Some(v)),
            Field::Multi(enc) => FieldValues::Many(multivalue::decode(enc)),
        }
    }
}

/// Iterator over a field's values (see [`Field::values`]).
pub enum FieldValues<'a> {
    /// No values.
    Done,
    /// The single value, not yet returned.
    One(Option<&'a [u8]>),
    /// Values decoded from `__mv_`.
    Many(multivalue::Values<'a>),
}

impl<'a> Iterator for FieldValues<'a> {
    type Item = Result<Cow<'a, [u8]>, usize>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            FieldValues::Done => None,
            FieldValues::One(v) => v.take().map(|v| Ok(Cow::Borrowed(v))),
            FieldValues::Many(it) => it.next(),
        }
    }
}

/// The current row of a chunk body, handed to the caller's closure.
pub struct Row<'r> {
    record: &'r ByteRecord,
    columns: &'r Columns,
    /// 1-based data row number within the chunk.
    pub number: u64,
    /// Byte offset of the row within the body.
    pub offset: u64,
}

impl<'r> Row<'r> {
    /// The wanted field at index `i` (in the order given to [`Decoder::new`]).
    pub fn field(&self, i: usize) -> Field<'r> {
        if let Some(c) = self.columns.mv[i] {
            let enc = &self.record[c];
            if !enc.is_empty() {
                return Field::Multi(enc);
            }
        }
        match self.columns.plain[i] {
            Some(c) if !self.record[c].is_empty() => Field::Single(&self.record[c]),
            _ => Field::Absent,
        }
    }
}

impl Decoder {
    /// A decoder that extracts `wanted` fields (plus their `__mv_` columns).
    pub fn new<S: AsRef<[u8]>>(wanted: &[S]) -> Self {
        let wanted: Vec<Vec<u8>> = wanted.iter().map(|w| w.as_ref().to_vec()).collect();
        let mv_names = wanted.iter().map(|w| [b"__mv_", &w[..]].concat()).collect();
        Decoder {
            wanted,
            mv_names,
            columns: Columns::default(),
            header: ByteRecord::new(),
            record: ByteRecord::new(),
        }
    }

    /// The wanted field names, in index order.
    pub fn wanted(&self) -> &[Vec<u8>] {
        &self.wanted
    }

    /// Decode one chunk body, calling `each_row` for every data row.
    ///
    /// `chunk` and `base_offset` (the body's offset in the request stream)
    /// only serve error messages. Returns the number of data rows. Errors
    /// from the closure are passed through unchanged.
    pub fn decode<R, F>(&mut self, body: R, chunk: u64, base_offset: u64, mut each_row: F) -> Result<u64, Error>
    where
        R: Read,
        F: FnMut(&Row<'_>) -> Result<(), Error>,
    {
        let mut parity = QuoteParity { inner: body, quotes: 0 };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(false)
            .buffer_capacity(256 * 1024)
            .from_reader(&mut parity);
        let err = |row: u64, offset: u64, column: Option<String>, detail: String| Error::Body {
            chunk,
            row,
            offset: base_offset + offset,
            column,
            detail,
        };
        let csv_err = |e: csv::Error, rows: u64| -> Error {
            let offset = e.position().map_or(0, |p| p.byte());
            match e.into_kind() {
                csv::ErrorKind::Io(io) => err(rows + 1, offset, None, io.to_string()),
                csv::ErrorKind::UnequalLengths { expected_len, len, .. } => err(
                    rows + 1,
                    offset,
                    None,
                    format!("the row has {len} fields but the header has {expected_len}"),
                ),
                other => err(rows + 1, offset, None, format!("{other:?}")),
            }
        };
        if !reader.read_byte_record(&mut self.header).map_err(|e| csv_err(e, 0))? {
            return finish(&parity, chunk, base_offset, 0);
        }
        self.resolve_columns();
        let mut rows = 0u64;
        loop {
            let more = reader
                .read_byte_record(&mut self.record)
                .map_err(|e| csv_err(e, rows))?;
            if !more {
                break;
            }
            rows += 1;
            let row = Row {
                record: &self.record,
                columns: &self.columns,
                number: rows,
                offset: self.record.position().map_or(0, |p| p.byte()),
            };
            each_row(&row)?;
        }
        drop(reader);
        finish(&parity, chunk, base_offset, rows)
    }

    fn resolve_columns(&mut self) {
        let find = |name: &[u8]| self.header.iter().position(|h| h == name);
        self.columns.plain = self.wanted.iter().map(|w| find(w)).collect();
        self.columns.mv = self.mv_names.iter().map(|w| find(w)).collect();
    }

    /// The name of the `__mv_` column of wanted field `i`, for error messages.
    pub fn mv_column_name(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.mv_names[i]).into_owned()
    }
}

fn finish<R>(parity: &QuoteParity<R>, chunk: u64, base_offset: u64, rows: u64) -> Result<u64, Error> {
    if parity.quotes % 2 == 1 {
        return Err(Error::Body {
            chunk,
            row: rows,
            offset: base_offset,
            column: None,
            detail: "a quoted value is never closed (odd number of double quotes in the body)".into(),
        });
    }
    Ok(rows)
}

/// Counts double quotes flowing through, so an unterminated quoted field
/// (which the csv crate silently runs to end of input) is detected: in
/// RFC 4180 every quote opens, closes or is doubled, so the count is even.
struct QuoteParity<R> {
    inner: R,
    quotes: u64,
}

impl<R: Read> Read for QuoteParity<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.quotes += memchr::memchr_iter(b'"', &buf[..n]).count() as u64;
        Ok(n)
    }
}

/// Append one CSV value in splunkd's quoting style.
pub fn write_value(out: &mut Vec<u8>, value: &[u8]) {
    if value.iter().all(u8::is_ascii_alphanumeric) {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    let mut rest = value;
    while let Some(i) = memchr::memchr(b'"', rest) {
        out.extend_from_slice(&rest[..=i]);
        out.push(b'"');
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Append one CSV row (values separated by commas, LF-terminated).
pub fn write_row<'v>(out: &mut Vec<u8>, values: impl IntoIterator<Item = &'v [u8]>) {
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, v);
    }
    out.push(b'\n');
}

/// Encode records as splunkd does: header of `fields` followed by one
/// `__mv_` column per field; each row given as one value list per field.
/// Used to write test and benchmark input, and to round-trip captures.
pub fn encode_records(fields: &[&[u8]], rows: &[Vec<Vec<Vec<u8>>>], out: &mut Vec<u8>) {
    let mut header: Vec<Vec<u8>> = fields.iter().map(|f| f.to_vec()).collect();
    header.extend(fields.iter().map(|f| [b"__mv_", *f].concat()));
    write_row(out, header.iter().map(Vec::as_slice));
    let mut cells: Vec<Vec<u8>> = Vec::new();
    for row in rows {
        cells.clear();
        for values in row {
            cells.push(values.join(&b'\n'));
        }
        for values in row {
            let mut mv = Vec::new();
            if values.len() > 1 {
                multivalue::encode(values.iter().map(Vec::as_slice), &mut mv);
            }
            cells.push(mv);
        }
        write_row(out, cells.iter().map(Vec::as_slice));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(body: &[u8], wanted: &[&str]) -> Result<Vec<Vec<Vec<Vec<u8>>>>, Error> {
        let mut d = Decoder::new(wanted);
        let mut out = Vec::new();
        d.decode(body, 2, 100, |row| {
            let mut fields = Vec::new();
            for i in 0..wanted.len() {
                let vals: Vec<Vec<u8>> = row.field(i).values().map(|v| v.unwrap().into_owned()).collect();
                fields.push(vals);
            }
            out.push(fields);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn decodes_quotes_newlines_multivalue_and_invalid_utf8() {
        let body = b"\"_time\",QueryName,\"__mv__time\",\"__mv_QueryName\"\n\
            \"1.5\",\"a,\"\"b\"\"\nc\",,\n\
            2,\"x\ny\",,\"$x$;$y$$$\"\r\n\
            3,\"\xff\",,\n";
        let rows = collect(body, &["_time", "QueryName", "missing"]).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0][1], vec![b"a,\"b\"\nc".to_vec()]);
        assert_eq!(rows[1][1], vec![b"x".to_vec(), b"y$".to_vec()]);
        assert_eq!(rows[2][1], vec![b"\xff".to_vec()]);
        assert!(rows.iter().all(|r| r[2].is_empty()));
    }

    #[test]
    fn empty_and_header_only_bodies_have_no_rows() {
        assert!(collect(b"", &["a"]).unwrap().is_empty());
        assert!(collect(b"a,b\n", &["a"]).unwrap().is_empty());
        assert!(collect(b"a,b", &["a"]).unwrap().is_empty());
    }

    #[test]
    fn ragged_rows_and_open_quotes_are_errors_with_positions() {
        let e = collect(b"a,b\n1,2\n3\n", &["a"]).unwrap_err().to_string();
        assert!(e.contains("chunk 2, row 2"), "{e}");
        assert!(e.contains("1 fields but the header has 2"), "{e}");
        let e = collect(b"a,b\n1,\"2\n", &["a"]).unwrap_err().to_string();
        assert!(e.contains("never closed"), "{e}");
    }

    #[test]
    fn writes_values_like_splunkd() {
        let mut out = Vec::new();
        write_row(
            &mut out,
            [&b"abc123"[..], b"", b"_time", b" x ", b"a\"b", b"\xe0\xb8\x97"],
        );
        assert_eq!(out, b"abc123,,\"_time\",\" x \",\"a\"\"b\",\"\xe0\xb8\x97\"\n");
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let rows = vec![
            vec![vec![b"1".to_vec()], vec![b"a".to_vec(), b"$b;".to_vec()]],
            vec![vec![], vec![b"q\"\n,".to_vec()]],
        ];
        let mut body = Vec::new();
        encode_records(&[b"_time", b"QueryName"], &rows, &mut body);
        let back = collect(&body, &["_time", "QueryName"]).unwrap();
        assert_eq!(back, rows);
    }
}
