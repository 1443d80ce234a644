//! One canvas layer: straight-alpha RGBA8 pixels (allocated on the first edit, so empty layers
//! of a 4K canvas cost nothing), what it is for, and the region changed since its texture was
//! last updated.

use super::region::RegionPrompt;
use super::text::{self, TextSpec};
use super::{PixelRect, TILE};
use kiln_inference::recipe::Preprocessor;
use std::path::PathBuf;

/// What a layer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// An image under the sketch (an imported picture or a generation result).
    Background,
    /// Free drawing.
    Sketch,
    /// The inpainting mask: painted pixels are repainted by the next job.
    Mask,
    /// Text (its pixels are rendered from the layer's [`TextSpec`]).
    Text,
    /// A regional prompt's area: the alpha is the coverage (its prompt is the layer's
    /// [`RegionPrompt`]).
    Region,
    /// The guide of one ControlNet row of the Generate form (by the row's id).
    Guide {
        /// The form row.
        row: u64,
    },
}

impl LayerKind {
    /// Whether the layer's alpha is a mask painted in white (inpaint mask and regions).
    pub fn paints_mask(self) -> bool {
        matches!(self, LayerKind::Mask | LayerKind::Region)
    }

    /// Whether the layer is part of the picture (not a mask or a guide).
    pub fn is_image(self) -> bool {
        matches!(
            self,
            LayerKind::Background | LayerKind::Sketch | LayerKind::Text
        )
    }
}

/// What a guide layer shows: the row's image through its preprocessor.
#[derive(Clone, Debug, PartialEq)]
pub struct GuideSource {
    /// The row's image.
    pub image: PathBuf,
    /// The row's preprocessor.
    pub preprocessor: Preprocessor,
    /// Inpaint guides: the form's mask (its area is shown black, as the ControlNet sees −1).
    pub mask: Option<PathBuf>,
}

/// The saved pixels of one tile (for undo).
#[derive(Clone, Debug, PartialEq)]
pub enum TileData {
    /// Fully transparent.
    Empty,
    /// The tile's RGBA rows, tightly packed (edge tiles are smaller).
    Pixels(Vec<u8>),
}

impl TileData {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match self {
            TileData::Empty => 0,
            TileData::Pixels(pixels) => pixels.len(),
        }
    }
}

/// A tile's position in the tile grid.
pub type TileIndex = (u32, u32);

/// One layer.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Unique within the document.
    pub id: u64,
    /// What it is for.
    pub kind: LayerKind,
    /// Its number among layers of its kind ("Sketch 2"), from 1.
    pub number: u32,
    /// Shown on the canvas.
    pub visible: bool,
    /// Opacity on the canvas, 0..=1 (exports use the pixels as they are).
    pub opacity: f32,
    /// For guide layers: what was loaded into it.
    pub guide_source: Option<GuideSource>,
    /// For guide layers: why the guide could not be shown.
    pub guide_error: Option<String>,
    /// For text layers: what they show (edit through the document, so undo sees it).
    text: Option<TextSpec>,
    /// For text layers: the pixels the text covers now.
    text_bounds: PixelRect,
    /// For region layers: the prompt (edit through the document, so undo sees it).
    region: Option<RegionPrompt>,
    width: u32,
    height: u32,
    /// Empty while the layer is fully transparent and never edited.
    data: Vec<u8>,
    dirty: PixelRect,
    /// Bumped when the texture must be rebuilt rather than patched (size change).
    generation: u64,
}

impl Layer {
    /// A transparent layer.
    pub fn new(id: u64, kind: LayerKind, number: u32, width: u32, height: u32) -> Self {
        Layer {
            id,
            kind,
            number,
            visible: true,
            opacity: match kind {
                LayerKind::Mask => 0.55,
                LayerKind::Region => 0.5,
                LayerKind::Guide { .. } => 0.85,
                _ => 1.0,
            },
            guide_source: None,
            guide_error: None,
            text: None,
            text_bounds: PixelRect::default(),
            region: (kind == LayerKind::Region).then(RegionPrompt::default),
            width,
            height,
            data: Vec::new(),
            dirty: PixelRect::default(),
            generation: 0,
        }
    }

    /// For text layers: the text.
    pub fn text(&self) -> Option<&TextSpec> {
        self.text.as_ref()
    }

    /// For region layers: the prompt.
    pub fn region(&self) -> Option<&RegionPrompt> {
        self.region.as_ref()
    }

    /// Sets a region layer's prompt; returns the old one (`None`, and nothing changes, for
    /// other layers).
    pub fn set_region(&mut self, region: RegionPrompt) -> Option<RegionPrompt> {
        let old = self.region.as_mut()?;
        Some(std::mem::replace(old, region))
    }

