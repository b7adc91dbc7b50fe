//! Finding the signatures of a PDF and what bytes each one covers.

use lopdf::{Document, Object};
use memchr::memmem;

/// One signature dictionary of a PDF, with its ByteRange already checked.
pub struct PdfSignature {
    /// Fully qualified field name.
    pub field: String,
    /// /SubFilter.
    pub sub_filter: String,
    /// /Contents bytes (the CMS blob, zero padded).
    pub contents: Vec<u8>,
    /// The signed byte ranges as (start, length) pairs.
    pub ranges: [(usize, usize); 2],
    /// /M as written, if any.
    pub claimed_time: Option<String>,
    /// ByteRange problems that make the signature a format failure.
    pub byte_range_problems: Vec<String>,
    /// `/Contents` was read from the ByteRange gap of the original bytes (the parser saw it
    /// blanked), which proves the gap is exactly this signature's `/Contents`.
    pub value_from_gap: bool,
    /// The signature covers the whole file.
    pub whole_file: bool,
    /// The revision (1-based) that ends where the signature's coverage ends.
    pub revision: usize,
}

/// A PDF whose signatures cannot be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PdfReadError {
    /// The file cannot be parsed.
    #[error("malformed PDF: {0}")]
    Malformed(String),
    /// The file is encrypted with a password or key that was not given, and its
    /// signatures cannot be found without it.
    #[error("the PDF is encrypted and its signatures cannot be read without its password or key")]
    Encrypted,
}

/// The signatures of a PDF and the validation data of its DSS.
pub struct PdfSignatures {
    /// The document is encrypted and could not be decrypted (no empty user password):
    /// signatures were found through its unencrypted structure, field names and content
    /// stay ciphertext.
    pub undecrypted: bool,
    /// Signature fields with a value.
    pub signatures: Vec<PdfSignature>,
    /// OCSP responses and CRLs from the DSS.
    pub dss: super::revocation::Evidence,
    /// Certificates from the DSS.
    pub dss_certs: Vec<openssl::x509::X509>,
    /// The final document.
    pub document: Document,
    /// Signature-value gaps (`<hex>` spans) confirmed to be signatures' `/Contents`, which
    /// the parser was spared (see [`parse_sparing_values`]).
    pub value_gaps: Vec<(usize, usize)>,
    /// The bytes `document` was parsed from when `value_gaps` were blanked (empty when it was
    /// parsed from the input itself).
    pub blanked: Vec<u8>,
}

/// Lists the signature fields of `input` that have a value, and the DSS contents.
pub fn signatures(input: &[u8]) -> Result<PdfSignatures, PdfReadError> {
    let gaps = declared_value_gaps(input);
    if !gaps.is_empty() {
        let blanked = blank_values(input, &gaps);
        if let Ok(mut found) = signatures_in(input, &blanked, &gaps) {
            // Keep the fast parse only if every blanked span was a signature's /Contents.
            let confirmed: Vec<(usize, usize)> = found
                .signatures
                .iter()
                .filter(|s| s.value_from_gap)
                .map(|s| (s.ranges[0].0 + s.ranges[0].1, s.ranges[1].0))
                .collect();
            if gaps.iter().all(|g| confirmed.contains(g)) {
                found.blanked = blanked;
                return Ok(found);
            }
        }
    }
    signatures_in(input, input, &[])
}

/// `<hex>` spans that `/ByteRange [a b c d]` arrays in the raw bytes declare as signature
/// values. Only candidates: [`signatures`] confirms each against the parsed dictionaries.
fn declared_value_gaps(input: &[u8]) -> Vec<(usize, usize)> {
    const KEY: &[u8] = b"/ByteRange";
    let mut gaps = Vec::new();
    for pos in memmem::find_iter(input, KEY) {
        let at = pos + KEY.len();
        let Some(close) = input[at..].iter().take(80).position(|&b| b == b']') else {
            continue;
        };
        let text = String::from_utf8_lossy(&input[at..at + close]);
        let numbers: Vec<usize> = text
            .trim_start()
            .trim_start_matches('[')
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [a, b, c, _] = numbers[..] {
            let Some(start) = a.checked_add(b) else {
                continue;
            };
            let gap = input.get(start..c).unwrap_or(&[]);
            let is_hex = gap.len() >= 2
                && gap[0] == b'<'
                && gap[gap.len() - 1] == b'>'
                && gap[1..gap.len() - 1].iter().all(u8::is_ascii_hexdigit);
            if is_hex && !gaps.contains(&(start, c)) {
                gaps.push((start, c));
            }
        }
    }
    gaps
}

