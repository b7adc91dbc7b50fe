//! A BER reader (X.690 §8) for the structures signgate verifies: CMS SignedData, time-stamp
//! tokens and the attributes inside them.
//!
//! Signers in the wild (BouncyCastle's streaming generators, many Java and .NET tools,
//! `openssl cms -stream`) emit indefinite lengths and constructed OCTET STRINGs, which a DER
//! decoder refuses. This reader accepts them under the rules that matter for safety: every
//! length stays within its enclosing value, indefinite lengths only on constructed values,
//! nesting and size are bounded, and [`read_one`] reports what follows the structure.
//! It is zero-copy: a [`Tlv`] borrows the input, and [`Tlv::raw`] is the element exactly as
//! received (what a signature over it covers).

use std::borrow::Cow;

/// Deepest nesting accepted (CMS with certificates nests about 15 levels).
pub const MAX_DEPTH: usize = 64;

/// Reading a BER structure failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BerError {
    /// The input ends inside an element.
    #[error("BER: truncated at byte {0}")]
    Truncated(usize),
    /// An indefinite length on a primitive element (X.690 §8.1.3.2 forbids it).
    #[error("BER: indefinite length on a primitive element at byte {0}")]
    IndefinitePrimitive(usize),
    /// A length field longer than the reader handles.
    #[error("BER: length field too long at byte {0}")]
    LengthTooLong(usize),
    /// A tag number above 30 (multi-byte tags), which CMS does not use.
    #[error("BER: multi-byte tag at byte {0}")]
    HighTag(usize),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("BER: nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// An element other than the one the structure requires.
    #[error("BER: expected {expected} at byte {at}, found tag 0x{found:02x}")]
    Unexpected {
        /// What the structure needs here.
        expected: &'static str,
        /// The tag found.
        found: u8,
        /// Offset within the enclosing value.
        at: usize,
    },
    /// A required element is missing.
    #[error("BER: {0} is missing")]
    Missing(&'static str),
    /// Bytes other than zero padding follow the structure.
    #[error("BER: {0} bytes of data after the structure")]
    TrailingData(usize),
    /// A value that cannot be what its tag says (an OID, an INTEGER, a time).
    #[error("BER: invalid {0}")]
    Invalid(&'static str),
}

/// One element: its identifier octet, its whole encoding and its content octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier octet (class, constructed bit, tag number ≤ 30).
    pub tag: u8,
    /// The element as received: identifier, length, content and (if indefinite) end-of-contents.
    pub raw: &'a [u8],
    /// The content octets (for an indefinite length: without the end-of-contents marker).
    pub value: &'a [u8],
    /// Encoded with the indefinite-length form.
    pub indefinite: bool,
}

/// Universal SEQUENCE.
pub const SEQUENCE: u8 = 0x30;
/// Universal SET.
pub const SET: u8 = 0x31;
/// Universal OCTET STRING (primitive).
pub const OCTET_STRING: u8 = 0x04;
/// Universal INTEGER.
pub const INTEGER: u8 = 0x02;
/// Universal OBJECT IDENTIFIER.
pub const OID: u8 = 0x06;

impl<'a> Tlv<'a> {
    /// Whether the constructed bit is set.
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// The elements inside a constructed value, in order.
    pub fn children(&self) -> Result<Vec<Tlv<'a>>, BerError> {
        children_at(self.value, 1)
    }

    /// The content of a string type: the primitive content, or the segments of a
    /// constructed string joined (X.690 §8.7.3), at any nesting.
    pub fn octets(&self) -> Result<Cow<'a, [u8]>, BerError> {
        if !self.constructed() {
            return Ok(Cow::Borrowed(self.value));
        }
        let mut out = Vec::new();
        join_segments(self, &mut out, 1)?;
        Ok(Cow::Owned(out))
    }

    /// Requires the tag `tag`, naming the element `what` in the error.
    pub fn expect(self, tag: u8, what: &'static str) -> Result<Self, BerError> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(BerError::Unexpected {
                expected: what,
                found: self.tag,
                at: 0,
            })
        }
    }

    /// The DER encoding of this element (X.690 §10): definite lengths, constructed strings
    /// joined into primitive ones, and the elements of every SET sorted by their encodings.
    pub fn to_der(&self) -> Result<Vec<u8>, BerError> {
        let mut out = Vec::new();
        write_der(self, &mut out, 1)?;
        Ok(out)
    }

    /// [`Tlv::to_der`] but keeping the order of SET elements as received.
    pub fn to_definite(&self) -> Result<Vec<u8>, BerError> {
        if already_definite(self, 1)? {
            // The common case (DER certificates and CRLs): nothing to rewrite, no tree to copy.
            return Ok(self.raw.to_vec());
        }
        let mut out = Vec::new();
        write_definite(self, &mut out, 1)?;
        Ok(out)
    }
}

