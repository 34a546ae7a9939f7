//! One Sysmon DNS-query record as `scan` found it in a file, its fields
//! extracted as the Splunk Sysmon add-on extracts them for EventCode 22
//! (detection.md section 6), and handed to the engine by slot.

use super::json::{self, Fields, Leaf};
use crate::codec::multivalue;
use crate::engine::{Event, Field};
use memchr::memmem::Finder;
use std::borrow::Cow;
use std::io::Write;
use std::ops::Range;
use std::sync::OnceLock;

/// The raw Sysmon fields of one EventID 22 record, before the add-on's
/// derived fields; every value as text, `None` when the record has none.
/// Values are borrowed from the record's text (or JSON tree) where they
/// stand in it as they are, so reading a record allocates nothing for
/// them; only a decoded XML entity or a JSON number makes one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sysmon<'a> {
    /// `Image`.
    pub image: Option<Cow<'a, str>>,
    /// `QueryName`.
    pub query_name: Option<Cow<'a, str>>,
    /// `QueryStatus`.
    pub query_status: Option<Cow<'a, str>>,
    /// `QueryResults`.
    pub query_results: Option<Cow<'a, str>>,
    /// System `Computer` (the OTRF layout calls it `Hostname`).
    pub computer: Option<Cow<'a, str>>,
    /// `UtcTime`, e.g. `2021-03-24 12:25:12.840`.
    pub utc_time: Option<Cow<'a, str>>,
    /// `ProcessGuid`.
    pub process_guid: Option<Cow<'a, str>>,
    /// System `Security UserID` SID.
    pub user_id: Option<Cow<'a, str>>,
}

/// A [`Sysmon`] record's values as ranges of an arena of text that holds
/// them: how records read on another thread cross to the engine's, a run of
/// them in one allocation.
pub type Packed = [Option<Range<u32>>; 8];

impl Sysmon<'_> {
    /// The values, copied to the end of `arena`. `arena` stays under
    /// 4 GiB: it holds one job's records, a few hundred KiB.
    pub fn pack(&self, arena: &mut String) -> Packed {
        self.values().map(|v| {
            v.map(|v| {
                let start = arena.len();
                arena.push_str(v);
                start as u32..arena.len() as u32
            })
        })
    }

    fn values(&self) -> [Option<&str>; 8] {
        [
            &self.image,
            &self.query_name,
            &self.query_status,
            &self.query_results,
            &self.computer,
            &self.utc_time,
            &self.process_guid,
            &self.user_id,
        ]
        .map(|v| v.as_deref())
    }
}

impl<'a> Sysmon<'a> {
    /// The record [`Sysmon::pack`] packed into `arena`, borrowing from it.
    pub fn unpack(packed: &Packed, arena: &'a str) -> Sysmon<'a> {
        let [image, query_name, query_status, query_results, computer, utc_time, process_guid, user_id] = packed
            .clone()
            .map(|r| r.map(|r| Cow::Borrowed(&arena[r.start as usize..r.end as usize])));
        Sysmon {
            image,
            query_name,
            query_status,
            query_results,
            computer,
            utc_time,
            process_guid,
            user_id,
        }
    }
}

/// Why a record was not counted, or what in it was doubtful.
pub type Problem = String;

/// Is the text a Sysmon EventID 22? `id` as found; `provider` the provider,
/// channel or source name when the record has one.
fn is_sysmon_dns(id: Option<&str>, provider: Option<&str>) -> bool {
    id.map(str::trim) == Some("22") && provider.is_none_or(|p| p.contains("Sysmon"))
}

/// What kind of value a field holds, for the wrong-type rules of
/// [`from_json`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A number is a legitimate way to write it: `EventID`, `QueryStatus`
    /// (the evtx crate writes both as numbers when they are).
    Numeric,
    /// Text only: Image, QueryName, QueryResults, Computer, UtcTime,
    /// ProcessGuid, UserID, the provider name. A number there is read as
    /// its text, with a warning.
    Text,
}

/// A JSON value as text. Strings as they are; `null` is absent (the evtx
/// crate and Winlogbeat write an empty element so); numbers as written
/// (a warning for a [`Kind::Text`] field); `Err` for booleans, arrays and
/// objects, which no exporter writes for these fields.
fn json_text<'v>(
    v: &Leaf<'v>,
    field: &str,
    kind: Kind,
    problems: &mut Vec<Problem>,
) -> Result<Option<Cow<'v, str>>, Problem> {
    match v {
        Leaf::Null => Ok(None),
        Leaf::Text(s) => Ok(Some(s.clone())),
        Leaf::Number(n) => {
            if kind == Kind::Text {
                problems.push(format!("field {field} is a number ({n}), read as its text"));
            }
            Ok(Some(Cow::Owned(n.to_string())))
        }
        // evtx's `{"#text": 22, "#attributes": {...}}` for an element with attributes
        Leaf::Object(Some(text)) => json_text(text, field, kind, problems),
        Leaf::Bool => Err(format!("field {field} is a boolean, not a string; record not counted")),
        Leaf::Array => Err(format!("field {field} is an array, not a string; record not counted")),
        Leaf::Object(None) => Err(format!("field {field} is an object, not a string; record not counted")),
    }
}

