//! The visible marks of Decree 30/2020/NĐ-CP (Appendix I, as read in the README): the
//! competent official's signature, the agency's seal, and the text stamps of attachments and
//! electronic copies, with their text lines and default places. One rule for every caller
//! (`signgate sign`, the gateway's signing service, the stamp desk).

use openssl::x509::X509Ref;
use time::OffsetDateTime;

use super::{Appearance, PageSelector, Placement, VisibleSignature};

/// Default box (x, y, w, h) of the official's signature on an A4 page when no rectangle is given.
pub const DEFAULT_SIGNATURE_RECT: [f64; 4] = [330.0, 90.0, 210.0, 100.0];

/// A visible mark of a signature.
#[derive(Debug, Clone, PartialEq)]
pub enum Stamp {
    /// The official's signature: the handwritten signature image (PNG, blue, transparent)
    /// above "Ký bởi: NAME" (the signer certificate's common name) and the signing time.
    OfficialSignature {
        /// The handwritten signature, PNG.
        image_png: Vec<u8>,
    },
    /// The agency's red seal at its real size; without a rectangle it covers the left third of
    /// the most recent signature widget on the page (the official's).
    Seal {
        /// The seal, PNG.
        image_png: Vec<u8>,
        /// Its diameter in points.
        diameter_pt: f64,
    },
    /// The text stamp of an attachment: the agency (the certificate's organisation), the
    /// document number when given, the signing time; top right of page 1 by default.
    Attachment {
        /// The document number (`123/QĐ-UBND`).
        doc_number: Option<String>,
    },
    /// The text stamp of an electronic copy ("Bản sao điện tử"), otherwise as the attachment's.
    Copy {
        /// The document number, when given.
        doc_number: Option<String>,
    },
}

impl Stamp {
    /// The visible signature of this mark for `signer`'s certificate, signing at `at`, on
    /// `page` (text stamps: page 1), in `rect` (x, y, w, h) or at the mark's default place.
    pub fn visible(
        self,
        signer: &X509Ref,
        page: PageSelector,
        rect: Option<[f64; 4]>,
        at: OffsetDateTime,
    ) -> VisibleSignature {
        let to_rect = |r: [f64; 4]| Placement::Rect {
            x: r[0],
            y: r[1],
            w: r[2],
            h: r[3],
        };
        let when = crate::clock::display_time(at);
        let copy = matches!(self, Self::Copy { .. });
        match self {
            Self::OfficialSignature { image_png } => {
                let name = crate::pki::subject_common_name(signer).unwrap_or_default();
                VisibleSignature {
                    page,
                    placement: to_rect(rect.unwrap_or(DEFAULT_SIGNATURE_RECT)),
                    appearance: Appearance::Signature {
                        image_png,
                        lines: vec![format!("Ký bởi: {name}"), format!("Thời gian ký: {when}")],
                    },
                }
            }
            Self::Seal {
                image_png,
                diameter_pt,
            } => VisibleSignature {
                page,
                placement: rect
                    .map(to_rect)
                    .unwrap_or(Placement::SealOverPreviousSignature { diameter_pt }),
                appearance: Appearance::Seal { image_png },
            },
            Self::Attachment { doc_number } | Self::Copy { doc_number } => {
                let agency = crate::pki::subject_organization(signer)
                    .or_else(|| crate::pki::subject_common_name(signer))
                    .unwrap_or_default();
                let mut lines = vec![agency];
                if copy {
                    lines.push("Bản sao điện tử".to_string());
                }
                if let Some(number) = doc_number {
                    lines.push(format!("Số: {number}"));
                }
                lines.push(format!("Thời gian ký: {when}"));
                let (w, h) = Appearance::text_size(&lines);
                VisibleSignature {
                    page: PageSelector::Number(1),
                    placement: rect
                        .map(to_rect)
                        .unwrap_or(Placement::TopRightStamp { w, h }),
                    appearance: Appearance::Text { lines },
                }
            }
        }
    }
}