fn join_segments(tlv: &Tlv<'_>, out: &mut Vec<u8>, depth: usize) -> Result<(), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep);
    }
    if !tlv.constructed() {
        out.extend_from_slice(tlv.value);
        return Ok(());
    }
    for segment in children_at(tlv.value, depth + 1)? {
        // Segments carry the primitive form of the same universal type (X.690 §8.7.3.2).
        if segment.tag & 0x1f != tlv.tag & 0x1f {
            return Err(BerError::Invalid("constructed string segment"));
        }
        join_segments(&segment, out, depth + 1)?;
    }
    Ok(())
}

/// Universal string types, whose constructed form DER turns into the primitive one.
fn is_string_type(tag: u8) -> bool {
    tag & 0xc0 == 0 && matches!(tag & 0x1f, 3 | 4 | 12 | 18..=22 | 25..=28 | 30)
}

/// The definite-length encoding of one element with identifier `tag` and `content`.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    write_header(tag, content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

fn write_header(tag: u8, len: usize, out: &mut Vec<u8>) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn write_der(tlv: &Tlv<'_>, out: &mut Vec<u8>, depth: usize) -> Result<(), BerError> {
    reencode(tlv, out, depth, true)
}

fn write_definite(tlv: &Tlv<'_>, out: &mut Vec<u8>, depth: usize) -> Result<(), BerError> {
    reencode(tlv, out, depth, false)
}

/// Whether [`Tlv::to_definite`] would return `tlv.raw` unchanged: every length in the tree
/// definite and minimally encoded, and no constructed string.
fn already_definite(tlv: &Tlv<'_>, depth: usize) -> Result<bool, BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep);
    }
    let minimal_header = match tlv.value.len() {
        n if n < 0x80 => 2,
        n => 2 + n.to_be_bytes().iter().skip_while(|b| **b == 0).count(),
    };
    if tlv.indefinite || tlv.raw.len() != minimal_header + tlv.value.len() {
        return Ok(false);
    }
    if !tlv.constructed() {
        return Ok(true);
    }
    if is_string_type(tlv.tag) {
        return Ok(false);
    }
    let mut rest = tlv.value;
    while !rest.is_empty() {
        let (child, after) = read_at(rest, depth + 1)?;
        if !already_definite(&child, depth + 1)? {
            return Ok(false);
        }
        rest = after;
    }
    Ok(true)
}

fn reencode(tlv: &Tlv<'_>, out: &mut Vec<u8>, depth: usize, sort: bool) -> Result<(), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep);
    }
    if !tlv.constructed() {
        write_header(tlv.tag, tlv.value.len(), out);
        out.extend_from_slice(tlv.value);
        return Ok(());
    }
    if is_string_type(tlv.tag) {
        let joined = tlv.octets()?;
        write_header(tlv.tag & !0x20, joined.len(), out);
        out.extend_from_slice(&joined);
        return Ok(());
    }
    let mut parts = Vec::new();
    for child in children_at(tlv.value, depth + 1)? {
        let mut enc = Vec::new();
        reencode(&child, &mut enc, depth + 1, sort)?;
        parts.push(enc);
    }
    if sort && tlv.tag == SET {
        parts.sort();
    }
    let len = parts.iter().map(Vec::len).sum();
    write_header(tlv.tag, len, out);
    for p in parts {
        out.extend_from_slice(&p);
    }
    Ok(())
}

