//! Reading only what a signature touches from a PDF that is never held in memory whole.
//!
//! For large files: the cross-reference data (classic tables, cross-reference streams, the
//! `/XRefStm` of hybrid files and the whole `/Prev` chain) is read by seeking; then only the
//! objects the incremental update consults are loaded — the catalog, the page tree, the
//! AcroForm and its fields, the annotations of the page that gets the widget and the DocMDP
//! permissions — into a `lopdf::Document` that holds nothing else. Content streams, images
//! and fonts are never read. [`super::incremental`] then lays out the update exactly as for a
//! document parsed whole, so there is one writer for both.
//!
//! lopdf's object parser is private; single objects are parsed through its public object
//! stream parser ([`ObjectStream`]), which takes a direct object at a given offset.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};

use lopdf::{Dictionary, Document, Object, ObjectId, ObjectStream, Stream};

use super::incremental::{self, Base, Opened, XrefKind};
use super::syntax::parse_direct;
use super::{PdfError, PdfSignOptions, MAX_DECOMPRESSED_STREAM};

/// First read of an object or cross-reference section; grown fourfold until the object fits.
const FIRST_WINDOW: usize = 2048;

/// Largest single read: one object's text, a stream's encoded bytes, or a classic
/// cross-reference table with its trailer.
const MAX_WINDOW: usize = 32 << 20;

/// Bytes read and inflated in all (objects, object streams, cross-reference data): bounds
/// memory and work whatever the file claims.
const MAX_READ_TOTAL: usize = 96 << 20;

/// Longest `/Prev` chain followed.
const MAX_SECTIONS: usize = 4096;

/// Most objects loaded.
const MAX_OBJECTS: usize = 500_000;

/// How deep loading one object may recurse (an indirect `/Length`, the object stream that
/// holds it, that stream's own `/Length`...): stops reference cycles between them.
const MAX_NESTING: usize = 16;

/// Dictionary keys whose values are followed when loading: what [`super::incremental`] and
/// [`super::placement`] read (page tree and inherited boxes, form fields, signature values,
/// DocMDP). `Annots` is followed only on the page that gets the widget.
const FOLLOWED: &[&[u8]] = &[
    b"Pages",
    b"Kids",
    b"Parent",
    b"Count",
    b"Type",
    b"MediaBox",
    b"CropBox",
    b"Rotate",
    b"AcroForm",
    b"Fields",
    b"SigFlags",
    b"T",
    b"FT",
    b"V",
    b"Rect",
    b"Subtype",
    b"ByteRange",
    b"Perms",
    b"DocMDP",
    b"Reference",
    b"TransformMethod",
    b"TransformParams",
    b"P",
];

/// Where the newest cross-reference data puts an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Deleted.
    Free,
    /// At this byte offset.
    At(u64),
    /// Inside the object stream with this number.
    InStream(u32),
}

/// Opens `source` for an incremental update, loading only the objects the signature of
/// `opts` touches. Returns the opened document and what the update is appended to.
pub(crate) fn open<R: Read + Seek>(
    source: &mut R,
    opts: &PdfSignOptions,
) -> Result<(Opened, Base), PdfError> {
    let mut file = SparseFile::new(source)?;
    let head = file.read_at(0, 5)?;
    if head != b"%PDF-" {
        return Err(PdfError::Malformed(
            "file does not start with a %PDF- header".into(),
        ));
    }
    let tail_len = file.len.min(4096);
    let tail = file.read_at(file.len - tail_len, tail_len as usize)?;
    let base = Base {
        len: usize::try_from(file.len).map_err(|_| PdfError::Malformed("file too large".into()))?,
        ends_with_eol: matches!(tail.last(), Some(b'\n' | b'\r')),
    };
    let startxref = incremental::startxref_offset(&tail, base.len)?;
    let at = file.read_at(startxref as u64, 64)?;
    let xref_kind = incremental::xref_kind_at(&at)?;
    let trailer = file.read_xref_chain(startxref as u64)?;
    if trailer.has(b"Encrypt") {
        return Err(PdfError::Encrypted);
    }

    let mut doc = Document::new();
    doc.max_id = file.entries.keys().copied().max().unwrap_or(0);
    doc.trailer = trailer;
    let root = doc
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|_| PdfError::Malformed("trailer has no /Root reference".into()))?;
    let mut loader = Loader {
        file,
        visited: HashSet::new(),
    };
    loader.walk(&mut doc, vec![root])?;
    // The page that gets the widget: its annotations are read too (earlier signatures, seals).
    let pages = doc.get_pages();
    let count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    if let Some(page_id) = pages.get(&incremental::page_number(opts, count)) {
        let annots = doc
            .get_dictionary(*page_id)
            .ok()
            .and_then(|page| page.get(b"Annots").ok())
            .cloned();
        if let Some(annots) = annots {
            let mut queue = Vec::new();
            collect_references(&annots, &mut queue, 0);
            loader.walk(&mut doc, queue)?;
        }
    }
    Ok((Opened::new(startxref, xref_kind, doc)?, base))
}

