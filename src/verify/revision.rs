//! The revision a signature covers, read from the final document instead of parsed again.
//!
//! A signed revision is a byte prefix of the file, so an object whose cross-reference entry is
//! the same in the revision and in the final document is the same bytes at the same offset.
//! Where lopdf's reading of those bytes cannot depend on anything outside them — their text,
//! lexed here as lopdf's grammar reads it, ends before the revision's last cross-reference
//! section; a stream's `/Length` is direct, or refers to an object kept the same way; no
//! stream length had to be recovered — the final document's object is the one the revision
//! holds. The other objects (those a later revision replaced or freed, and those this module
//! cannot vouch for) are parsed by lopdf from the revision's own bytes, and the members of its
//! object streams are read as lopdf reads them. What comes out is the object map lopdf's parse
//! of the revision alone gives ([`crate::pdf::parse_document`], signature values blanked), at
//! a fraction of the cost.
//!
//! Anything this module does not reproduce exactly (encryption, repaired or hybrid
//! cross-reference data it cannot read, objects numbered other than their entries, a page tree
//! that would make the parse rebuild the cross-reference data, ...) makes it answer `None`, and
//! the caller parses the revision whole.

use std::collections::{BTreeMap, HashMap, HashSet};

use lopdf::xref::XrefEntry;
use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId, ObjectStream, Stream};

use crate::pdf::{parse_direct, MAX_DECOMPRESSED_STREAM, MAX_DECOMPRESSED_TOTAL};

/// Objects by id: what the revision comparison reads of a document.
pub(super) type Objects<'a> = BTreeMap<ObjectId, &'a Object>;

/// Deepest nesting of arrays, dictionaries and strings the lexer follows (lopdf stops at 100).
const MAX_DEPTH: usize = 64;

/// Longest `/Prev` chain followed.
const MAX_SECTIONS: usize = 10_000;

/// The final document, indexed once for reading its revisions.
pub(super) struct FinalDocument<'a> {
    /// The bytes lopdf parsed (signature values blanked as for the parse).
    bytes: &'a [u8],
    doc: &'a Document,
    /// Offsets of the cross-reference sections of the final document's chain.
    sections: HashSet<usize>,
    /// The final document's objects that a revision listing them at the same offset holds
    /// too, by object number.
    kept: HashMap<u32, Kept>,
}

/// An object of the final document whose reading depends on its own bytes only.
#[derive(Debug, Clone, Copy)]
struct Kept {
    offset: u32,
    generation: u16,
    /// Where its text ends.
    end: usize,
    /// The object holding its stream length, when indirect.
    length: Option<ObjectId>,
}

/// The objects of one signed revision.
pub(super) struct SignedRevision<'a> {
    /// Objects taken from the final document.
    kept: Vec<(ObjectId, &'a Object)>,
    /// The other objects, parsed from the revision's bytes (with nothing else in it).
    parsed: Document,
    reparsed: Vec<ObjectId>,
    /// Objects read from the revision's object streams.
    members: BTreeMap<ObjectId, Object>,
}

impl SignedRevision<'_> {
    /// The revision's objects, as lopdf's parse of the revision gives them.
    pub(super) fn objects(&self) -> Objects<'_> {
        let mut all: Objects<'_> = self.kept.iter().map(|&(id, o)| (id, o)).collect();
        for id in &self.reparsed {
            if let Some(o) = self.parsed.objects.get(id) {
                all.insert(*id, o);
            }
        }
        for (id, o) in &self.members {
            all.entry(*id).or_insert(o);
        }
        all
    }
}

impl<'a> FinalDocument<'a> {
    /// Indexes `doc`, which lopdf parsed from `bytes`; `None` when its revisions are to be
    /// parsed whole (encrypted, repaired, or cross-reference data read differently here).
    pub(super) fn index(bytes: &'a [u8], doc: &'a Document) -> Option<Self> {
        if doc.xref_recovery.is_some()
            || doc.encryption_state.is_some()
            || doc.trailer.has(b"Encrypt")
            || !bytes.starts_with(b"%PDF-")
        {
            return None;
        }
        let start = startxref(bytes)?;
        if start != doc.xref_start {
            return None;
        }
        let chain = read_chain(bytes, start)?;
        let same = chain.entries.len() == doc.reference_table.entries.len()
            && chain
                .entries
                .iter()
                .zip(&doc.reference_table.entries)
                .all(|((a, x), (b, y))| a == b && same_entry(x, y));
        if !same {
            return None;
        }
        let mut kept = HashMap::new();
        for (&number, entry) in &chain.entries {
            let XrefEntry::Normal { offset, generation } = *entry else {
                continue;
            };
            let Some((id, body)) = header(bytes, offset as usize) else {
                continue;
            };
            if id != (number, generation) {
                // lopdf files objects under the number of their header: one may stand in
                // for another.
                return None;
            }
            let Some(object) = doc.objects.get(&id) else {
                continue;
            };
            if let Some((end, length)) = certify(bytes, body, object, |r| doc.objects.get(&r)) {
                kept.insert(
                    number,
                    Kept {
                        offset,
                        generation,
                        end,
                        length,
                    },
                );
            }
        }
        Some(Self {
            bytes,
            doc,
            sections: chain.offsets.into_iter().collect(),
            kept,
        })
    }