/// A copy of `input` with each span in `gaps` replaced by `<>` and spaces: offsets stay the
/// same, and the parser need not decode tens of kilobytes of hex per signature (the span is
/// outside what the signature covers; its value is read from the original bytes).
fn blank_values(input: &[u8], gaps: &[(usize, usize)]) -> Vec<u8> {
    let mut copy = input.to_vec();
    for &(start, end) in gaps {
        copy[start + 1] = b'>';
        copy[start + 2..end].fill(b' ');
    }
    copy
}

/// Parses `input` sparing the signature values in `gaps` (already confirmed), for the
/// revision comparison.
pub fn parse_sparing_values(
    input: &[u8],
    gaps: &[(usize, usize)],
) -> Result<Document, lopdf::Error> {
    let inside: Vec<(usize, usize)> = gaps
        .iter()
        .copied()
        .filter(|&(_, end)| end <= input.len())
        .collect();
    if inside.is_empty() {
        crate::pdf::parse_document(input)
    } else {
        crate::pdf::parse_document(&blank_values(input, &inside))
    }
}

fn signatures_in(
    input: &[u8],
    parsed: &[u8],
    blanked: &[(usize, usize)],
) -> Result<PdfSignatures, PdfReadError> {
    let mut doc =
        crate::pdf::parse_document(parsed).map_err(|e| PdfReadError::Malformed(e.to_string()))?;
    // Still encrypted after loading: the empty user password did not open it, and the
    // parser dropped what it could not decrypt. /ByteRange, /SubFilter and /Contents are
    // never encrypted (ISO 32000-2 §7.6.2): read the structure as stored, strings left as
    // ciphertext, unless the dictionaries sit in encrypted object streams.
    let undecrypted = doc.trailer.get(b"Encrypt").is_ok();
    if undecrypted {
        doc = crate::pdf::parse_document(&without_encrypt_entries(parsed))
            .map_err(|_| PdfReadError::Encrypted)?;
    }
    let catalog = match doc.catalog() {
        Ok(c) => c.clone(),
        Err(_) if undecrypted => return Err(PdfReadError::Encrypted),
        Err(e) => return Err(PdfReadError::Malformed(e.to_string())),
    };
    let fields = match catalog.get(b"AcroForm").ok().and_then(|a| deref(&doc, a)) {
        Some(Object::Dictionary(form)) => form
            .get(b"Fields")
            .ok()
            .and_then(|f| deref(&doc, f))
            .cloned(),
        _ => None,
    };
    let mut out = Vec::new();
    if let Some(Object::Array(fields)) = fields {
        let mut budget = 10_000usize;
        for f in &fields {
            collect(&doc, input, f, "", None, 0, &mut budget, &mut out);
        }
    }
    if undecrypted {
        if out.is_empty() {
            return Err(PdfReadError::Encrypted);
        }
        // Field names are encrypted strings.
        for (i, sig) in out.iter_mut().enumerate() {
            sig.field = format!("signature-{}", i + 1);
        }
    }
    let (dss, dss_certs) = super::evidence::from_dss(&doc);
    Ok(PdfSignatures {
        undecrypted,
        signatures: out,
        dss,
        dss_certs,
        document: doc,
        value_gaps: blanked.to_vec(),
        blanked: Vec::new(),
    })
}