/// Loads objects reachable through [`FOLLOWED`] keys, each once.
struct Loader<'a, R> {
    file: SparseFile<'a, R>,
    visited: HashSet<ObjectId>,
}

impl<R: Read + Seek> Loader<'_, R> {
    fn walk(&mut self, doc: &mut Document, mut queue: Vec<ObjectId>) -> Result<(), PdfError> {
        while let Some(id) = queue.pop() {
            if !self.visited.insert(id) {
                continue;
            }
            if self.visited.len() > MAX_OBJECTS {
                return Err(PdfError::Malformed(format!(
                    "more than {MAX_OBJECTS} structural objects"
                )));
            }
            // A missing or deleted object reads as null, as when the file is parsed whole.
            let Some(object) = self.file.object(id)? else {
                continue;
            };
            collect_references(&object, &mut queue, 0);
            doc.objects.insert(id, object);
        }
        Ok(())
    }
}

/// Queues the references in `object`, following only [`FOLLOWED`] keys of dictionaries.
fn collect_references(object: &Object, queue: &mut Vec<ObjectId>, depth: usize) {
    if depth > 64 {
        return;
    }
    match object {
        Object::Reference(id) => queue.push(*id),
        Object::Array(items) => {
            for item in items {
                collect_references(item, queue, depth + 1);
            }
        }
        Object::Dictionary(dict) => collect_followed(dict, queue, depth),
        Object::Stream(stream) => collect_followed(&stream.dict, queue, depth),
        _ => {}
    }
}

fn collect_followed(dict: &Dictionary, queue: &mut Vec<ObjectId>, depth: usize) {
    for (key, value) in dict.iter() {
        if FOLLOWED.contains(&key.as_slice()) {
            collect_references(value, queue, depth + 1);
        }
    }
}

/// A PDF read by seeking: its cross-reference entries and the object streams opened so far.
struct SparseFile<'a, R> {
    source: &'a mut R,
    len: u64,
    entries: BTreeMap<u32, Entry>,
    object_streams: HashMap<u32, BTreeMap<ObjectId, Object>>,
    read_total: usize,
    nesting: usize,
}

impl<'a, R: Read + Seek> SparseFile<'a, R> {
    fn new(source: &'a mut R) -> Result<Self, PdfError> {
        let len = source.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(Self {
            source,
            len,
            entries: BTreeMap::new(),
            object_streams: HashMap::new(),
            read_total: 0,
            nesting: 0,
        })
    }

    /// Counts `n` bytes against [`MAX_READ_TOTAL`].
    fn charge(&mut self, n: usize) -> Result<(), PdfError> {
        self.read_total = self.read_total.saturating_add(n);
        if self.read_total > MAX_READ_TOTAL {
            return Err(PdfError::Malformed(format!(
                "the document structure needs more than {MAX_READ_TOTAL} bytes to be read"
            )));
        }
        Ok(())
    }