/// Reads the element at the start of `input`; returns it and the rest of the input.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), BerError> {
    read_at(input, 1)
}

/// Reads one element that must be the whole input, except for trailing zero bytes (the
/// padding of a PDF `/Contents` hole).
pub fn read_one(input: &[u8]) -> Result<Tlv<'_>, BerError> {
    let (tlv, rest) = read(input)?;
    let garbage = rest.iter().filter(|b| **b != 0).count();
    if garbage > 0 {
        return Err(BerError::TrailingData(rest.len()));
    }
    Ok(tlv)
}

fn children_at(mut value: &[u8], depth: usize) -> Result<Vec<Tlv<'_>>, BerError> {
    let mut out = Vec::new();
    while !value.is_empty() {
        let (tlv, rest) = read_at(value, depth)?;
        out.push(tlv);
        value = rest;
    }
    Ok(out)
}

fn read_at(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep);
    }
    let tag = *input.first().ok_or(BerError::Truncated(0))?;
    if tag & 0x1f == 0x1f {
        return Err(BerError::HighTag(0));
    }
    let first = *input.get(1).ok_or(BerError::Truncated(1))?;
    if first == 0x80 {
        if tag & 0x20 == 0 {
            return Err(BerError::IndefinitePrimitive(0));
        }
        // Children up to the end-of-contents octets 00 00.
        let mut pos = 2;
        loop {
            let rest = input.get(pos..).ok_or(BerError::Truncated(pos))?;
            if rest.len() < 2 {
                return Err(BerError::Truncated(pos));
            }
            if rest[0] == 0 && rest[1] == 0 {
                let (raw, after) = input.split_at(pos + 2);
                return Ok((
                    Tlv {
                        tag,
                        raw,
                        value: &input[2..pos],
                        indefinite: true,
                    },
                    after,
                ));
            }
            let (child, _) = read_at(rest, depth + 1)?;
            pos += child.raw.len();
        }
    }
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n > std::mem::size_of::<usize>().min(4) {
            return Err(BerError::LengthTooLong(1));
        }
        let bytes = input.get(2..2 + n).ok_or(BerError::Truncated(2))?;
        (
            bytes.iter().fold(0usize, |l, b| (l << 8) | *b as usize),
            2 + n,
        )
    };
    let end = header.checked_add(len).ok_or(BerError::Truncated(header))?;
    if end > input.len() {
        return Err(BerError::Truncated(input.len()));
    }
    let (raw, after) = input.split_at(end);
    Ok((
        Tlv {
            tag,
            raw,
            value: &raw[header..],
            indefinite: false,
        },
        after,
    ))
}

/// A cursor over the elements of a constructed value, for reading a SEQUENCE field by field.
pub struct Fields<'a> {
    items: Vec<Tlv<'a>>,
    next: usize,
}

impl<'a> Fields<'a> {
    /// The fields of `tlv` (which must be constructed).
    pub fn of(tlv: &Tlv<'a>) -> Result<Self, BerError> {
        if !tlv.constructed() {
            return Err(BerError::Invalid("primitive where a structure is needed"));
        }
        Ok(Self {
            items: tlv.children()?,
            next: 0,
        })
    }

