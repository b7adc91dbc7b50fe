//! A new PDF of plain text (a printable report): A4 pages of paragraphs set in the embedded
//! Liberation Serif subset ([`super::font`], with a `/ToUnicode` map so Vietnamese text
//! extracts exactly), wrapped at word boundaries and broken into pages. It knows layout only;
//! what the text says is the caller's, and signing it is the signing path's.

use std::fmt::Write as _;

use lopdf::{dictionary, Dictionary, Object, Stream};

use super::font::{deflate, normalize_line, num, Font, FontSubset};
use super::PdfError;

/// A4, points.
const PAGE: (f64, f64) = (595.28, 841.89);
/// Margin on every side, points.
const MARGIN: f64 = 56.0;
/// Indentation of [`TextDocument::item`] paragraphs, points.
const INDENT: f64 = 14.0;
/// Baseline-to-baseline distance as a multiple of the text size.
const LEADING: f64 = 1.3;
/// Most paragraphs in one document (a bound on the work a caller's input can cause).
const MAX_PARAGRAPHS: usize = 4096;
/// Most characters in one paragraph.
const MAX_CHARS: usize = 4096;

/// How a paragraph is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextStyle {
    /// The document's title: 16 pt.
    Title,
    /// A section heading: 12.5 pt, space above.
    Heading,
    /// Running text: 10.5 pt.
    Body,
    /// Notes: 9 pt, grey.
    Small,
}

impl TextStyle {
    fn size(self) -> f64 {
        match self {
            TextStyle::Title => 16.0,
            TextStyle::Heading => 12.5,
            TextStyle::Body => 10.5,
            TextStyle::Small => 9.0,
        }
    }

    fn space_before(self) -> f64 {
        match self {
            TextStyle::Title => 0.0,
            TextStyle::Heading => 10.0,
            TextStyle::Body | TextStyle::Small => 2.0,
        }
    }

    fn gray(self) -> &'static str {
        match self {
            TextStyle::Small => "0.3 g",
            _ => "0 g",
        }
    }
}

struct Paragraph {
    style: TextStyle,
    indent: f64,
    text: String,
}

/// Paragraphs to be laid out on A4 pages.
pub struct TextDocument {
    title: String,
    lang: String,
    paragraphs: Vec<Paragraph>,
}

impl TextDocument {
    /// An empty document titled `title` (its `/Info /Title`), in language `lang` (`vi`, `en`:
    /// the catalog's `/Lang`).
    pub fn new(title: &str, lang: &str) -> Self {
        Self {
            title: normalize_line(title),
            lang: lang
                .chars()
                .filter(char::is_ascii_alphabetic)
                .take(8)
                .collect(),
            paragraphs: Vec::new(),
        }
    }

    /// Adds a paragraph.
    pub fn push(&mut self, style: TextStyle, text: &str) -> &mut Self {
        self.add(style, 0.0, text)
    }

    /// Adds an indented body paragraph (a list item).
    pub fn item(&mut self, text: &str) -> &mut Self {
        self.add(TextStyle::Body, INDENT, text)
    }

    fn add(&mut self, style: TextStyle, indent: f64, text: &str) -> &mut Self {
        if self.paragraphs.len() < MAX_PARAGRAPHS {
            self.paragraphs.push(Paragraph {
                style,
                indent,
                text: normalize_line(&text.chars().take(MAX_CHARS).collect::<String>()),
            });
        }
        self
    }