    /// The objects of the revision that ends at byte `end`, or `None` when it is to be parsed
    /// whole. `gaps` are the blanked signature values.
    pub(super) fn revision(
        &self,
        end: usize,
        gaps: &[(usize, usize)],
    ) -> Option<SignedRevision<'a>> {
        if end > self.bytes.len() || gaps.iter().any(|&(s, e)| s < end && end < e) {
            return None;
        }
        let prefix = &self.bytes[..end];
        let start = startxref(prefix)?;
        if !self.sections.contains(&start) {
            return None;
        }
        let chain = read_chain(prefix, start)?;
        if chain.offsets.iter().any(|o| !self.sections.contains(o)) || chain.trailer.has(b"Encrypt")
        {
            return None;
        }
        // Objects at the offset the final document has them, whose text ends before the
        // revision's last cross-reference section: the final document's reading is theirs.
        let mut candidates: BTreeMap<ObjectId, Kept> = BTreeMap::new();
        let mut reparse: Vec<(u32, u32, u16)> = Vec::new();
        for (&number, entry) in &chain.entries {
            let XrefEntry::Normal { offset, generation } = *entry else {
                continue;
            };
            if offset as usize >= end {
                // Not in the revision: lopdf reads nothing there either.
                continue;
            }
            match self.kept.get(&number) {
                Some(k) if k.offset == offset && k.generation == generation && k.end <= start => {
                    candidates.insert((number, generation), *k);
                }
                _ => reparse.push((number, offset, generation)),
            }
        }
        // A stream whose length is held by an object the revision reads differently.
        let moved: Vec<ObjectId> = candidates
            .iter()
            .filter(|(_, k)| k.length.is_some_and(|r| !candidates.contains_key(&r)))
            .map(|(id, _)| *id)
            .collect();
        for id in moved {
            if let Some(k) = candidates.remove(&id) {
                reparse.push((id.0, k.offset, id.1));
            }
        }
        // A replaced stream whose length object is kept: lopdf reads the length from the
        // revision, so the length object is parsed with it.
        let mut lengths = Vec::new();
        for &(_, offset, _) in &reparse {
            let length = header(prefix, offset as usize)
                .and_then(|(_, body)| extent(prefix, body))
                .and_then(|e| e.stream);
            if let Some((_, RawLength::Indirect(r))) = length {
                if let Some(k) = candidates.remove(&r) {
                    lengths.push((r.0, k.offset, r.1));
                }
            }
        }
        reparse.extend(lengths);
        reparse.sort_unstable();
        let parsed = if reparse.is_empty() {
            Document::new()
        } else {
            parse_objects(prefix, &reparse)?
        };
        let reparsed_ids: HashSet<ObjectId> = reparse.iter().map(|&(n, _, g)| (n, g)).collect();
        for &(number, offset, generation) in &reparse {
            let object = parsed.objects.get(&(number, generation))?;
            let (id, body) = header(prefix, offset as usize)?;
            if id != (number, generation) {
                return None;
            }
            if matches!(object, Object::Stream(_)) {
                let resolve = |r: ObjectId| {
                    if reparsed_ids.contains(&r) {
                        parsed.objects.get(&r)
                    } else {
                        None
                    }
                };
                certify(prefix, body, object, resolve)?;
            }
        }
        let mut kept = Vec::with_capacity(candidates.len());
        for id in candidates.keys() {
            kept.push((*id, self.doc.objects.get(id)?));
        }
        let reparsed: Vec<ObjectId> = reparse.iter().map(|&(n, _, g)| (n, g)).collect();
        let mut revision = SignedRevision {
            kept,
            parsed,
            reparsed,
            members: BTreeMap::new(),
        };
        let members = object_stream_members(&revision.objects(), &chain.entries)?;
        revision.members = members;
        if !page_tree_loaded(&revision.objects(), &chain.trailer) {
            // lopdf would rebuild the cross-reference data.
            return None;
        }
        Some(revision)
    }
}

/// The members of the object streams among `objects` that lopdf adds to a document whose
/// cross-reference entries are `entries` (the budget of [`crate::pdf::parse_document`]
/// included); `None` where lopdf would drop a stream or fail.
fn object_stream_members(
    objects: &Objects<'_>,
    entries: &BTreeMap<u32, XrefEntry>,
) -> Option<BTreeMap<ObjectId, Object>> {
    let mut members = BTreeMap::new();
    let mut left = MAX_DECOMPRESSED_TOTAL;
    for (&(container, _), object) in objects {
        let Object::Stream(stream) = object else {
            continue;
        };
        if !stream.dict.has_type(b"ObjStm") {
            continue;
        }
        let plain = stream
            .get_plain_content_with_limit(left.min(MAX_DECOMPRESSED_STREAM))
            .ok()?;
        left -= plain.len().min(left);
        let decoded = ObjectStream::new_with_limit(stream, Some(MAX_DECOMPRESSED_STREAM)).ok()?;
        for (id, member) in decoded.objects {
            let listed_here = match entries.get(&id.0) {
                Some(XrefEntry::Compressed { container: c, .. }) => *c == container,
                Some(XrefEntry::Free | XrefEntry::UnusableFree) => false,
                _ => true,
            };
            if listed_here && !objects.contains_key(&id) {
                members.entry(id).or_insert(member);
            }
        }
    }
    Some(members)
}

