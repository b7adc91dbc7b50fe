//! Page geometry: crop box, /Rotate, and the conversion between the page as displayed and
//! default user space (where widget /Rect lives).

use std::collections::HashSet;

use lopdf::{Document, Object, ObjectId};

use super::{PdfError, Placement};

/// Margin between a top-right stamp and the page edges, in points.
pub(crate) const STAMP_MARGIN: f64 = 20.0;

/// Largest widget side accepted, in points (the PDF 1.7 maximum page size).
const MAX_SIDE: f64 = 14_400.0;

/// How far up the page tree inherited attributes are looked for.
const MAX_TREE_DEPTH: usize = 64;

/// A rectangle as `(x, y, w, h)` with a positive size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    /// From a PDF rectangle array `[llx lly urx ury]` in any corner order.
    fn from_corners(c: [f64; 4]) -> Self {
        let (x0, x1) = (c[0].min(c[2]), c[0].max(c[2]));
        let (y0, y1) = (c[1].min(c[3]), c[1].max(c[3]));
        Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }

    /// As a PDF rectangle array `[llx lly urx ury]`.
    pub fn corners(&self) -> [f64; 4] {
        [self.x, self.y, self.x + self.w, self.y + self.h]
    }
}

/// The visible area of a page and how it is turned when displayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PageGeometry {
    /// The crop box in default user space.
    pub crop: Rect,
    /// `/Rotate`, normalised to 0, 90, 180 or 270 (clockwise).
    pub rotate: i32,
}

impl PageGeometry {
    /// Reads /CropBox (else /MediaBox) and /Rotate, inherited through /Parent.
    pub fn of_page(doc: &Document, page: ObjectId) -> Result<Self, PdfError> {
        let media = inherited(doc, page, b"MediaBox")
            .and_then(|o| rect_of(doc, o))
            .unwrap_or(Rect {
                x: 0.0,
                y: 0.0,
                w: 612.0,
                h: 792.0,
            });
        let crop = match inherited(doc, page, b"CropBox").and_then(|o| rect_of(doc, o)) {
            // The crop box is clipped to the media box (ISO 32000-1 §14.11.2).
            Some(c) => intersect(c, media).unwrap_or(media),
            None => media,
        };
        let rotate = match inherited(doc, page, b"Rotate").map(|o| deref(doc, o)) {
            Some(Object::Integer(r)) => *r,
            Some(Object::Real(r)) => *r as i64,
            _ => 0,
        };
        let rotate = match rotate.rem_euclid(360) {
            r @ (0 | 90 | 180 | 270) => r as i32,
            other => {
                return Err(PdfError::Malformed(format!(
                    "page /Rotate {other} is not a multiple of 90"
                )))
            }
        };
        Ok(Self { crop, rotate })
    }

    /// Width and height of the page as displayed.
    pub fn displayed_size(&self) -> (f64, f64) {
        if self.rotate % 180 == 0 {
            (self.crop.w, self.crop.h)
        } else {
            (self.crop.h, self.crop.w)
        }
    }

    /// Maps a point relative to the crop box's lower-left corner in user space to the page as
    /// displayed (origin at the displayed lower-left corner).
    fn point_to_displayed(self, u: f64, v: f64) -> (f64, f64) {
        let (cw, ch) = (self.crop.w, self.crop.h);
        match self.rotate {
            90 => (v, cw - u),
            180 => (cw - u, ch - v),
            270 => (ch - v, u),
            _ => (u, v),
        }
    }

    /// The inverse of [`Self::point_to_displayed`].
    fn point_to_user(self, dx: f64, dy: f64) -> (f64, f64) {
        let (cw, ch) = (self.crop.w, self.crop.h);
        match self.rotate {
            90 => (cw - dy, dx),
            180 => (cw - dx, ch - dy),
            270 => (dy, ch - dx),
            _ => (dx, dy),
        }
    }

    /// A displayed rectangle in default user space (absolute, for a widget /Rect).
    pub fn to_user(self, r: Rect) -> Rect {
        let (u0, v0) = self.point_to_user(r.x, r.y);
        let (u1, v1) = self.point_to_user(r.x + r.w, r.y + r.h);
        let rel = Rect::from_corners([u0, v0, u1, v1]);
        Rect {
            x: rel.x + self.crop.x,
            y: rel.y + self.crop.y,
            ..rel
        }
    }

