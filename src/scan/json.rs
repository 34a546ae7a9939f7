//! A JSON record's Sysmon fields, read from its text without building its
//! tree.
//!
//! Parsed into a `serde_json::Value`, a Sysmon event became a map per
//! object and a string per key and value, most of them never looked at:
//! JSON was the slowest of `scan`'s readers (155 k records/s against
//! 1.09 M for XmlWinEventLog). Here one pass of serde_json's parser keeps
//! only the values at the paths the extraction looks at ([`PATHS`]),
//! borrowed from the text where they hold no escape, and walks over the
//! rest. Every value is still parsed as `Value` parses it (numbers,
//! escapes, nesting depth), so the same texts are accepted, with the same
//! errors; a key given twice keeps its last value, as in a `Value`'s map.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

/// The `<Data>` names the extraction reads, in its order (XmlWinEventLog's
/// too).
pub const DATA_NAMES: [&str; 6] = [
    "Image",
    "QueryName",
    "QueryStatus",
    "QueryResults",
    "UtcTime",
    "ProcessGuid",
];

/// Where each field may be, in the order the extraction tries them: the
/// evtx crate's and Sigma's layout (`Event.System`, `Event.EventData`),
/// Winlogbeat's (`winlog.*`), and the flat one (OTRF/Mordor). The value at
/// `PATHS[i]` is [`Fields::at`]`(i)`; [`Group`]s name the indexes.
pub const PATHS: [&[&str]; 33] = [
    // EventID
    &["Event", "System", "EventID"],
    &["winlog", "event_id"],
    &["EventID"],
    &["event_id"],
    // the provider
    &["Event", "System", "Provider", "#attributes", "Name"],
    &["winlog", "provider_name"],
    &["SourceName"],
    &["Channel"],
    // Computer
    &["Event", "System", "Computer"],
    &["winlog", "computer_name"],
    &["Computer"],
    &["Hostname"],
    // UserID
    &["Event", "System", "Security", "#attributes", "UserID"],
    &["winlog", "user", "identifier"],
    &["UserID"],
    // each of DATA_NAMES: Event.EventData, winlog.event_data, the top
    &["Event", "EventData", "Image"],
    &["winlog", "event_data", "Image"],
    &["Image"],
    &["Event", "EventData", "QueryName"],
    &["winlog", "event_data", "QueryName"],
    &["QueryName"],
    &["Event", "EventData", "QueryStatus"],
    &["winlog", "event_data", "QueryStatus"],
    &["QueryStatus"],
    &["Event", "EventData", "QueryResults"],
    &["winlog", "event_data", "QueryResults"],
    &["QueryResults"],
    &["Event", "EventData", "UtcTime"],
    &["winlog", "event_data", "UtcTime"],
    &["UtcTime"],
    &["Event", "EventData", "ProcessGuid"],
    &["winlog", "event_data", "ProcessGuid"],
    &["ProcessGuid"],
];

/// A run of [`PATHS`] indexes: where one field may be, in order.
pub type Group = std::ops::Range<usize>;

/// `EventID`'s paths.
pub const EVENT_ID: Group = 0..4;
/// The provider name's (or the source's, or the channel's).
pub const PROVIDER: Group = 4..8;
/// `Computer`'s (`Hostname` in the flat layout).
pub const COMPUTER: Group = 8..12;
/// The user SID's.
pub const USER_ID: Group = 12..15;

/// The paths of `DATA_NAMES[i]`.
pub const fn data(i: usize) -> Group {
    15 + 3 * i..18 + 3 * i
}