    /// The next field, which must have tag `tag`.
    pub fn required(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, BerError> {
        let item = self.items.get(self.next).ok_or(BerError::Missing(what))?;
        self.next += 1;
        item.expect(tag, what)
    }

    /// The next field, whatever its tag.
    pub fn any(&mut self, what: &'static str) -> Result<Tlv<'a>, BerError> {
        let item = *self.items.get(self.next).ok_or(BerError::Missing(what))?;
        self.next += 1;
        Ok(item)
    }

    /// The next field if it has tag `tag`.
    pub fn optional(&mut self, tag: u8) -> Option<Tlv<'a>> {
        let item = self.items.get(self.next).filter(|t| t.tag == tag)?;
        self.next += 1;
        Some(*item)
    }

    /// The fields not read yet.
    pub fn rest(&self) -> &[Tlv<'a>] {
        &self.items[self.next.min(self.items.len())..]
    }
}

/// An OBJECT IDENTIFIER's value.
pub fn oid(tlv: &Tlv<'_>) -> Result<const_oid::ObjectIdentifier, BerError> {
    if tlv.tag != OID {
        return Err(BerError::Unexpected {
            expected: "OBJECT IDENTIFIER",
            found: tlv.tag,
            at: 0,
        });
    }
    const_oid::ObjectIdentifier::from_bytes(tlv.value).map_err(|_| BerError::Invalid("OID"))
}

/// A small non-negative INTEGER (a version number).
pub fn small_uint(tlv: &Tlv<'_>) -> Result<u64, BerError> {
    if tlv.tag != INTEGER || tlv.value.is_empty() || tlv.value.len() > 8 || tlv.value[0] & 0x80 != 0
    {
        return Err(BerError::Invalid("INTEGER"));
    }
    Ok(tlv.value.iter().fold(0u64, |v, b| (v << 8) | *b as u64))
}

/// A UTCTime (0x17) or GeneralizedTime (0x18), with optional seconds, fractional seconds
/// and a `Z` or `±hhmm` offset (BER allows them all; RFC 3161 genTime uses fractions).
pub fn time(tlv: &Tlv<'_>) -> Result<time::OffsetDateTime, BerError> {
    let bad = || BerError::Invalid("time");
    let text = std::str::from_utf8(&tlv.octets()?)
        .map_err(|_| bad())?
        .to_string();
    let (year, rest) = match tlv.tag & !0x20 {
        0x17 => {
            let yy: i32 = text
                .get(0..2)
                .and_then(|v| v.parse().ok())
                .ok_or_else(bad)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        0x18 => (
            text.get(0..4)
                .and_then(|v| v.parse().ok())
                .ok_or_else(bad)?,
            text.get(4..).ok_or_else(bad)?,
        ),
        _ => return Err(bad()),
    };
    let num = |r: std::ops::Range<usize>| -> Result<u8, BerError> {
        rest.get(r).and_then(|v| v.parse().ok()).ok_or_else(bad)
    };
    let (month, day, hour, minute) = (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?);
    let mut pos = 8;
    let second = match rest.get(8..10).and_then(|v| v.parse::<u8>().ok()) {
        Some(s) => {
            pos = 10;
            s
        }
        None => 0,
    };
    let mut nanos = 0u32;
    if matches!(rest.as_bytes().get(pos), Some(b'.' | b',')) {
        let digits: String = rest[pos + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        pos += 1 + digits.len();
        let padded = format!("{:0<9}", &digits[..digits.len().min(9)]);
        nanos = padded.parse().map_err(|_| bad())?;
    }
    let offset = match rest.get(pos..) {
        Some("Z") | Some("") => time::UtcOffset::UTC,
        Some(o) if o.len() == 5 && (o.starts_with('+') || o.starts_with('-')) => {
            let h: i8 = o[1..3].parse().map_err(|_| bad())?;
            let m: i8 = o[3..5].parse().map_err(|_| bad())?;
            let sign = if o.starts_with('-') { -1 } else { 1 };
            time::UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())?
        }
        _ => return Err(bad()),
    };
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).map_err(|_| bad())?, day)
            .map_err(|_| bad())?;
    let clock = time::Time::from_hms_nano(hour, minute, second, nanos).map_err(|_| bad())?;
    Ok(time::PrimitiveDateTime::new(date, clock).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_fractions_and_offsets_parse() {
        let gt = |s: &str| {
            let mut v = vec![0x18, s.len() as u8];
            v.extend_from_slice(s.as_bytes());
            v
        };
        let t = |b: &[u8]| time(&read_one(b).unwrap());
        let whole = t(&gt("20250701093000Z")).unwrap();
        assert_eq!(whole.unix_timestamp(), 1_751_362_200);
        let frac = t(&gt("20250701093000.123Z")).unwrap();
        assert_eq!(frac.millisecond(), 123);
        let off = t(&gt("20250701163000+0700")).unwrap();
        assert_eq!(off, whole);
        let utc = t(&[
            0x17, 0x0d, b'2', b'5', b'0', b'7', b'0', b'1', b'0', b'9', b'3', b'0', b'0', b'0',
            b'Z',
        ])
        .unwrap();
        assert_eq!(utc, whole);
        assert!(t(&gt("2025070109")).is_err());
    }

    #[test]
    fn indefinite_lengths_and_constructed_strings_are_read() {
        // SEQUENCE (indefinite) { OCTET STRING (constructed, indefinite) { "ab", "c" }, NULL }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00, 0x05,
            0x00, 0x00, 0x00,
        ];
        let seq = read_one(&ber).unwrap();
        assert!(seq.indefinite);
        assert_eq!(seq.raw.len(), ber.len());
        let kids = seq.children().unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(&*kids[0].octets().unwrap(), b"abc");
        assert_eq!(
            seq.to_der().unwrap(),
            [0x30, 0x07, 0x04, 0x03, b'a', b'b', b'c', 0x05, 0x00]
        );
    }