/// A copy of `input` with every `/Encrypt N G R` entry blanked (same length), so the parser
/// reads objects as stored instead of dropping those it cannot decrypt.
fn without_encrypt_entries(input: &[u8]) -> Vec<u8> {
    const KEY: &[u8] = b"/Encrypt";
    let mut out = input.to_vec();
    let mut from = 0;
    while let Some(pos) = memmem::find(&out[from..], KEY) {
        let start = from + pos;
        let mut end = start + KEY.len();
        // Whitespace, object number, whitespace, generation, whitespace, `R`.
        let mut parts = 0;
        while parts < 2 {
            let ws = out[end..]
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            let digits = out[end + ws..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if ws == 0 || digits == 0 {
                break;
            }
            end += ws + digits;
            parts += 1;
        }
        let ws = out[end..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        if parts == 2 && ws > 0 && out.get(end + ws) == Some(&b'R') {
            out[start..end + ws + 1].fill(b' ');
        }
        from = start + KEY.len();
    }
    out
}

fn deref<'a>(doc: &'a Document, obj: &'a Object) -> Option<&'a Object> {
    match obj {
        Object::Reference(id) => doc.get_object(*id).ok(),
        other => Some(other),
    }
}

#[allow(clippy::too_many_arguments)]
fn collect(
    doc: &Document,
    input: &[u8],
    field: &Object,
    parent_name: &str,
    inherited_ft: Option<Vec<u8>>,
    depth: usize,
    budget: &mut usize,
    out: &mut Vec<PdfSignature>,
) {
    if depth > 32 || *budget == 0 {
        return;
    }
    *budget -= 1;
    let Some(Object::Dictionary(dict)) = deref(doc, field) else {
        return;
    };
    let partial = dict
        .get(b"T")
        .ok()
        .and_then(|t| t.as_str().ok())
        .map(decode_text)
        .unwrap_or_default();
    let name = match (parent_name.is_empty(), partial.is_empty()) {
        (true, _) => partial.clone(),
        (false, true) => parent_name.to_string(),
        (false, false) => format!("{parent_name}.{partial}"),
    };
    let ft = dict
        .get(b"FT")
        .ok()
        .and_then(|f| f.as_name().ok())
        .map(|n| n.to_vec())
        .or(inherited_ft);
    if let Ok(Object::Array(kids)) = dict.get(b"Kids") {
        for kid in kids {
            collect(doc, input, kid, &name, ft.clone(), depth + 1, budget, out);
        }
    }
    if ft.as_deref() != Some(b"Sig") {
        return;
    }
    let Some(Object::Dictionary(sig)) = dict.get(b"V").ok().and_then(|v| deref(doc, v)) else {
        return;
    };
    let sub_filter = sig
        .get(b"SubFilter")
        .ok()
        .and_then(|s| s.as_name().ok())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let contents = sig
        .get(b"Contents")
        .ok()
        .and_then(|c| c.as_str().ok())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let claimed_time = sig
        .get(b"M")
        .ok()
        .and_then(|m| m.as_str().ok())
        .map(|m| String::from_utf8_lossy(m).into_owned());
    let range: Vec<i64> = match sig.get(b"ByteRange") {
        Ok(Object::Array(items)) => items.iter().filter_map(|i| i.as_i64().ok()).collect(),
        _ => Vec::new(),
    };
    out.push(check_byte_range(
        input,
        name,
        sub_filter,
        contents,
        claimed_time,
        &range,
    ));
}

fn check_byte_range(
    input: &[u8],
    field: String,
    sub_filter: String,
    contents: Vec<u8>,
    claimed_time: Option<String>,
    range: &[i64],
) -> PdfSignature {
    let mut problems = Vec::new();
    let len = input.len();
    let mut ranges = [(0usize, 0usize); 2];
    if range.len() != 4 || range.iter().any(|v| *v < 0) {
        problems.push("ByteRange is not four non-negative integers".to_string());
    } else {
        let [a, b, c, d] = [
            range[0] as usize,
            range[1] as usize,
            range[2] as usize,
            range[3] as usize,
        ];
        ranges = [(a, b), (c, d)];
        if a != 0 {
            problems.push("ByteRange does not start at 0".into());
        }
        match (a.checked_add(b), c.checked_add(d)) {
            (Some(end1), Some(end2)) if end1 <= c && end2 <= len => {
                let gap = &input[end1..c];
                let hex_ok = gap.len() >= 2
                    && gap[0] == b'<'
                    && gap[gap.len() - 1] == b'>'
                    && gap[1..gap.len() - 1].iter().all(|b| b.is_ascii_hexdigit());
                if !hex_ok {
                    problems
                        .push("the ByteRange gap is not exactly the /Contents hex string".into());
                }
            }
            (Some(end1), Some(_)) if end1 > c => problems.push("ByteRange ranges overlap".into()),
            _ => problems.push("ByteRange reaches beyond the end of the file".into()),
        }
    }
    let mut contents = contents;
    let mut value_from_gap = false;
    if contents.is_empty() && problems.is_empty() {
        let (start, stop) = (ranges[0].0 + ranges[0].1, ranges[1].0);
        if let Ok(value) = hex::decode(&input[start + 1..stop - 1]) {
            contents = value;
            value_from_gap = true;
        }
    }
    let end = ranges[1].0.saturating_add(ranges[1].1);
    let whole_file = problems.is_empty() && end == len;
    let revision = revision_ending_at(input, end);
    if problems.is_empty() && !ends_revision(input, end) {
        problems.push("the signed range does not end at the end of a revision (%%EOF)".into());
    }
    PdfSignature {
        field,
        sub_filter,
        contents,
        ranges,
        claimed_time,
        byte_range_problems: problems,
        value_from_gap,
        whole_file,
        revision,
    }
}

/// Number of `%%EOF` markers at or before `end`: the revision the range covers.
fn revision_ending_at(input: &[u8], end: usize) -> usize {
    let end = end.min(input.len());
    memmem::find_iter(&input[..end], b"%%EOF").count().max(1)
}

/// Whether `end` is just after a `%%EOF` marker (allowing an end-of-line).
fn ends_revision(input: &[u8], end: usize) -> bool {
    let head = &input[..end.min(input.len())];
    let trimmed = head.strip_suffix(b"\n").unwrap_or(head);
    let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
    trimmed.ends_with(b"%%EOF")
}

/// Decodes a PDF text string (UTF-16BE with BOM, else PDFDocEncoding treated as Latin-1).
pub fn decode_text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    bytes.iter().map(|&b| b as char).collect()
}

/// The revisions of one PDF, for the changes made after each signature.
pub struct Revisions<'a> {
    input: &'a [u8],
    found: &'a PdfSignatures,
    /// The final document indexed for reading its revisions, on first use (`None` inside when
    /// they are to be parsed whole).
    index: std::cell::OnceCell<Option<super::revision::FinalDocument<'a>>>,
}

