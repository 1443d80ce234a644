//! Raster operations on straight-alpha RGBA8 layers: the soft round brush and eraser (dabs
//! along the pointer path, each stroke keeping a coverage buffer so overlapping dabs never
//! build up past the stroke's opacity, as in most paint programs), flood fill, and the
//! conversions between layers and guide, mask and init images.

use super::layer::{Layer, TileData, TileIndex};
use super::{PixelRect, TILE};
use std::collections::BTreeMap;

/// Dabs per brush radius along a stroke (spacing = radius × this).
const DAB_SPACING: f32 = 0.15;

/// How a stroke changes pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StrokeMode {
    /// Paint this straight-alpha colour.
    Paint([u8; 4]),
    /// Remove alpha.
    Erase,
}

/// The brush of one stroke.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BrushTip {
    /// Radius in pixels (half the size).
    pub radius: f32,
    /// 0 (soft edge all the way to the centre) ..= 1 (hard edge, one pixel anti-aliased).
    pub hardness: f32,
    /// Opacity of the whole stroke, 0..=1.
    pub opacity: f32,
    /// Paint or erase.
    pub mode: StrokeMode,
}

/// Coverage (0..=1) of a dab of `radius` and `hardness` at distance `distance` from its centre.
pub fn dab_coverage(distance: f32, radius: f32, hardness: f32) -> f32 {
    let radius = radius.max(0.5);
    // The soft edge is at least one pixel wide: that is the anti-aliasing of a hard brush.
    let edge = (radius * (1.0 - hardness.clamp(0.0, 1.0))).max(1.0);
    let t = ((radius - distance) / edge + 0.5 / edge).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// `color` with alpha scaled by `amount` (0..=1), over `below` (straight alpha).
pub fn paint_over(below: [u8; 4], color: [u8; 4], amount: f32) -> [u8; 4] {
    let src_a = f32::from(color[3]) / 255.0 * amount.clamp(0.0, 1.0);
    if src_a <= 0.0 {
        return below;
    }
    let dst_a = f32::from(below[3]) / 255.0;
    let out_a = src_a + dst_a * (1.0 - src_a);
    if out_a <= 0.0 {
        return [0; 4];
    }
    let channel = |i: usize| {
        let src = f32::from(color[i]);
        let dst = f32::from(below[i]);
        ((src * src_a + dst * dst_a * (1.0 - src_a)) / out_a).round() as u8
    };
    [
        channel(0),
        channel(1),
        channel(2),
        (out_a * 255.0).round() as u8,
    ]
}

/// `below` with its alpha reduced by `amount` (0..=1).
pub fn erase(below: [u8; 4], amount: f32) -> [u8; 4] {
    let keep = 1.0 - amount.clamp(0.0, 1.0);
    let alpha = (f32::from(below[3]) * keep).round() as u8;
    if alpha == 0 {
        [0; 4]
    } else {
        [below[0], below[1], below[2], alpha]
    }
}

/// A stroke in progress on one layer: the layer's tiles as they were before it (for the
/// blend and for undo) and the stroke's coverage so far.
#[derive(Debug)]
pub struct Stroke {
    /// The layer drawn on.
    pub layer: u64,
    tip: BrushTip,
    /// Tiles as they were before the stroke.
    before: BTreeMap<TileIndex, TileData>,
    coverage: BTreeMap<TileIndex, Vec<u8>>,
    last: Option<(f32, f32)>,
    /// Distance walked since the last dab.
    walked: f32,
    /// Pixels changed so far.
    pub touched: PixelRect,
}

impl Stroke {
    /// A stroke with `tip` on `layer` (nothing is drawn until [`Stroke::to`]).
    pub fn new(layer: u64, tip: BrushTip) -> Self {
        Stroke {
            layer,
            tip,
            before: BTreeMap::new(),
            coverage: BTreeMap::new(),
            last: None,
            walked: 0.0,
            touched: PixelRect::default(),
        }
    }

    /// Continues the stroke to `(x, y)` (pixel coordinates, may lie outside the layer),
    /// placing dabs along the way; `pressure` (0..=1) scales the dabs' radius. The first call
    /// places one dab.
    pub fn to(&mut self, layer: &mut Layer, x: f32, y: f32, pressure: f32) {
        let radius = (self.tip.radius * pressure.clamp(0.05, 1.0)).max(0.5);
        let spacing = (radius * DAB_SPACING).max(0.5);
        let Some((lx, ly)) = self.last else {
            self.dab(layer, x, y, radius);
            self.last = Some((x, y));
            return;
        };
        let (dx, dy) = (x - lx, y - ly);
        let length = (dx * dx + dy * dy).sqrt();
        if length <= f32::EPSILON {
            return;
        }
        // The next dab sits `spacing - walked` along the segment, then every `spacing`.
        let mut along = spacing - self.walked;
        while along <= length {
            let t = along / length;
            self.dab(layer, lx + dx * t, ly + dy * t, radius);
            along += spacing;
        }
        self.walked = length - (along - spacing);
        self.last = Some((x, y));
    }

    /// One dab: raises the coverage under it and re-blends those pixels from their
    /// before-stroke values.
    fn dab(&mut self, layer: &mut Layer, cx: f32, cy: f32, radius: f32) {
        let (width, height) = (layer.width(), layer.height());
        let rect = PixelRect::around(cx, cy, radius + 1.0, width, height);
        if rect.is_empty() {
            return;
        }
        let tiles: Vec<TileIndex> = layer.tiles_in(rect).collect();
        for tile in tiles {
            let tile_rect = layer.tile_rect(tile);
            let area = rect.intersect(tile_rect);
            if area.is_empty() {
                continue;
            }
            self.before
                .entry(tile)
                .or_insert_with(|| layer.read_tile(tile));
            let coverage = self
                .coverage
                .entry(tile)
                .or_insert_with(|| vec![0; (TILE * TILE) as usize]);
            let before = self.before.get(&tile).unwrap_or(&TileData::Empty);
            let pixels = layer.pixels_mut();
            for y in area.y0..area.y1 {
                let py = y as f32 + 0.5 - cy;
                for x in area.x0..area.x1 {
                    let px = x as f32 + 0.5 - cx;
                    let distance = (px * px + py * py).sqrt();
                    if distance > radius + 1.0 {
                        continue;
                    }
                    let value =
                        (dab_coverage(distance, radius, self.tip.hardness) * 255.0).round() as u8;
                    let local = ((y - tile_rect.y0) * TILE + (x - tile_rect.x0)) as usize;
                    let Some(cov) = coverage.get_mut(local) else {
                        continue;
                    };
                    if value <= *cov {
                        continue;
                    }
                    *cov = value;
                    let below = tile_pixel(before, tile_rect, x, y);
                    let amount = f32::from(value) / 255.0 * self.tip.opacity;
                    let out = match self.tip.mode {
                        StrokeMode::Paint(color) => paint_over(below, color, amount),
                        StrokeMode::Erase => erase(below, amount),
                    };
                    let at = ((y * width + x) * 4) as usize;
                    if let Some(target) = pixels.get_mut(at..at + 4) {
                        target.copy_from_slice(&out);
                    }
                }
            }
        }
        layer.mark_dirty(rect);
        self.touched = self.touched.union(rect);
    }

    /// Ends the stroke: the tiles as they were before it (for undo).
    pub fn finish(self) -> Vec<(TileIndex, TileData)> {
        self.before.into_iter().collect()
    }
}

/// The pixel `(x, y)` of a saved tile whose rectangle is `rect`.
fn tile_pixel(tile: &TileData, rect: PixelRect, x: u32, y: u32) -> [u8; 4] {
    match tile {
        TileData::Empty => [0; 4],
        TileData::Pixels(pixels) => {
            let at = (((y - rect.y0) * rect.width() + (x - rect.x0)) * 4) as usize;
            match pixels.get(at..at + 4) {
                Some(&[r, g, b, a]) => [r, g, b, a],
                _ => [0; 4],
            }
        }
    }
}

/// The 4-connected region around `(x, y)` whose pixels are within `tolerance` (per channel)
/// of the seed's; fully transparent pixels all count as the same colour. Returns one flag per
/// pixel and the region's bounding box (empty when the seed is outside).
pub fn flood_region(layer: &Layer, x: u32, y: u32, tolerance: u8) -> (Vec<bool>, PixelRect) {
    let (width, height) = (layer.width(), layer.height());
    let mut inside = vec![false; (width * height) as usize];
    if x >= width || y >= height {
        return (inside, PixelRect::default());
    }
    // Transparent pixels are all the same colour, whatever their RGB.
    let normal = |p: [u8; 4]| if p[3] == 0 { [0; 4] } else { p };
    let seed = normal(layer.pixel(x, y));
    let matches = |p: [u8; 4]| {
        let p = normal(p);
        (0..4).all(|i| seed[i].abs_diff(p[i]) <= tolerance)
    };
    let mut bounds = PixelRect::default();
    let mut stack = vec![(x, y)];
    while let Some((sx, sy)) = stack.pop() {
        let row = (sy * width) as usize;
        let is_open = |inside: &[bool], px: u32| {
            !inside.get(row + px as usize).copied().unwrap_or(true) && matches(layer.pixel(px, sy))
        };
        if !is_open(&inside, sx) {
            continue;
        }
        // Scanline: run left and right, then look above and below the run.
        let mut left = sx;
        while left > 0 && is_open(&inside, left - 1) {
            left -= 1;
        }
        let mut right = sx;
        while right + 1 < width && is_open(&inside, right + 1) {
            right += 1;
        }
        for px in left..=right {
            if let Some(flag) = inside.get_mut(row + px as usize) {
                *flag = true;
            }
        }
        bounds = bounds.union(PixelRect {
            x0: left,
            y0: sy,
            x1: right + 1,
            y1: sy + 1,
        });
        for ny in [sy.checked_sub(1), (sy + 1 < height).then_some(sy + 1)]
            .into_iter()
            .flatten()
        {
            let mut px = left;
            while px <= right {
                let open = !inside
                    .get((ny * width + px) as usize)
                    .copied()
                    .unwrap_or(true)
                    && matches(layer.pixel(px, ny));
                if open {
                    stack.push((px, ny));
                    // One seed per run above/below.
                    while px <= right
                        && matches(layer.pixel(px, ny))
                        && !inside
                            .get((ny * width + px) as usize)
                            .copied()
                            .unwrap_or(true)
                    {
                        px += 1;
                    }
                } else {
                    px += 1;
                }
            }
        }
    }
    (inside, bounds)
}

/// A guide image as layer pixels: brightness becomes alpha, so a white-on-black guide shows
/// as lines over the layers below; flattened over black it gives the guide back (±1).
pub fn guide_to_layer(guide: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(guide.as_raw().len() / 3 * 4);
    for pixel in guide.pixels() {
        let [r, g, b] = pixel.0;
        let alpha = r.max(g).max(b);
        if alpha == 0 {
            out.extend_from_slice(&[0, 0, 0, 0]);
            continue;
        }
        let scale = |c: u8| ((u32::from(c) * 255 + u32::from(alpha) / 2) / u32::from(alpha)) as u8;
        out.extend_from_slice(&[scale(r), scale(g), scale(b), alpha]);
    }
    out
}

/// Straight-alpha RGBA pixels flattened over an opaque colour.
pub fn flatten_over(rgba: &[u8], width: u32, height: u32, paper: [u8; 3]) -> image::RgbImage {
    let mut out = image::RgbImage::from_pixel(width, height, image::Rgb(paper));
    for (target, source) in out.pixels_mut().zip(rgba.chunks_exact(4)) {
        let a = u32::from(source.get(3).copied().unwrap_or(0));
        for (i, channel) in target.0.iter_mut().enumerate() {
            let c = u32::from(source.get(i).copied().unwrap_or(0));
            *channel = ((c * a + u32::from(*channel) * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::canvas::LayerKind;

    fn tip(radius: f32, mode: StrokeMode) -> BrushTip {
        BrushTip {
            radius,
            hardness: 1.0,
            opacity: 1.0,
            mode,
        }
    }

    #[test]
    fn a_hard_dab_is_solid_inside_and_soft_on_one_pixel() {
        assert_eq!(dab_coverage(0.0, 5.0, 1.0), 1.0);
        assert_eq!(dab_coverage(4.0, 5.0, 1.0), 1.0);
        assert_eq!(dab_coverage(6.0, 5.0, 1.0), 0.0);
        let edge = dab_coverage(5.0, 5.0, 1.0);
        assert!(edge > 0.2 && edge < 0.8, "{edge}");
        // A soft brush fades from the centre.
        assert!(dab_coverage(2.5, 5.0, 0.0) < 0.9);
    }

    #[test]
    fn overlapping_dabs_stay_at_the_stroke_opacity() {
        let mut layer = Layer::new(1, LayerKind::Sketch, 1, 64, 64);
        let mut stroke = Stroke::new(
            1,
            BrushTip {
                opacity: 0.5,
                ..tip(6.0, StrokeMode::Paint([255, 255, 255, 255]))
            },
        );
        stroke.to(&mut layer, 10.0, 32.0, 1.0);
        stroke.to(&mut layer, 50.0, 32.0, 1.0);
        stroke.to(&mut layer, 10.0, 32.0, 1.0);
        assert_eq!(layer.pixel(30, 32), [255, 255, 255, 128]);
        assert_eq!(layer.pixel(30, 20), [0; 4]);
        let before = stroke.finish();
        assert!(before.iter().all(|(_, t)| *t == TileData::Empty));
    }

    #[test]
    fn the_eraser_removes_what_the_brush_painted() {
        let mut layer = Layer::new(1, LayerKind::Sketch, 1, 32, 32);
        let mut stroke = Stroke::new(1, tip(4.0, StrokeMode::Paint([200, 10, 10, 255])));
        stroke.to(&mut layer, 16.0, 16.0, 1.0);
        assert_eq!(layer.pixel(16, 16), [200, 10, 10, 255]);
        let mut eraser = Stroke::new(1, tip(8.0, StrokeMode::Erase));
        eraser.to(&mut layer, 16.0, 16.0, 1.0);
        assert_eq!(layer.pixel(16, 16), [0; 4]);
        let before = eraser.finish();
        assert!(matches!(before[0].1, TileData::Pixels(_)));
    }

    #[test]
    fn flood_fill_stays_inside_a_drawn_outline() {
        let mut layer = Layer::new(1, LayerKind::Sketch, 1, 40, 40);
        // A box outline from (10,10) to (29,29).
        for i in 10..30 {
            for (x, y) in [(i, 10), (i, 29), (10, i), (29, i)] {
                let at = ((y * 40 + x) * 4) as usize;
                layer.pixels_mut()[at..at + 4].copy_from_slice(&[255, 255, 255, 255]);
            }
        }
        let (inside, bounds) = flood_region(&layer, 20, 20, 0);
        assert_eq!(
            bounds,
            PixelRect {
                x0: 11,
                y0: 11,
                x1: 29,
                y1: 29
            }
        );
        assert_eq!(inside.iter().filter(|&&f| f).count(), 18 * 18);
        let (outside, _) = flood_region(&layer, 0, 0, 0);
        assert_eq!(outside.iter().filter(|&&f| f).count(), 1600 - 400);
    }

    #[test]
    fn guides_survive_the_trip_through_a_layer() {
        let guide = image::RgbImage::from_fn(8, 8, |x, y| {
            let v = ((x * 37 + y * 11) % 256) as u8;
            image::Rgb([v, v / 2, 255 - v])
        });
        let layer = guide_to_layer(&guide);
        let back = flatten_over(&layer, 8, 8, [0, 0, 0]);
        for (a, b) in guide.pixels().zip(back.pixels()) {
            for i in 0..3 {
                assert!(a.0[i].abs_diff(b.0[i]) <= 1, "{a:?} {b:?}");
            }
        }
    }
}
