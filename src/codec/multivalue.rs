//! splunkd's `__mv_<field>` encoding of multivalue fields: `$v1$;$v2$;…`,
//! with every `$` inside a value doubled (scp2.md §8.1).
//!
//! Decoding is a forward scan with no allocation for values that contain no
//! `$` (the common case): those come back borrowed from the record.

use std::borrow::Cow;

/// Iterator over the values of one encoded `__mv_` field.
///
/// Yields `Err(offset)` (byte offset inside the field) where the encoding is
/// broken, then stops.
pub struct Values<'a> {
    rest: &'a [u8],
    offset: usize,
    failed: bool,
}

/// Decode an encoded `__mv_` field lazily. An empty field has no values.
pub fn decode(encoded: &[u8]) -> Values<'_> {
    Values {
        rest: encoded,
        offset: 0,
        failed: false,
    }
}

impl<'a> Iterator for Values<'a> {
    type Item = Result<Cow<'a, [u8]>, usize>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let start = self.offset;
        let fail = |this: &mut Self, at: usize| {
            this.failed = true;
            Some(Err(at))
        };
        if self.rest[0] != b'$' {
            return fail(self, start);
        }
        let body = &self.rest[1..];
        // Find the closing `$`: a `$` not followed by another `$`.
        let mut i = 0;
        let mut escaped = false;
        let close = loop {
            match memchr::memchr(b'$', &body[i..]) {
                None => return fail(self, start + 1 + body.len()),
                Some(j) => {
                    let at = i + j;
                    if body.get(at + 1) == Some(&b'$') {
                        escaped = true;
                        i = at + 2;
                    } else {
                        break at;
                    }
                }
            }
        };
        let raw = &body[..close];
        let after = &body[close + 1..];
        let consumed = match after.first() {
            None => 1 + close + 1,
            Some(b';') if after.len() > 1 => 1 + close + 2,
            Some(_) => return fail(self, start + 1 + close + 1),
        };
        self.rest = &self.rest[consumed..];
        self.offset += consumed;
        let value = if escaped {
            let mut v = Vec::with_capacity(raw.len());
            let mut k = 0;
            while k < raw.len() {
                v.push(raw[k]);
                k += if raw[k] == b'$' { 2 } else { 1 };
            }
            Cow::Owned(v)
        } else {
            Cow::Borrowed(raw)
        };
        Some(Ok(value))
    }
}

/// Append the `__mv_` encoding of `values` to `out`.
pub fn encode<'v>(values: impl IntoIterator<Item = &'v [u8]>, out: &mut Vec<u8>) {
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.push(b'$');
        for &b in v {
            out.push(b);
            if b == b'$' {
                out.push(b'$');
            }
        }
        out.push(b'$');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &[u8]) -> Result<Vec<Vec<u8>>, usize> {
        decode(s).map(|r| r.map(|c| c.into_owned())).collect()
    }

    #[test]
    fn decodes_splunkd_examples() {
        assert_eq!(
            all(b"$FIREFLY-WIN$;$beatles$").unwrap(),
            vec![b"FIREFLY-WIN".to_vec(), b"beatles".to_vec()]
        );
        assert_eq!(all(b"$a$;$$;$b$").unwrap(), vec![b"a".to_vec(), vec![], b"b".to_vec()]);
        assert_eq!(all(b"$$$$").unwrap(), vec![b"$".to_vec()]);
        assert_eq!(all(b"$a$$$;$;b$$c$").unwrap(), vec![b"a$".to_vec(), b";b$c".to_vec()]);
        assert_eq!(all(b"").unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn rejects_broken_encodings_with_offsets() {
        assert_eq!(all(b"a$"), Err(0));
        assert_eq!(all(b"$a"), Err(2));
        assert_eq!(all(b"$a$x"), Err(3));
        assert_eq!(all(b"$a$;"), Err(3));
        assert_eq!(all(b"$a$;b"), Err(4));
    }

    #[test]
    fn round_trips() {
        let values: Vec<&[u8]> = vec![b"", b"$", b"$$;$", b"a\nb", b"\xff\xfe", b";"];
        let mut enc = Vec::new();
        encode(values.iter().copied(), &mut enc);
        let back = all(&enc).unwrap();
        assert_eq!(back, values.iter().map(|v| v.to_vec()).collect::<Vec<_>>());
    }
}
