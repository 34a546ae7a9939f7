//! Conformance against real splunkd traffic (../shared/fixtures/scp2-recordings):
//! every chunk of every capture is framed with the lengths we read, and every
//! CSV body survives decode → encode → decode through the crate's codec.
//!
//! Every byte-stream capture is covered: the Splunk 6.3 inputs (gzipped and the
//! 2015 originals), splunklib's recorded outputs, and the Splunk 8.0.3
//! multibyte capture. Not framed here: the NDietrich `example_messages/`
//! files, which are hand-assembled Markdown/text logs whose bodies lost bytes
//! in transcription (PROVENANCE.md); they are semantic references only.

use abusedweb::codec::body::{encode_records, Decoder};
use abusedweb::protocol::chunk::ChunkReader;
use std::io::Read;
use std::path::{Path, PathBuf};

fn recordings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/scp2-recordings")
}

const SDK63: &str = "splunk-sdk-python/tests/searchcommands/recordings/scpv2/Splunk-6.3";
const SDK2015: &str = "splunk-sdk-python@77f9030/tests/searchcommands/recordings/scpv2/Splunk-6.3";

fn load(rel: &str) -> Vec<u8> {
    let path = recordings().join(rel);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if rel.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
        out
    } else {
        raw
    }
}

struct Chunk {
    metadata: Vec<u8>,
    body: Vec<u8>,
}

/// Read every chunk; returns the chunks and the error that stopped the read, if any.
fn read_all(data: &[u8]) -> (Vec<Chunk>, Option<String>) {
    let mut reader = ChunkReader::new(data);
    let mut chunks = Vec::new();
    loop {
        let header = match reader.next_header() {
            Ok(Some(h)) => h,
            Ok(None) => return (chunks, None),
            Err(e) => return (chunks, Some(e.to_string())),
        };
        let mut metadata = Vec::new();
        if let Err(e) = reader.read_metadata(header.metadata_len, &mut metadata) {
            return (chunks, Some(e.to_string()));
        }
        let mut body = Vec::new();
        if let Err(e) = reader.body(header.body_len).read_to_end(&mut body) {
            return (chunks, Some(e.to_string()));
        }
        assert_eq!(metadata.len() as u64, header.metadata_len);
        assert_eq!(body.len() as u64, header.body_len);
        chunks.push(Chunk { metadata, body });
    }
}

fn lengths(chunks: &[Chunk]) -> Vec<(usize, usize)> {
    chunks.iter().map(|c| (c.metadata.len(), c.body.len())).collect()
}

type Rows = Vec<Vec<Vec<Vec<u8>>>>;

/// A capture file, the (metadata, body) lengths of its chunks, and its data rows.
type Expected<'a> = (&'a str, &'a [(usize, usize)], usize);