/// Extract a record from the fields of one JSON object ([`json::parse`]):
/// the flat OTRF/Mordor layout (`EventID`, `QueryName`, `Hostname`… at the
/// top), the evtx crate's and Sigma's rendering (`Event.System`,
/// `Event.EventData`) and Winlogbeat's (`winlog.event_id`,
/// `winlog.event_data`), each field taken from the first of its paths
/// ([`json::PATHS`]) holding a value. `Ok(None)`: not a Sysmon EventID 22;
/// `Err`: a field of a type no exporter writes (a boolean, an array, an
/// object), the record not counted. Doubtful values of a counted record (a
/// number where text belongs) are pushed to `problems`.
pub fn from_json<'v>(f: &Fields<'v>, problems: &mut Vec<Problem>) -> Result<Option<Sysmon<'v>>, Problem> {
    let mut first = |field: &str, kind: Kind, paths: json::Group| -> Result<Option<Cow<'v, str>>, Problem> {
        for i in paths {
            if let Some(x) = f.at(i) {
                if let Some(t) = json_text(x, field, kind, problems)? {
                    return Ok(Some(t));
                }
            }
        }
        Ok(None)
    };
    let id = first("EventID", Kind::Numeric, json::EVENT_ID)?;
    // Not a DNS query: nothing more is looked at, nor warned about.
    if id.as_deref().map(str::trim) != Some("22") {
        return Ok(None);
    }
    let provider = first("Provider", Kind::Text, json::PROVIDER)?;
    if !is_sysmon_dns(id.as_deref(), provider.as_deref()) {
        return Ok(None);
    }
    let kinds = [
        Kind::Text,
        Kind::Text,
        Kind::Numeric,
        Kind::Text,
        Kind::Text,
        Kind::Text,
    ];
    let mut data: [Option<Cow<'v, str>>; 6] = Default::default();
    for (k, name) in json::DATA_NAMES.iter().enumerate() {
        data[k] = first(name, kinds[k], json::data(k))?;
    }
    let [image, query_name, query_status, query_results, utc_time, process_guid] = data;
    let computer = first("Computer", Kind::Text, json::COMPUTER)?;
    let user_id = first("UserID", Kind::Text, json::USER_ID)?;
    Ok(Some(Sysmon {
        image,
        query_name,
        query_status,
        query_results,
        computer,
        utc_time,
        process_guid,
        user_id,
    }))
}

/// Decode XML's five predefined entities and character references
/// (`&lt;unknown process&gt;` becomes `<unknown process>`, the value EVTX
/// and JSON give for the same event). A broken reference is kept as written
/// and reported.
pub fn decode_entities(s: &str) -> Result<Cow<'_, str>, (String, Problem)> {
    if !s.contains('&') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut broken = None;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest[1..].find(';').filter(|&j| j <= 10).and_then(|j| {
            let name = &rest[1..1 + j];
            let c = match name {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let n = if let Some(h) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                        u32::from_str_radix(h, 16).ok()
                    } else if let Some(d) = name.strip_prefix('#') {
                        d.parse().ok()
                    } else {
                        None
                    };
                    n.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, j + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                broken.get_or_insert_with(|| {
                    format!(
                        "broken XML entity \"{}\" kept as written",
                        crate::error::excerpt(rest.as_bytes(), 12)
                    )
                });
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    match broken {
        None => Ok(Cow::Owned(out)),
        Some(p) => Err((out, p)),
    }
}

/// The substrings the XML extraction looks for, each searcher built once.
/// `str::find` builds a Two-Way searcher at every call: with a search per
/// field, and one from the record's start for each wanted `<Data>`, the
/// searching was more than half of `scan`'s samples on XmlWinEventLog.
struct Needles {
    event_id: Finder<'static>,
    provider: Finder<'static>,
    computer: Finder<'static>,
    security: Finder<'static>,
    name_attr: Finder<'static>,
    user_id_attr: Finder<'static>,
    data: Finder<'static>,
    data_end: Finder<'static>,
}

/// The searchers, built on first use.
fn needles() -> &'static Needles {
    static NEEDLES: OnceLock<Needles> = OnceLock::new();
    NEEDLES.get_or_init(|| Needles {
        event_id: Finder::new("<EventID"),
        provider: Finder::new("<Provider "),
        computer: Finder::new("<Computer"),
        security: Finder::new("<Security "),
        name_attr: Finder::new("Name="),
        user_id_attr: Finder::new("UserID="),
        data: Finder::new(DATA_OPEN),
        data_end: Finder::new("</Data>"),
    })
}

/// Where `needle` first occurs in `hay` from byte `from` on.
fn find_from(needle: &Finder<'_>, hay: &str, from: usize) -> Option<usize> {
    needle.find(&hay.as_bytes()[from..]).map(|i| from + i)
}

/// The text between the element `open` starts (up to its `>`) and the next
/// `<`, in `xml`.
fn element_text<'x>(xml: &'x str, open: &Finder<'_>) -> Option<&'x str> {
    let mut from = 0;
    loop {
        let i = find_from(open, xml, from)?;
        let after = &xml[i + open.needle().len()..];
        // `<EventID>` or `<EventID Qualifiers=…>`, not `<EventIDx>`
        if after.starts_with('>') || after.starts_with(' ') {
            let gt = memchr::memchr(b'>', after.as_bytes())?;
            if after[..gt].ends_with('/') {
                return Some("");
            }
            let body = &after[gt + 1..];
            return Some(&body[..memchr::memchr(b'<', body.as_bytes()).unwrap_or(body.len())]);
        }
        from = i + open.needle().len();
    }
}