    /// The PDF: one content stream per page, one font subset for the whole document.
    pub fn to_pdf(&self) -> Result<Vec<u8>, PdfError> {
        let font = Font::liberation_serif()?;
        let width = PAGE.0 - 2.0 * MARGIN;
        // Lay out: (page, style, x, baseline, text).
        let mut placed: Vec<(usize, TextStyle, f64, f64, String)> = Vec::new();
        let mut page = 0;
        let mut y = PAGE.1 - MARGIN;
        for p in &self.paragraphs {
            let size = p.style.size();
            y -= p.style.space_before();
            for line in wrap(&font, &p.text, size, width - p.indent) {
                if y - size * LEADING < MARGIN {
                    page += 1;
                    y = PAGE.1 - MARGIN;
                }
                y -= size * LEADING;
                placed.push((page, p.style, MARGIN + p.indent, y, line));
            }
        }
        let pages = page + 1;
        let lines: Vec<&str> = placed.iter().map(|p| p.4.as_str()).collect();
        let subset = FontSubset::new(&font, &lines)?;

        let mut doc = lopdf::Document::with_version("1.7");
        let font_id = subset.write(&mut |o| doc.add_object(o))?;
        let pages_id = doc.new_object_id();
        let mut kids = Vec::with_capacity(pages);
        for n in 0..pages {
            let mut content = String::new();
            for (_, style, x, baseline, text) in placed.iter().filter(|p| p.0 == n) {
                let _ = writeln!(
                    content,
                    "BT\n{}\n/F1 {} Tf\n1 0 0 1 {} {} Tm\n{} Tj\nET",
                    style.gray(),
                    fmt(style.size()),
                    fmt(*x),
                    fmt(*baseline),
                    subset.encode(text)?
                );
            }
            let stream = Stream::new(
                dictionary! { "Filter" => "FlateDecode" },
                deflate(content.as_bytes())?,
            );
            let content_id = doc.add_object(stream);
            let page_id = doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "MediaBox" => vec![num(0.0), num(0.0), num(PAGE.0), num(PAGE.1)],
                "Contents" => content_id,
                "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            });
            kids.push(Object::Reference(page_id));
        }
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => kids,
                "Count" => pages as i64,
            }),
        );
        let catalog_id = doc.add_object(dictionary! {
            "Type" => "Catalog",
            "Pages" => pages_id,
            "Lang" => Object::string_literal(self.lang.as_str()),
        });
        let mut info = Dictionary::new();
        info.set("Title", text_string(&self.title));
        info.set("Producer", Object::string_literal("signgate"));
        let info_id = doc.add_object(info);
        doc.trailer.set("Root", catalog_id);
        doc.trailer.set("Info", info_id);
        let mut out = Vec::new();
        doc.save_to(&mut out)
            .map_err(|e| PdfError::Font(format!("writing the report failed: {e}")))?;
        Ok(out)
    }
}

/// A PDF text string in UTF-16BE with its byte order mark (§7.9.2.2).
fn text_string(text: &str) -> Object {
    let mut bytes = vec![0xFE, 0xFF];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_be_bytes());
    }
    Object::String(bytes, lopdf::StringFormat::Hexadecimal)
}

/// `text` broken into lines no wider than `width` at `size`, at spaces (a word wider than a
/// line is broken between characters).
fn wrap(font: &Font, text: &str, size: f64, width: f64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if font.text_width(&candidate, size) <= width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for c in word.chars() {
            line.push(c);
            if font.text_width(&line, size) > width && line.chars().count() > 1 {
                line.pop();
                lines.push(std::mem::take(&mut line));
                line.push(c);
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// A number in a content stream.
fn fmt(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    if r.fract() == 0.0 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_wraps_and_pages_break() {
        let font = Font::liberation_serif().expect("font");
        let lines = wrap(&font, &"Ủy ban nhân dân ".repeat(40), 10.5, 300.0);
        assert!(lines.len() > 3, "{lines:?}");
        assert!(lines
            .iter()
            .all(|l| font.text_width(l, 10.5) <= 300.0 + 0.01));
        let long = "x".repeat(500);
        assert!(wrap(&font, &long, 10.5, 100.0).len() > 3);

        let mut doc = TextDocument::new("Báo cáo", "vi");
        for i in 0..120 {
            doc.push(TextStyle::Body, &format!("Dòng số {i}: chữ ký hợp lệ."));
        }
        let pdf = doc.to_pdf().expect("pdf");
        let parsed = lopdf::Document::load_mem(&pdf).expect("parses");
        assert!(parsed.get_pages().len() >= 2, "pages break");
    }
}
