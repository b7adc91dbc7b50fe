//! The incremental-update section of a signature (ISO 32000-1 §7.5.6, §12.8).
//!
//! Parsing is lopdf's; everything appended is written here so each offset is known: updated
//! and new objects, the signature dictionary with a fixed-width `/ByteRange` placeholder and a
//! zeroed `/Contents` hex string, then a cross-reference table or stream of the same kind as
//! the file's last section, and a trailer whose `/Prev` is the previous `startxref`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use lopdf::{dictionary, Dictionary, Document, Object, ObjectId, Stream, Writer};

use super::placement::{self, deref, PageGeometry, Rect};
use super::syntax::{decode_text_string, pdf_date, text_string};
use super::{PageSelector, PdfError, PdfSignOptions, MAX_CONTENTS_SIZE, MAX_INPUT_LEN};

/// How far from the end of the file `startxref` is looked for.
const STARTXREF_WINDOW: usize = 4096;

/// How deep nested form fields (/Kids) are walked.
const MAX_FIELD_DEPTH: usize = 32;

/// Width of the `/ByteRange` array text: `[0 ` + three 10-digit numbers + `]`.
const BYTE_RANGE_LEN: usize = 36;

/// Annotation flags of the widget: Print (4) + Locked (128).
const WIDGET_FLAGS: i64 = 132;

/// The kind of the file's last cross-reference section, which the update must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XrefKind {
    /// A classic `xref` table (also hybrid files, whose trailer names an `/XRefStm`).
    Table,
    /// A cross-reference stream.
    Stream,
}

/// The laid-out update before `/Contents` is filled: the bytes to append to the original
/// file (whose length is `base_len`); offsets and `/ByteRange` count from the file's start.
pub(crate) struct LaidOut {
    pub base_len: usize,
    pub tail: Vec<u8>,
    pub byte_range: [usize; 4],
    pub field_name: String,
}

/// What the update needs to know of the original bytes it is appended to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Base {
    /// Length of the original file.
    pub len: usize,
    /// Whether its last byte is an end-of-line (otherwise the update starts with one).
    pub ends_with_eol: bool,
}

impl Base {
    /// The base formed by `input`.
    pub fn of(input: &[u8]) -> Self {
        Self {
            len: input.len(),
            ends_with_eol: matches!(input.last(), Some(b'\n' | b'\r')),
        }
    }
}

/// What the new signature dictionary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureKind {
    /// A PAdES signature (`/Type /Sig`, `/SubFilter /ETSI.CAdES.detached`).
    Signature,
    /// A document time-stamp (`/Type /DocTimeStamp`, `/SubFilter /ETSI.RFC3161`).
    DocumentTimestamp,
}

/// Builds the incremental update for one signature over a PDF held in memory.
pub(crate) fn prepare(
    input: &[u8],
    opts: &PdfSignOptions,
    kind: SignatureKind,
) -> Result<LaidOut, PdfError> {
    check_contents_size(opts)?;
    prepare_opened(open_for_update(input)?, Base::of(input), opts, kind)
}

/// Refuses a `/Contents` reservation that is empty or too large.
pub(crate) fn check_contents_size(opts: &PdfSignOptions) -> Result<(), PdfError> {
    if opts.contents_size == 0 || opts.contents_size > MAX_CONTENTS_SIZE {
        return Err(PdfError::InvalidOption(format!(
            "contents size must be between 1 and {MAX_CONTENTS_SIZE} bytes"
        )));
    }
    Ok(())
}