impl<'a> Revisions<'a> {
    /// The revisions of `input`, whose signatures and final document are `found`.
    pub fn of(input: &'a [u8], found: &'a PdfSignatures) -> Self {
        Self {
            input,
            found,
            index: std::cell::OnceCell::new(),
        }
    }

    /// What changed after a signature whose coverage ends at byte `end` (end of its
    /// revision). The revision is read from the final document where that gives what its own
    /// parse gives ([`super::revision`]), else parsed whole.
    pub fn modifications(&self, end: usize) -> super::changes::Modifications {
        let index = self.index.get_or_init(|| {
            let parsed = if self.found.value_gaps.is_empty() {
                self.input
            } else {
                &self.found.blanked
            };
            super::revision::FinalDocument::index(parsed, &self.found.document)
        });
        match index
            .as_ref()
            .and_then(|f| f.revision(end, &self.found.value_gaps))
        {
            Some(signed) => self.compare(Some(&signed.objects())),
            None => self.modifications_parsed_whole(end),
        }
    }

    /// [`Self::modifications`] with the signed revision parsed on its own.
    fn modifications_parsed_whole(&self, end: usize) -> super::changes::Modifications {
        match self
            .input
            .get(..end)
            .map(|prefix| parse_sparing_values(prefix, &self.found.value_gaps))
        {
            Some(Ok(signed)) => self.compare(Some(
                &signed.objects.iter().map(|(id, o)| (*id, o)).collect(),
            )),
            _ => self.compare(None),
        }
    }

