//! PNG images for visible signatures (handwritten signatures, seals), decoded and written as
//! PDF image XObjects (ISO 32000-1 §8.9.5) with a soft mask for transparency (§11.6.5.3).
//!
//! Input is untrusted: sizes are capped before any pixel buffer is allocated and every decoder
//! failure becomes [`PdfError::ImageInvalid`].

use lopdf::{dictionary, Object, ObjectId, Stream};

use super::font::deflate_with;
use super::PdfError;

/// Largest accepted width or height in pixels. A signature or seal printed at 600 dpi on a
/// 5 cm box needs ~1200 px; 4096 leaves room without letting one request eat memory.
pub(crate) const MAX_SIDE: u32 = 4096;

/// Largest accepted PNG file.
const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Most memory the PNG decoder may use (the largest image as RGBA plus decoder state).
const MAX_DECODER_BYTES: usize = (MAX_SIDE as usize) * (MAX_SIDE as usize) * 4 + 8 * 1024 * 1024;

/// The colour space of the decoded samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Colors {
    /// One 8-bit sample per pixel.
    Gray,
    /// Three 8-bit samples per pixel.
    Rgb,
}

/// A decoded 8-bit image with its alpha channel split off.
#[derive(Debug)]
pub(crate) struct Image {
    /// Width in pixels.
    pub(crate) width: u32,
    /// Height in pixels.
    pub(crate) height: u32,
    /// Colour space of `pixels`.
    pub(crate) colors: Colors,
    /// Samples, row by row, top row first.
    pub(crate) pixels: Vec<u8>,
    /// One alpha byte per pixel, or `None` when the image is fully opaque.
    pub(crate) alpha: Option<Vec<u8>>,
}