/// Whether the catalog leads to a page tree root with `/Kids`, as lopdf checks.
fn page_tree_loaded(objects: &Objects<'_>, trailer: &Dictionary) -> bool {
    let dict_of = |id: &ObjectId| deref(objects, objects.get(id)?)?.as_dict().ok();
    let reference = |d: &Dictionary, key: &[u8]| d.get(key).ok()?.as_reference().ok();
    let Some(root) = trailer
        .get(b"Root")
        .ok()
        .and_then(|r| r.as_reference().ok())
    else {
        return false;
    };
    dict_of(&root)
        .and_then(|catalog| reference(catalog, b"Pages"))
        .and_then(|pages| dict_of(&pages))
        .and_then(|pages| deref(objects, pages.get(b"Kids").ok()?))
        .is_some_and(|kids| matches!(kids, Object::Array(_)))
}

/// `object` with references followed, at most 128 as lopdf does.
fn deref<'o>(objects: &Objects<'o>, mut object: &'o Object) -> Option<&'o Object> {
    let mut followed = 0;
    while let Object::Reference(id) = object {
        followed += 1;
        if followed > 128 {
            return None;
        }
        object = objects.get(id)?;
    }
    Some(object)
}

/// The objects `list` (number, offset, generation) parsed by lopdf from `prefix`: the
/// revision with a cross-reference table naming only them appended.
fn parse_objects(prefix: &[u8], list: &[(u32, u32, u16)]) -> Option<Document> {
    use std::io::Write;
    let mut bytes = Vec::with_capacity(prefix.len() + 64 + 32 * list.len());
    bytes.extend_from_slice(prefix);
    let xref_at = bytes.len() + 1;
    bytes.extend_from_slice(b"\nxref\n");
    for &(number, offset, generation) in list {
        write!(bytes, "{number} 1\n{offset:010} {generation:05} n \n").ok()?;
    }
    let size = list
        .iter()
        .map(|&(n, _, _)| u64::from(n) + 1)
        .max()
        .unwrap_or(1);
    write!(
        bytes,
        "trailer\n<< /Size {size} >>\nstartxref\n{xref_at}\n%%EOF\n"
    )
    .ok()?;
    /// Keeps every object: a filter only so that lopdf does not rebuild the cross-reference
    /// data of a document without a page tree.
    fn keep(id: ObjectId, _: &mut Object) -> Option<(ObjectId, Object)> {
        Some((id, Object::Null))
    }
    let options = LoadOptions {
        max_decompressed_size: Some(MAX_DECOMPRESSED_STREAM),
        filter: Some(keep),
        ..LoadOptions::default()
    };
    let doc = Document::load_mem_with_options(&bytes, options).ok()?;
    doc.xref_recovery.is_none().then_some(doc)
}

/// Where the text of `object` (lopdf's reading of the indirect object whose body starts at
/// `body`) ends, and the object holding its stream length when indirect; `None` unless its
/// reading provably depends on nothing else: its stream length, direct or through `resolve`,
/// is its data's length, and the data ends with `endstream` (no length recovery).
fn certify<'o>(
    bytes: &[u8],
    body: usize,
    object: &Object,
    resolve: impl Fn(ObjectId) -> Option<&'o Object>,
) -> Option<(usize, Option<ObjectId>)> {
    let extent = extent(bytes, body)?;
    match (object, extent.stream) {
        (Object::Stream(stream), Some((data, length))) => {
            let len = stream.content.len();
            let held = match length {
                RawLength::Direct(n) if usize::try_from(n).ok() == Some(len) => None,
                RawLength::Indirect(r) => match resolve(r) {
                    Some(Object::Integer(n)) if usize::try_from(*n).ok() == Some(len) => Some(r),
                    _ => return None,
                },
                _ => return None,
            };
            Some((endstream(bytes, data.checked_add(len)?)?, held))
        }
        (Object::Stream(_), None) | (_, Some(_)) => None,
        (_, None) => Some((extent.end, None)),
    }
}

/// Past `endstream` when it follows `at` (after an optional end-of-line marker).
fn endstream(bytes: &[u8], at: usize) -> Option<usize> {
    let at = eol(bytes, at).unwrap_or(at);
    bytes.get(at..)?.starts_with(b"endstream").then_some(at + 9)
}