/// Builds the incremental update for one signature over an opened document (parsed whole,
/// or only the objects a signature touches, see [`super::sparse`]).
pub(crate) fn prepare_opened(
    opened: Opened,
    base: Base,
    opts: &PdfSignOptions,
    kind: SignatureKind,
) -> Result<LaidOut, PdfError> {
    let Opened {
        prev_startxref,
        xref_kind,
        doc,
        root_id,
    } = opened;
    let catalog = doc
        .get_dictionary(root_id)
        .map_err(|_| PdfError::Malformed("document catalog is missing".into()))?;
    refuse_if_certified_no_changes(&doc, catalog)?;

    let mut update = Update::new(&doc);

    // The form and its existing field names.
    let acroform = match catalog.get(b"AcroForm") {
        Ok(Object::Reference(id)) => match doc.get_object(*id) {
            Ok(Object::Dictionary(d)) => Some((Some(*id), d.clone())),
            _ => None,
        },
        Ok(Object::Dictionary(d)) => Some((None, d.clone())),
        _ => None,
    };
    let mut names = HashSet::new();
    if let Some((_, form)) = &acroform {
        if let Ok(fields) = form.get(b"Fields") {
            collect_field_names(&doc, fields, "", 0, &mut HashSet::new(), &mut names);
        }
    }
    let field_name = choose_field_name(opts.field_name.as_deref(), &names)?;

    // The page and the widget rectangle.
    let pages = doc.get_pages();
    let count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    if count == 0 {
        return Err(PdfError::Malformed("document has no pages".into()));
    }
    let page_number = page_number(opts, count);
    let page_id = *pages.get(&page_number).ok_or(PdfError::PageOutOfRange {
        requested: page_number,
        count,
    })?;
    let page = doc
        .get_dictionary(page_id)
        .map_err(|_| PdfError::Malformed(format!("page {page_number} is not a dictionary")))?
        .clone();

    let sig_id = update.allocate();
    let widget_id = update.allocate();
    let mut widget = dictionary! {
        "FT" => "Sig",
        "Type" => "Annot",
        "Subtype" => "Widget",
        "F" => WIDGET_FLAGS,
        "T" => text_string(&field_name),
        "V" => Object::Reference(sig_id),
        "P" => Object::Reference(page_id),
    };
    match &opts.visible {
        None => widget.set("Rect", vec![0.into(), 0.into(), 0.into(), 0.into()]),
        Some(visible) => {
            let geometry = PageGeometry::of_page(&doc, page_id)?;
            let previous = latest_signature_widget(&doc, &page);
            let shown =
                placement::displayed_rect(&geometry, &visible.placement, previous, page_number)?;
            let user = geometry.to_user(shown);
            let ap = visible
                .appearance
                .build(shown.w, shown.h, geometry.rotate, &mut |o| update.add(o))?;
            widget.set(
                "Rect",
                user.corners().iter().map(|&v| real(v)).collect::<Vec<_>>(),
            );
            widget.set("AP", dictionary! { "N" => Object::Reference(ap) });
        }
    }
    update.put(widget_id, Object::Dictionary(widget));

    // The page's /Annots gets the widget.
    let widget_ref = Object::Reference(widget_id);
    let mut page = page;
    match page.get(b"Annots") {
        Ok(Object::Reference(annots_id)) => {
            let annots_id = *annots_id;
            let mut annots = array_object(&doc, annots_id, "/Annots")?;
            annots.push(widget_ref.clone());
            update.put(annots_id, Object::Array(annots));
        }
        Ok(Object::Array(_)) => {
            if let Ok(Object::Array(annots)) = page.get_mut(b"Annots") {
                annots.push(widget_ref.clone());
            }
            update.put(page_id, Object::Dictionary(page));
        }
        _ => {
            page.set("Annots", vec![widget_ref.clone()]);
            update.put(page_id, Object::Dictionary(page));
        }
    }

    // The catalog's /AcroForm gets the field and /SigFlags 3.
    let (form_id, mut form) = acroform.unwrap_or((None, Dictionary::new()));
    match form.get(b"Fields") {
        Ok(Object::Reference(fields_id)) => {
            let fields_id = *fields_id;
            let mut fields = array_object(&doc, fields_id, "/Fields")?;
            fields.push(widget_ref);
            update.put(fields_id, Object::Array(fields));
        }
        Ok(Object::Array(_)) => {
            if let Ok(Object::Array(fields)) = form.get_mut(b"Fields") {
                fields.push(widget_ref);
            }
        }
        _ => form.set("Fields", vec![widget_ref]),
    }
    let flags = match form.get(b"SigFlags").map(|o| deref(&doc, o)) {
        Ok(Object::Integer(f)) => *f,
        _ => 0,
    };
    form.set("SigFlags", flags | 3);
    match form_id {
        Some(id) => update.put(id, Object::Dictionary(form)),
        None => {
            let mut catalog = catalog.clone();
            catalog.set("AcroForm", Object::Dictionary(form));
            update.put(root_id, Object::Dictionary(catalog));
        }
    }

    let sig = SignatureDictionary::new(opts, kind);
    write_update(
        base,
        &doc,
        update,
        Some((sig_id, &sig)),
        prev_startxref,
        xref_kind,
        root_id,
        field_name,
    )
}

