//! Rendering pages (`pdftoppm`) and reading their pixels; text extraction (`pdftotext`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run_ok, scratch_path, stdout_str};

/// Renders page `page` (1-based) of `pdf` at `dpi` to a PNG (pdftoppm); returns its path
/// (under `CARGO_TARGET_TMPDIR`, kept for inspection after a failure).
pub fn render_page_png(pdf: &Path, page: u32, dpi: u32) -> PathBuf {
    let png = scratch_path("page", "png");
    let prefix = png.with_extension("");
    let p = page.to_string();
    run_ok(
        Command::new("pdftoppm")
            .args([
                "-png",
                "-r",
                &dpi.to_string(),
                "-f",
                &p,
                "-l",
                &p,
                "-singlefile",
            ])
            .arg(pdf)
            .arg(&prefix),
    );
    assert!(png.exists(), "pdftoppm wrote no {}", png.display());
    png
}

/// Text of `pdf` as UTF-8 (`pdftotext -enc UTF-8 PDF -`); panics if pdftotext fails.
pub fn pdftotext(pdf: &Path) -> String {
    stdout_str(&run_ok(
        Command::new("pdftotext")
            .args(["-enc", "UTF-8"])
            .arg(pdf)
            .arg("-"),
    ))
}

/// An 8-bit RGB image read from a PNG.
#[derive(Clone, Debug)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major pixels, top-left first.
    pub pixels: Vec<[u8; 3]>,
}

impl RgbImage {
    /// Pixel at (x, y), origin top-left.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        self.pixels[(y * self.width + x) as usize]
    }

    /// Number of pixels in the rectangle `[x0, x1) × [y0, y1)` (clipped) matching `pred`.
    pub fn count_in(
        &self,
        x0: u32,
        y0: u32,
        x1: u32,
        y1: u32,
        pred: impl Fn([u8; 3]) -> bool,
    ) -> usize {
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        let mut n = 0;
        for y in y0..y1 {
            for x in x0..x1 {
                if pred(self.pixel(x, y)) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Converts a PDF rectangle `[llx, lly, urx, ury]` in points (unrotated page, origin
    /// bottom-left) to pixel bounds `(x0, y0, x1, y1)` (origin top-left) at `dpi`.
    pub fn pdf_rect_to_px(&self, rect: [f64; 4], dpi: u32) -> (u32, u32, u32, u32) {
        let s = dpi as f64 / 72.0;
        let h = self.height as f64;
        let x0 = (rect[0] * s).floor().max(0.0) as u32;
        let x1 = (rect[2] * s).ceil().max(0.0) as u32;
        let y0 = (h - rect[3] * s).floor().max(0.0) as u32;
        let y1 = (h - rect[1] * s).ceil().max(0.0) as u32;
        (x0, y0, x1, y1)
    }

    /// Number of "red" pixels ([`is_red`]) in a PDF-point rectangle of an unrotated page.
    pub fn red_pixels_in_pdf_rect(&self, rect: [f64; 4], dpi: u32) -> usize {
        let (x0, y0, x1, y1) = self.pdf_rect_to_px(rect, dpi);
        self.count_in(x0, y0, x1, y1, is_red)
    }
}

/// Reads a PNG (gray, gray+alpha, RGB, RGBA, palette; 8 or 16 bit) into RGB (alpha dropped).
pub fn read_png_rgb(path: &Path) -> RgbImage {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().expect("read PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("decode PNG");
    let data = &buf[..info.buffer_size()];
    let (ct, _) = reader.output_color_type();
    let step = match ct {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => panic!("indexed PNG not expanded"),
    };
    let pixels = data
        .chunks_exact(step)
        .map(|c| {
            if step <= 2 {
                [c[0], c[0], c[0]]
            } else {
                [c[0], c[1], c[2]]
            }
        })
        .collect();
    RgbImage {
        width: info.width,
        height: info.height,
        pixels,
    }
}

/// Clearly red: strong red channel, weak green and blue (stamp ink, anti-aliasing tolerant).
pub fn is_red(p: [u8; 3]) -> bool {
    p[0] >= 150 && p[1] <= 110 && p[2] <= 110
}

/// Not white-ish (any ink).
pub fn is_ink(p: [u8; 3]) -> bool {
    p.iter().any(|&c| c < 200)
}