    #[test]
    fn der_sorts_sets_but_definite_keeps_order() {
        let ber = [0x31, 0x80, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03, 0x00, 0x00];
        let set = read_one(&ber).unwrap();
        assert_eq!(
            set.to_der().unwrap(),
            [0x31, 0x06, 0x02, 0x01, 0x03, 0x02, 0x01, 0x05]
        );
        assert_eq!(
            set.to_definite().unwrap(),
            [0x31, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03]
        );
    }

    #[test]
    fn definite_input_is_kept_and_anything_else_rewritten() {
        // Already definite and minimal (DER): returned as received.
        let der = [0x30, 0x08, 0xA0, 0x03, 0x02, 0x01, 0x05, 0x04, 0x01, 0x07];
        assert_eq!(read_one(&der).unwrap().to_definite().unwrap(), der);
        // A non-minimal length, nested indefinite lengths and a constructed string inside a
        // definite outer element are each rewritten.
        let long = [0x30, 0x81, 0x03, 0x02, 0x01, 0x05];
        assert_eq!(
            read_one(&long).unwrap().to_definite().unwrap(),
            [0x30, 0x03, 0x02, 0x01, 0x05]
        );
        let inner = [0x30, 0x07, 0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00];
        assert_eq!(
            read_one(&inner).unwrap().to_definite().unwrap(),
            [0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x05]
        );
        let segments = [0x30, 0x08, 0x24, 0x06, 0x04, 0x01, b'a', 0x04, 0x01, b'b'];
        assert_eq!(
            read_one(&segments).unwrap().to_definite().unwrap(),
            [0x30, 0x04, 0x04, 0x02, b'a', b'b']
        );
    }

    #[test]
    fn malformed_input_is_refused_not_panicking() {
        // Primitive with indefinite length, truncation, trailing data, nesting bombs.
        assert!(read_one(&[0x04, 0x80, 0x00, 0x00]).is_err());
        assert!(read_one(&[0x30, 0x05, 0x02, 0x01]).is_err());
        assert!(read_one(&[0x30, 0x80, 0x02, 0x01, 0x01]).is_err());
        assert_eq!(
            read_one(&[0x05, 0x00, 0x01]),
            Err(BerError::TrailingData(1))
        );
        assert!(read_one(&[0x05, 0x00, 0x00, 0x00]).is_ok());
        let bomb: Vec<u8> = std::iter::repeat([0x30u8, 0x80])
            .take(10_000)
            .flatten()
            .collect();
        assert_eq!(read_one(&bomb), Err(BerError::TooDeep));
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 53 + 0x30) as u8).collect();
            let _ = read_one(&junk).and_then(|t| t.to_der());
        }
    }
}