/// A stream dictionary's `/Length` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawLength {
    Direct(i64),
    Indirect(ObjectId),
    Other,
}

/// The text of one object.
#[derive(Debug)]
struct Extent {
    /// Past its last byte (for a stream, past its dictionary).
    end: usize,
    /// For a stream: where its data starts, and its `/Length`.
    stream: Option<(usize, RawLength)>,
}

/// The object whose text starts at `at` (after `N G obj`), lexed as lopdf's parser reads it;
/// `None` for anything it might read otherwise.
fn extent(bytes: &[u8], at: usize) -> Option<Extent> {
    if !bytes.get(at..)?.starts_with(b"<<") {
        return Some(Extent {
            end: value(bytes, at, 0)?,
            stream: None,
        });
    }
    let mut length = RawLength::Other;
    let end = dictionary(bytes, at, 0, Some(&mut length))?;
    let keyword = space(bytes, end);
    let mut stream = None;
    if bytes[keyword..].starts_with(b"stream") {
        let mut data = keyword + 6;
        while matches!(bytes.get(data), Some(b' ' | b'\t')) {
            data += 1;
        }
        stream = eol(bytes, data).map(|data| (data, length));
    }
    Some(Extent { end, stream })
}

/// Past the value starting at `at`.
fn value(bytes: &[u8], at: usize, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *bytes.get(at)? {
        b'<' if bytes.get(at + 1) == Some(&b'<') => dictionary(bytes, at, depth, None),
        b'<' => {
            let close = at
                + 1
                + bytes[at + 1..]
                    .iter()
                    .position(|&c| !(is_white(c) || c.is_ascii_hexdigit()))?;
            (bytes[close] == b'>').then_some(close + 1)
        }
        b'(' => literal_string(bytes, at),
        b'[' => {
            let mut pos = space(bytes, at + 1);
            while *bytes.get(pos)? != b']' {
                pos = space(bytes, value(bytes, pos, depth + 1)?);
            }
            Some(pos + 1)
        }
        b'/' => Some(name_end(bytes, at)),
        b'0'..=b'9' => {
            let end = number(bytes, at)?;
            Some(reference(bytes, at).map_or(end, |(_, end)| end))
        }
        b'+' | b'-' | b'.' => number(bytes, at),
        b't' => keyword(bytes, at, b"true"),
        b'f' => keyword(bytes, at, b"false"),
        b'n' => keyword(bytes, at, b"null"),
        _ => None,
    }
}

/// Past the dictionary starting at `at` (`<<`), noting its `/Length` in `length`.
fn dictionary(
    bytes: &[u8],
    at: usize,
    depth: usize,
    mut length: Option<&mut RawLength>,
) -> Option<usize> {
    let mut pos = space(bytes, at + 2);
    loop {
        if bytes.get(pos..)?.starts_with(b">>") {
            return Some(pos + 2);
        }
        if *bytes.get(pos)? != b'/' {
            return None;
        }
        let end = name_end(bytes, pos);
        let at_value = space(bytes, end);
        if let Some(length) = length
            .as_deref_mut()
            .filter(|_| name_is(bytes, pos, end, b"Length"))
        {
            *length = match reference(bytes, at_value) {
                Some((id, _)) => RawLength::Indirect(id),
                None => unsigned(bytes, at_value)
                    .filter(|&(_, end)| !bytes.get(end).is_some_and(|&c| is_regular(c)))
                    .and_then(|(n, _)| i64::try_from(n).ok())
                    .map_or(RawLength::Other, RawLength::Direct),
            };
        }
        pos = space(bytes, value(bytes, at_value, depth + 1)?);
    }
}

/// Past the literal string starting at `at` (`(`): balanced parentheses, `\` escaping the
/// next byte.
fn literal_string(bytes: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut pos = at;
    loop {
        match *bytes.get(pos)? {
            b'\\' => pos += 1,
            b'(' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
            }
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(pos + 1);
                }
            }
            _ => {}
        }
        pos += 1;
    }
}

/// Where the name starting at `at` (`/`) ends: regular characters, `#` and two hexadecimal
/// digits standing for one byte (any other `#` ends the name, as lopdf reads it).
fn name_end(bytes: &[u8], at: usize) -> usize {
    let mut pos = at + 1;
    while let Some(&c) = bytes.get(pos) {
        if c == b'#' {
            let hex = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(pos + 1) && hex(pos + 2)) {
                break;
            }
            pos += 3;
        } else if is_regular(c) {
            pos += 1;
        } else {
            break;
        }
    }
    pos
}

/// Whether the name `bytes[at..end]` (from [`name_end`]) decodes to `word`.
fn name_is(bytes: &[u8], at: usize, end: usize, word: &[u8]) -> bool {
    let raw = &bytes[at + 1..end];
    if !raw.contains(&b'#') {
        return raw == word;
    }
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'#' {
            let digits = std::str::from_utf8(&raw[i + 1..i + 3]).ok();
            decoded.push(
                digits
                    .and_then(|d| u8::from_str_radix(d, 16).ok())
                    .unwrap_or(0),
            );
            i += 3;
        } else {
            decoded.push(raw[i]);
            i += 1;
        }
    }
    decoded == word
}