    /// Sets the text and renders it (the old text's pixels are cleared); returns the old one.
    pub fn set_text(&mut self, spec: TextSpec) -> Option<TextSpec> {
        let old = self.text.replace(spec);
        self.render_text();
        old
    }

    /// Renders the text into the pixels, clearing where the old text was.
    pub fn render_text(&mut self) {
        let Some(spec) = &self.text else {
            return;
        };
        let (rgba, bounds) = text::rasterize(spec, self.width, self.height);
        let old = std::mem::take(&mut self.text_bounds);
        let width = self.width;
        if !old.is_empty() && !self.data.is_empty() {
            for y in old.y0..old.y1 {
                let start = ((y * width + old.x0) * 4) as usize;
                let end = start + (old.width() * 4) as usize;
                if let Some(row) = self.data.get_mut(start..end) {
                    row.fill(0);
                }
            }
            self.mark_dirty(old);
        }
        if bounds.is_empty() {
            return;
        }
        let row_bytes = (bounds.width() * 4) as usize;
        let data = self.pixels_mut();
        for (row, y) in (bounds.y0..bounds.y1).enumerate() {
            let start = ((y * width + bounds.x0) * 4) as usize;
            if let (Some(target), Some(source)) = (
                data.get_mut(start..start + row_bytes),
                rgba.get(row * row_bytes..(row + 1) * row_bytes),
            ) {
                target.copy_from_slice(source);
            }
        }
        self.text_bounds = bounds;
        self.mark_dirty(bounds);
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, `None` while the layer was never drawn on.
    pub fn pixels(&self) -> Option<&[u8]> {
        (!self.data.is_empty()).then_some(self.data.as_slice())
    }

    /// The pixel at `(x, y)` (transparent outside or when never drawn on).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        if x >= self.width || y >= self.height {
            return [0; 4];
        }
        let at = ((y * self.width + x) * 4) as usize;
        match self.data.get(at..at + 4) {
            Some(&[r, g, b, a]) => [r, g, b, a],
            _ => [0; 4],
        }
    }

    /// The pixels, allocating them (transparent) on the first edit.
    pub fn pixels_mut(&mut self) -> &mut [u8] {
        if self.data.is_empty() {
            self.data = vec![0; (self.width * self.height * 4) as usize];
        }
        &mut self.data
    }

    /// Replaces all pixels (`rgba` must be `width × height × 4` bytes; otherwise nothing
    /// changes and `false` comes back).
    pub fn set_pixels(&mut self, rgba: Vec<u8>) -> bool {
        if rgba.len() != (self.width * self.height * 4) as usize {
            return false;
        }
        self.data = rgba;
        self.mark_dirty(PixelRect::full(self.width, self.height));
        true
    }

    /// Makes the layer transparent.
    pub fn clear(&mut self) {
        if !self.data.is_empty() {
            self.data = Vec::new();
            self.mark_dirty(PixelRect::full(self.width, self.height));
        }
    }

    /// Notes that `rect` changed (its texture must be updated there).
    pub fn mark_dirty(&mut self, rect: PixelRect) {
        self.dirty = self
            .dirty
            .union(rect.intersect(PixelRect::full(self.width, self.height)));
    }

    /// The region changed since the last call, and clears it.
    pub fn take_dirty(&mut self) -> PixelRect {
        std::mem::take(&mut self.dirty)
    }

    /// Bumped whenever the texture must be rebuilt whole.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Scales the pixels to a new size (bilinear).
    pub fn resize(&mut self, width: u32, height: u32) {
        if (width, height) == (self.width, self.height) {
            return;
        }
        if self.text.is_some() {
            // Text is drawn again at the new size by its owner, not resampled.
            self.data = Vec::new();
            self.text_bounds = PixelRect::default();
        }
        if !self.data.is_empty() {
            let image =
                image::RgbaImage::from_raw(self.width, self.height, std::mem::take(&mut self.data));
            self.data = image
                .map(|image| {
                    image::imageops::resize(
                        &image,
                        width,
                        height,
                        image::imageops::FilterType::Triangle,
                    )
                    .into_raw()
                })
                .unwrap_or_default();
        }
        self.width = width;
        self.height = height;
        self.dirty = PixelRect::default();
        self.generation += 1;
    }

    /// Grows the layer to `width × height`, its pixels moved by `(left, top)`; the new area is
    /// transparent. Text moves with it and is drawn again.
    pub fn extend(&mut self, left: u32, top: u32, width: u32, height: u32) {
        if let Some(spec) = self.text.take() {
            self.data = Vec::new();
            self.text_bounds = PixelRect::default();
            self.width = width;
            self.height = height;
            self.text = Some(TextSpec {
                x: spec.x + left as f32,
                y: spec.y + top as f32,
                ..spec
            });
            self.render_text();
        } else if !self.data.is_empty() {
            let mut data = vec![0u8; (width * height * 4) as usize];
            let row_bytes = (self.width * 4) as usize;
            for y in 0..self.height {
                let from = (y * self.width * 4) as usize;
                let to = (((y + top) * width + left) * 4) as usize;
                if let (Some(target), Some(source)) = (
                    data.get_mut(to..to + row_bytes),
                    self.data.get(from..from + row_bytes),
                ) {
                    target.copy_from_slice(source);
                }
            }
            self.data = data;
        }
        self.width = width;
        self.height = height;
        self.dirty = PixelRect::default();
        self.generation += 1;
    }

    /// The layer as an RGBA image (transparent when never drawn on).
    pub fn to_rgba_image(&self) -> image::RgbaImage {
        let data = if self.data.is_empty() {
            vec![0; (self.width * self.height * 4) as usize]
        } else {
            self.data.clone()
        };
        image::RgbaImage::from_raw(self.width, self.height, data)
            .unwrap_or_else(|| image::RgbaImage::new(self.width, self.height))
    }

    /// The pixel rectangle of a tile.
    pub fn tile_rect(&self, (tx, ty): TileIndex) -> PixelRect {
        PixelRect {
            x0: tx * TILE,
            y0: ty * TILE,
            x1: ((tx + 1) * TILE).min(self.width),
            y1: ((ty + 1) * TILE).min(self.height),
        }
    }

    /// The tiles `rect` touches.
    pub fn tiles_in(&self, rect: PixelRect) -> impl Iterator<Item = TileIndex> + use<> {
        let rect = rect.intersect(PixelRect::full(self.width, self.height));
        let (tx0, ty0) = (rect.x0 / TILE, rect.y0 / TILE);
        let (tx1, ty1) = if rect.is_empty() {
            (tx0, ty0)
        } else {
            ((rect.x1 - 1) / TILE + 1, (rect.y1 - 1) / TILE + 1)
        };
        (ty0..ty1).flat_map(move |ty| (tx0..tx1).map(move |tx| (tx, ty)))
    }

    /// A copy of a tile's pixels.
    pub fn read_tile(&self, tile: TileIndex) -> TileData {
        if self.data.is_empty() {
            return TileData::Empty;
        }
        let rect = self.tile_rect(tile);
        let mut out = Vec::with_capacity((rect.width() * rect.height() * 4) as usize);
        let mut any = false;
        for y in rect.y0..rect.y1 {
            let start = ((y * self.width + rect.x0) * 4) as usize;
            let end = start + (rect.width() * 4) as usize;
            if let Some(row) = self.data.get(start..end) {
                any |= row
                    .chunks_exact(4)
                    .any(|p| p.get(3).is_some_and(|&a| a != 0));
                out.extend_from_slice(row);
            }
        }
        if any {
            TileData::Pixels(out)
        } else {
            TileData::Empty
        }
    }

    /// Puts `saved` into a tile and returns what was there.
    pub fn swap_tile(&mut self, tile: TileIndex, saved: TileData) -> TileData {
        let current = self.read_tile(tile);
        if current == TileData::Empty && saved == TileData::Empty {
            return current;
        }
        let rect = self.tile_rect(tile);
        let width = self.width;
        let row_bytes = (rect.width() * 4) as usize;
        let data = self.pixels_mut();
        for (row, y) in (rect.y0..rect.y1).enumerate() {
            let start = ((y * width + rect.x0) * 4) as usize;
            let Some(target) = data.get_mut(start..start + row_bytes) else {
                continue;
            };
            match &saved {
                TileData::Empty => target.fill(0),
                TileData::Pixels(pixels) => {
                    if let Some(source) = pixels.get(row * row_bytes..(row + 1) * row_bytes) {
                        target.copy_from_slice(source);
                    }
                }
            }
        }
        self.mark_dirty(rect);
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_swap_back_and_forth() {
        let mut layer = Layer::new(1, LayerKind::Sketch, 1, 100, 70);
        assert_eq!(layer.tiles_in(PixelRect::full(100, 70)).count(), 4);
        assert_eq!(layer.read_tile((1, 1)), TileData::Empty);
        let before = layer.read_tile((1, 0));
        layer.pixels_mut()[((10 * 100 + 70) * 4 + 3) as usize] = 255;
        let after = layer.swap_tile((1, 0), before);
        assert!(matches!(&after, TileData::Pixels(p) if p.len() == 36 * 64 * 4));
        assert_eq!(layer.pixel(70, 10)[3], 0);
        layer.swap_tile((1, 0), after);
        assert_eq!(layer.pixel(70, 10)[3], 255);
        assert_eq!(layer.take_dirty().x0, 64);
    }
}
