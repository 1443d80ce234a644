//! The canvas's pixels, apart from any UI: a [`Document`] of RGBA layers (background images,
//! sketches, the inpainting mask, one guide per ControlNet), the raster tools that edit them
//! (soft round brush and eraser with per-stroke coverage, straight lines, flood fill, colour
//! pick) and tile-based undo ([`history`]).
//!
//! Pixels are straight-alpha RGBA8, row-major. Every edit reports the rectangle it touched, so
//! the canvas widget re-uploads only that part of a layer's texture.

pub mod document;
pub mod history;
pub mod layer;
pub mod raster;
pub mod region;
pub mod text;

pub use document::{Document, Tool};
pub use layer::{Layer, LayerKind};

/// Side of an undo tile, in pixels.
pub const TILE: u32 = 64;

/// A rectangle of pixels: `x0..x1` × `y0..y1` (ends exclusive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PixelRect {
    /// Left edge.
    pub x0: u32,
    /// Top edge.
    pub y0: u32,
    /// Right edge (exclusive).
    pub x1: u32,
    /// Bottom edge (exclusive).
    pub y1: u32,
}

impl PixelRect {
    /// The whole of a `width × height` image.
    pub fn full(width: u32, height: u32) -> Self {
        PixelRect {
            x0: 0,
            y0: 0,
            x1: width,
            y1: height,
        }
    }

    /// Whether it holds no pixel.
    pub fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.x1.saturating_sub(self.x0)
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.y1.saturating_sub(self.y0)
    }

    /// The smallest rectangle holding both (an empty one adds nothing).
    pub fn union(self, other: PixelRect) -> PixelRect {
        if self.is_empty() {
            return other;
        }
        if other.is_empty() {
            return self;
        }
        PixelRect {
            x0: self.x0.min(other.x0),
            y0: self.y0.min(other.y0),
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
        }
    }

    /// The pixels in both (possibly empty).
    pub fn intersect(self, other: PixelRect) -> PixelRect {
        PixelRect {
            x0: self.x0.max(other.x0),
            y0: self.y0.max(other.y0),
            x1: self.x1.min(other.x1),
            y1: self.y1.min(other.y1),
        }
    }

    /// The pixels a circle of `radius` around `(x, y)` touches, clipped to `width × height`.
    pub fn around(x: f32, y: f32, radius: f32, width: u32, height: u32) -> PixelRect {
        let clamp = |v: f32, max: u32| (v.max(0.0) as u32).min(max);
        PixelRect {
            x0: clamp((x - radius).floor(), width),
            y0: clamp((y - radius).floor(), height),
            x1: clamp((x + radius).ceil() + 1.0, width),
            y1: clamp((y + radius).ceil() + 1.0, height),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangles_unite_and_clip() {
        let a = PixelRect {
            x0: 2,
            y0: 2,
            x1: 5,
            y1: 5,
        };
        let b = PixelRect {
            x0: 4,
            y0: 0,
            x1: 9,
            y1: 3,
        };
        assert_eq!(
            a.union(b),
            PixelRect {
                x0: 2,
                y0: 0,
                x1: 9,
                y1: 5
            }
        );
        assert_eq!(a.intersect(b).width(), 1);
        assert!(a.union(PixelRect::default()) == a);
        let around = PixelRect::around(1.0, 1.0, 3.0, 8, 8);
        assert_eq!((around.x0, around.x1), (0, 5));
    }
}