/// Past the number starting at `at`: a sign, digits and at most one point, then a delimiter.
fn number(bytes: &[u8], at: usize) -> Option<usize> {
    let mut pos = at + usize::from(matches!(bytes[at], b'+' | b'-'));
    let (mut digits, mut points) = (0, 0);
    while let Some(&c) = bytes.get(pos) {
        match c {
            b'0'..=b'9' => digits += 1,
            b'.' => points += 1,
            _ => break,
        }
        pos += 1;
    }
    let delimited = !bytes.get(pos).is_some_and(|&c| is_regular(c));
    (digits > 0 && points <= 1 && delimited).then_some(pos)
}

/// `N G R` at `at`, as lopdf reads a reference.
fn reference(bytes: &[u8], at: usize) -> Option<(ObjectId, usize)> {
    let (number, end) = unsigned(bytes, at)?;
    let (generation, end) = unsigned(bytes, space(bytes, end))?;
    let r = space(bytes, end);
    let delimited = !bytes.get(r + 1).is_some_and(|&c| is_regular(c));
    (bytes.get(r) == Some(&b'R') && delimited).then_some((
        (u32::try_from(number).ok()?, u16::try_from(generation).ok()?),
        r + 1,
    ))
}

/// Past `word` at `at`, followed by a delimiter.
fn keyword(bytes: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    let end = at + word.len();
    let delimited = !bytes.get(end).is_some_and(|&c| is_regular(c));
    (bytes.get(at..)?.starts_with(word) && delimited).then_some(end)
}