/// A value at one of the [`PATHS`], as much of it as the extraction reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf<'a> {
    /// `null`.
    Null,
    /// A string, borrowed from the text unless it held an escape.
    Text(Cow<'a, str>),
    /// A number, as `Value` would hold it.
    Number(Number),
    /// `true` or `false`.
    Bool,
    /// An array (its elements parsed and dropped).
    Array,
    /// An object: its `#text` member (the evtx crate's rendering of an
    /// element with attributes), if it has one.
    Object(Option<Box<Leaf<'a>>>),
}

/// The values found at the [`PATHS`] of one JSON record.
#[derive(Debug, PartialEq)]
pub struct Fields<'a> {
    leaves: [Option<Leaf<'a>>; PATHS.len()],
    /// The record is an object (anything else has no fields).
    pub object: bool,
}

impl Default for Fields<'_> {
    fn default() -> Self {
        Fields {
            leaves: std::array::from_fn(|_| None),
            object: false,
        }
    }
}

impl<'a> Fields<'a> {
    /// The value at `PATHS[i]`, if the record has one there.
    pub fn at(&self, i: usize) -> Option<&Leaf<'a>> {
        self.leaves[i].as_ref()
    }
}

/// Parse one JSON text (a whole record; trailing blanks only), keeping the
/// values at the [`PATHS`]. The errors are `serde_json::from_slice`'s for a
/// `Value`.
pub fn parse(text: &[u8]) -> Result<Fields<'_>, serde_json::Error> {
    let mut fields = Fields::default();
    let mut de = serde_json::Deserializer::from_slice(text);
    fields.object = Node {
        at: &trie().nodes[0],
        leaves: &mut fields.leaves,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(fields)
}

/// One JSON value's [`Fields`], as a type serde_json's
/// `StreamDeserializer` can give ([`Parser`]).
struct Record<'a>(Fields<'a>);

impl<'de> de::Deserialize<'de> for Record<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = Fields::default();
        fields.object = Node {
            at: &trie().nodes[0],
            leaves: &mut fields.leaves,
        }
        .deserialize(d)?;
        Ok(Record(fields))
    }
}

/// JSON's blanks: what serde_json passes over between tokens.
fn blank(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Records one after another in a text (a run of JSON lines, of
/// pretty-printed objects), parsed by one serde_json parser as it goes from
/// value to value. [`parse`] makes a parser for each record, and its
/// buffer for unescaping strings (a Windows path holds escapes) was grown
/// again for each: a fifth of a JSON-lines file's time went to the
/// allocator.
pub struct Parser<'a> {
    text: &'a [u8],
    /// The parser, over `text[base..]`; `None` before the first value and
    /// after one that failed to parse (it starts again where the next
    /// value is asked for).
    values: Option<serde_json::StreamDeserializer<'a, serde_json::de::SliceRead<'a>, Record<'a>>>,
    base: usize,
    /// Where the parser stands in `text`: the next value is the first one
    /// after this.
    at: usize,
}

impl<'a> Parser<'a> {
    /// A parser at the start of `text`.
    pub fn new(text: &'a [u8]) -> Self {
        Parser {
            text,
            values: None,
            base: 0,
            at: 0,
        }
    }

    /// The value from `start` on (past JSON blanks), when it parses and
    /// only JSON blanks follow it on the line it ends on: its fields, and
    /// the end of that line (past its LF, or the text's end). `None` for
    /// anything else; the caller then parses the text alone with [`parse`]
    /// to word its error. For `end` that line end, the fields are those
    /// [`parse`]`(&text[start..end])` gives: the text before the value,
    /// from where the parser stood, is JSON blanks, and a value parsed to
    /// an end before `end` is the value `text[start..end]` alone gives
    /// (only a number looks past its last byte, and one that went on past
    /// it would have taken the value on).
    pub fn record(&mut self, start: usize) -> Option<(Fields<'a>, usize)> {
        let fields = self.value(start)?;
        let end = memchr::memchr(b'\n', &self.text[self.at..]).map_or(self.text.len(), |i| self.at + i + 1);
        self.text[self.at..end]
            .iter()
            .all(blank)
            .then(|| (self.checked(start, end, fields), end))
    }

    /// [`Self::record`] when its line end is `end`: the value of one line
    /// `text[start..end]`, whose end the caller knows.
    pub fn line(&mut self, start: usize, end: usize) -> Option<Fields<'a>> {
        let fields = self.value(start)?;
        (self.at <= end && self.text[self.at..end].iter().all(blank)).then(|| self.checked(start, end, fields))
    }

    /// `fields`, which the parser gave for `text[start..end]`: in the tests
    /// and under the fuzzers, first held to what [`parse`] of that text
    /// alone gives, as [`Self::record`] says they are.
    #[inline(always)]
    fn checked(&self, start: usize, end: usize, fields: Fields<'a>) -> Fields<'a> {
        if cfg!(any(test, fuzzing)) {
            assert_eq!(
                parse(&self.text[start..end]).ok().as_ref(),
                Some(&fields),
                "json::Parser gave what parsing its text alone does not"
            );
        }
        fields
    }

    /// The value from `start` on, the parser left standing after it.
    fn value(&mut self, start: usize) -> Option<Fields<'a>> {
        let text = self.text;
        let reachable = self.values.is_some() && self.at <= start && text[self.at..start].iter().all(blank);
        if !reachable {
            self.values = Some(serde_json::Deserializer::from_slice(&text[start..]).into_iter());
            self.base = start;
        }
        let values = self.values.as_mut()?;
        let Some(Ok(Record(fields))) = values.next() else {
            self.values = None;
            return None;
        };
        self.at = self.base + values.byte_offset();
        Some(fields)
    }
}