/// The 1-based number of the page that gets the widget in a document of `count` pages.
pub(crate) fn page_number(opts: &PdfSignOptions, count: u32) -> u32 {
    match opts.visible.as_ref().map(|v| v.page) {
        None => 1,
        Some(PageSelector::Last) => count,
        Some(PageSelector::Number(n)) => n,
    }
}

/// Appends an update that adds the Document Security Store (ETSI EN 319 142-1 §5.4.2):
/// certificates, OCSP responses and CRLs as streams, referenced from the catalog's `/DSS`.
/// An existing DSS keeps its entries; the new values are added to them.
pub(crate) fn append_dss(
    input: &[u8],
    certs: &[Vec<u8>],
    ocsps: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<Vec<u8>, PdfError> {
    let Opened {
        prev_startxref,
        xref_kind,
        doc,
        root_id,
    } = open_for_update(input)?;
    let mut catalog = doc
        .get_dictionary(root_id)
        .map_err(|_| PdfError::Malformed("document catalog is missing".into()))?
        .clone();
    let mut dss = match catalog.get(b"DSS") {
        Ok(Object::Reference(id)) => doc.get_dictionary(*id).cloned().unwrap_or_default(),
        Ok(Object::Dictionary(d)) => d.clone(),
        _ => Dictionary::new(),
    };
    let mut update = Update::new(&doc);
    for (key, values) in [(&b"Certs"[..], certs), (b"OCSPs", ocsps), (b"CRLs", crls)] {
        let mut items = match dss.get(key).map(|o| deref(&doc, o)) {
            Ok(Object::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        for value in values {
            let stream = Stream::new(Dictionary::new(), value.clone());
            items.push(Object::Reference(update.add(Object::Stream(stream))));
        }
        if !items.is_empty() {
            dss.set(key.to_vec(), items);
        }
    }
    dss.set("Type", "DSS");
    let dss_id = update.add(Object::Dictionary(dss));
    catalog.set("DSS", Object::Reference(dss_id));
    update.put(root_id, Object::Dictionary(catalog));
    let laid_out = write_update(
        Base::of(input),
        &doc,
        update,
        None,
        prev_startxref,
        xref_kind,
        root_id,
        String::new(),
    )?;
    let mut out = Vec::with_capacity(input.len() + laid_out.tail.len());
    out.extend_from_slice(input);
    out.extend_from_slice(&laid_out.tail);
    Ok(out)
}

/// A PDF parsed for appending an update: where its last cross-reference section is and what
/// kind, the document (whole, or the objects a signature touches), and its catalog's id.
pub(crate) struct Opened {
    pub prev_startxref: usize,
    pub xref_kind: XrefKind,
    pub doc: Document,
    pub root_id: ObjectId,
}

/// Checks and parses `input` for an incremental update; refuses oversized, non-PDF and
/// encrypted input.
fn open_for_update(input: &[u8]) -> Result<Opened, PdfError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(PdfError::Malformed(format!(
            "file is {} bytes, more than the {} bytes accepted",
            input.len(),
            MAX_INPUT_LEN
        )));
    }
    if !input.starts_with(b"%PDF-") {
        return Err(PdfError::Malformed(
            "file does not start with a %PDF- header".into(),
        ));
    }
    let (prev_startxref, xref_kind) = last_xref_section(input)?;
    Opened::new(prev_startxref, xref_kind, load(input)?)
}

impl Opened {
    /// Checks that `doc` can take an update: not encrypted, and with a catalog reference.
    pub fn new(
        prev_startxref: usize,
        xref_kind: XrefKind,
        doc: Document,
    ) -> Result<Self, PdfError> {
        // lopdf decrypts files with an empty user password and drops /Encrypt from the trailer.
        if doc.trailer.has(b"Encrypt") || doc.encryption_state.is_some() {
            return Err(PdfError::Encrypted);
        }
        let root_id = doc
            .trailer
            .get(b"Root")
            .and_then(Object::as_reference)
            .map_err(|_| PdfError::Malformed("trailer has no /Root reference".into()))?;
        Ok(Self {
            prev_startxref,
            xref_kind,
            doc,
            root_id,
        })
    }
}

/// Loads the document, mapping lopdf's failures onto our errors.
fn load(input: &[u8]) -> Result<Document, PdfError> {
    let doc = super::parse_document(input).map_err(|e| match e {
        lopdf::Error::Decryption(_)
        | lopdf::Error::InvalidPassword
        | lopdf::Error::AlreadyEncrypted => PdfError::Encrypted,
        other => PdfError::Malformed(other.to_string()),
    })?;
    if doc.xref_recovery.is_some() {
        // An update's /Prev must point at cross-reference data that readers can follow.
        return Err(PdfError::Malformed(
            "cross-reference data is damaged (repair the file before signing)".into(),
        ));
    }
    Ok(doc)
}

/// Finds the last `startxref` and the kind of section it points at.
pub(crate) fn last_xref_section(input: &[u8]) -> Result<(usize, XrefKind), PdfError> {
    let tail_start = input.len().saturating_sub(STARTXREF_WINDOW);
    let offset = startxref_offset(&input[tail_start..], input.len())?;
    Ok((offset, xref_kind_at(&input[offset..])?))
}

/// The offset the last `startxref` names, read from the file's last bytes `tail` (at most
/// [`STARTXREF_WINDOW`] of them); `file_len` bounds it.
pub(crate) fn startxref_offset(tail: &[u8], file_len: usize) -> Result<usize, PdfError> {
    let tail = &tail[tail.len().saturating_sub(STARTXREF_WINDOW)..];
    let pos = memchr::memmem::rfind(tail, b"startxref").ok_or_else(|| {
        PdfError::Malformed("no startxref at the end of the file (truncated?)".into())
    })?;
    if memchr::memmem::find(&tail[pos..], b"%%EOF").is_none() {
        return Err(PdfError::Malformed(
            "no %%EOF after startxref (truncated?)".into(),
        ));
    }
    let digits: Vec<u8> = tail[pos + 9..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&o| o < file_len)
        .ok_or_else(|| {
            PdfError::Malformed("startxref offset is missing or beyond the end of the file".into())
        })
}

/// The kind of cross-reference section that starts `at` (the bytes from its offset on).
pub(crate) fn xref_kind_at(at: &[u8]) -> Result<XrefKind, PdfError> {
    let at = &at[at.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    if at.starts_with(b"xref") {
        return Ok(XrefKind::Table);
    }
    // `N G obj` introducing a cross-reference stream.
    let mut rest = at;
    for _ in 0..2 {
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let ws = rest[n..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        if n == 0 || ws == 0 {
            return Err(PdfError::Malformed(
                "startxref does not point at a cross-reference section".into(),
            ));
        }
        rest = &rest[n + ws..];
    }
    if rest.starts_with(b"obj") {
        Ok(XrefKind::Stream)
    } else {
        Err(PdfError::Malformed(
            "startxref does not point at a cross-reference section".into(),
        ))
    }
}

/// Refuses documents whose certification signature forbids any change (DocMDP P=1,
/// ISO 32000-1 §12.8.2.2).
fn refuse_if_certified_no_changes(doc: &Document, catalog: &Dictionary) -> Result<(), PdfError> {
    let Ok(perms) = catalog.get(b"Perms") else {
        return Ok(());
    };
    let Object::Dictionary(perms) = deref(doc, perms) else {
        return Ok(());
    };
    let Ok(docmdp) = perms.get(b"DocMDP") else {
        return Ok(());
    };
    let Object::Dictionary(sig) = deref(doc, docmdp) else {
        return Ok(());
    };
    let Ok(references) = sig.get(b"Reference") else {
        return Ok(());
    };
    let Object::Array(references) = deref(doc, references) else {
        return Ok(());
    };
    for reference in references {
        let Object::Dictionary(reference) = deref(doc, reference) else {
            continue;
        };
        let is_docmdp = matches!(reference.get(b"TransformMethod").map(|o| deref(doc, o)), Ok(Object::Name(n)) if n == b"DocMDP");
        if !is_docmdp {
            continue;
        }
        // /P defaults to 2 when absent.
        let p = match reference.get(b"TransformParams").map(|o| deref(doc, o)) {
            Ok(Object::Dictionary(params)) => match params.get(b"P").map(|o| deref(doc, o)) {
                Ok(Object::Integer(p)) => *p,
                _ => 2,
            },
            _ => 2,
        };
        if p == 1 {
            return Err(PdfError::CertifiedNoChanges);
        }
    }
    Ok(())
}

/// Collects fully qualified field names (ISO 32000-1 §12.7.3.2), bounded in depth.
fn collect_field_names(
    doc: &Document,
    fields: &Object,
    prefix: &str,
    depth: usize,
    seen: &mut HashSet<ObjectId>,
    names: &mut HashSet<String>,
) {
    if depth > MAX_FIELD_DEPTH {
        return;
    }
    let Object::Array(items) = deref(doc, fields) else {
        return;
    };
    for item in items {
        if let Object::Reference(id) = item {
            if !seen.insert(*id) {
                continue;
            }
        }
        let Object::Dictionary(field) = deref(doc, item) else {
            continue;
        };
        let name = match field.get(b"T").map(|o| deref(doc, o)) {
            Ok(Object::String(bytes, _)) => {
                let part = decode_text_string(bytes);
                if prefix.is_empty() {
                    part
                } else {
                    format!("{prefix}.{part}")
                }
            }
            _ => prefix.to_string(),
        };
        if !name.is_empty() {
            names.insert(name.clone());
        }
        if let Ok(kids) = field.get(b"Kids") {
            collect_field_names(doc, kids, &name, depth + 1, seen, names);
        }
    }
}

/// The requested field name, checked, or the first free `Signature<N>`.
fn choose_field_name(
    requested: Option<&str>,
    existing: &HashSet<String>,
) -> Result<String, PdfError> {
    match requested {
        Some(name) => {
            if name.is_empty() || name.contains('.') || name.chars().any(char::is_control) {
                return Err(PdfError::InvalidOption(format!(
                    "field name {name:?} must be non-empty, without '.' or control characters"
                )));
            }
            if existing.contains(name) {
                return Err(PdfError::InvalidOption(format!(
                    "a field named {name:?} already exists"
                )));
            }
            Ok(name.to_string())
        }
        None => (1..)
            .map(|n| format!("Signature{n}"))
            .find(|n| !existing.contains(n))
            .ok_or_else(|| PdfError::InvalidOption("no free field name".into())),
    }
}

/// The user-space rect of the most recent signature widget on `page`: the one whose signature
/// covers the most bytes (the latest revision), else the last one in /Annots.
fn latest_signature_widget(doc: &Document, page: &Dictionary) -> Option<Rect> {
    let annots = page.get(b"Annots").ok()?;
    let Object::Array(annots) = deref(doc, annots) else {
        return None;
    };
    let mut best: Option<(usize, usize, Rect)> = None;
    for (index, annot) in annots.iter().enumerate() {
        let Object::Dictionary(widget) = deref(doc, annot) else {
            continue;
        };
        if !matches!(widget.get(b"Subtype").map(|o| deref(doc, o)), Ok(Object::Name(n)) if n == b"Widget")
        {
            continue;
        }
        // /FT and /V may sit on the widget or on its parent field.
        let parent = match widget.get(b"Parent").map(|o| deref(doc, o)) {
            Ok(Object::Dictionary(p)) => Some(p),
            _ => None,
        };
        let field_value = |key: &[u8]| {
            widget
                .get(key)
                .ok()
                .or_else(|| parent.and_then(|p| p.get(key).ok()))
                .map(|o| deref(doc, o))
        };
        if !matches!(field_value(b"FT"), Some(Object::Name(n)) if n == b"Sig") {
            continue;
        }
        let Some(rect) = widget
            .get(b"Rect")
            .ok()
            .and_then(|r| placement::rect_of(doc, r))
        else {
            continue;
        };
        let covered = match field_value(b"V") {
            Some(Object::Dictionary(sig)) => match sig.get(b"ByteRange").map(|o| deref(doc, o)) {
                Ok(Object::Array(br)) if br.len() == 4 => {
                    let n =
                        |i: usize| placement::number(doc, &br[i]).unwrap_or(0.0).max(0.0) as usize;
                    n(2).saturating_add(n(3))
                }
                _ => 0,
            },
            _ => continue, // an unsigned field is not a signature
        };
        if best.map_or(true, |(c, i, _)| (covered, index) >= (c, i)) {
            best = Some((covered, index, rect));
        }
    }
    best.map(|(_, _, r)| r)
}

/// A copy of an array object that is about to be updated.
fn array_object(doc: &Document, id: ObjectId, what: &str) -> Result<Vec<Object>, PdfError> {
    match doc.get_object(id) {
        Ok(Object::Array(a)) => Ok(a.clone()),
        _ => Err(PdfError::Malformed(format!(
            "{what} ({} {} R) is not an array",
            id.0, id.1
        ))),
    }
}

fn real(v: f64) -> Object {
    // Two decimals are plenty for points; f32 keeps lopdf's Real type.
    Object::Real(((v * 100.0).round() / 100.0) as f32)
}

/// Updated and new objects, with new ids allocated past the document's highest.
struct Update {
    next_id: u32,
    objects: BTreeMap<ObjectId, Object>,
}

impl Update {
    fn new(doc: &Document) -> Self {
        let trailer_size = match doc.trailer.get(b"Size") {
            Ok(Object::Integer(n)) => u32::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        let loaded = doc.objects.keys().next_back().map_or(0, |id| id.0);
        let next_id = trailer_size
            .max(doc.max_id.saturating_add(1))
            .max(loaded.saturating_add(1))
            .max(1);
        Self {
            next_id,
            objects: BTreeMap::new(),
        }
    }

    fn allocate(&mut self) -> ObjectId {
        let id = (self.next_id, 0);
        self.next_id += 1;
        id
    }

    fn add(&mut self, object: Object) -> ObjectId {
        let id = self.allocate();
        self.objects.insert(id, object);
        id
    }

    fn put(&mut self, id: ObjectId, object: Object) {
        self.objects.insert(id, object);
    }
}

/// The signature dictionary's entries after `/Contents`.
struct SignatureDictionary {
    kind: SignatureKind,
    tail: Vec<(&'static str, Object)>,
    contents_size: usize,
}

impl SignatureDictionary {
    fn new(opts: &PdfSignOptions, kind: SignatureKind) -> Self {
        let mut tail = vec![("M", text_string(&pdf_date(opts.signing_time)))];
        for (key, value) in [
            ("Name", &opts.name),
            ("Reason", &opts.reason),
            ("Location", &opts.location),
            ("ContactInfo", &opts.contact_info),
        ] {
            if let Some(v) = value {
                tail.push((key, text_string(v)));
            }
        }
        if kind == SignatureKind::DocumentTimestamp {
            // A document time-stamp's time comes from its token, not from the dictionary.
            tail.retain(|(key, _)| *key != "M");
        }
        Self {
            kind,
            tail,
            contents_size: opts.contents_size,
        }
    }
}

/// Writes the update section that follows `base` and patches `/ByteRange`.
#[allow(clippy::too_many_arguments)]
fn write_update(
    base: Base,
    doc: &Document,
    mut update: Update,
    sig: Option<(ObjectId, &SignatureDictionary)>,
    prev_startxref: usize,
    kind: XrefKind,
    root_id: ObjectId,
    field_name: String,
) -> Result<LaidOut, PdfError> {
    let io = |e: std::io::Error| PdfError::Malformed(format!("cannot serialize update: {e}"));
    let reserved = sig.map_or(0, |(_, s)| s.contents_size);
    let mut out = Vec::with_capacity(2 * reserved + 16 * 1024);
    if !base.ends_with_eol {
        out.push(b'\n');
    }
    // Offsets in the file: the update starts where the original bytes end.
    let file_offset = |out: &Vec<u8>| base.len + out.len();
    let mut offsets: BTreeMap<u32, (usize, u16)> = BTreeMap::new();

    let objects = std::mem::take(&mut update.objects);
    for (id, object) in &objects {
        offsets.insert(id.0, (file_offset(&out), id.1));
        writeln!(out, "{} {} obj", id.0, id.1).map_err(io)?;
        Writer::write_object(&mut out, object).map_err(io)?;
        out.extend_from_slice(b"\nendobj\n");
    }

    // The signature dictionary, laid out by hand so the holes are known.
    let mut holes = None;
    if let Some((sig_id, sig)) = sig {
        offsets.insert(sig_id.0, (file_offset(&out), sig_id.1));
        let (type_name, sub_filter) = match sig.kind {
            SignatureKind::Signature => ("Sig", "ETSI.CAdES.detached"),
            SignatureKind::DocumentTimestamp => ("DocTimeStamp", "ETSI.RFC3161"),
        };
        write!(
            out,
            "{} {} obj\n<</Type/{type_name}/Filter/Adobe.PPKLite/SubFilter/{sub_filter}/ByteRange ",
            sig_id.0, sig_id.1
        )
        .map_err(io)?;
        let byte_range_at = out.len();
        out.extend_from_slice(&[b' '; BYTE_RANGE_LEN]);
        out.extend_from_slice(b"/Contents ");
        let contents_start = file_offset(&out);
        out.push(b'<');
        out.resize(out.len() + 2 * sig.contents_size, b'0');
        out.push(b'>');
        let contents_end = file_offset(&out);
        for (key, value) in &sig.tail {
            write!(out, "/{key} ").map_err(io)?;
            Writer::write_object(&mut out, value).map_err(io)?;
        }
        out.extend_from_slice(b">>\nendobj\n");
        holes = Some((byte_range_at, contents_start, contents_end));
    }

    // Cross-reference section and trailer.
    let mut trailer = Dictionary::new();
    trailer.set("Root", Object::Reference(root_id));
    for key in [&b"Info"[..], b"ID"] {
        if let Ok(v) = doc.trailer.get(key) {
            trailer.set(key.to_vec(), v.clone());
        }
    }
    trailer.set("Prev", prev_startxref as i64);
    let xref_at = match kind {
        XrefKind::Table => {
            let size = update.next_id;
            trailer.set("Size", i64::from(size));
            let at = file_offset(&out);
            out.extend_from_slice(b"xref\n");
            for run in runs(&offsets) {
                writeln!(out, "{} {}", run[0].0, run.len()).map_err(io)?;
                for (_, (offset, generation)) in run {
                    write!(out, "{offset:010} {generation:05} n\r\n").map_err(io)?;
                }
            }
            out.extend_from_slice(b"trailer\n");
            Writer::write_object(&mut out, &Object::Dictionary(trailer)).map_err(io)?;
            out.push(b'\n');
            at
        }
        XrefKind::Stream => {
            let xref_id = update.allocate();
            let at = file_offset(&out);
            offsets.insert(xref_id.0, (at, 0));
            let size = update.next_id;
            let max_offset = offsets.values().map(|(o, _)| *o).max().unwrap_or(0);
            let width = (1..=8)
                .find(|&w| w == 8 || max_offset >> (8 * w) == 0)
                .unwrap_or(8);
            let mut index = Vec::new();
            let mut data = Vec::new();
            for run in runs(&offsets) {
                index.push(Object::Integer(i64::from(run[0].0)));
                index.push(Object::Integer(run.len() as i64));
                for (_, (offset, generation)) in run {
                    data.push(1u8);
                    data.extend_from_slice(&(offset as u64).to_be_bytes()[8 - width..]);
                    data.extend_from_slice(&generation.to_be_bytes());
                }
            }
            trailer.set("Type", "XRef");
            trailer.set("Size", i64::from(size));
            trailer.set("W", vec![1.into(), (width as i64).into(), 2.into()]);
            trailer.set("Index", index);
            let stream = Stream::new(trailer, data).with_compression(false);
            writeln!(out, "{} 0 obj", xref_id.0).map_err(io)?;
            Writer::write_object(&mut out, &Object::Stream(stream)).map_err(io)?;
            out.extend_from_slice(b"\nendobj\n");
            at
        }
    };
    write!(out, "startxref\n{xref_at}\n%%EOF\n").map_err(io)?;

    let mut byte_range = [0; 4];
    if let Some((byte_range_at, contents_start, contents_end)) = holes {
        byte_range = [
            0,
            contents_start,
            contents_end,
            file_offset(&out) - contents_end,
        ];
        let text = format!("[0 {} {} {}]", byte_range[1], byte_range[2], byte_range[3]);
        if text.len() > BYTE_RANGE_LEN {
            return Err(PdfError::Malformed(
                "output too large for /ByteRange".into(),
            ));
        }
        out[byte_range_at..byte_range_at + text.len()].copy_from_slice(text.as_bytes());
    }
    Ok(LaidOut {
        base_len: base.len,
        tail: out,
        byte_range,
        field_name,
    })
}

/// Consecutive object numbers grouped into cross-reference subsections.
fn runs(offsets: &BTreeMap<u32, (usize, u16)>) -> Vec<Vec<(u32, (usize, u16))>> {
    let mut runs: Vec<Vec<(u32, (usize, u16))>> = Vec::new();
    for (&id, &entry) in offsets {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|(last, _)| last + 1 == id) => {
                run.push((id, entry))
            }
            _ => runs.push(vec![(id, entry)]),
        }
    }
    runs
}

#[cfg(test)]
mod tests;