/// The unsigned integer at `at` and where its digits end.
fn unsigned(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let len = bytes
        .get(at..)?
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if len == 0 {
        return None;
    }
    let value = bytes[at..at + len].iter().try_fold(0u64, |v, &d| {
        v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some((value, at + len))
}

/// `N G obj` at `at` (after white space and comments), as lopdf reads it: the id and where
/// the object's text starts.
fn header(bytes: &[u8], at: usize) -> Option<(ObjectId, usize)> {
    let (number, end) = unsigned(bytes, space(bytes, at))?;
    let (generation, end) = unsigned(bytes, space(bytes, end))?;
    let obj = space(bytes, end);
    if !bytes.get(obj..)?.starts_with(b"obj") {
        return None;
    }
    let id = (u32::try_from(number).ok()?, u16::try_from(generation).ok()?);
    Some((id, space(bytes, obj + 3)))
}

/// Past the white space and comments at `at` (a comment ends with an end-of-line marker;
/// without one it is not skipped).
fn space(bytes: &[u8], mut at: usize) -> usize {
    loop {
        while bytes.get(at).is_some_and(|&c| is_white(c)) {
            at += 1;
        }
        if bytes.get(at) != Some(&b'%') {
            return at;
        }
        let Some(line_end) = bytes[at..].iter().position(|&c| c == b'\r' || c == b'\n') else {
            return at;
        };
        at = eol(bytes, at + line_end).unwrap_or(at + line_end + 1);
    }
}

/// Past the end-of-line marker at `at`.
fn eol(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at..)? {
        [b'\r', b'\n', ..] => Some(at + 2),
        [b'\n' | b'\r', ..] => Some(at + 1),
        _ => None,
    }
}

fn is_white(c: u8) -> bool {
    b" \t\n\r\0\x0C".contains(&c)
}

fn is_regular(c: u8) -> bool {
    !is_white(c) && !b"()<>[]{}/%".contains(&c)
}

fn same_entry(a: &XrefEntry, b: &XrefEntry) -> bool {
    match (a, b) {
        (XrefEntry::Free, XrefEntry::Free) | (XrefEntry::UnusableFree, XrefEntry::UnusableFree) => {
            true
        }
        (
            XrefEntry::Normal {
                offset: o1,
                generation: g1,
            },
            XrefEntry::Normal {
                offset: o2,
                generation: g2,
            },
        ) => o1 == o2 && g1 == g2,
        (
            XrefEntry::Compressed {
                container: c1,
                index: i1,
            },
            XrefEntry::Compressed {
                container: c2,
                index: i2,
            },
        ) => c1 == c2 && i1 == i2,
        _ => false,
    }
}

/// The `startxref` offset of `bytes`, found as lopdf finds it.
fn startxref(bytes: &[u8]) -> Option<usize> {
    let end = bytes
        .iter()
        .rposition(|&c| !is_white(c))
        .map_or(0, |pos| pos + 1);
    let from = end - end.min(1024);
    let eof = from + memchr::memmem::rfind(&bytes[from..end], b"%%EOF")?;
    if eof <= 25 {
        return None;
    }
    let at = eof - 25 + memchr::memmem::rfind(&bytes[eof - 25..eof], b"startxref")?;
    // `startxref`, an optional space, an end of line, the offset between spaces, an end of
    // line, `%%EOF`.
    let mut pos = at + 9;
    if bytes.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos = eol(bytes, pos)?;
    while bytes.get(pos) == Some(&b' ') {
        pos += 1;
    }
    let (offset, mut pos) = unsigned(bytes, pos)?;
    while bytes.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos = eol(bytes, pos)?;
    if !bytes[pos..].starts_with(b"%%EOF") {
        return None;
    }
    let offset = usize::try_from(offset).ok()?;
    (offset <= bytes.len()).then_some(offset)
}

/// Merged cross-reference data of a `/Prev` chain.
struct Chain {
    entries: BTreeMap<u32, XrefEntry>,
    /// The newest section's trailer, without `/Prev` and `/XRefStm`.
    trailer: Dictionary,
    offsets: Vec<usize>,
}

/// The cross-reference chain starting at `start`, merged as lopdf merges it; `None` where
/// lopdf would correct an offset, repair, or ignore an unreadable hybrid stream.
fn read_chain(bytes: &[u8], start: usize) -> Option<Chain> {
    let (mut entries, mut trailer) = section(bytes, start)?;
    hybrid(bytes, &mut entries, trailer.remove(b"XRefStm"))?;
    let mut offsets = vec![start];
    let mut prev = trailer.remove(b"Prev");
    while let Some(at) = prev.and_then(|p| p.as_i64().ok()) {
        if offsets.iter().any(|&o| o as i64 == at) {
            break;
        }
        let at = usize::try_from(at).ok().filter(|&a| a <= bytes.len())?;
        if offsets.len() >= MAX_SECTIONS {
            return None;
        }
        let (mut older, mut older_trailer) = section(bytes, at)?;
        hybrid(bytes, &mut older, older_trailer.remove(b"XRefStm"))?;
        for (number, entry) in older {
            entries.entry(number).or_insert(entry);
        }
        offsets.push(at);
        prev = older_trailer.remove(b"Prev");
    }
    Some(Chain {
        entries,
        trailer,
        offsets,
    })
}

/// Merges the cross-reference stream a hybrid section names with `/XRefStm`.
fn hybrid(bytes: &[u8], entries: &mut BTreeMap<u32, XrefEntry>, at: Option<Object>) -> Option<()> {
    let Some(at) = at.and_then(|a| a.as_i64().ok()) else {
        return Some(());
    };
    let at = usize::try_from(at).ok().filter(|&a| a <= bytes.len())?;
    let (stream_entries, _) = section(bytes, at)?;
    for (number, entry) in stream_entries {
        if !matches!(
            entries.get(&number),
            Some(XrefEntry::Normal { .. } | XrefEntry::Compressed { .. })
        ) {
            entries.insert(number, entry);
        }
    }
    Some(())
}

/// One cross-reference section (table and trailer, or stream) at `at`.
fn section(bytes: &[u8], at: usize) -> Option<(BTreeMap<u32, XrefEntry>, Dictionary)> {
    let rest = bytes.get(at..)?;
    if rest.starts_with(b"xref") {
        table(bytes, at)
    } else if lopdf_sees_object(rest) {
        xref_stream(bytes, at)
    } else {
        None
    }
}

/// Whether lopdf takes `rest` for the start of an indirect object without correcting the
/// offset: `N G obj` with white space between, not followed by a letter or digit.
fn lopdf_sees_object(rest: &[u8]) -> bool {
    let digits = |at: usize, max: usize| {
        let n = rest[at.min(rest.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        (n > 0 && n <= max).then_some(at + n)
    };
    let blanks = |at: usize| {
        let n = rest[at.min(rest.len())..]
            .iter()
            .take_while(|&&c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
            .count();
        (n > 0).then_some(at + n)
    };
    let Some(obj) = digits(0, 10)
        .and_then(blanks)
        .and_then(|a| digits(a, 5))
        .and_then(blanks)
    else {
        return false;
    };
    rest[obj..].starts_with(b"obj") && !rest.get(obj + 3).is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A cross-reference stream section, decoded by lopdf.
fn xref_stream(bytes: &[u8], at: usize) -> Option<(BTreeMap<u32, XrefEntry>, Dictionary)> {
    let (_, body) = header(bytes, at)?;
    let extent = extent(bytes, body)?;
    let (data, RawLength::Direct(len)) = extent.stream? else {
        return None;
    };
    let data_end = data.checked_add(usize::try_from(len).ok()?)?;
    endstream(bytes, data_end)?;
    let Some(Object::Dictionary(dict)) = parse_direct(&bytes[body..extent.end]) else {
        return None;
    };
    let stream = Stream::new(dict, bytes.get(data..data_end)?.to_vec());
    let (xref, trailer) =
        lopdf::xref::decode_xref_stream_with_limit(stream, Some(MAX_DECOMPRESSED_STREAM)).ok()?;
    Some((xref.entries, trailer))
}

/// A classic cross-reference table and its trailer, read with lopdf's (lenient) grammar.
fn table(bytes: &[u8], at: usize) -> Option<(BTreeMap<u32, XrefEntry>, Dictionary)> {
    let mut pos = at + 4;
    if bytes.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos = eol(bytes, pos)?;
    let mut entries = BTreeMap::new();
    let mut subsections = 0;
    // Subsections: `start count`, then entries `offset generation n|f` until one does not
    // parse.
    while let Some((first, mut next)) = subsection_header(bytes, pos) {
        subsections += 1;
        let mut index = 0u64;
        while let Some((offset, generation, in_use, end)) = table_entry(bytes, next) {
            let entry = if !in_use {
                Some(XrefEntry::Free)
            } else {
                u16::try_from(generation)
                    .ok()
                    .map(|generation| XrefEntry::Normal { offset, generation })
            };
            if let (Some(entry), Some(number)) = (
                entry,
                first.checked_add(index).and_then(|n| u32::try_from(n).ok()),
            ) {
                entries.insert(number, entry);
            }
            index += 1;
            next = end;
        }
        pos = next;
    }
    if subsections == 0 {
        return None;
    }
    pos = space(bytes, pos);
    if !bytes[pos..].starts_with(b"trailer") {
        return None;
    }
    let dict_at = space(bytes, pos + 7);
    if !bytes.get(dict_at..)?.starts_with(b"<<") {
        return None;
    }
    let dict_end = dictionary(bytes, dict_at, 0, None)?;
    let Some(Object::Dictionary(trailer)) = parse_direct(&bytes[dict_at..dict_end]) else {
        return None;
    };
    trailer.get(b"Size").and_then(Object::as_i64).ok()?;
    Some((entries, trailer))
}

/// `start count` and its end of line (an optional space before it).
fn subsection_header(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let (first, end) = unsigned(bytes, at)?;
    usize::try_from(first).ok()?;
    if bytes.get(end) != Some(&b' ') {
        return None;
    }
    let (count, mut end) = unsigned(bytes, end + 1)?;
    u32::try_from(count).ok()?;
    if bytes.get(end) == Some(&b' ') {
        end += 1;
    }
    Some((first, eol(bytes, end)?))
}

/// One table entry: offset, generation, in use, and where the next starts.
fn table_entry(bytes: &[u8], at: usize) -> Option<(u32, u32, bool, usize)> {
    let (offset, end) = unsigned(bytes, at)?;
    if bytes.get(end) != Some(&b' ') {
        return None;
    }
    let (generation, end) = unsigned(bytes, end + 1)?;
    if bytes.get(end) != Some(&b' ') {
        return None;
    }
    let in_use = match bytes.get(end + 1)? {
        b'n' => true,
        b'f' => false,
        _ => return None,
    };
    let end = match bytes.get(end + 2..)? {
        [b' ', b'\r' | b'\n', ..] | [b'\r', b'\n', ..] => end + 4,
        [b'\n' | b'\r', ..] => end + 3,
        _ => return None,
    };
    Some((
        u32::try_from(offset).ok()?,
        u32::try_from(generation).ok()?,
        in_use,
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_objects_as_lopdf_reads_them() {
        let text = b"<< /Length 5 0 R /A [1 0 R (a\\)b) <41 42>] /B << /C true >> >>\nstream\nxx";
        let e = extent(text, 0).unwrap();
        assert_eq!(
            e.stream,
            Some((text.len() - 2, RawLength::Indirect((5, 0))))
        );
        let e = extent(b"<< /Length 12 /X 1.5 >> 7", 0).unwrap();
        assert_eq!(e.end, 23);
        assert_eq!(e.stream, None);
        assert_eq!(extent(b"(a(b)c) x", 0).unwrap().end, 7);
        assert_eq!(extent(b"[1 2 % comment\n 3]", 0).unwrap().end, 18);
        assert_eq!(extent(b"/A#42#4 x", 0).unwrap().end, 5);
        let e = extent(b"<< /Len#67th 7 >>\nstream\n", 0).unwrap();
        assert_eq!(e.stream.map(|(_, l)| l), Some(RawLength::Direct(7)));
        // Read otherwise by lopdf, or not at all: refused.
        assert!(extent(b"[1 2", 0).is_none());
        assert!(extent(b"12abc", 0).is_none());
        assert!(extent(b"(unterminated", 0).is_none());
    }

    /// `base` with one revision appended: the objects (number, text), a table for them and a
    /// trailer; and where the table starts.
    fn revise(base: &[u8], objects: &[(u32, &str)], prev: Option<usize>) -> (Vec<u8>, usize) {
        let mut out = base.to_vec();
        let mut offsets = Vec::new();
        for (number, text) in objects {
            offsets.push((*number, out.len()));
            out.extend(format!("{number} 0 obj\n{text}\nendobj\n").as_bytes());
        }
        let xref = out.len();
        out.extend(b"xref\n0 1\n0000000000 65535 f \n");
        for (number, offset) in offsets {
            out.extend(format!("{number} 1\n{offset:010} 00000 n \n").as_bytes());
        }
        let prev = prev.map(|p| format!(" /Prev {p}")).unwrap_or_default();
        out.extend(
            format!("trailer\n<< /Size 9 /Root 1 0 R{prev} >>\nstartxref\n{xref}\n%%EOF\n")
                .as_bytes(),
        );
        (out, xref)
    }

    const FIRST: [(u32, &str); 3] = [
        (1, "<< /Type /Catalog /Pages 2 0 R >>"),
        (2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>"),
        (
            3,
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100] /Contents 4 0 R /Annots [6 0 R] >>",
        ),
    ];

    /// Whether the revision of `bytes` ending at `end` was read from the final document; when
    /// it was, its objects are those of its own parse.
    fn read_as_its_own_parse(bytes: &[u8], end: usize) -> bool {
        let doc = crate::pdf::parse_document(bytes).unwrap();
        let Some(index) = FinalDocument::index(bytes, &doc) else {
            return false;
        };
        let Some(revision) = index.revision(end, &[]) else {
            return false;
        };
        let whole = crate::pdf::parse_document(&bytes[..end]).unwrap();
        let expected: Objects<'_> = whole.objects.iter().map(|(id, o)| (*id, o)).collect();
        assert!(revision.objects() == expected, "{:?}", revision.objects());
        true
    }

    #[test]
    fn a_changed_object_is_read_from_the_revision() {
        let mut first = FIRST.to_vec();
        first.push((4, "<< /Length 3 >>\nstream\nABC\nendstream"));
        first.push((6, "<< /Type /Annot /Subtype /Text /Rect [0 0 1 1] >>"));
        let (signed, xref) = revise(b"%PDF-1.7\n", &first, None);
        let (changed, _) = revise(
            &signed,
            &[(
                3,
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 50 50] /Contents 4 0 R >>",
            )],
            Some(xref),
        );
        assert!(read_as_its_own_parse(&changed, signed.len()));
    }

    #[test]
    fn a_stream_whose_length_object_changed_is_read_with_the_old_length() {
        // Both lengths frame the data with `endstream`: the final document reads 17 bytes,
        // the signed revision 3.
        let mut first = FIRST.to_vec();
        first.push((
            4,
            "<< /Length 5 0 R >>\nstream\nABC\nendstream\nXYZ\nendstream",
        ));
        first.push((5, "3"));
        first.push((6, "<< /Type /Annot /Subtype /Text /Rect [0 0 1 1] >>"));
        let (signed, xref) = revise(b"%PDF-1.7\n", &first, None);
        let (changed, _) = revise(&signed, &[(5, "17")], Some(xref));
        let doc = crate::pdf::parse_document(&changed).unwrap();
        let content = &doc.get_object((4, 0)).unwrap().as_stream().unwrap().content;
        assert_eq!(content.len(), 17);
        assert!(read_as_its_own_parse(&changed, signed.len()));
    }

    #[test]
    fn an_object_completed_after_the_signed_revision_is_not_taken_from_the_final_document() {
        // Object 6, an annotation of the signed page, is a string left open at the end of the
        // signed revision: its own parse has no object 6, the final document closes it.
        let mut first = FIRST.to_vec();
        first.push((4, "<< /Length 3 >>\nstream\nABC\nendstream"));
        first.push((6, "[(open"));
        let (signed, xref) = revise(b"%PDF-1.7\n", &first, None);
        let mut closing = signed.clone();
        closing.extend(b")]\nendobj\n");
        let (changed, _) = revise(&closing, &[(7, "<< /Unrelated true >>")], Some(xref));
        let doc = crate::pdf::parse_document(&changed).unwrap();
        assert!(doc.objects.contains_key(&(6, 0)));
        let own = crate::pdf::parse_document(&signed).unwrap();
        assert!(!own.objects.contains_key(&(6, 0)));
        // Either parsed whole, or read exactly as the whole parse reads it.
        read_as_its_own_parse(&changed, signed.len());
    }

    #[test]
    fn reads_a_table_and_its_trailer() {
        let pdf = b"xref\n0 2\n0000000000 65535 f \n0000000017 00000 n \n3 1\n0000000099 00001 n\r\ntrailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n0\n%%EOF\n";
        let (entries, trailer) = table(pdf, 0).unwrap();
        assert!(matches!(entries[&0], XrefEntry::Free));
        assert!(matches!(
            entries[&1],
            XrefEntry::Normal {
                offset: 17,
                generation: 0
            }
        ));
        assert!(matches!(
            entries[&3],
            XrefEntry::Normal {
                offset: 99,
                generation: 1
            }
        ));
        assert_eq!(trailer.get(b"Size").unwrap().as_i64().unwrap(), 4);
        assert_eq!(startxref(pdf), Some(0));
        // No /Size: lopdf refuses the section.
        let pdf = b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Root 1 0 R >>\n";
        assert!(table(pdf, 0).is_none());
    }
}
