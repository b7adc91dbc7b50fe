//! The font of visible-signature text: Liberation Serif (metric-compatible with Times New Roman,
//! SIL OFL 1.1, `assets/fonts/`), embedded as a subset.
//!
//! Text is written as a composite font (ISO 32000-1 §9.7): a `Type0` font with `/Identity-H`
//! encoding over a `CIDFontType2` whose CIDs are the glyph ids of the subset made by `subsetter`
//! (§9.7.4.2), plus a `/ToUnicode` CMap (§9.10.3) so that text extraction returns the exact
//! Unicode text. This module knows fonts only; where text goes on the page is `appearance`'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use lopdf::{dictionary, Object, ObjectId, Stream};
use unicode_normalization::UnicodeNormalization;

use super::PdfError;

/// The embedded font file.
static LIBERATION_SERIF: &[u8] = include_bytes!("../../assets/fonts/LiberationSerif-Regular.ttf");

/// PostScript name used when the font's `name` table has none.
const FALLBACK_PS_NAME: &str = "LiberationSerif";

/// Turns one caller-given line into what is drawn: Unicode NFC (precomposed Vietnamese letters
/// such as `ủ`, which the font has as single glyphs), control characters dropped.
pub(crate) fn normalize_line(line: &str) -> String {
    line.nfc().filter(|c| !c.is_control()).collect()
}

/// The parsed embedded font and its metrics in PDF glyph space (1/1000 of the text size).
pub(crate) struct Font {
    face: ttf_parser::Face<'static>,
    /// Font units to glyph-space units: `1000 / unitsPerEm`.
    scale: f64,
}

impl Font {
    /// Parses the embedded Liberation Serif.
    pub(crate) fn liberation_serif() -> Result<Self, PdfError> {
        let face = ttf_parser::Face::parse(LIBERATION_SERIF, 0)
            .map_err(|e| PdfError::Font(format!("embedded font does not parse: {e}")))?;
        let upem = f64::from(face.units_per_em());
        if upem <= 0.0 {
            return Err(PdfError::Font("embedded font has no unitsPerEm".into()));
        }
        Ok(Self {
            face,
            scale: 1000.0 / upem,
        })
    }

    /// The font's glyph for `c`, if it has one (never `.notdef`).
    fn glyph(&self, c: char) -> Option<u16> {
        self.face.glyph_index(c).map(|g| g.0).filter(|&g| g != 0)
    }

    /// Advance width of a glyph in glyph-space units.
    fn advance(&self, gid: u16) -> f64 {
        let units = self
            .face
            .glyph_hor_advance(ttf_parser::GlyphId(gid))
            .unwrap_or(0);
        f64::from(units) * self.scale
    }

    /// Advance width of `c` in glyph-space units; characters the font lacks are drawn (and
    /// measured) as `.notdef`.
    fn char_advance(&self, c: char) -> f64 {
        self.advance(self.glyph(c).unwrap_or(0))
    }

    /// Width in points of `text` (already normalized) set at `size` points.
    pub(crate) fn text_width(&self, text: &str, size: f64) -> f64 {
        text.chars().map(|c| self.char_advance(c)).sum::<f64>() * size / 1000.0
    }

    /// Ascender in glyph-space units (positive).
    pub(crate) fn ascent(&self) -> f64 {
        f64::from(self.face.ascender()) * self.scale
    }

    /// Descender in glyph-space units (negative).
    pub(crate) fn descent(&self) -> f64 {
        f64::from(self.face.descender()) * self.scale
    }

    /// The font's PostScript name.
    fn postscript_name(&self) -> String {
        self.face
            .names()
            .into_iter()
            .filter(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
            .find_map(|n| n.to_string())
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or_else(|| FALLBACK_PS_NAME.to_string())
    }
}

/// The glyphs one appearance uses and the CID each character is written as.
///
/// CIDs of characters the font has are the glyph ids in the subset (`subsetter` remaps
/// the original ids to 1, 2, …). Characters that need a CID of their own that is not their
/// glyph id — characters the font lacks (drawn as `.notdef`) and characters sharing a glyph
/// with an earlier character — get CIDs after the subset's glyphs and a `/CIDToGIDMap` stream,
/// so `/ToUnicode` still maps every CID back to exactly one character.
pub(crate) struct FontSubset<'f> {
    font: &'f Font,
    remapper: subsetter::GlyphRemapper,
    /// Character -> CID.
    cids: BTreeMap<char, u16>,
    /// CID -> (character, glyph id in the subset).
    by_cid: BTreeMap<u16, (char, u16)>,
    /// Whether some CID is not its own glyph id.
    needs_map: bool,
}