impl Image {
    /// Decodes a PNG of any colour type and bit depth (palette, gray and low bit depths are
    /// expanded, 16-bit samples reduced to 8 bits).
    pub(crate) fn decode_png(bytes: &[u8]) -> Result<Self, PdfError> {
        let invalid = |m: String| PdfError::ImageInvalid(m);
        if bytes.len() > MAX_FILE_BYTES {
            return Err(invalid(format!(
                "PNG file of {} bytes exceeds the {MAX_FILE_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let mut decoder = png::Decoder::new_with_limits(
            bytes,
            png::Limits {
                bytes: MAX_DECODER_BYTES,
            },
        );
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder
            .read_info()
            .map_err(|e| invalid(format!("not a readable PNG: {e}")))?;
        let (width, height) = reader.info().size();
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(invalid(format!(
                "PNG is {width}x{height} pixels; at most {MAX_SIDE}x{MAX_SIDE} is accepted"
            )));
        }
        let (color, depth) = reader.output_color_type();
        if depth != png::BitDepth::Eight {
            return Err(invalid(format!("unsupported PNG bit depth {depth:?}")));
        }
        let channels = match color {
            png::ColorType::Grayscale => 1,
            png::ColorType::GrayscaleAlpha => 2,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            png::ColorType::Indexed => {
                return Err(invalid("PNG palette could not be expanded".into()));
            }
        };
        let mut buf = vec![0u8; reader.output_buffer_size()];
        let frame = reader
            .next_frame(&mut buf)
            .map_err(|e| invalid(format!("PNG image data is broken: {e}")))?;
        let w = width as usize;
        let h = height as usize;
        let row_len = w * channels;
        if frame.line_size < row_len || buf.len() < frame.line_size * h {
            return Err(invalid("PNG frame is smaller than its header says".into()));
        }

        let color_channels = if channels >= 3 { 3 } else { 1 };
        let has_alpha = channels == 2 || channels == 4;
        let mut pixels = Vec::with_capacity(w * h * color_channels);
        let mut alpha = Vec::with_capacity(if has_alpha { w * h } else { 0 });
        for row in buf.chunks(frame.line_size).take(h) {
            for px in row[..row_len].chunks_exact(channels) {
                pixels.extend_from_slice(&px[..color_channels]);
                if has_alpha {
                    alpha.push(px[channels - 1]);
                }
            }
        }
        let alpha = (has_alpha && alpha.iter().any(|&a| a != 255)).then_some(alpha);
        Ok(Self {
            width,
            height,
            colors: if color_channels == 3 {
                Colors::Rgb
            } else {
                Colors::Gray
            },
            pixels,
            alpha,
        })
    }

    /// Writes the image (and its soft mask, if any) through `add`; returns the image
    /// XObject's id, for an `/XObject` resource.
    pub(crate) fn write(
        &self,
        add: &mut dyn FnMut(Object) -> ObjectId,
    ) -> Result<ObjectId, PdfError> {
        let smask = match &self.alpha {
            Some(alpha) => {
                let dict = dictionary! {
                    "Type" => "XObject",
                    "Subtype" => "Image",
                    "Width" => i64::from(self.width),
                    "Height" => i64::from(self.height),
                    "ColorSpace" => "DeviceGray",
                    "BitsPerComponent" => 8,
                    "Filter" => "FlateDecode",
                };
                Some(add(Object::Stream(Stream::new(
                    dict,
                    deflate_with(alpha, flate2::Compression::fast())?,
                ))))
            }
            None => None,
        };
        let mut dict = dictionary! {
            "Type" => "XObject",
            "Subtype" => "Image",
            "Width" => i64::from(self.width),
            "Height" => i64::from(self.height),
            "ColorSpace" => match self.colors {
                Colors::Gray => "DeviceGray",
                Colors::Rgb => "DeviceRGB",
            },
            "BitsPerComponent" => 8,
            "Interpolate" => true,
            "Filter" => "FlateDecode",
        };
        if let Some(id) = smask {
            dict.set("SMask", id);
        }
        Ok(add(Object::Stream(Stream::new(
            dict,
            deflate_with(&self.pixels, flate2::Compression::fast())?,
        ))))
    }

    /// The largest `(w, h)` with this image's aspect ratio that fits in `box_w` x `box_h`.
    pub(crate) fn fit(&self, box_w: f64, box_h: f64) -> (f64, f64) {
        let iw = f64::from(self.width);
        let ih = f64::from(self.height);
        let scale = (box_w / iw).min(box_h / ih).max(0.0);
        (iw * scale, ih * scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a small PNG with the `png` crate.
    fn encode(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
        encode_with(w, h, color, depth, data, |_| {})
    }

    fn encode_with(
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
        setup: impl FnOnce(&mut png::Encoder<&mut Vec<u8>>),
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(color);
            enc.set_depth(depth);
            setup(&mut enc);
            let mut writer = enc.write_header().expect("header");
            writer.write_image_data(data).expect("data");
        }
        out
    }

    #[test]
    fn decodes_every_color_type() {
        use png::{BitDepth as D, ColorType as C};
        let rgb = Image::decode_png(&encode(2, 1, C::Rgb, D::Eight, &[255, 0, 0, 0, 0, 255]))
            .expect("rgb");
        assert_eq!(
            (rgb.colors, rgb.pixels.as_slice()),
            (Colors::Rgb, &[255, 0, 0, 0, 0, 255][..])
        );
        assert!(rgb.alpha.is_none());

        let rgba =
            Image::decode_png(&encode(1, 1, C::Rgba, D::Eight, &[1, 2, 3, 4])).expect("rgba");
        assert_eq!(rgba.pixels, vec![1, 2, 3]);
        assert_eq!(rgba.alpha, Some(vec![4]));

        let opaque = Image::decode_png(&encode(1, 1, C::Rgba, D::Eight, &[1, 2, 3, 255]))
            .expect("opaque rgba");
        assert!(opaque.alpha.is_none(), "fully opaque alpha is dropped");

        let gray = Image::decode_png(&encode(8, 1, C::Grayscale, D::One, &[0b1010_0000]))
            .expect("1-bit gray");
        assert_eq!(gray.colors, Colors::Gray);
        assert_eq!(gray.pixels, vec![255, 0, 255, 0, 0, 0, 0, 0]);

        let ga = Image::decode_png(&encode(
            1,
            1,
            C::GrayscaleAlpha,
            D::Sixteen,
            &[0x12, 0x34, 0x80, 0x00],
        ))
        .expect("16-bit gray+alpha");
        assert_eq!((ga.pixels, ga.alpha), (vec![0x12], Some(vec![0x80])));

        let pal = Image::decode_png(&encode_with(2, 1, C::Indexed, D::Eight, &[0, 1], |e| {
            e.set_palette(vec![255, 0, 0, 0, 0, 255]);
            e.set_trns(vec![0, 255]);
        }))
        .expect("palette");
        assert_eq!(pal.colors, Colors::Rgb);
        assert_eq!(pal.pixels, vec![255, 0, 0, 0, 0, 255]);
        assert_eq!(pal.alpha, Some(vec![0, 255]));
    }

    #[test]
    fn rejects_broken_and_oversized_images() {
        let good = encode(4, 4, png::ColorType::Rgb, png::BitDepth::Eight, &[7; 48]);
        for bad in [&b""[..], &b"GIF89a"[..], &good[..good.len() / 2]] {
            let err = Image::decode_png(bad).expect_err("must fail");
            assert!(matches!(err, PdfError::ImageInvalid(_)), "{err:?}");
            assert_eq!(err.code(), crate::ErrorCode::ImageInvalid);
        }
        // A header claiming 5000x1 pixels is refused before the pixels are read.
        let mut huge = encode(1, 1, png::ColorType::Grayscale, png::BitDepth::Eight, &[0]);
        huge[16..20].copy_from_slice(&5000u32.to_be_bytes());
        let crc = crc32(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = Image::decode_png(&huge).expect_err("too wide");
        assert!(err.to_string().contains("5000x1"), "{err}");
    }

    #[test]
    fn fit_keeps_aspect_ratio() {
        let img = Image {
            width: 600,
            height: 250,
            colors: Colors::Rgb,
            pixels: Vec::new(),
            alpha: None,
        };
        let (w, h) = img.fit(120.0, 100.0);
        assert!(
            (w - 120.0).abs() < 1e-9 && (h - 50.0).abs() < 1e-9,
            "{w}x{h}"
        );
        let (w, h) = img.fit(300.0, 25.0);
        assert!(
            (w - 60.0).abs() < 1e-9 && (h - 25.0).abs() < 1e-9,
            "{w}x{h}"
        );
    }

    /// CRC-32 (PNG chunk checksums), so the test can forge a header.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
