//! Placeholder until the appearance module lands.
/// Appearance.
#[derive(Clone)]
pub enum Appearance {
    /// Sig.
    Signature {
        /// png
        image_png: Vec<u8>,
        /// lines
        lines: Vec<String>,
    },
    /// Seal.
    Seal {
        /// png
        image_png: Vec<u8>,
    },
    /// Text.
    Text {
        /// lines
        lines: Vec<String>,
    },
}
impl Appearance {
    /// Size.
    pub fn text_size(lines: &[String]) -> (f64, f64) {
        (200.0, 14.0 * lines.len() as f64)
    }
}