    /// A user-space rectangle (absolute) in the page as displayed.
    pub fn to_displayed(self, r: Rect) -> Rect {
        let (d0x, d0y) = self.point_to_displayed(r.x - self.crop.x, r.y - self.crop.y);
        let (d1x, d1y) = self.point_to_displayed(r.x + r.w - self.crop.x, r.y + r.h - self.crop.y);
        Rect::from_corners([d0x, d0y, d1x, d1y])
    }
}

/// Where a visible widget goes, in the page as displayed.
///
/// `previous_widgets` are the user-space rects of existing signature widgets on the page,
/// oldest first (only used by [`Placement::SealOverPreviousSignature`]).
pub(crate) fn displayed_rect(
    geometry: &PageGeometry,
    placement: &Placement,
    previous_widget: Option<Rect>,
    page_number: u32,
) -> Result<Rect, PdfError> {
    let (page_w, page_h) = geometry.displayed_size();
    let rect = match *placement {
        Placement::Rect { x, y, w, h } => {
            check_finite(&[x, y])?;
            check_side(w, "width")?;
            check_side(h, "height")?;
            Rect { x, y, w, h }
        }
        Placement::SealOverPreviousSignature { diameter_pt } => {
            check_side(diameter_pt, "seal diameter")?;
            let widget =
                previous_widget.ok_or(PdfError::NoSignatureToSeal { page: page_number })?;
            let widget = geometry.to_displayed(widget);
            Rect {
                x: widget.x + widget.w / 3.0 - diameter_pt,
                y: widget.y + widget.h / 2.0 - diameter_pt / 2.0,
                w: diameter_pt,
                h: diameter_pt,
            }
        }
        Placement::TopRightStamp { w, h } => {
            check_side(w, "width")?;
            check_side(h, "height")?;
            Rect {
                x: page_w - STAMP_MARGIN - w,
                y: page_h - STAMP_MARGIN - h,
                w,
                h,
            }
        }
    };
    // A widget wholly outside the visible page would be a silent mistake.
    let visible =
        rect.x < page_w && rect.y < page_h && rect.x + rect.w > 0.0 && rect.y + rect.h > 0.0;
    if !visible {
        return Err(PdfError::InvalidOption(format!(
            "signature rectangle ({:.1}, {:.1}, {:.1} x {:.1}) lies outside page {page_number} ({:.1} x {:.1} pt)",
            rect.x, rect.y, rect.w, rect.h, page_w, page_h
        )));
    }
    Ok(rect)
}

fn check_finite(values: &[f64]) -> Result<(), PdfError> {
    if values.iter().all(|v| v.is_finite() && v.abs() <= MAX_SIDE) {
        Ok(())
    } else {
        Err(PdfError::InvalidOption(
            "signature position is not a usable number".into(),
        ))
    }
}

fn check_side(v: f64, what: &str) -> Result<(), PdfError> {
    if v.is_finite() && v > 0.0 && v <= MAX_SIDE {
        Ok(())
    } else {
        Err(PdfError::InvalidOption(format!(
            "signature {what} must be between 0 and {MAX_SIDE} points, got {v}"
        )))
    }
}

fn intersect(a: Rect, b: Rect) -> Option<Rect> {
    let x0 = a.x.max(b.x);
    let y0 = a.y.max(b.y);
    let x1 = (a.x + a.w).min(b.x + b.w);
    let y1 = (a.y + a.h).min(b.y + b.h);
    (x1 > x0 && y1 > y0).then_some(Rect {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    })
}

/// Follows references (bounded by lopdf) and returns the object itself, or `Null`.
pub(crate) fn deref<'a>(doc: &'a Document, obj: &'a Object) -> &'a Object {
    match doc.dereference(obj) {
        Ok((_, o)) => o,
        Err(_) => &Object::Null,
    }
}

