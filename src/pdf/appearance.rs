//! Appearance streams for visible signatures (placeholder until the appearance module lands).
//!
//! The real module draws images and text; this stand-in only builds an empty form XObject
//! of the right size so the incremental-update core can be built and tested.

use lopdf::{dictionary, Object, ObjectId, Stream};

use super::PdfError;

/// What a visible signature shows.
#[derive(Debug, Clone)]
pub enum Appearance {
    /// A signature image with text lines beside it.
    Signature {
        /// PNG bytes of the handwritten signature image.
        image_png: Vec<u8>,
        /// Text lines (signer, time, ...).
        lines: Vec<String>,
    },
    /// A round red seal image.
    Seal {
        /// PNG bytes of the seal.
        image_png: Vec<u8>,
    },
    /// Text only.
    Text {
        /// Text lines.
        lines: Vec<String>,
    },
}

impl Appearance {
    /// Builds the /AP /N form XObject for a widget whose size AS DISPLAYED is `width` x `height`
    /// points on a page with /Rotate `rotate`; new objects are added through `add`, returns the
    /// XObject's id.
    pub fn build(
        &self,
        width: f64,
        height: f64,
        rotate: i32,
        add: &mut dyn FnMut(Object) -> ObjectId,
    ) -> Result<ObjectId, PdfError> {
        let (w, h) = if rotate == 90 || rotate == 270 {
            (height, width)
        } else {
            (width, height)
        };
        let dict = dictionary! {
            "Type" => "XObject",
            "Subtype" => "Form",
            "BBox" => vec![0.into(), 0.into(), Object::Real(w as f32), Object::Real(h as f32)],
        };
        Ok(add(Object::Stream(Stream::new(dict, Vec::new()))))
    }
}

impl Appearance {
    /// Natural size of a text stamp (placeholder until the appearance module lands).
    pub fn text_size(lines: &[String]) -> (f64, f64) {
        (220.0, 14.0 * lines.len() as f64 + 8.0)
    }
}