/// The value of the attribute `name_eq` (`Name=`) names in the first
/// element starting with `open`.
fn attribute<'x>(xml: &'x str, open: &Finder<'_>, name_eq: &Finder<'_>) -> Option<&'x str> {
    let i = find_from(open, xml, 0)?;
    let tag = &xml[i..i + memchr::memchr(b'>', &xml.as_bytes()[i..])?];
    let j = find_from(name_eq, tag, 0)? + name_eq.needle().len();
    let quote = tag[j..].chars().next()?;
    if quote != '\'' && quote != '"' {
        return None;
    }
    let v = &tag[j + 1..];
    Some(&v[..v.find(quote)?])
}

/// How each `<Data>` element starts; its name follows, quoted.
const DATA_OPEN: &str = "<Data Name=";

/// The `<Data Name=…>` fields a record is read for, in the order their
/// values are decoded (and their warnings given): the JSON layouts' names.
const DATA_FIELDS: [&str; 6] = json::DATA_NAMES;

/// The raw text of each of [`DATA_FIELDS`] in `xml`, in one pass over its
/// `<Data>` elements: the first element of each name decides (`Some(None)`
/// when it is empty, `<Data Name='…'/>`), and an element whose tag never
/// ends stops the pass, leaving the names not yet seen absent.
fn data_fields(xml: &str) -> [Option<Option<&str>>; DATA_FIELDS.len()] {
    let n = needles();
    let mut raw = [None; DATA_FIELDS.len()];
    let mut from = 0;
    while let Some(start) = find_from(&n.data, xml, from) {
        let Some(gt) = memchr::memchr(b'>', &xml.as_bytes()[start..]) else {
            break;
        };
        let tag_end = start + gt;
        let tag = &xml[start + DATA_OPEN.len()..tag_end];
        from = tag_end;
        // bytes, not str: the quote may be any character (found by fuzzing)
        let quoted = tag.trim_end_matches('/').as_bytes();
        if quoted.len() < 2 {
            continue;
        }
        let name = &quoted[1..quoted.len() - 1];
        let Some(k) = DATA_FIELDS.iter().position(|f| f.as_bytes() == name) else {
            continue;
        };
        if raw[k].is_some() {
            continue;
        }
        raw[k] = Some(if tag.ends_with('/') {
            None
        } else {
            let body = &xml[tag_end + 1..];
            Some(&body[..n.data_end.find(body.as_bytes()).unwrap_or(body.len())])
        });
        if raw.iter().all(Option::is_some) {
            break;
        }
    }
    raw
}

/// A raw XML value with its entities decoded ([`decode_entities`]); a
/// broken one is kept as written and reported in `problems`.
fn decoded<'x>(raw: Option<&'x str>, problems: &mut Vec<Problem>) -> Option<Cow<'x, str>> {
    Some(match decode_entities(raw?) {
        Ok(s) => s,
        Err((s, p)) => {
            problems.push(p);
            Cow::Owned(s)
        }
    })
}

/// Extract a record from one `<Event …>…</Event>` of XmlWinEventLog text
/// (as a forwarder ships it with `renderXml=true`). `Ok(None)`: not a
/// Sysmon EventID 22; the problems are warnings (broken entities), the
/// record is still counted.
pub fn from_xml<'x>(xml: &'x str) -> (Option<Sysmon<'x>>, Vec<Problem>) {
    let n = needles();
    let mut problems = Vec::new();
    let id = element_text(xml, &n.event_id);
    let provider = attribute(xml, &n.provider, &n.name_attr);
    if !is_sysmon_dns(id, provider) {
        return (None, problems);
    }
    let mut decode = |raw: Option<&'x str>| decoded(raw, &mut problems);
    let [image, query_name, query_status, query_results, utc_time, process_guid] =
        data_fields(xml).map(Option::flatten);
    let mut s = Sysmon {
        image: decode(image),
        query_name: decode(query_name),
        query_status: decode(query_status),
        query_results: decode(query_results),
        computer: None,
        utc_time: decode(utc_time),
        process_guid: decode(process_guid),
        user_id: None,
    };
    s.computer = decode(element_text(xml, &n.computer));
    s.user_id = decode(attribute(xml, &n.security, &n.user_id_attr));
    (Some(s), problems)
}

/// `UtcTime` (`YYYY-MM-DD hh:mm:ss[.fff]`, UTC) as epoch seconds text, the
/// fraction kept as written: `2021-03-24 12:25:12.840` → `1616588712.840`.
pub fn epoch_text(utc: &str) -> Option<String> {
    let mut out = Vec::new();
    write_epoch(utc, &mut out).then(|| String::from_utf8(out).expect("digits, a sign and a dot"))
}

/// [`epoch_text`] appended to `out` (the record's scratch, so no text is
/// made for it); false, and nothing written, when `utc` is not a time.
fn write_epoch(utc: &str, out: &mut Vec<u8>) -> bool {
    let b = utc.trim().as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter()
            .try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let Some(((y, m, d), (hh, mm, ss))) = (|| {
        Some((
            (num(0..4)?, num(5..7)?, num(8..10)?),
            (num(11..13)?, num(14..16)?, num(17..19)?),
        ))
    })() else {
        return false;
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return false;
    }
    let rest = &b[19..];
    let fraction = match rest {
        [] | [b'Z'] => &rest[..0],
        [b'.', digits @ ..] => {
            let digits = digits.strip_suffix(b"Z").unwrap_or(digits);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return false;
            }
            &rest[..1 + digits.len()]
        }
        _ => return false,
    };
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{secs}");
    out.extend_from_slice(fraction);
    true
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The add-on's `answer` values: `(type:\s+\d+\s+|)([^;]+);` repeated over
/// `QueryResults` (each `;`-terminated non-empty piece, its `type:  N `
/// prefix dropped); none for `-`.
pub fn answers(query_results: &str) -> Vec<&str> {
    answer_values(query_results).collect()
}