/// The [`PATHS`] as a tree of keys, built once.
struct Trie {
    nodes: Vec<TrieNode>,
}

/// One object level of the [`Trie`].
#[derive(Default)]
struct TrieNode {
    entries: Vec<Entry>,
}

/// A key of a [`TrieNode`]: a path ends there, or goes on into an object.
struct Entry {
    key: &'static str,
    /// The index of the path ending at this key.
    leaf: Option<usize>,
    /// The level below, for paths going on.
    child: Option<usize>,
    /// Every path index under this key: forgotten when the key comes
    /// again, since its last value is the one kept.
    under: Vec<usize>,
}

fn trie() -> &'static Trie {
    static TRIE: OnceLock<Trie> = OnceLock::new();
    TRIE.get_or_init(|| {
        let mut nodes = vec![TrieNode::default()];
        for (i, path) in PATHS.iter().enumerate() {
            let mut node = 0;
            for (depth, &key) in path.iter().enumerate() {
                let at = match nodes[node].entries.iter().position(|e| e.key == key) {
                    Some(at) => at,
                    None => {
                        nodes[node].entries.push(Entry {
                            key,
                            leaf: None,
                            child: None,
                            under: Vec::new(),
                        });
                        nodes[node].entries.len() - 1
                    }
                };
                nodes[node].entries[at].under.push(i);
                if depth + 1 == path.len() {
                    nodes[node].entries[at].leaf = Some(i);
                } else {
                    let child = match nodes[node].entries[at].child {
                        Some(c) => c,
                        None => {
                            nodes.push(TrieNode::default());
                            let c = nodes.len() - 1;
                            nodes[node].entries[at].child = Some(c);
                            c
                        }
                    };
                    node = child;
                }
            }
        }
        Trie { nodes }
    })
}