    /// The changes from `signed` (the signed revision's objects; `None` when it cannot be
    /// parsed) to the final document.
    fn compare(
        &self,
        signed: Option<&super::revision::Objects<'_>>,
    ) -> super::changes::Modifications {
        let latest = &self.found.document;
        let mdp =
            super::changes::docmdp_level(latest).unwrap_or(super::changes::DocMdp::FormFilling);
        let mut found = match signed {
            Some(signed) => super::changes::compare(signed, latest, mdp),
            None => super::changes::Modifications {
                level: "disallowed",
                changes: vec!["the signed revision cannot be parsed on its own".into()],
            },
        };
        let trailing = trailing_garbage(self.input);
        if trailing > 0 {
            found.level = "disallowed";
            found.changes.push(format!(
                "{trailing} bytes appended after the last revision that are not a PDF revision"
            ));
        }
        found
    }
}

/// Bytes after the last `%%EOF` other than white space: data no PDF reader shows, but that
/// the signature does not cover either.
fn trailing_garbage(input: &[u8]) -> usize {
    let Some(pos) = memmem::rfind(input, b"%%EOF") else {
        return 0;
    };
    input[pos + 5..]
        .iter()
        .filter(|b| !b.is_ascii_whitespace() && **b != 0)
        .count()
}

#[cfg(test)]
mod tests {
    use super::{signatures, without_encrypt_entries, Revisions};

    /// Every revision of every PDF at hand (the test files, the development corpus when it is
    /// there): the changes found with the revision read from the final document are those
    /// found with the revision parsed whole. Returns how many revisions were read each way.
    fn revisions_read_from_the_final_document_match_whole_parses(
        dir: &std::path::Path,
    ) -> (usize, usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return (0, 0);
        };
        let mut counts = (0, 0);
        for path in entries.map(|e| e.unwrap().path()) {
            if path.extension().and_then(|e| e.to_str()) != Some("pdf") {
                continue;
            }
            let input = std::fs::read(&path).unwrap();
            let Ok(found) = signatures(&input) else {
                continue;
            };
            let revisions = Revisions::of(&input, &found);
            for sig in &found.signatures {
                let end = sig.ranges[1].0 + sig.ranges[1].1;
                if sig.whole_file || found.undecrypted || !sig.byte_range_problems.is_empty() {
                    continue;
                }
                let found_changes = revisions.modifications(end);
                assert_eq!(
                    found_changes,
                    revisions.modifications_parsed_whole(end),
                    "{} up to byte {end}",
                    path.display()
                );
                let shortcut = revisions
                    .index
                    .get()
                    .and_then(Option::as_ref)
                    .and_then(|f| f.revision(end, &found.value_gaps));
                if let Some(revision) = &shortcut {
                    let whole =
                        super::parse_sparing_values(&input[..end], &found.value_gaps).unwrap();
                    assert!(
                        revision.objects()
                            == whole.objects.iter().map(|(id, o)| (*id, o)).collect(),
                        "{} up to byte {end}: objects differ",
                        path.display()
                    );
                    counts.0 += 1;
                } else {
                    counts.1 += 1;
                }
            }
        }
        counts
    }

    #[test]
    fn revisions_are_read_as_their_own_parse_reads_them() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let (fast, whole) = revisions_read_from_the_final_document_match_whole_parses(
            &root.join("tests/data/pdfs"),
        );
        let corpus = root.join("../shared/corpus/pdf");
        let (corpus_fast, corpus_whole) =
            revisions_read_from_the_final_document_match_whole_parses(&corpus);
        eprintln!(
            "read from the final document: {fast} test file and {corpus_fast} corpus revisions; \
             parsed whole: {whole} and {corpus_whole}"
        );
        if corpus.is_dir() {
            // Most corpus revisions take the shortcut; were none to, this test would compare
            // the whole parse with itself.
            assert!(
                corpus_fast > 3 * corpus_whole,
                "{corpus_fast} vs {corpus_whole}"
            );
        }
    }

    #[test]
    fn encrypt_references_are_blanked_in_place() {
        let input = b"<< /Root 1 0 R /Encrypt 8 0 R /Size 9 >> /Encrypted /Encrypt 12";
        let out = without_encrypt_entries(input);
        assert_eq!(out.len(), input.len());
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("/Encrypt 8 0 R"), "{text}");
        assert!(text.contains("/Root 1 0 R"));
        assert!(text.contains("/Size 9"));
        // Not followed by a reference: left alone.
        assert!(text.contains("/Encrypted /Encrypt 12"));
    }
}