impl<'f> FontSubset<'f> {
    /// Collects the glyphs of every line that will be drawn with this subset (lines already
    /// normalized with [`normalize_line`]).
    pub(crate) fn new<S: AsRef<str>>(font: &'f Font, lines: &[S]) -> Result<Self, PdfError> {
        let chars: BTreeSet<char> = lines.iter().flat_map(|l| l.as_ref().chars()).collect();
        let mut remapper = subsetter::GlyphRemapper::new();
        let mut cids = BTreeMap::new();
        let mut by_cid = BTreeMap::new();
        let mut claimed = BTreeSet::new();
        let mut aliases = Vec::new();
        // First pass: characters with a glyph of their own; CID = new glyph id.
        for &c in &chars {
            match font.glyph(c) {
                Some(gid) if claimed.insert(gid) => {
                    let new_gid = remapper.remap(gid);
                    cids.insert(c, new_gid);
                    by_cid.insert(new_gid, (c, new_gid));
                }
                Some(gid) => aliases.push((c, Some(gid))),
                None => aliases.push((c, None)),
            }
        }
        // Second pass: CIDs after the last glyph id, mapped to a shared glyph or to .notdef.
        let needs_map = !aliases.is_empty();
        for (next, (c, gid)) in (u32::from(remapper.num_gids())..).zip(aliases) {
            let cid = u16::try_from(next)
                .map_err(|_| PdfError::AppearanceInvalid("too many distinct characters".into()))?;
            let target = gid.and_then(|g| remapper.get(g)).unwrap_or(0);
            cids.insert(c, cid);
            by_cid.insert(cid, (c, target));
        }
        Ok(Self {
            font,
            remapper,
            cids,
            by_cid,
            needs_map,
        })
    }

    /// The characters of `text` the font cannot draw (they show as `.notdef` boxes).
    pub(crate) fn missing_chars(&self, text: &str) -> Vec<char> {
        text.chars()
            .filter(|&c| self.font.glyph(c).is_none())
            .collect()
    }

    /// `text` as a PDF hex string of 2-byte CIDs (`<0001002a>`), for the `Tj` operator.
    pub(crate) fn encode(&self, text: &str) -> Result<String, PdfError> {
        let mut out = String::with_capacity(2 + 4 * text.len());
        out.push('<');
        for c in text.chars() {
            let cid = self.cids.get(&c).ok_or_else(|| {
                PdfError::Font(format!(
                    "character U+{:04X} was not collected",
                    u32::from(c)
                ))
            })?;
            let _ = write!(out, "{cid:04X}");
        }
        out.push('>');
        Ok(out)
    }

