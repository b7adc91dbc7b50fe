//! PDF files for tests: `qpdf --check`, and large PDFs written streaming.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

use super::run;

/// `qpdf --check`: true when qpdf finds no errors (exit 0, or 3 = warnings only).
pub fn qpdf_check(pdf: &Path) -> bool {
    matches!(
        run(Command::new("qpdf").arg("--check").arg(pdf))
            .status
            .code(),
        Some(0) | Some(3)
    )
}

/// A file written in order, remembering where each object starts.
struct PdfWriter {
    out: BufWriter<std::fs::File>,
    at: u64,
    offsets: Vec<(usize, u64)>,
}

impl PdfWriter {
    fn put(&mut self, bytes: &[u8]) {
        self.out.write_all(bytes).unwrap();
        self.at += bytes.len() as u64;
    }

    fn object(&mut self, n: usize, body: &str) {
        self.offsets.push((n, self.at));
        self.put(format!("{n} 0 obj\n{body}\nendobj\n").as_bytes());
    }
}

/// Writes a PDF of `pages` pages, each an uncompressed, incompressible `side` × `side` RGB
/// image (3·side² bytes), streaming (never held in memory), with a classic cross-reference
/// table; returns its length.
pub fn write_large_pdf(path: &Path, pages: usize, side: usize) -> u64 {
    let mut w = PdfWriter {
        out: BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap()),
        at: 0,
        offsets: Vec::new(),
    };
    w.put(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>");
    let kids: Vec<String> = (0..pages).map(|p| format!("{} 0 R", 3 + 3 * p)).collect();
    w.object(
        2,
        &format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        ),
    );
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let len = side * side * 3;
    let mut chunk = vec![0u8; 1 << 20];
    for p in 0..pages {
        let (page, contents, image) = (3 + 3 * p, 4 + 3 * p, 5 + 3 * p);
        w.object(page, &format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 {image} 0 R >> >> /Contents {contents} 0 R >>"
        ));
        let draw = "q 595 0 0 842 0 0 cm /Im0 Do Q\n";
        w.object(
            contents,
            &format!("<< /Length {} >>\nstream\n{draw}endstream", draw.len()),
        );
        w.offsets.push((image, w.at));
        w.put(format!(
            "{image} 0 obj\n<< /Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length {len} >>\nstream\n"
        ).as_bytes());
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            for word in chunk[..n].chunks_mut(8) {
                // xorshift64: fast, and incompressible as photographs are.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let bytes = state.to_le_bytes();
                word.copy_from_slice(&bytes[..word.len()]);
            }
            w.put(&chunk[..n]);
            left -= n;
        }
        w.put(b"\nendstream\nendobj\n");
    }
    let size = 3 + 3 * pages;
    let xref = w.at;
    let mut offsets = w.offsets.clone();
    offsets.sort();
    let mut table = format!("xref\n0 {size}\n0000000000 65535 f \n");
    for (_, off) in offsets {
        table.push_str(&format!("{off:010} 00000 n \n"));
    }
    table.push_str(&format!(
        "trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ));
    w.put(table.as_bytes());
    w.out.flush().unwrap();
    w.at
}