/// Decode a body into value lists for every ordinary (non-`__mv_`) column.
fn decode(body: &[u8]) -> (Vec<Vec<u8>>, Rows) {
    let mut header_reader = csv::ReaderBuilder::new().has_headers(false).from_reader(body);
    let mut header = csv::ByteRecord::new();
    if !header_reader.read_byte_record(&mut header).unwrap() {
        return (Vec::new(), Vec::new());
    }
    let fields: Vec<Vec<u8>> = header
        .iter()
        .filter(|h| !h.starts_with(b"__mv_"))
        .map(<[u8]>::to_vec)
        .collect();
    let mut decoder = Decoder::new(&fields);
    let mut rows = Vec::new();
    decoder
        .decode(body, 2, 0, |row| {
            let values = (0..fields.len())
                .map(|i| {
                    row.field(i)
                        .values()
                        .map(|v| v.expect("valid __mv_").into_owned())
                        .collect()
                })
                .collect();
            rows.push(values);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("decoding a real body failed: {e}"));
    (fields, rows)
}

/// decode → encode → decode must give the same values; returns the row count.
fn round_trip(body: &[u8]) -> usize {
    let (fields, rows) = decode(body);
    if fields.is_empty() {
        return 0;
    }
    let names: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    let mut encoded = Vec::new();
    encode_records(&names, &rows, &mut encoded);
    let (fields2, rows2) = decode(&encoded);
    assert_eq!(fields, fields2);
    assert_eq!(rows.len(), rows2.len());
    for (i, (a, b)) in rows.iter().zip(&rows2).enumerate() {
        assert_eq!(a, b, "row {} differs after the round trip", i + 1);
    }
    rows.len()
}

/// splunkd's request metadata is JSON the crate's request parser accepts.
fn assert_requests_parse(chunks: &[Chunk]) {
    for (i, c) in chunks.iter().enumerate() {
        abusedweb::protocol::metadata::parse_request(&c.metadata).unwrap_or_else(|e| panic!("chunk {}: {e}", i + 1));
    }
}

#[test]
fn splunk_8_0_3_multibyte_capture_has_ten_chunks_with_byte_lengths() {
    let (chunks, err) = read_all(&load(
        "splunk-sdk-python/tests/unit/data/custom_search/multibyte_input.gz",
    ));
    assert_eq!(err, None);
    assert_requests_parse(&chunks);
    assert_eq!(
        lengths(&chunks),
        [
            (658, 0),
            (37, 172638),
            (37, 152436),
            (37, 76),
            (37, 170974),
            (37, 154126),
            (37, 166762),
            (37, 158338),
            (37, 45286),
            (36, 37516)
        ]
    );
    let finished: Vec<bool> = chunks[1..]
        .iter()
        .map(|c| serde_json::from_slice::<serde_json::Value>(&c.metadata).unwrap()["finished"] == true)
        .collect();
    assert_eq!(finished, [false, false, false, false, false, false, false, false, true]);
    let rows: usize = chunks[1..].iter().map(|c| round_trip(&c.body)).sum();
    assert_eq!(rows, 40_682);
    // The multibyte value survives byte-exact.
    let (_, first) = decode(&chunks[1].body);
    assert!(first
        .iter()
        .any(|r| r.iter().any(|vals| vals.iter().any(|v| v == "ทt".as_bytes()))));
}

#[test]
fn splunk_6_3_sum_map_16_mb_chunk_round_trips() {
    let (chunks, err) = read_all(&load(&format!("{SDK63}/sum.map.input.gz")));
    assert_eq!(err, None);
    assert_eq!(lengths(&chunks), [(795, 0), (36, 16_109_782)]);
    assert_requests_parse(&chunks);
    assert_eq!(round_trip(&chunks[1].body), 50_000);
}

#[test]
fn splunk_6_3_inputs_frame_and_round_trip() {
    let cases: &[Expected] = &[
        ("countmatches.input.gz", &[(846, 0), (36, 48108)], 500),
        ("sum.reduce.input.gz", &[(765, 0), (36, 36)], 1),
        ("pypygeneratetext.input.gz", &[(810, 0)], 0),
    ];
    for (file, want, rows) in cases {
        let (chunks, err) = read_all(&load(&format!("{SDK63}/{file}")));
        assert_eq!(err, None, "{file}");
        assert_eq!(lengths(&chunks), *want, "{file}");
        assert_requests_parse(&chunks);
        let got: usize = chunks.iter().map(|c| round_trip(&c.body)).sum();
        assert_eq!(got, *rows, "{file}");
    }
    for (file, want) in [
        ("countmatches.input", &[(846, 0), (36, 48108)][..]),
        ("sum.reduce.input", &[(765, 0), (36, 36)]),
        ("generatehello.input", &[(770, 0)]),
        ("pypygeneratetext.input", &[(810, 0)]),
    ] {
        let (chunks, err) = read_all(&load(&format!("{SDK2015}/{file}")));
        assert_eq!(err, None, "{file}");
        assert_eq!(lengths(&chunks), want, "{file}");
    }
}

#[test]
fn splunklib_outputs_frame_and_round_trip() {
    // What splunklib wrote back to splunkd (some later hand-edited by SDK maintainers).
    let cases: &[(&str, &[(usize, usize)])] = &[
        ("countmatches.output", &[(20, 0), (17, 49651)]),
        ("generatehello.output", &[(38, 0), (17, 37842)]),
        ("pypygeneratetext.output", &[(38, 0), (17, 39840)]),
        ("sum.map.output", &[(20, 0), (17, 34)]),
        ("sum.map.output.py3", &[(20, 0), (17, 37)]),
        ("sum.reduce.output", &[(81, 0), (17, 34)]),
        (
            "TestInternals.test_record_writer_with_recordings.1443154424.42.output",
            &[(14904, 762288)],
        ),
    ];
    for (file, want) in cases {
        let (chunks, err) = read_all(&load(&format!("{SDK63}/{file}")));
        assert_eq!(err, None, "{file}");
        assert_eq!(lengths(&chunks), *want, "{file}");
        for c in &chunks {
            round_trip(&c.body);
        }
    }
    assert_eq!(
        round_trip(&read_all(&load(&format!("{SDK63}/countmatches.output"))).0[1].body),
        500
    );
}

#[test]
fn damaged_captures_fail_with_a_precise_error() {
    // A 2017 hand edit appended an execute header declaring 150 bytes and no body.
    let (chunks, err) = read_all(&load(&format!("{SDK63}/generatehello.input.gz")));
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        err.as_deref(),
        Some("truncated body: the header declared 150 bytes but the stream ended after 0")
    );
    // The 2015 output's body was edited after its length was written.
    let (chunks, err) = read_all(&load(&format!("{SDK2015}/pypygeneratetext.output")));
    assert_eq!(chunks.len(), 2);
    assert!(err
        .unwrap()
        .starts_with("malformed request at chunk 3 (byte offset 37936): expected a header"));
    // A Python pickle, not a chunk stream (test data of splunklib's writer).
    let (chunks, err) = read_all(&load(&format!(
        "{SDK63}/TestInternals.test_record_writer_with_recordings.1443154424.42.input.gz"
    )));
    assert!(chunks.is_empty());
    assert!(err.unwrap().contains("expected a header"));
}
