//! Visible-signature appearances: the `/AP /N` form XObject of a signature widget
//! (ISO 32000-1 §12.5.5, §12.7.4.5).
//!
//! Three kinds, following Vietnamese administrative practice: an official's handwritten
//! signature with text lines under it, an agency's red seal, and a plain text stamp for
//! attachments and copies. Text is set in Liberation Serif (Times-compatible), embedded as a
//! subset with a `/ToUnicode` map so Vietnamese text extracts exactly. This module builds the
//! objects only; placing the widget on the page and signing are the PDF core's job.

use std::fmt::Write as _;

use lopdf::{dictionary, Dictionary, Object, ObjectId, Stream};

use super::font::{deflate, normalize_line, num, Font, FontSubset};
use super::image::Image;
use super::PdfError;

/// Text size of stamps, and the largest size of signature text.
const TEXT_SIZE: f64 = 10.0;
/// Smallest text size text is shrunk to before it is clipped.
const MIN_TEXT_SIZE: f64 = 6.0;
/// Baseline-to-baseline distance as a multiple of the text size.
const LEADING: f64 = 1.2;
/// Blank margin inside the widget, in points.
const PADDING: f64 = 2.0;
/// Share of the signature box given to the handwritten image (the rest is text).
const SIGNATURE_IMAGE_SHARE: f64 = 0.65;
/// Gap between the signature image and its text, in points.
const IMAGE_TEXT_GAP: f64 = 2.0;
/// Largest widget side in points (the largest page side PDF allows at UserUnit 1, §C.2).
const MAX_SIDE: f64 = 14_400.0;
/// Most text lines in one appearance.
const MAX_LINES: usize = 32;
/// Most characters in one line.
const MAX_LINE_CHARS: usize = 512;

/// What a visible signature shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appearance {
    /// The official's visible signature: handwritten signature PNG (blue ink, transparent background) above text lines.
    Signature {
        /// The handwritten signature as a PNG file.
        image_png: Vec<u8>,
        /// Text under the image (name, title, signing time), drawn centred.
        lines: Vec<String>,
    },
    /// The agency's red seal PNG, drawn to fill the widget (the caller sizes the widget to the seal diameter).
    Seal {
        /// The seal as a PNG file, ideally with a transparent background.
        image_png: Vec<u8>,
    },
    /// Text-only stamp (attachments and copies): lines in 10 pt Times-compatible font, black.
    Text {
        /// The stamp's lines, drawn left-aligned.
        lines: Vec<String>,
    },
}

impl Appearance {
    /// Builds the /AP /N form XObject for a widget whose size AS DISPLAYED is width x height points on a page
    /// with /Rotate `rotate` (0/90/180/270); new objects are added through `add` (which returns their ObjectId);
    /// returns the XObject's id.
    ///
    /// The form's `/BBox` is `[0 0 width height]` and its `/Matrix` turns the content against the
    /// page rotation so it reads upright on screen. The caller's widget `/Rect` (default user space)
    /// is therefore `width` x `height` for rotation 0 or 180 and `height` x `width` for 90 or 270.
    pub fn build(
        &self,
        width: f64,
        height: f64,
        rotate: i32,
        add: &mut dyn FnMut(Object) -> ObjectId,
    ) -> Result<ObjectId, PdfError> {
        for (name, v) in [("width", width), ("height", height)] {
            if !v.is_finite() || v <= 0.0 || v > MAX_SIDE {
                return Err(PdfError::AppearanceInvalid(format!(
                    "widget {name} {v} is not between 0 and {MAX_SIDE} points"
                )));
            }
        }
        let matrix = rotation_matrix(rotate, width, height)?;
        let mut page = Canvas::default();
        match self {
            Self::Signature { image_png, lines } => {
                let image = Image::decode_png(image_png)?;
                let lines = normalize_lines(lines)?;
                let inner_w = width - 2.0 * PADDING;
                let inner_h = height - 2.0 * PADDING;
                let mut image_h = inner_h;
                if !lines.is_empty() {
                    let font = Font::liberation_serif()?;
                    let text_h = inner_h * (1.0 - SIGNATURE_IMAGE_SHARE) - IMAGE_TEXT_GAP;
                    let size = fit_size(&font, &lines, inner_w, text_h);
                    // Text that needs more room than its share at the smallest size may take
                    // up to 70 % of the box before it is clipped.
                    let text_h =
                        text_h.max(block_height(&font, lines.len(), size).min(inner_h * 0.7));
                    image_h = inner_h - text_h - IMAGE_TEXT_GAP;
                    page.text(
                        &font,
                        &lines,
                        size,
                        PADDING,
                        PADDING + text_h,
                        inner_w,
                        Align::Center,
                        add,
                    )?;
                }
                page.image(
                    &image,
                    PADDING,
                    height - PADDING - image_h,
                    inner_w,
                    image_h,
                    add,
                )?;
            }
            Self::Seal { image_png } => {
                let image = Image::decode_png(image_png)?;
                page.image(&image, 0.0, 0.0, width, height, add)?;
            }
            Self::Text { lines } => {
                let lines = normalize_lines(lines)?;
                if !lines.is_empty() {
                    let font = Font::liberation_serif()?;
                    let inner_w = width - 2.0 * PADDING;
                    let inner_h = height - 2.0 * PADDING;
                    let size = fit_size(&font, &lines, inner_w, inner_h);
                    page.text(
                        &font,
                        &lines,
                        size,
                        PADDING,
                        height - PADDING,
                        inner_w,
                        Align::Left,
                        add,
                    )?;
                }
            }
        }
        page.finish(width, height, matrix, add)
    }