    /// Up to `n` bytes from `offset` (fewer at the end of the file).
    fn read_at(&mut self, offset: u64, n: usize) -> Result<Vec<u8>, PdfError> {
        let n = n.min(usize::try_from(self.len.saturating_sub(offset)).unwrap_or(usize::MAX));
        self.charge(n)?;
        self.source.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut buf = vec![0; n];
        self.source.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    /// Reads growing windows at `offset` until `parse` succeeds on one; fails once the window
    /// reaches the end of the file or [`MAX_WINDOW`].
    fn parse_window<T>(
        &mut self,
        offset: u64,
        what: &str,
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<T, PdfError> {
        let mut size = FIRST_WINDOW;
        loop {
            let window = self.read_at(offset, size)?;
            if let Some(value) = parse(&window) {
                return Ok(value);
            }
            if window.len() < size || size >= MAX_WINDOW {
                return Err(PdfError::Malformed(format!(
                    "cannot parse {what} at offset {offset}"
                )));
            }
            size = (size * 4).min(MAX_WINDOW);
        }
    }

    /// Follows the cross-reference chain from `startxref`, newest first, and returns the
    /// newest trailer.
    fn read_xref_chain(&mut self, startxref: u64) -> Result<Dictionary, PdfError> {
        let mut next = Some(startxref);
        let mut seen = HashSet::new();
        let mut newest = None;
        while let Some(offset) = next {
            if !seen.insert(offset) || seen.len() > MAX_SECTIONS {
                return Err(PdfError::Malformed(
                    "cross-reference /Prev chain loops or is too long".into(),
                ));
            }
            let (mut section, trailer) = self.read_section(offset)?;
            // Hybrid file (ISO 32000-1 §7.5.8.4): the stream's entries complete the table's.
            if let Ok(stm) = trailer.get(b"XRefStm").and_then(Object::as_i64) {
                let stm = self.offset(stm)?;
                let (extra, _) = self.read_xref_stream(stm)?;
                for (number, entry) in extra {
                    let slot = section.entry(number).or_insert(Entry::Free);
                    if *slot == Entry::Free {
                        *slot = entry;
                    }
                }
            }
            for (number, entry) in section {
                self.entries.entry(number).or_insert(entry);
            }
            next =
                match trailer.get(b"Prev") {
                    Ok(prev) => Some(self.offset(prev.as_i64().map_err(|_| {
                        PdfError::Malformed("trailer /Prev is not a number".into())
                    })?)?),
                    Err(_) => None,
                };
            newest.get_or_insert(trailer);
        }
        newest.ok_or_else(|| PdfError::Malformed("no trailer".into()))
    }

    /// A file offset from a number in the file.
    fn offset(&self, value: i64) -> Result<u64, PdfError> {
        u64::try_from(value)
            .ok()
            .filter(|&o| o < self.len)
            .ok_or_else(|| PdfError::Malformed(format!("offset {value} is outside the file")))
    }

    /// One cross-reference section (table or stream) and its trailer dictionary.
    fn read_section(
        &mut self,
        offset: u64,
    ) -> Result<(BTreeMap<u32, Entry>, Dictionary), PdfError> {
        let head = self.read_at(offset, 64)?;
        match incremental::xref_kind_at(&head)? {
            XrefKind::Table => self.parse_window(offset, "cross-reference table", parse_table),
            XrefKind::Stream => self.read_xref_stream(offset),
        }
    }

    /// A cross-reference stream (ISO 32000-1 §7.5.8) at `offset`.
    fn read_xref_stream(
        &mut self,
        offset: u64,
    ) -> Result<(BTreeMap<u32, Entry>, Dictionary), PdfError> {
        let bad = |what: &str| PdfError::Malformed(format!("cross-reference stream: {what}"));
        let Object::Stream(stream) = self.object_at(offset, None)? else {
            return Err(bad("not a stream"));
        };
        let data = stream
            .get_plain_content_with_limit(MAX_DECOMPRESSED_STREAM)
            .map_err(|e| bad(&e.to_string()))?;
        self.charge(data.len())?;
        let dict = stream.dict;
        let widths: Vec<usize> = match dict.get(b"W") {
            Ok(Object::Array(w)) if w.len() == 3 => w
                .iter()
                .map(|v| v.as_i64().ok().and_then(|v| usize::try_from(v).ok()))
                .collect::<Option<_>>()
                .filter(|w: &Vec<usize>| w.iter().all(|&n| n <= 8))
                .ok_or_else(|| bad("bad /W"))?,
            _ => return Err(bad("missing /W")),
        };
        let size = dict
            .get(b"Size")
            .and_then(Object::as_i64)
            .map_err(|_| bad("missing /Size"))?;
        let index: Vec<i64> = match dict.get(b"Index") {
            Ok(Object::Array(items)) => items
                .iter()
                .map(|v| v.as_i64().ok())
                .collect::<Option<_>>()
                .ok_or_else(|| bad("bad /Index"))?,
            _ => vec![0, size],
        };
        let row = widths.iter().sum::<usize>();
        if row == 0 {
            return Err(bad("empty /W"));
        }
        let field = |bytes: &[u8]| bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let mut entries = BTreeMap::new();
        let mut rows = data.chunks_exact(row);
        for pair in index.chunks(2) {
            let [start, count] = pair else {
                return Err(bad("odd /Index"));
            };
            let start = u32::try_from(*start).map_err(|_| bad("bad /Index"))?;
            let count = u32::try_from(*count).map_err(|_| bad("bad /Index"))?;
            for i in 0..count {
                let Some(bytes) = rows.next() else {
                    return Err(bad("data shorter than /Index says"));
                };
                let (a, rest) = bytes.split_at(widths[0]);
                let (b, _) = rest.split_at(widths[1]);
                let kind = if widths[0] == 0 { 1 } else { field(a) };
                let number = start.checked_add(i).ok_or_else(|| bad("bad /Index"))?;
                let entry = match kind {
                    0 => Entry::Free,
                    1 => Entry::At(field(b)),
                    2 => Entry::InStream(u32::try_from(field(b)).map_err(|_| bad("bad entry"))?),
                    _ => continue, // reserved types read as null objects
                };
                entries.entry(number).or_insert(entry);
            }
        }
        Ok((entries, dict))
    }

    /// The object `id`, or `None` when the cross-reference data has no live entry for it.
    fn object(&mut self, id: ObjectId) -> Result<Option<Object>, PdfError> {
        if self.nesting >= MAX_NESTING {
            return Err(PdfError::Malformed(format!(
                "object {} {} R: stream lengths and object streams refer to each other in a loop",
                id.0, id.1
            )));
        }
        self.nesting += 1;
        let object = self.load(id);
        self.nesting -= 1;
        object
    }

    fn load(&mut self, id: ObjectId) -> Result<Option<Object>, PdfError> {
        match self.entries.get(&id.0).copied() {
            None | Some(Entry::Free) => Ok(None),
            Some(Entry::At(offset)) => self.object_at(offset, Some(id)).map(Some),
            Some(Entry::InStream(container)) => {
                if id.1 != 0 {
                    return Ok(None);
                }
                if !self.object_streams.contains_key(&container) {
                    let objects = self.open_object_stream(container)?;
                    self.object_streams.insert(container, objects);
                }
                Ok(self
                    .object_streams
                    .get(&container)
                    .and_then(|objects| objects.get(&id))
                    .cloned())
            }
        }
    }

    /// Parses the members of object stream `container` (ISO 32000-1 §7.5.7).
    fn open_object_stream(
        &mut self,
        container: u32,
    ) -> Result<BTreeMap<ObjectId, Object>, PdfError> {
        let bad = || PdfError::Malformed(format!("object stream {container} 0 R is unusable"));
        let Some(Entry::At(offset)) = self.entries.get(&container).copied() else {
            return Err(bad());
        };
        let Object::Stream(stream) = self.object_at(offset, Some((container, 0)))? else {
            return Err(bad());
        };
        let plain = stream
            .get_plain_content_with_limit(MAX_DECOMPRESSED_STREAM)
            .map_err(|_| bad())?;
        self.charge(plain.len())?;
        let mut dict = stream.dict;
        dict.remove(b"Filter");
        dict.remove(b"DecodeParms");
        ObjectStream::new(&Stream::new(dict, plain))
            .map(|parsed| parsed.objects)
            .map_err(|_| bad())
    }

    /// The indirect object whose `N G obj` header is at `offset`; checks the number when
    /// `expected` is given.
    fn object_at(&mut self, offset: u64, expected: Option<ObjectId>) -> Result<Object, PdfError> {
        let damaged = || {
            PdfError::Malformed(
                "cross-reference data is damaged (repair the file before signing)".into(),
            )
        };
        let (id, body_at, object, stream_data_at) =
            self.parse_window(offset, "object", parse_indirect)?;
        if expected.is_some_and(|e| e != id) {
            return Err(damaged());
        }
        let Some(data_at) = stream_data_at else {
            return Ok(object);
        };
        let Object::Dictionary(dict) = object else {
            return Err(damaged());
        };
        let length = match dict.get(b"Length") {
            Ok(Object::Integer(n)) => *n,
            Ok(Object::Reference(length_id)) if *length_id != id => {
                match self.object(*length_id)? {
                    Some(Object::Integer(n)) => n,
                    _ => return Err(damaged()),
                }
            }
            _ => return Err(damaged()),
        };
        let length = usize::try_from(length)
            .ok()
            .filter(|&n| n <= MAX_WINDOW)
            .ok_or_else(damaged)?;
        let start = offset + (body_at + data_at) as u64;
        let data = self.read_at(start, length)?;
        if data.len() != length {
            return Err(damaged());
        }
        Ok(Object::Stream(Stream::new(dict, data)))
    }
}

/// Parses `N G obj` and the object after it from `window`: the id, where the body starts,
/// the object (a stream's dictionary only) and, for a stream, where its data starts relative
/// to the body. `None` when the window does not hold the whole object yet.
fn parse_indirect(window: &[u8]) -> Option<(ObjectId, usize, Object, Option<usize>)> {
    let mut pos = skip_whitespace(window, 0);
    let mut numbers = [0u64; 2];
    for number in &mut numbers {
        let digits = window[pos..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 10 {
            return None;
        }
        *number = std::str::from_utf8(&window[pos..pos + digits])
            .ok()?
            .parse()
            .ok()?;
        pos = skip_whitespace(window, pos + digits);
    }
    if !window[pos..].starts_with(b"obj") {
        return None;
    }
    let body_at = pos + 3;
    let id = (
        u32::try_from(numbers[0]).ok()?,
        u16::try_from(numbers[1]).ok()?,
    );
    let body = &window[body_at..];
    // The object ends at the first `endobj` or `stream` keyword such that what precedes
    // parses: a keyword inside a string makes the prefix unparsable.
    let mut from = 0;
    while let Some(found) = find_keyword(body, from) {
        let (at, is_stream) = found;
        if let Some(object) = parse_direct(&body[..at]) {
            if !is_stream {
                return Some((id, body_at, object, None));
            }
            let mut data_at = at + b"stream".len();
            match body.get(data_at..) {
                Some([b'\r', b'\n', ..]) => data_at += 2,
                Some([b'\n' | b'\r', ..]) => data_at += 1,
                _ => return None,
            }
            return Some((id, body_at, object, Some(data_at)));
        }
        from = at + 1;
    }
    None
}

/// The next `endobj` or `stream` (not the tail of `endstream`) at or after `from`.
fn find_keyword(body: &[u8], from: usize) -> Option<(usize, bool)> {
    (from..body.len()).find_map(|i| {
        let rest = &body[i..];
        if rest.starts_with(b"endobj") {
            Some((i, false))
        } else if rest.starts_with(b"stream") && !body[..i].ends_with(b"end") {
            Some((i, true))
        } else {
            None
        }
    })
}

/// A classic cross-reference table (ISO 32000-1 §7.5.4) and the trailer after it; `None`
/// when the window ends before the trailer dictionary does.
fn parse_table(window: &[u8]) -> Option<(BTreeMap<u32, Entry>, Dictionary)> {
    let mut pos = skip_whitespace(window, 0);
    pos = skip_whitespace(
        window,
        pos + window[pos..].strip_prefix(b"xref").map(|_| 4)?,
    );
    let mut entries = BTreeMap::new();
    loop {
        if window[pos..].starts_with(b"trailer") {
            // A dictionary cut by the window's end does not parse: the window grows.
            let Some(Object::Dictionary(trailer)) = parse_direct(&window[pos + 7..]) else {
                return None;
            };
            return Some((entries, trailer));
        }
        let (start, next) = integer(window, pos)?;
        let (count, next) = integer(window, next)?;
        pos = next;
        for i in 0..count {
            let (offset, next) = integer(window, pos)?;
            let (_generation, next) = integer(window, next)?;
            let kind = *window.get(next)?;
            pos = skip_whitespace(window, next + 1);
            let number = u32::try_from(start.checked_add(i)?).ok()?;
            let entry = match kind {
                b'n' => Entry::At(offset),
                b'f' => Entry::Free,
                _ => return None,
            };
            entries.entry(number).or_insert(entry);
        }
    }
}

/// An unsigned integer at `pos` and the position after the whitespace that follows it.
fn integer(window: &[u8], pos: usize) -> Option<(u64, usize)> {
    let digits = window
        .get(pos..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 12 {
        return None;
    }
    let value = std::str::from_utf8(&window[pos..pos + digits])
        .ok()?
        .parse()
        .ok()?;
    Some((value, skip_whitespace(window, pos + digits)))
}

fn skip_whitespace(window: &[u8], mut pos: usize) -> usize {
    while pos < window.len() && (window[pos].is_ascii_whitespace() || window[pos] == 0) {
        pos += 1;
    }
    pos
}

fn io(e: std::io::Error) -> PdfError {
    PdfError::Malformed(format!("cannot read the file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A PDF of `bodies` (object 1 first) with a classic table; `trailer_extra` is added to
    /// the trailer, where `{XREF}` stands for the table's own offset.
    fn pdf(bodies: &[&str], trailer_extra: &str) -> Vec<u8> {
        let mut out = b"%PDF-1.7\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", bodies.len() + 1);
        for off in offsets {
            table.push_str(&format!("{off:010} 00000 n \n"));
        }
        let extra = trailer_extra.replace("{XREF}", &xref.to_string());
        table.push_str(&format!(
            "trailer\n<< /Size {} /Root 1 0 R {extra} >>\nstartxref\n{xref}\n%%EOF\n",
            bodies.len() + 1
        ));
        out.extend_from_slice(table.as_bytes());
        out
    }

    fn open_err(bytes: &[u8]) -> PdfError {
        let opts = PdfSignOptions::new(time::OffsetDateTime::UNIX_EPOCH);
        match open(&mut Cursor::new(bytes), &opts) {
            Ok(_) => panic!("opened"),
            Err(e) => e,
        }
    }

    const PAGES: [&str; 3] = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ];

    #[test]
    fn reads_a_plain_file() {
        let opts = PdfSignOptions::new(time::OffsetDateTime::UNIX_EPOCH);
        let bytes = pdf(&PAGES, "");
        let (opened, base) = open(&mut Cursor::new(&bytes), &opts).unwrap();
        assert_eq!(base.len, bytes.len());
        assert_eq!(opened.doc.get_pages().len(), 1);
        assert_eq!(opened.xref_kind, XrefKind::Table);
    }

    #[test]
    fn a_prev_chain_that_loops_is_refused() {
        let err = open_err(&pdf(&PAGES, "/Prev {XREF}"));
        assert!(err.to_string().contains("loops"), "{err}");
    }

    #[test]
    fn stream_lengths_that_refer_to_each_other_are_refused() {
        let err = open_err(&pdf(
            &[
                "<< /Type /Catalog /Pages 2 0 R >>",
                "<< /Length 3 0 R >>\nstream\nabc\nendstream",
                "<< /Length 2 0 R >>\nstream\nabc\nendstream",
            ],
            "",
        ));
        assert!(err.to_string().contains("in a loop"), "{err}");
    }

    #[test]
    fn offsets_and_lengths_past_the_end_are_refused() {
        let mut bytes = pdf(&PAGES, "");
        let at = bytes.windows(10).position(|w| w == b"0000000009").unwrap();
        bytes[at..at + 10].copy_from_slice(b"9999999999");
        assert_eq!(open_err(&bytes).code(), crate::ErrorCode::PdfMalformed);
        let long = pdf(
            &[
                "<< /Type /Catalog /Pages 2 0 R >>",
                "<< /Length 99999999999 >>\nstream\nabc\nendstream",
            ],
            "",
        );
        assert_eq!(open_err(&long).code(), crate::ErrorCode::PdfMalformed);
    }

    #[test]
    fn encrypted_trailers_are_refused() {
        let err = open_err(&pdf(&PAGES, "/Encrypt << /Filter /Standard >>"));
        assert_eq!(err.code(), crate::ErrorCode::PdfEncrypted);
    }
}
