//! Small pieces of PDF syntax: text strings (ISO 32000-1 §7.9.2.2) and dates (§7.9.4).

use lopdf::{dictionary, Object, ObjectStream, Stream, StringFormat};
use time::OffsetDateTime;

/// One direct object, parsed by lopdf's object-stream parser (lopdf's object parser is
/// private): the first object of `text`, whatever follows it.
pub(crate) fn parse_direct(text: &[u8]) -> Option<Object> {
    let mut content = b"1 0\n".to_vec();
    let first = content.len();
    content.extend_from_slice(text);
    let dict = dictionary! { "N" => 1, "First" => first as i64 };
    let mut parsed = ObjectStream::new(&Stream::new(dict, content)).ok()?;
    parsed.objects.remove(&(1, 0))
}

/// A PDF text string: a literal in PDFDocEncoding when the text is printable ASCII,
/// otherwise UTF-16BE with a byte-order mark (so Vietnamese round-trips).
pub(crate) fn text_string(text: &str) -> Object {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Object::String(text.as_bytes().to_vec(), StringFormat::Literal)
    } else {
        let mut bytes = vec![0xfe, 0xff];
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        Object::String(bytes, StringFormat::Hexadecimal)
    }
}

/// Decodes a PDF text string (UTF-16BE with BOM, else PDFDocEncoding read as Latin-1).
pub(crate) fn decode_text_string(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xfe, 0xff]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else if let Some(rest) = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        // PDF 2.0 allows UTF-8 with a BOM.
        String::from_utf8_lossy(rest).into_owned()
    } else {
        bytes.iter().map(|&b| char::from(b)).collect()
    }
}

/// A PDF date `D:YYYYMMDDHHmmSS+HH'mm'`, keeping the offset of `at` (seconds of the offset
/// are dropped: PDF dates cannot carry them).
pub(crate) fn pdf_date(at: OffsetDateTime) -> String {
    let offset = at.offset();
    let total_minutes = offset.whole_minutes();
    let sign = if total_minutes < 0 { '-' } else { '+' };
    let minutes = total_minutes.unsigned_abs();
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}{}{:02}'{:02}'",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        sign,
        minutes / 60,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn date_keeps_offset() {
        assert_eq!(
            pdf_date(datetime!(2025-07-01 09:30:05 +07:00)),
            "D:20250701093005+07'00'"
        );
        assert_eq!(
            pdf_date(datetime!(2025-01-02 03:04:05 -05:30)),
            "D:20250102030405-05'30'"
        );
        assert_eq!(
            pdf_date(datetime!(2025-01-02 03:04:05 UTC)),
            "D:20250102030405+00'00'"
        );
    }

    #[test]
    fn vietnamese_text_round_trips() {
        let text = "Nguyễn Văn Ân, Hà Nội";
        let Object::String(bytes, StringFormat::Hexadecimal) = text_string(text) else {
            panic!("non-ASCII text must be a UTF-16 hex string");
        };
        assert_eq!(&bytes[..2], &[0xfe, 0xff]);
        assert_eq!(decode_text_string(&bytes), text);
        let Object::String(ascii, StringFormat::Literal) = text_string("Ha Noi (VN)") else {
            panic!("ASCII text stays literal");
        };
        assert_eq!(ascii, b"Ha Noi (VN)");
    }
}