/// [`answers`], one at a time.
fn answer_values(query_results: &str) -> impl Iterator<Item = &str> + Clone {
    // The text after the last `;` is not `;`-terminated.
    let terminated = query_results.rsplit_once(';').map(|(head, _)| head);
    terminated
        .into_iter()
        .flat_map(|head| head.split(';'))
        .filter(|piece| !piece.is_empty())
        .map(|piece| strip_type(piece).unwrap_or(piece))
}

/// `type:\s+\d+\s+` at the start of `piece` removed, if something follows.
fn strip_type(piece: &str) -> Option<&str> {
    let r = piece.strip_prefix("type:")?;
    let t = r.trim_start_matches(|c: char| c.is_ascii_whitespace());
    if t.len() == r.len() {
        return None;
    }
    let u = t.trim_start_matches(|c: char| c.is_ascii_digit());
    if u.len() == t.len() {
        return None;
    }
    let v = u.trim_start_matches(|c: char| c.is_ascii_whitespace());
    (v.len() < u.len() && !v.is_empty()).then_some(v)
}

/// The basename of `Image` after its last backslash (unchanged without one).
pub fn basename(image: &str) -> &str {
    image.rsplit('\\').next().unwrap_or(image)
}

/// Where the value of one of the command's fields comes from, for every
/// record alike: told once from the field's name, not at each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `_time`: `UtcTime` as epoch seconds.
    Time,
    Image,
    QueryName,
    QueryStatus,
    QueryResults,
    Computer,
    /// `Image`'s basename.
    ProcessName,
    ProcessGuid,
    UserId,
    /// `1` where the record has a `QueryName`.
    QueryCount,
    /// The same text for every record.
    Constant(&'static str),
    Answer,
    AnswerCount,
    /// A field the add-on does not give.
    Absent,
}

/// The command's fields (its `required_fields`), each with where its value
/// comes from: the engine's slots, laid out once for a whole scan.
#[derive(Debug, Clone)]
pub struct Layout {
    sources: Vec<Source>,
    /// Which derived values some field wants: `_time`, `answer`,
    /// `answer_count` (told once here, not at each record).
    wants: [bool; 3],
}

impl Layout {
    /// The slots of `fields`, in order.
    pub fn new(fields: &[&str]) -> Layout {
        let sources: Vec<Source> = fields
            .iter()
            .map(|&name| match name {
                "_time" => Source::Time,
                "Image" => Source::Image,
                "QueryName" | "query" => Source::QueryName,
                "QueryStatus" | "reply_code_id" => Source::QueryStatus,
                "QueryResults" => Source::QueryResults,
                "Computer" | "dvc" | "src" => Source::Computer,
                "process_name" | "process_exec" => Source::ProcessName,
                "process_guid" => Source::ProcessGuid,
                "user_id" => Source::UserId,
                "query_count" => Source::QueryCount,
                "signature" => Source::Constant("DNSEvent (DNS query)"),
                "signature_id" => Source::Constant("22"),
                "vendor_product" => Source::Constant("Microsoft Sysmon"),
                "answer" => Source::Answer,
                "answer_count" => Source::AnswerCount,
                _ => Source::Absent,
            })
            .collect();
        let wants = [Source::Time, Source::Answer, Source::AnswerCount].map(|d| sources.contains(&d));
        Layout { sources, wants }
    }
}

/// A record laid out in the engine's slots ([`Layout`]). The values the
/// record holds as they are are borrowed from it; the derived ones
/// (`_time` as epoch seconds, several answers' multivalue encoding, their
/// count) are written to a scratch buffer the caller keeps from record to
/// record, so a record costs no allocation.
#[derive(Debug)]
pub struct Slotted<'a> {
    record: &'a Sysmon<'a>,
    layout: &'a Layout,
    /// The derived values' bytes, and where each lies in them.
    scratch: &'a [u8],
    time: Option<Range<usize>>,
    answer: Option<(Range<usize>, bool)>,
    answer_count: Option<Range<usize>>,
}

impl<'a> Slotted<'a> {
    /// Lay `record` out in `layout`'s slots, its derived values written to
    /// `scratch` (cleared first).
    pub fn new(record: &'a Sysmon<'a>, layout: &'a Layout, scratch: &'a mut Vec<u8>) -> Slotted<'a> {
        scratch.clear();
        let [time_wanted, answer_wanted, count_wanted] = layout.wants;
        let written = |scratch: &mut Vec<u8>, write: &mut dyn FnMut(&mut Vec<u8>)| {
            let start = scratch.len();
            write(scratch);
            (scratch.len() > start).then_some(start..scratch.len())
        };
        let time = match record.utc_time.as_deref() {
            Some(utc) if time_wanted => written(scratch, &mut |out| {
                write_epoch(utc, out);
            }),
            _ => None,
        };
        let results = record.query_results.as_deref().unwrap_or_default();
        let count = if answer_wanted || count_wanted {
            answer_values(results).count()
        } else {
            0
        };
        let answer = match count {
            0 => None,
            1 => answer_values(results).next().map(|a| {
                // Borrowed from the record: where it lies in QueryResults.
                let at = a.as_ptr() as usize - results.as_ptr() as usize;
                (at..at + a.len(), false)
            }),
            _ if answer_wanted => written(scratch, &mut |out| {
                multivalue::encode(answer_values(results).map(str::as_bytes), out);
            })
            .map(|r| (r, true)),
            _ => None,
        };
        let answer_count = if count > 0 && count_wanted {
            written(scratch, &mut |out| {
                let _ = write!(out, "{count}");
            })
        } else {
            None
        };
        Slotted {
            record,
            layout,
            scratch,
            time,
            answer,
            answer_count,
        }
    }
}