/// A number object as `f64`.
pub(crate) fn number(doc: &Document, obj: &Object) -> Option<f64> {
    match deref(doc, obj) {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

/// A rectangle array with finite numbers and a non-zero area.
pub(crate) fn rect_of(doc: &Document, obj: &Object) -> Option<Rect> {
    let Object::Array(items) = deref(doc, obj) else {
        return None;
    };
    if items.len() != 4 {
        return None;
    }
    let mut c = [0.0; 4];
    for (slot, item) in c.iter_mut().zip(items) {
        *slot = number(doc, item).filter(|v| v.is_finite())?;
    }
    let r = Rect::from_corners(c);
    (r.w > 0.0 && r.h > 0.0).then_some(r)
}

/// An inheritable page attribute (ISO 32000-1 §7.7.3.4), looked up through /Parent.
fn inherited<'a>(doc: &'a Document, page: ObjectId, key: &[u8]) -> Option<&'a Object> {
    let mut seen = HashSet::new();
    let mut current = page;
    for _ in 0..MAX_TREE_DEPTH {
        if !seen.insert(current) {
            return None;
        }
        let dict = doc.get_dictionary(current).ok()?;
        if let Ok(value) = dict.get(key) {
            return Some(value);
        }
        current = dict.get(b"Parent").and_then(Object::as_reference).ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(rotate: i32) -> PageGeometry {
        PageGeometry {
            crop: Rect {
                x: 10.0,
                y: 20.0,
                w: 600.0,
                h: 800.0,
            },
            rotate,
        }
    }

    #[test]
    fn displayed_rect_round_trips_for_each_rotation() {
        let r = Rect {
            x: 30.0,
            y: 40.0,
            w: 100.0,
            h: 50.0,
        };
        for rotate in [0, 90, 180, 270] {
            let g = geometry(rotate);
            let user = g.to_user(r);
            assert_eq!(g.to_displayed(user), r, "rotate {rotate}");
            // The displayed width becomes the user height on quarter turns.
            if rotate % 180 == 0 {
                assert_eq!((user.w, user.h), (100.0, 50.0));
            } else {
                assert_eq!((user.w, user.h), (50.0, 100.0));
            }
        }
    }

    #[test]
    fn rotate_90_maps_displayed_bottom_left_to_user_bottom_right() {
        // Page turned clockwise: the displayed bottom-left corner is user (urx, lly).
        let g = geometry(90);
        assert_eq!(g.displayed_size(), (800.0, 600.0));
        let user = g.to_user(Rect {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 20.0,
        });
        assert_eq!(
            user,
            Rect {
                x: 10.0 + 600.0 - 20.0,
                y: 20.0,
                w: 20.0,
                h: 10.0
            }
        );
        let g = geometry(270);
        let user = g.to_user(Rect {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 20.0,
        });
        assert_eq!(
            user,
            Rect {
                x: 10.0,
                y: 20.0 + 800.0 - 10.0,
                w: 20.0,
                h: 10.0
            }
        );
    }

    #[test]
    fn seal_covers_left_third_of_previous_widget() {
        let g = geometry(0);
        let widget_user = Rect {
            x: 310.0,
            y: 120.0,
            w: 180.0,
            h: 60.0,
        };
        let seal = displayed_rect(
            &g,
            &Placement::SealOverPreviousSignature { diameter_pt: 90.0 },
            Some(widget_user),
            1,
        )
        .unwrap();
        let widget = g.to_displayed(widget_user);
        assert_eq!(seal.x + seal.w, widget.x + widget.w / 3.0);
        assert_eq!(seal.y + seal.h / 2.0, widget.y + widget.h / 2.0);
        assert_eq!((seal.w, seal.h), (90.0, 90.0));
        let none = displayed_rect(
            &g,
            &Placement::SealOverPreviousSignature { diameter_pt: 90.0 },
            None,
            3,
        );
        assert!(matches!(none, Err(PdfError::NoSignatureToSeal { page: 3 })));
    }

    #[test]
    fn stamp_sits_top_right_as_displayed() {
        let g = geometry(90);
        let r =
            displayed_rect(&g, &Placement::TopRightStamp { w: 200.0, h: 50.0 }, None, 1).unwrap();
        assert_eq!(
            r,
            Rect {
                x: 800.0 - 20.0 - 200.0,
                y: 600.0 - 20.0 - 50.0,
                w: 200.0,
                h: 50.0
            }
        );
    }

    #[test]
    fn bad_rectangles_are_refused() {
        let g = geometry(0);
        for p in [
            Placement::Rect {
                x: 0.0,
                y: 0.0,
                w: -1.0,
                h: 10.0,
            },
            Placement::Rect {
                x: f64::NAN,
                y: 0.0,
                w: 1.0,
                h: 10.0,
            },
            Placement::Rect {
                x: 5000.0,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
        ] {
            assert!(
                matches!(
                    displayed_rect(&g, &p, None, 1),
                    Err(PdfError::InvalidOption(_))
                ),
                "{p:?}"
            );
        }
    }
}
