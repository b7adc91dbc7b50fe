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
                    let text_h = text_h.max(block_height(&font, lines.len(), size).min(inner_h * 0.7));
                    image_h = inner_h - text_h - IMAGE_TEXT_GAP;
                    page.text(&font, &lines, size, PADDING, PADDING + text_h, inner_w, Align::Center, add)?;
                }
                page.image(&image, PADDING, height - PADDING - image_h, inner_w, image_h, add)?;
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
                    page.text(&font, &lines, size, PADDING, height - PADDING, inner_w, Align::Left, add)?;
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
                let codes: Vec<String> =
                    missing.iter().map(|c| format!("U+{:04X}", u32::from(*c))).collect();
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
}