    /// Natural size (w, h) in points of a Text stamp's lines at 10 pt with small padding, so the caller can size the widget.
    pub fn text_size(lines: &[String]) -> (f64, f64) {
        let lines: Vec<String> = lines.iter().map(|l| normalize_line(l)).collect();
        let (text_w, text_h) = match Font::liberation_serif() {
            Ok(font) => (
                lines
                    .iter()
                    .map(|l| font.text_width(l, TEXT_SIZE))
                    .fold(0.0, f64::max),
                block_height(&font, lines.len(), TEXT_SIZE),
            ),
            // The embedded font always parses; estimate if it somehow does not.
            Err(_) => (
                lines
                    .iter()
                    .map(|l| l.chars().count() as f64 * TEXT_SIZE * 0.5)
                    .fold(0.0, f64::max),
                lines.len() as f64 * TEXT_SIZE * LEADING,
            ),
        };
        // Round up to whole points so the text is never clipped by rounding in the caller.
        (
            (text_w + 2.0 * PADDING).ceil(),
            (text_h + 2.0 * PADDING).ceil(),
        )
    }
}

/// The form matrix that turns upright content against the page's `/Rotate` (§8.3.2.3):
/// a page shown turned `rotate` degrees clockwise needs content turned as far anticlockwise,
/// moved back into the positive quadrant.
fn rotation_matrix(rotate: i32, width: f64, height: f64) -> Result<[f64; 6], PdfError> {
    match rotate.rem_euclid(360) {
        0 => Ok([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
        90 => Ok([0.0, 1.0, -1.0, 0.0, height, 0.0]),
        180 => Ok([-1.0, 0.0, 0.0, -1.0, width, height]),
        270 => Ok([0.0, -1.0, 1.0, 0.0, 0.0, width]),
        _ => Err(PdfError::AppearanceInvalid(format!(
            "page rotation {rotate} is not a multiple of 90"
        ))),
    }
}

/// NFC-normalizes the caller's lines and enforces the line limits.
fn normalize_lines(lines: &[String]) -> Result<Vec<String>, PdfError> {
    if lines.len() > MAX_LINES {
        return Err(PdfError::AppearanceInvalid(format!(
            "{} text lines; at most {MAX_LINES} are accepted",
            lines.len()
        )));
    }
    lines
        .iter()
        .map(|l| {
            let l = normalize_line(l);
            if l.chars().count() > MAX_LINE_CHARS {
                Err(PdfError::AppearanceInvalid(format!(
                    "a text line has more than {MAX_LINE_CHARS} characters"
                )))
            } else {
                Ok(l)
            }
        })
        .collect()
}

/// Height in points of `n` lines at `size`: first ascender to last descender.
fn block_height(font: &Font, n: usize, size: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let glyphs = (font.ascent() - font.descent()) / 1000.0;
    size * (glyphs + LEADING * (n as f64 - 1.0))
}

/// The text size, between [`MIN_TEXT_SIZE`] and [`TEXT_SIZE`], at which `lines` fit in
/// `avail_w` x `avail_h` (or the smallest size, if they fit at none).
fn fit_size(font: &Font, lines: &[String], avail_w: f64, avail_h: f64) -> f64 {
    let widest = lines
        .iter()
        .map(|l| font.text_width(l, 1.0))
        .fold(0.0, f64::max);
    let tallest = block_height(font, lines.len(), 1.0);
    let mut size = TEXT_SIZE;
    if widest > 0.0 {
        size = size.min(avail_w / widest);
    }
    if tallest > 0.0 {
        size = size.min(avail_h / tallest);
    }
    if size.is_finite() {
        size.max(MIN_TEXT_SIZE)
    } else {
        MIN_TEXT_SIZE
    }
}

/// Horizontal placement of text lines.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Center,
}

/// The form's content stream and resources, as they are drawn.
#[derive(Default)]
struct Canvas {
    content: String,
    fonts: Dictionary,
    images: Dictionary,
}

impl Canvas {
    /// Draws `lines` in black at `size`, the first line's ascender at `top`, within
    /// `x`..`x + width`.
    #[allow(clippy::too_many_arguments)]
    fn text(
        &mut self,
        font: &Font,
        lines: &[String],
        size: f64,
        x: f64,
        top: f64,
        width: f64,
        align: Align,
        add: &mut dyn FnMut(Object) -> ObjectId,
    ) -> Result<(), PdfError> {
        let subset = FontSubset::new(font, lines)?;
        for line in lines {
            let missing = subset.missing_chars(line);
            if !missing.is_empty() {
                let codes: Vec<String> = missing
                    .iter()
                    .map(|c| format!("U+{:04X}", u32::from(*c)))
                    .collect();
                tracing::warn!(chars = %codes.join(" "), "signature font lacks glyphs; drawn as boxes");
            }
        }
        let name = format!("F{}", self.fonts.len() + 1);
        self.fonts.set(name.as_bytes().to_vec(), subset.write(add)?);
        let _ = write!(self.content, "BT\n0 g\n/{name} {} Tf\n", fmt(size));
        let mut baseline = top - font.ascent() / 1000.0 * size;
        for line in lines {
            let dx = match align {
                Align::Left => 0.0,
                Align::Center => ((width - font.text_width(line, size)) / 2.0).max(0.0),
            };
            let _ = writeln!(
                self.content,
                "1 0 0 1 {} {} Tm\n{} Tj",
                fmt(x + dx),
                fmt(baseline),
                subset.encode(line)?
            );
            baseline -= LEADING * size;
        }
        self.content.push_str("ET\n");
        Ok(())
    }

    /// Draws `image` as large as fits in the box at (`x`, `y`) sized `w` x `h`, centred,
    /// keeping its aspect ratio.
    fn image(
        &mut self,
        image: &Image,
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        add: &mut dyn FnMut(Object) -> ObjectId,
    ) -> Result<(), PdfError> {
        let (iw, ih) = image.fit(w.max(0.0), h.max(0.0));
        if iw <= 0.0 || ih <= 0.0 {
            return Ok(());
        }
        let name = format!("Im{}", self.images.len() + 1);
        self.images.set(name.as_bytes().to_vec(), image.write(add)?);
        let _ = writeln!(
            self.content,
            "q\n{} 0 0 {} {} {} cm\n/{name} Do\nQ",
            fmt(iw),
            fmt(ih),
            fmt(x + (w - iw) / 2.0),
            fmt(y + (h - ih) / 2.0)
        );
        Ok(())
    }

    /// Writes the form XObject.
    fn finish(
        self,
        width: f64,
        height: f64,
        matrix: [f64; 6],
        add: &mut dyn FnMut(Object) -> ObjectId,
    ) -> Result<ObjectId, PdfError> {
        let mut resources = Dictionary::new();
        if !self.fonts.is_empty() {
            resources.set("Font", self.fonts);
        }
        if !self.images.is_empty() {
            resources.set("XObject", self.images);
        }
        let dict = dictionary! {
            "Type" => "XObject",
            "Subtype" => "Form",
            "FormType" => 1,
            "BBox" => vec![num(0.0), num(0.0), num(width), num(height)],
            "Matrix" => matrix.iter().map(|&v| num(v)).collect::<Vec<_>>(),
            "Resources" => resources,
            "Filter" => "FlateDecode",
        };
        let content = deflate(self.content.as_bytes())?;
        Ok(add(Object::Stream(Stream::new(dict, content))))
    }
}

/// A number for a content stream: at most three decimals, no exponent, no `-0`.
fn fmt(v: f64) -> String {
    let r = (v * 1000.0).round() / 1000.0;
    if r == 0.0 || !r.is_finite() {
        return "0".into();
    }
    let s = format!("{r:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::require_tool;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use unicode_normalization::UnicodeNormalization;

    const SEAL_PNG: &[u8] = include_bytes!("../../tests/data/images/seal.png");
    const SIGNATURE_PNG: &[u8] = include_bytes!("../../tests/data/images/signature.png");

    fn vietnamese_lines() -> Vec<String> {
        vec![
            "Ủy ban nhân dân tỉnh Bắc Ninh".to_string(),
            "Số: 123/QĐ-UBND".to_string(),
            "Thời gian ký: 2025-07-01T09:30:00+07:00".to_string(),
        ]
    }

    /// A one-page PDF (`page` = width, height as displayed, `/Rotate rotate`) with one
    /// signature widget whose appearance is `ap`, its displayed box `widget` = x, y (from the
    /// displayed top-left corner), width, height.
    fn widget_pdf(ap: &Appearance, page: (f64, f64), rotate: i32, widget: [f64; 4]) -> Vec<u8> {
        let (page_w, page_h) = page;
        let [x, y, w, h] = widget;
        let mut doc = lopdf::Document::with_version("1.7");
        let form = ap
            .build(w, h, rotate, &mut |o| doc.add_object(o))
            .expect("appearance builds");
        // Displayed box -> default user space (the page's MediaBox is unrotated).
        let (media_w, media_h, rect) = match rotate {
            0 => (page_w, page_h, [x, page_h - y - h, x + w, page_h - y]),
            90 => (page_h, page_w, [y, x, y + h, x + w]),
            180 => (page_w, page_h, [page_w - x - w, y, page_w - x, y + h]),
            270 => (
                page_h,
                page_w,
                [page_h - y - h, page_w - x - w, page_h - y, page_w - x],
            ),
            _ => unreachable!("test rotations"),
        };
        let pages_id = doc.new_object_id();
        let page_id = doc.new_object_id();
        let widget_id = doc.add_object(dictionary! {
            "Type" => "Annot",
            "Subtype" => "Widget",
            "FT" => "Sig",
            "T" => Object::string_literal("Signature1"),
            "F" => 4,
            "P" => page_id,
            "Rect" => rect.iter().map(|&v| num(v)).collect::<Vec<_>>(),
            "AP" => dictionary! { "N" => form },
        });
        let content_id = doc.add_object(Stream::new(Dictionary::new(), Vec::new()));
        doc.objects.insert(
            page_id,
            Object::Dictionary(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "MediaBox" => vec![num(0.0), num(0.0), num(media_w), num(media_h)],
                "Rotate" => rotate,
                "Contents" => content_id,
                "Resources" => Dictionary::new(),
                "Annots" => vec![Object::Reference(widget_id)],
            }),
        );
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => vec![Object::Reference(page_id)],
                "Count" => 1,
            }),
        );
        let catalog_id = doc.add_object(dictionary! {
            "Type" => "Catalog",
            "Pages" => pages_id,
            "AcroForm" => dictionary! { "Fields" => vec![Object::Reference(widget_id)] },
        });
        doc.trailer.set("Root", catalog_id);
        let mut out = Vec::new();
        doc.save_to(&mut out).expect("save");
        out
    }

    fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }

    fn pdftotext(pdf: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_temp(dir.path(), "in.pdf", pdf);
        let out = Command::new("pdftotext")
            .args(["-enc", "UTF-8"])
            .arg(&path)
            .arg("-")
            .output()
            .expect("run pdftotext");
        assert!(
            out.status.success(),
            "pdftotext: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 text")
    }

    /// Renders page 1 at 72 dpi (1 px = 1 pt) and returns it as RGB rows.
    fn render(pdf: &[u8]) -> (usize, usize, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_temp(dir.path(), "in.pdf", pdf);
        let prefix = dir.path().join("page");
        let out = Command::new("pdftoppm")
            .args(["-png", "-r", "72", "-singlefile"])
            .arg(&path)
            .arg(&prefix)
            .output()
            .expect("run pdftoppm");
        assert!(
            out.status.success(),
            "pdftoppm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let png = std::fs::read(dir.path().join("page.png")).expect("rendered page");
        let img = Image::decode_png(&png).expect("decode rendering");
        assert_eq!(img.colors, super::super::image::Colors::Rgb);
        (img.width as usize, img.height as usize, img.pixels)
    }

    /// Bounding box (x0, y0, x1, y1) and count of the pixels matching `pred`.
    fn find(
        w: usize,
        h: usize,
        px: &[u8],
        pred: impl Fn(u8, u8, u8) -> bool,
    ) -> Option<(usize, usize, usize, usize, usize)> {
        let mut bbox: Option<(usize, usize, usize, usize, usize)> = None;
        for y in 0..h {
            for x in 0..w {
                let i = 3 * (y * w + x);
                if pred(px[i], px[i + 1], px[i + 2]) {
                    let b = bbox.get_or_insert((x, y, x, y, 0));
                    b.0 = b.0.min(x);
                    b.1 = b.1.min(y);
                    b.2 = b.2.max(x);
                    b.3 = b.3.max(y);
                    b.4 += 1;
                }
            }
        }
        bbox
    }

    fn is_red(r: u8, g: u8, b: u8) -> bool {
        r > 150 && g < 90 && b < 90
    }
    fn is_blue(r: u8, g: u8, b: u8) -> bool {
        b > 110 && r < 90 && g < 110
    }
    fn is_dark(r: u8, g: u8, b: u8) -> bool {
        r < 80 && g < 80 && b < 80
    }

    fn assert_lines_extracted(text: &str, lines: &[String]) {
        let got: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        for line in lines {
            assert!(got.contains(&line.as_str()), "missing {line:?} in {got:?}");
        }
    }

    #[test]
    fn text_stamp_extracts_exact_vietnamese() {
        if !require_tool("pdftotext") {
            return;
        }
        let lines = vietnamese_lines();
        let (w, h) = Appearance::text_size(&lines);
        assert!(w > 100.0 && w < 300.0 && h > 30.0 && h < 45.0, "{w}x{h}");
        let ap = Appearance::Text {
            lines: lines.clone(),
        };
        let pdf = widget_pdf(&ap, (595.0, 842.0), 0, [50.0, 50.0, w, h]);
        assert_lines_extracted(&pdftotext(&pdf), &lines);
    }

    #[test]
    fn decomposed_input_extracts_as_nfc() {
        if !require_tool("pdftotext") {
            return;
        }
        let decomposed: String = "Ủy ban nhân dân tỉnh Bắc Ninh".nfd().collect();
        assert_ne!(decomposed, "Ủy ban nhân dân tỉnh Bắc Ninh");
        let ap = Appearance::Text {
            lines: vec![decomposed],
        };
        let pdf = widget_pdf(&ap, (400.0, 200.0), 0, [10.0, 10.0, 200.0, 20.0]);
        assert_lines_extracted(
            &pdftotext(&pdf),
            &["Ủy ban nhân dân tỉnh Bắc Ninh".to_string()],
        );
    }

    #[test]
    fn missing_glyphs_do_not_fail_and_still_extract() {
        if !require_tool("pdftotext") {
            return;
        }
        // U+4E2D is not in Liberation Serif: drawn as .notdef, extracted via /ToUnicode.
        let lines = vec!["Ký: 中 Nguyễn".to_string()];
        let ap = Appearance::Text {
            lines: lines.clone(),
        };
        let (w, h) = Appearance::text_size(&lines);
        let pdf = widget_pdf(&ap, (400.0, 200.0), 0, [10.0, 10.0, w, h]);
        assert_lines_extracted(&pdftotext(&pdf), &lines);
    }

    #[test]
    fn signature_reads_upright_on_rotated_pages() {
        if !require_tool("pdftoppm") || !require_tool("pdftotext") {
            return;
        }
        let lines = vietnamese_lines();
        let ap = Appearance::Signature {
            image_png: SIGNATURE_PNG.to_vec(),
            lines: lines.clone(),
        };
        for rotate in [0, 90, 180, 270] {
            let (bx, by, bw, bh) = (40.0, 60.0, 220.0, 110.0);
            let pdf = widget_pdf(&ap, (300.0, 240.0), rotate, [bx, by, bw, bh]);
            assert_lines_extracted(&pdftotext(&pdf), &lines);
            let (w, h, px) = render(&pdf);
            assert_eq!((w, h), (300, 240), "rotate {rotate}: displayed page size");
            let blue =
                find(w, h, &px, is_blue).unwrap_or_else(|| panic!("rotate {rotate}: no blue ink"));
            let dark =
                find(w, h, &px, is_dark).unwrap_or_else(|| panic!("rotate {rotate}: no text"));
            // Both inside the displayed widget box.
            for (what, b) in [("ink", blue), ("text", dark)] {
                assert!(
                    b.0 as f64 >= bx - 1.0
                        && b.2 as f64 <= bx + bw + 1.0
                        && b.1 as f64 >= by - 1.0
                        && b.3 as f64 <= by + bh + 1.0,
                    "rotate {rotate}: {what} {b:?} outside the widget"
                );
            }
            // Upright: the handwriting is above the text and wider than tall, like the PNG.
            assert!(
                blue.3 <= dark.1 + 2,
                "rotate {rotate}: ink {blue:?} not above text {dark:?}"
            );
            assert!(
                blue.2 - blue.0 > blue.3 - blue.1,
                "rotate {rotate}: ink {blue:?} is on its side"
            );
            assert!(
                dark.2 - dark.0 > dark.3 - dark.1,
                "rotate {rotate}: text {dark:?} is on its side"
            );
        }
    }

    #[test]
    fn seal_renders_red_with_transparent_corners() {
        if !require_tool("pdftoppm") {
            return;
        }
        let ap = Appearance::Seal {
            image_png: SEAL_PNG.to_vec(),
        };
        let (x, y, d) = (100.0, 80.0, 120.0);
        let pdf = widget_pdf(&ap, (400.0, 300.0), 0, [x, y, d, d]);
        let (w, h, px) = render(&pdf);
        let red = find(w, h, &px, is_red).expect("red seal pixels");
        // The seal's outer ring touches the widget's edges (it fills the square).
        assert!(
            red.0.abs_diff(100) <= 2 && red.2.abs_diff(220) <= 2,
            "{red:?}"
        );
        assert!(
            red.1.abs_diff(80) <= 2 && red.3.abs_diff(200) <= 2,
            "{red:?}"
        );
        assert!(red.4 > 2000, "too few red pixels: {}", red.4);
        // Corners of the widget are outside the circle: the soft mask keeps them white.
        for (cx, cy) in [(102, 82), (217, 82), (102, 197), (217, 197)] {
            let i = 3 * (cy * w + cx);
            assert_eq!(
                &px[i..i + 3],
                &[255, 255, 255],
                "corner ({cx},{cy}) not transparent"
            );
        }
    }

    #[test]
    fn rejects_bad_boxes_rotations_and_images() {
        let mut count = 0u32;
        let mut add = |_o: Object| {
            count += 1;
            (count, 0)
        };
        let text = Appearance::Text {
            lines: vietnamese_lines(),
        };
        for (w, h) in [
            (0.0, 10.0),
            (10.0, -1.0),
            (f64::NAN, 10.0),
            (10.0, f64::INFINITY),
            (20_000.0, 10.0),
        ] {
            let err = text.build(w, h, 0, &mut add).expect_err("bad box");
            assert!(matches!(err, PdfError::AppearanceInvalid(_)), "{err:?}");
        }
        let err = text
            .build(100.0, 40.0, 45, &mut add)
            .expect_err("bad rotation");
        assert!(matches!(err, PdfError::AppearanceInvalid(_)), "{err:?}");
        assert!(text.build(100.0, 40.0, -90, &mut add).is_ok(), "-90 is 270");

        let seal = Appearance::Seal {
            image_png: SEAL_PNG[..SEAL_PNG.len() / 3].to_vec(),
        };
        let err = seal
            .build(100.0, 100.0, 0, &mut add)
            .expect_err("truncated png");
        assert_eq!(err.code(), crate::ErrorCode::ImageInvalid);
        let sig = Appearance::Signature {
            image_png: b"not a png".to_vec(),
            lines: vec![],
        };
        let err = sig.build(100.0, 100.0, 0, &mut add).expect_err("not a png");
        assert_eq!(err.code(), crate::ErrorCode::ImageInvalid);

        let many = Appearance::Text {
            lines: vec!["x".into(); MAX_LINES + 1],
        };
        assert!(matches!(
            many.build(100.0, 100.0, 0, &mut add),
            Err(PdfError::AppearanceInvalid(_))
        ));
    }

    #[test]
    fn form_xobject_has_bbox_matrix_and_resources() {
        let mut objects = std::collections::BTreeMap::new();
        let mut add = |o: Object| {
            let id = (objects.len() as u32 + 1, 0);
            objects.insert(id, o);
            id
        };
        let ap = Appearance::Signature {
            image_png: SIGNATURE_PNG.to_vec(),
            lines: vietnamese_lines(),
        };
        let id = ap.build(200.0, 100.0, 90, &mut add).expect("build");
        let Some(Object::Stream(form)) = objects.get(&id) else {
            panic!("form is a stream")
        };
        let d = &form.dict;
        assert_eq!(
            d.get(b"Subtype").and_then(Object::as_name).ok(),
            Some(&b"Form"[..])
        );
        let bbox: Vec<f32> = d
            .get(b"BBox")
            .and_then(Object::as_array)
            .expect("bbox")
            .iter()
            .map(|o| o.as_float().expect("num"))
            .collect();
        assert_eq!(bbox, vec![0.0, 0.0, 200.0, 100.0]);
        let m: Vec<f32> = d
            .get(b"Matrix")
            .and_then(Object::as_array)
            .expect("matrix")
            .iter()
            .map(|o| o.as_float().expect("num"))
            .collect();
        assert_eq!(m, vec![0.0, 1.0, -1.0, 0.0, 100.0, 0.0]);
        let res = d
            .get(b"Resources")
            .and_then(Object::as_dict)
            .expect("resources");
        assert!(res
            .get(b"Font")
            .and_then(Object::as_dict)
            .expect("fonts")
            .has(b"F1"));
        let im = res
            .get(b"XObject")
            .and_then(Object::as_dict)
            .expect("xobjects")
            .get(b"Im1")
            .and_then(Object::as_reference)
            .expect("image ref");
        let Some(Object::Stream(image)) = objects.get(&im) else {
            panic!("image is a stream")
        };
        assert!(image.dict.has(b"SMask"), "transparent PNG gets a soft mask");
    }

    #[test]
    fn text_size_grows_with_lines_and_width() {
        let one = Appearance::text_size(&["Bản sao".to_string()]);
        let two =
            Appearance::text_size(&["Bản sao".to_string(), "Bản sao y bản chính".to_string()]);
        assert!(two.0 > one.0 && two.1 > one.1, "{one:?} {two:?}");
        assert_eq!(Appearance::text_size(&[]), (2.0 * PADDING, 2.0 * PADDING));
    }

    #[test]
    fn number_format() {
        assert_eq!(fmt(10.0), "10");
        assert_eq!(fmt(-0.0001), "0");
        assert_eq!(fmt(1.23456), "1.235");
        assert_eq!(fmt(-2.5), "-2.5");
    }
}