    /// Writes the subset font (font file, descriptor, CIDFont, ToUnicode CMap, Type0 font)
    /// through `add` and returns the Type0 font's id, for a `/Font` resource.
    pub(crate) fn write(
        &self,
        add: &mut dyn FnMut(Object) -> ObjectId,
    ) -> Result<ObjectId, PdfError> {
        let font = self.font;
        let face = &font.face;
        let data = subsetter::subset(LIBERATION_SERIF, 0, &self.remapper)
            .map_err(|e| PdfError::Font(format!("subsetting failed: {e}")))?;
        let base_font = format!("{}+{}", self.subset_tag(), font.postscript_name());

        let file_len = i64::try_from(data.len())
            .map_err(|_| PdfError::Font("subset font too large".into()))?;
        let mut file = Stream::new(
            dictionary! { "Length1" => file_len, "Filter" => "FlateDecode" },
            deflate(&data)?,
        );
        file.allows_compression = false;
        let file_id = add(Object::Stream(file));

        let bbox = face.global_bounding_box();
        let s = font.scale;
        let cap_height = face
            .capital_height()
            .map(|h| f64::from(h) * s)
            .unwrap_or(font.ascent() * 0.7);
        let weight = f64::from(face.weight().to_number());
        // Common estimate of the dominant vertical stem width from the weight class.
        let stem_v = (10.0 + 220.0 * (weight - 50.0) / 900.0).clamp(10.0, 300.0);
        let mut flags: i64 = 32; // Nonsymbolic (§9.8.2, bit 6)
        flags |= 2; // Serif (bit 2)
        if face.is_monospaced() {
            flags |= 1;
        }
        if face.is_italic() {
            flags |= 64;
        }
        let descriptor = dictionary! {
            "Type" => "FontDescriptor",
            "FontName" => Object::Name(base_font.clone().into_bytes()),
            "Flags" => flags,
            "FontBBox" => vec![
                num(f64::from(bbox.x_min) * s),
                num(f64::from(bbox.y_min) * s),
                num(f64::from(bbox.x_max) * s),
                num(f64::from(bbox.y_max) * s),
            ],
            "ItalicAngle" => num(f64::from(face.italic_angle())),
            "Ascent" => num(font.ascent()),
            "Descent" => num(font.descent()),
            "CapHeight" => num(cap_height),
            "StemV" => num(stem_v),
            "FontFile2" => file_id,
        };
        let descriptor_id = add(Object::Dictionary(descriptor));

        // /W: one `cid [width]` pair per used CID, plus .notdef.
        let mut widths = vec![
            Object::Integer(0),
            Object::Array(vec![num(font.advance(0))]),
        ];
        for (&cid, &(c, _)) in &self.by_cid {
            widths.push(Object::Integer(i64::from(cid)));
            widths.push(Object::Array(vec![num(font.char_advance(c))]));
        }

        let cid_to_gid = if self.needs_map {
            let max_cid = self.by_cid.keys().next_back().copied().unwrap_or(0);
            let mut map = Vec::with_capacity(2 * (usize::from(max_cid) + 1));
            for cid in 0..=max_cid {
                let gid = match self.by_cid.get(&cid) {
                    Some(&(_, gid)) => gid,
                    None if cid < self.remapper.num_gids() => cid,
                    None => 0,
                };
                map.extend_from_slice(&gid.to_be_bytes());
            }
            let stream = Stream::new(dictionary! { "Filter" => "FlateDecode" }, deflate(&map)?);
            Object::Reference(add(Object::Stream(stream)))
        } else {
            Object::Name(b"Identity".to_vec())
        };

        let cid_font = dictionary! {
            "Type" => "Font",
            "Subtype" => "CIDFontType2",
            "BaseFont" => Object::Name(base_font.clone().into_bytes()),
            "CIDSystemInfo" => dictionary! {
                "Registry" => Object::string_literal("Adobe"),
                "Ordering" => Object::string_literal("Identity"),
                "Supplement" => 0,
            },
            "FontDescriptor" => descriptor_id,
            "DW" => num(font.advance(0)),
            "W" => widths,
            "CIDToGIDMap" => cid_to_gid,
        };
        let cid_font_id = add(Object::Dictionary(cid_font));

        let cmap = Stream::new(
            dictionary! { "Filter" => "FlateDecode" },
            deflate(self.to_unicode_cmap().as_bytes())?,
        );
        let cmap_id = add(Object::Stream(cmap));

        let type0 = dictionary! {
            "Type" => "Font",
            "Subtype" => "Type0",
            "BaseFont" => Object::Name(base_font.into_bytes()),
            "Encoding" => "Identity-H",
            "DescendantFonts" => vec![Object::Reference(cid_font_id)],
            "ToUnicode" => cmap_id,
        };
        Ok(add(Object::Dictionary(type0)))
    }

    /// Six capital letters naming this subset (§9.9.2), derived from its contents so equal
    /// subsets get equal names and output is deterministic.
    fn subset_tag(&self) -> String {
        let mut hasher = crate::pki::alg::DigestAlgorithm::Sha256.hasher();
        for (cid, (c, gid)) in &self.by_cid {
            hasher.update(&cid.to_be_bytes());
            hasher.update(&u32::from(*c).to_be_bytes());
            hasher.update(&gid.to_be_bytes());
        }
        hasher
            .finish()
            .iter()
            .take(6)
            .map(|b| char::from(b'A' + b % 26))
            .collect()
    }