/// The scalar visits of a visitor that keeps nothing of a scalar (null,
/// boolean, number or string): each gives `$value`. [`Node`] and [`Skip`]
/// share them.
macro_rules! scalars_give {
    ($ty:ty, $value:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<$ty, E> {
            Ok($value)
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$ty, E> {
            Ok($value)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$ty, E> {
            Ok($value)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$ty, E> {
            Ok($value)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$ty, E> {
            Ok($value)
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<$ty, E> {
            Ok($value)
        }
    };
}

/// Parse a value at a [`TrieNode`]: an object's wanted keys are followed,
/// the rest walked over; anything but an object holds none of the paths
/// below. Gives whether it was an object.
struct Node<'t, 'l, 'a> {
    at: &'t TrieNode,
    leaves: &'l mut [Option<Leaf<'a>>; PATHS.len()],
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_, 'de> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_, 'de> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let trie = trie();
        while let Some(Key(key)) = map.next_key()? {
            let Some(entry) = self.at.entries.iter().find(|e| e.key == key) else {
                map.next_value::<Skip>()?;
                continue;
            };
            for &i in &entry.under {
                self.leaves[i] = None;
            }
            match (entry.leaf, entry.child) {
                (Some(i), _) => self.leaves[i] = Some(map.next_value_seed(LeafSeed)?),
                (None, Some(c)) => {
                    map.next_value_seed(Node {
                        at: &trie.nodes[c],
                        leaves: &mut *self.leaves,
                    })?;
                }
                (None, None) => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        Skip::seq(seq).map(|_| false)
    }

    scalars_give!(bool, false);
}

/// An object's key, borrowed from the text unless it held an escape.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Parse a value at the end of a path into a [`Leaf`].
struct LeafSeed;

impl<'de> DeserializeSeed<'de> for LeafSeed {
    type Value = Leaf<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Leaf<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LeafSeed {
    type Value = Leaf<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Bool)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Number(n.into()))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Leaf<'de>, E> {
        // serde_json refuses numbers out of range, so `n` is finite; a
        // `Value` holds no other kind either.
        Ok(Number::from_f64(n).map_or(Leaf::Null, Leaf::Number))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Text(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Text(Cow::Owned(s.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Leaf<'de>, A::Error> {
        Skip::seq(seq).map(|_| Leaf::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Leaf<'de>, A::Error> {
        let mut text = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == "#text" {
                text = Some(Box::new(map.next_value_seed(LeafSeed)?));
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(Leaf::Object(text))
    }
}

/// A value walked over: parsed as strictly as a `Value` (so the same texts
/// are refused), nothing kept. (`serde::de::IgnoredAny` would take serde_json's
/// laxer path, which lets numbers out of range and bad escapes through.)
struct Skip;

impl Skip {
    fn seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
}

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    scalars_give!(Skip, Skip);

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Skip, A::Error> {
        Skip::seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Key<'de>, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `EventID` (the flat layout's) of a record the parser gave.
    fn event_id(fields: Option<Fields<'_>>) -> Option<u64> {
        match fields?.at(2)? {
            Leaf::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// A [`Parser`] gives a record only for a range that holds one value
    /// and blanks, whatever it read before, and reads on after what it
    /// refused: each answer as [`parse`] of the range alone.
    #[test]
    fn parser_gives_what_the_range_alone_gives() {
        let text = b"{\"EventID\": 1}\n{\"EventID\": 2}\n{\"EventID\": 3} x\n{\"EventID\": 4,\n\"a\": 5}\n{\"EventID\": 6}\n7\n";
        let lines: Vec<(usize, usize)> = text
            .split_inclusive(|b| *b == b'\n')
            .scan(0, |at, line| {
                *at += line.len();
                Some((*at - line.len(), *at))
            })
            .collect();
        let alone = |(start, end): (usize, usize)| parse(&text[start..end]).ok();
        let mut parser = Parser::new(text);
        // lines skipped (whose values the parser must not give for the
        // next asked), lines that fail, and back to earlier lines
        for i in [0, 5, 6, 2, 3, 4, 1, 0] {
            let got = if i % 2 == 0 {
                parser.line(lines[i].0, lines[i].1)
            } else {
                parser
                    .record(lines[i].0)
                    .filter(|(_, end)| *end == lines[i].1)
                    .map(|(f, _)| f)
            };
            assert_eq!(got.is_some(), alone(lines[i]).is_some(), "line {i}");
            assert_eq!(event_id(got), event_id(alone(lines[i])), "line {i}");
        }
    }
}