/// A value the record holds, borrowed; empty is absent.
fn single(v: Option<&str>) -> Field<'_> {
    match v {
        Some(v) if !v.is_empty() => Field::Single(Cow::Borrowed(v.as_bytes())),
        _ => Field::Absent,
    }
}

impl Event for Slotted<'_> {
    fn field(&self, slot: usize) -> Field<'_> {
        let s = self.record;
        let derived = |r: &Option<Range<usize>>| match r {
            Some(r) => Field::Single(Cow::Borrowed(&self.scratch[r.clone()])),
            None => Field::Absent,
        };
        match self.layout.sources.get(slot).copied().unwrap_or(Source::Absent) {
            Source::Time => derived(&self.time),
            Source::Image => single(s.image.as_deref()),
            Source::QueryName => single(s.query_name.as_deref()),
            Source::QueryStatus => single(s.query_status.as_deref()),
            Source::QueryResults => single(s.query_results.as_deref()),
            Source::Computer => single(s.computer.as_deref()),
            Source::ProcessName => single(s.image.as_deref().map(basename)),
            Source::ProcessGuid => single(s.process_guid.as_deref()),
            Source::UserId => single(s.user_id.as_deref()),
            Source::QueryCount => single(s.query_name.as_deref().filter(|q| !q.is_empty()).map(|_| "1")),
            Source::Constant(text) => single(Some(text)),
            Source::Answer => match &self.answer {
                None => Field::Absent,
                Some((r, false)) => {
                    let results = s.query_results.as_deref().unwrap_or_default();
                    Field::Single(Cow::Borrowed(&results.as_bytes()[r.clone()]))
                }
                Some((r, true)) => Field::Multi(Cow::Borrowed(&self.scratch[r.clone()])),
            },
            Source::AnswerCount => derived(&self.answer_count),
            Source::Absent => Field::Absent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The extraction as it was before it searched each needle with a
    /// searcher built once and read the `<Data>` fields in one pass: the
    /// oracle the one-pass extraction must equal.
    mod before {
        use super::super::{decoded, is_sysmon_dns, Problem, Sysmon};

        /// The text between `open` (up to its `>`) and the next `<`, in `xml`.
        fn element_text<'x>(xml: &'x str, open: &str) -> Option<&'x str> {
            let mut from = 0;
            loop {
                let i = from + xml[from..].find(open)?;
                let after = &xml[i + open.len()..];
                // `<EventID>` or `<EventID Qualifiers=…>`, not `<EventIDx>`
                if after.starts_with('>') || after.starts_with(' ') {
                    let gt = after.find('>')?;
                    if after[..gt].ends_with('/') {
                        return Some("");
                    }
                    let body = &after[gt + 1..];
                    return Some(&body[..body.find('<').unwrap_or(body.len())]);
                }
                from = i + open.len();
            }
        }

        /// The value of attribute `name` in the first element starting with `open`.
        fn attribute<'x>(xml: &'x str, open: &str, name: &str) -> Option<&'x str> {
            let i = xml.find(open)?;
            let tag = &xml[i..i + xml[i..].find('>')?];
            let j = tag.find(&format!("{name}="))? + name.len() + 1;
            let quote = tag[j..].chars().next()?;
            if quote != '\'' && quote != '"' {
                return None;
            }
            let v = &tag[j + 1..];
            Some(&v[..v.find(quote)?])
        }

        /// Extract a record from one `<Event …>…</Event>` of XmlWinEventLog text
        /// (as a forwarder ships it with `renderXml=true`). `Ok(None)`: not a
        /// Sysmon EventID 22; the problems are warnings (broken entities), the
        /// record is still counted.
        pub fn from_xml<'x>(xml: &'x str) -> (Option<Sysmon<'x>>, Vec<Problem>) {
            let mut problems = Vec::new();
            let id = element_text(xml, "<EventID");
            let provider = attribute(xml, "<Provider ", "Name");
            if !is_sysmon_dns(id, provider) {
                return (None, problems);
            }
            let mut decode = |raw: Option<&'x str>| decoded(raw, &mut problems);
            let mut data = |name: &str| -> Option<std::borrow::Cow<'x, str>> {
                let mut from = 0;
                while let Some(i) = xml[from..].find("<Data Name=") {
                    let start = from + i;
                    let tag_end = start + xml[start..].find('>')?;
                    let tag = &xml[start + 11..tag_end];
                    from = tag_end;
                    // bytes, not str: the quote may be any character (found by fuzzing)
                    let quoted = tag.trim_end_matches('/').as_bytes();
                    if quoted.len() >= 2 && &quoted[1..quoted.len() - 1] == name.as_bytes() {
                        if tag.ends_with('/') {
                            return None;
                        }
                        let body = &xml[tag_end + 1..];
                        return decode(Some(&body[..body.find("</Data>").unwrap_or(body.len())]));
                    }
                }
                None
            };
            let mut s = Sysmon {
                image: data("Image"),
                query_name: data("QueryName"),
                query_status: data("QueryStatus"),
                query_results: data("QueryResults"),
                computer: None,
                utc_time: data("UtcTime"),
                process_guid: data("ProcessGuid"),
                user_id: None,
            };
            s.computer = decode(element_text(xml, "<Computer"));
            s.user_id = decode(attribute(xml, "<Security ", "UserID"));
            (Some(s), problems)
        }
    }

    /// The JSON extraction as it was, over a `serde_json::Value`: the
    /// oracle [`from_json`] over [`json::parse`]'s fields must equal.
    mod before_json {
        use super::super::{is_sysmon_dns, Kind, Problem, Sysmon};
        use serde_json::Value;
        use std::borrow::Cow;

        fn json_text<'v>(
            v: &'v Value,
            field: &str,
            kind: Kind,
            problems: &mut Vec<Problem>,
        ) -> Result<Option<Cow<'v, str>>, Problem> {
            match v {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(Cow::Borrowed(s))),
                Value::Number(n) => {
                    if kind == Kind::Text {
                        problems.push(format!("field {field} is a number ({n}), read as its text"));
                    }
                    Ok(Some(Cow::Owned(n.to_string())))
                }
                Value::Object(o) if o.contains_key("#text") => json_text(&o["#text"], field, kind, problems),
                Value::Bool(_) => Err(format!("field {field} is a boolean, not a string; record not counted")),
                Value::Array(_) => Err(format!("field {field} is an array, not a string; record not counted")),
                Value::Object(_) => Err(format!("field {field} is an object, not a string; record not counted")),
            }
        }

        fn get<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
            path.iter().try_fold(v, |v, k| v.get(k))
        }

        pub fn from_json<'v>(v: &'v Value, problems: &mut Vec<Problem>) -> Result<Option<Sysmon<'v>>, Problem> {
            let mut first = |field: &str, kind: Kind, paths: &[&[&str]]| -> Result<Option<Cow<'v, str>>, Problem> {
                for p in paths {
                    if let Some(x) = get(v, p) {
                        if let Some(t) = json_text(x, field, kind, problems)? {
                            return Ok(Some(t));
                        }
                    }
                }
                Ok(None)
            };
            let id = first(
                "EventID",
                Kind::Numeric,
                &[
                    &["Event", "System", "EventID"],
                    &["winlog", "event_id"],
                    &["EventID"],
                    &["event_id"],
                ],
            )?;
            if id.as_deref().map(str::trim) != Some("22") {
                return Ok(None);
            }
            let provider = first(
                "Provider",
                Kind::Text,
                &[
                    &["Event", "System", "Provider", "#attributes", "Name"],
                    &["winlog", "provider_name"],
                    &["SourceName"],
                    &["Channel"],
                ],
            )?;
            if !is_sysmon_dns(id.as_deref(), provider.as_deref()) {
                return Ok(None);
            }
            let mut data = |name: &str, kind: Kind| -> Result<Option<Cow<'v, str>>, Problem> {
                first(
                    name,
                    kind,
                    &[&["Event", "EventData", name], &["winlog", "event_data", name], &[name]],
                )
            };
            let image = data("Image", Kind::Text)?;
            let query_name = data("QueryName", Kind::Text)?;
            let query_status = data("QueryStatus", Kind::Numeric)?;
            let query_results = data("QueryResults", Kind::Text)?;
            let utc_time = data("UtcTime", Kind::Text)?;
            let process_guid = data("ProcessGuid", Kind::Text)?;
            let computer = first(
                "Computer",
                Kind::Text,
                &[
                    &["Event", "System", "Computer"],
                    &["winlog", "computer_name"],
                    &["Computer"],
                    &["Hostname"],
                ],
            )?;
            let user_id = first(
                "UserID",
                Kind::Text,
                &[
                    &["Event", "System", "Security", "#attributes", "UserID"],
                    &["winlog", "user", "identifier"],
                    &["UserID"],
                ],
            )?;
            Ok(Some(Sysmon {
                image,
                query_name,
                query_status,
                query_results,
                computer,
                utc_time,
                process_guid,
                user_id,
            }))
        }
    }

    /// JSON text of objects and arrays nested a few deep, their keys mostly
    /// the extraction's (some escaped, some given twice), their values any
    /// kind, some of them ones a `Value` refuses.
    fn json_texts() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("22".to_string()),
            Just("\"22\"".to_string()),
            Just("-7.5e1".to_string()),
            Just("18446744073709551616".to_string()),
            Just("1e400".to_string()),
            Just("\"Microsoft-Windows-Sysmon\"".to_string()),
            Just("\"a\\u0041\\n\\\"b\"".to_string()),
            Just("\"\\ud800\"".to_string()),
            Just("\"\\ud83d\\ude00\"".to_string()),
            Just("\"\\x\"".to_string()),
            "\"[a-z.\\\\ ]{0,6}\"",
            "[0-9]{1,3}",
        ];
        let key = prop::sample::select(vec![
            "Event",
            "System",
            "EventData",
            "EventID",
            "Provider",
            "#attributes",
            "Name",
            "Computer",
            "Security",
            "UserID",
            "winlog",
            "event_id",
            "provider_name",
            "computer_name",
            "user",
            "identifier",
            "event_data",
            "SourceName",
            "Channel",
            "Hostname",
            "QueryName",
            "Image",
            "QueryStatus",
            "QueryResults",
            "UtcTime",
            "ProcessGuid",
            "#text",
            "x",
            "Event\\u0049D",
            "\\u0023text",
        ]);
        leaf.prop_recursive(5, 96, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key.clone(), inner), 0..7).prop_map(|kv| {
                    let members: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                    format!("{{{}}}", members.join(", "))
                }),
            ]
        })
    }

    /// A Sysmon DNS record in each layout, as members of its top object,
    /// with members of any kind added before and after (a later key given
    /// twice replaces the earlier's value, subtree and all).
    fn json_records() -> impl Strategy<Value = String> {
        let layouts = prop::sample::select(vec![
            "\"Event\": {\"System\": {\"Provider\": {\"#attributes\": {\"Name\": \"Microsoft-Windows-Sysmon\"}}, \
             \"EventID\": {\"#text\": 22}, \"Computer\": \"h\", \"Security\": {\"#attributes\": {\"UserID\": \"S-1\"}}}, \
             \"EventData\": {\"QueryName\": \"q.pastebin.com\", \"Image\": \"C:\\\\a.exe\", \"QueryStatus\": 0}}",
            "\"winlog\": {\"event_id\": 22, \"provider_name\": \"Microsoft-Windows-Sysmon\", \"computer_name\": \"h\", \
             \"user\": {\"identifier\": \"S-1\"}, \"event_data\": {\"QueryName\": \"q.pastebin.com\", \"UtcTime\": \"2021-03-24 12:25:12\"}}",
            "\"EventID\": 22, \"SourceName\": \"Microsoft-Windows-Sysmon\", \"Hostname\": \"h\", \"QueryName\": \"q.pastebin.com\"",
        ]);
        let member = || {
            (
                prop::sample::select(vec![
                    "Event",
                    "System",
                    "EventData",
                    "EventID",
                    "winlog",
                    "event_data",
                    "QueryName",
                    "SourceName",
                    "Hostname",
                    "x",
                ]),
                json_texts(),
            )
                .prop_map(|(k, v)| format!("\"{k}\": {v}"))
        };
        (
            layouts,
            prop::collection::vec(member(), 0..3),
            prop::collection::vec(member(), 0..3),
        )
            .prop_map(|(layout, before, after)| {
                let mut members = before;
                members.push(layout.to_string());
                members.extend(after);
                format!("{{{}}}", members.join(", "))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Read from its text without its tree, a JSON record gives what it
        /// gave parsed into a `Value`: the same refusals (with the same
        /// error), the same fields, warnings and errors.
        #[test]
        fn json_fields_read_as_from_a_value(
            text in prop_oneof![json_texts(), json_records()],
            cut in prop::option::of(0usize..400),
            noise in prop::sample::select(vec!["", " ", "\n", "x", ",", "}", "\""]),
        ) {
            let mut text = text.into_bytes();
            if let Some(at) = cut {
                text.truncate(at);
                text.extend_from_slice(noise.as_bytes());
            }
            let fields = json::parse(&text);
            let value = serde_json::from_slice::<serde_json::Value>(&text);
            match (&fields, &value) {
                (Ok(f), Ok(v)) => {
                    prop_assert_eq!(f.object, v.is_object());
                    let (mut p1, mut p2) = (Vec::new(), Vec::new());
                    prop_assert_eq!(from_json(f, &mut p1), before_json::from_json(v, &mut p2));
                    prop_assert_eq!(p1, p2);
                }
                (Err(a), Err(b)) => {
                    prop_assert_eq!(a.to_string(), b.to_string());
                    prop_assert_eq!(a.is_eof(), b.is_eof());
                }
                _ => prop_assert!(false, "accepted differently: {:?} / {:?}", fields.as_ref().map(|f| f.object), value),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The one-pass extraction reads every record, well formed or not,
        /// as the field-by-field one did: the same fields, the same
        /// warnings in the same order.
        #[test]
        fn one_pass_reads_as_field_by_field(pieces in prop::collection::vec(prop::sample::select(vec![
            "<Event xmlns='x'>", "<System>", "<Provider Name='Microsoft-Windows-Sysmon'/>",
            "<Provider Name=\"Sysmon\" EventSourceName='x'>", "<Provider EventSourceName='y'/>",
            "<EventID>22</EventID>", "<EventID Qualifiers=''>22</EventID>", "<EventID>3</EventID>", "<EventIDx>22</EventIDx>",
            "<Computer>h&amp;1</Computer>", "<Computer>&c;</Computer>", "<Computer/>", "<Security UserID='S-1-5-18'/>",
            "<Security UserID='&u;'/>", "<Security UserID=S>", "<Data Name='Image'>&i;</Data>",
            "<Data Name='Image'>C:\\a.exe</Data>", "<Data Name='Image'/>", "<Data Name=\"QueryName\">x.pastebin.com</Data>",
            "<Data Name='QueryName'>&bogus;</Data>", "<Data Name='QueryStatus'>0</Data>", "<Data Name='QueryResults'>a;b</Data>",
            "<Data Name='UtcTime'>2021-03-24 12:25:12.840</Data>", "<Data Name='ProcessGuid'>{g}</Data>",
            "<Data Name='RuleName'>-</Data>", "<Data Name=", "<Data Name=<Data Name='Image'>", "<Data Name='Image", "'/>",
            "</Data>", ">", "<", "/", "'", "&lt;", "&#x41;", "&", "é", "\u{FFFD}", " ", "</EventData></Event>",
        ]), 0..24)) {
            let xml: String = pieces.concat();
            prop_assert_eq!(from_xml(&xml), before::from_xml(&xml));
        }
    }

    /// Every field the add-on gives, as slotted for the engine, with the
    /// derived ones written to the scratch buffer and reused for the next
    /// record.
    #[test]
    fn slotted_fields_are_the_add_ons() {
        let fields = [
            "_time",
            "Image",
            "process_name",
            "QueryName",
            "query_count",
            "QueryResults",
            "answer",
            "answer_count",
            "signature_id",
            "Computer",
            "user_id",
            "nothing",
        ];
        let layout = Layout::new(&fields);
        let text = |f: Field<'_>| match f {
            Field::Absent => "-".to_string(),
            Field::Single(v) => format!("[{}]", String::from_utf8_lossy(&v)),
            Field::Multi(v) => format!("{{{}}}", String::from_utf8_lossy(&v)),
        };
        let mut scratch = Vec::new();
        let mut slot = |s: &Sysmon<'_>| {
            let slotted = Slotted::new(s, &layout, &mut scratch);
            (0..=fields.len())
                .map(|i| text(slotted.field(i)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let s = Sysmon {
            image: Some("C:\\x\\a$b.exe".into()),
            query_name: Some("q.pastebin.com".into()),
            query_results: Some("type:  5 x.net;::ffff:1.2.3.4;a$b;".into()),
            utc_time: Some("2021-03-24 12:25:12.840".into()),
            computer: Some(String::from("h").into()),
            ..Sysmon::default()
        };
        assert_eq!(
            slot(&s),
            "[1616588712.840] [C:\\x\\a$b.exe] [a$b.exe] [q.pastebin.com] [1] \
             [type:  5 x.net;::ffff:1.2.3.4;a$b;] {$x.net$;$::ffff:1.2.3.4$;$a$$b$} [3] [22] [h] - - -"
        );
        let one = Sysmon {
            query_results: Some("10.0.0.1;".into()),
            utc_time: Some("garbage".into()),
            ..Sysmon::default()
        };
        assert_eq!(slot(&one), "- - - - - [10.0.0.1;] [10.0.0.1] [1] [22] - - - -");
        let none = Sysmon {
            query_name: Some(String::new().into()),
            query_results: Some("-".into()),
            utc_time: Some("1970-01-01 00:00:00".into()),
            ..Sysmon::default()
        };
        assert_eq!(slot(&none), "[0] - - - - [-] - - [22] - - - -");
    }

    #[test]
    fn times() {
        assert_eq!(epoch_text("2021-03-24 12:25:12.840").unwrap(), "1616588712.840");
        assert_eq!(epoch_text("1970-01-01 00:00:00").unwrap(), "0");
        assert_eq!(epoch_text("2023-11-14 22:13:20.123").unwrap(), "1700000000.123");
        assert_eq!(epoch_text("garbage"), None);
    }

    #[test]
    fn answer_split() {
        assert_eq!(answers("-"), Vec::<&str>::new());
        assert_eq!(
            answers("type:  5 github.map.fastly.net;::ffff:1.2.3.4;"),
            ["github.map.fastly.net", "::ffff:1.2.3.4"]
        );
        assert_eq!(answers("10.23.42.38;"), ["10.23.42.38"]);
        assert_eq!(answers("a;;b"), ["a"]);
    }

    #[test]
    fn entities() {
        assert_eq!(decode_entities("&lt;unknown process&gt;").unwrap(), "<unknown process>");
        assert_eq!(decode_entities("a&#65;&#x42;").unwrap(), "aAB");
        let (s, p) = decode_entities("a & b &bogus;").unwrap_err();
        assert_eq!(s, "a & b &bogus;");
        assert!(p.contains("broken XML entity"));
    }

    #[test]
    fn xml_record() {
        let x = "<Event xmlns='x'><System><Provider Name='Microsoft-Windows-Sysmon' Guid='{5}'/><EventID>22</EventID><Computer>h</Computer><Security UserID='S-1-5-18'/></System><EventData><Data Name='UtcTime'>2021-03-24 12:25:12.840</Data><Data Name='QueryName'>a.pastebin.com</Data><Data Name='QueryResults'/><Data Name='Image'>&lt;unknown process&gt;</Data></EventData></Event>";
        let (s, p) = from_xml(x);
        let s = s.unwrap();
        assert!(p.is_empty());
        assert_eq!(s.query_name.as_deref(), Some("a.pastebin.com"));
        assert_eq!(s.image.as_deref(), Some("<unknown process>"));
        assert_eq!(s.query_results, None);
        assert_eq!(s.computer.as_deref(), Some("h"));
        assert_eq!(s.user_id.as_deref(), Some("S-1-5-18"));
        assert_eq!(from_xml(&x.replace(">22<", ">1<")).0, None);
        // a multibyte character where the closing quote belongs
        let odd = x.replace("'QueryName'", "'QueryName\u{FFFD}");
        assert_eq!(from_xml(&odd).0.unwrap().query_name, None);
    }
}