    /// The `/ToUnicode` CMap: every CID to its character in UTF-16BE (§9.10.3).
    fn to_unicode_cmap(&self) -> String {
        let mut out = String::from(
            "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
             /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
             /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
             1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
        );
        let entries: Vec<_> = self.by_cid.iter().collect();
        // At most 100 entries per bfchar block.
        for chunk in entries.chunks(100) {
            let _ = writeln!(out, "{} beginbfchar", chunk.len());
            for (cid, (c, _)) in chunk {
                let mut units = [0u16; 2];
                let utf16: String = c
                    .encode_utf16(&mut units)
                    .iter()
                    .map(|u| format!("{u:04X}"))
                    .collect();
                let _ = writeln!(out, "<{cid:04X}> <{utf16}>");
            }
            out.push_str("endbfchar\n");
        }
        out.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
        out
    }
}

/// zlib-compresses `data` for a `/FlateDecode` stream.
pub(crate) fn deflate(data: &[u8]) -> Result<Vec<u8>, PdfError> {
    deflate_with(data, flate2::Compression::default())
}

/// zlib-compresses `data` at `level` (image samples use a fast level: they are large and
/// mostly flat, so a higher level costs time and saves little).
pub(crate) fn deflate_with(data: &[u8], level: flate2::Compression) -> Result<Vec<u8>, PdfError> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), level);
    enc.write_all(data)
        .and_then(|()| enc.finish())
        .map_err(|e| PdfError::Font(format!("compression failed: {e}")))
}

/// A number for a PDF dictionary: an integer when whole, else a real.
pub(crate) fn num(v: f64) -> Object {
    let r = (v * 1000.0).round() / 1000.0;
    if r.fract() == 0.0 && r.abs() < 1e9 {
        Object::Integer(r as i64)
    } else {
        Object::Real(r as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_nfc_and_drops_controls() {
        // "Ủy" and "nhân" written decomposed (base letter + combining mark).
        let decomposed = "U\u{0309}y ban\tnha\u{0302}n";
        assert_eq!(normalize_line(decomposed), "\u{1EE6}y bannhân");
    }

    #[test]
    fn vietnamese_letters_have_glyphs() {
        let font = Font::liberation_serif().expect("font parses");
        for c in "Ủy ban nhân dân tỉnh Bắc Ninh Số: 123/QĐ-UBND Thời gian ký ỹỵựữửừứ".chars()
        {
            assert!(font.glyph(c).is_some(), "no glyph for {c:?}");
        }
        assert!(font.text_width("Số", 10.0) > 5.0);
        assert_eq!(font.text_width("", 10.0), 0.0);
    }

    #[test]
    fn missing_and_shared_glyphs_get_their_own_cids() {
        let font = Font::liberation_serif().expect("font parses");
        // U+4E2D (CJK) is not in Liberation Serif; U+00A0 shares the space glyph.
        let lines = ["a\u{4E2D} b\u{00A0}c".to_string()];
        let subset = FontSubset::new(&font, &lines).expect("subset");
        assert_eq!(subset.missing_chars(&lines[0]), vec!['\u{4E2D}']);
        assert!(subset.needs_map);
        let cids: BTreeSet<u16> = subset.cids.values().copied().collect();
        assert_eq!(cids.len(), 6, "each distinct character has its own CID");
        let hex = subset.encode(&lines[0]).expect("encode");
        assert_eq!(hex.len(), 2 + 4 * 6);
        assert!(subset.encode("z").is_err());
        let mut objects = Vec::new();
        let id = subset
            .write(&mut |o| {
                objects.push(o);
                (objects.len() as u32, 0)
            })
            .expect("write");
        assert_eq!(id, (objects.len() as u32, 0));
        let cmap = subset.to_unicode_cmap();
        assert!(cmap.contains("<4E2D>"), "{cmap}");
        assert!(cmap.contains("<00A0>"), "{cmap}");
    }
}
