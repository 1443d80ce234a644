//! Comic page layout: templates for 1–6 panels (grids and manga-style diagonal gutters), and
//! [`compose`], which cover-fits each panel into its cell (scale, centre crop, clip to the cell's
//! outline), draws borders, caption boxes and speech bubbles, and returns the page.
//!
//! A template is a set of convex quadrilaterals tiling the unit square. For a page they are
//! scaled into the area inside the margin; each edge shared with another cell moves inward by
//! half the gutter (along its normal, so slanted gutters are as wide as straight ones), while
//! edges on the page's margin stay put.

use super::paint::{self, ellipse_distance, fill, rect_distance};
use super::text::{self, LetteringFont, TextBlock};
use image::{RgbImage, imageops};

/// The most panels one page holds.
pub const MAX_PANELS: usize = 6;

/// Page sides (pixels) [`compose`] accepts.
pub const PAGE_SIDE_RANGE: std::ops::RangeInclusive<u32> = 64..=16384;

/// A point in pixels (or, in a template, in unit-square coordinates).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Rightwards.
    pub x: f32,
    /// Downwards.
    pub y: f32,
}

const fn p(x: f32, y: f32) -> Point {
    Point { x, y }
}

/// A convex quadrilateral, corners in the order top-left, top-right, bottom-right, bottom-left.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quad(pub [Point; 4]);

/// An axis-aligned box `(x0, y0, x1, y1)`.
pub type Rect = (f32, f32, f32, f32);

impl Quad {
    /// The rectangle `(x0, y0)`–`(x1, y1)`.
    pub const fn rect(x0: f32, y0: f32, x1: f32, y1: f32) -> Quad {
        Quad([p(x0, y0), p(x1, y0), p(x1, y1), p(x0, y1)])
    }

    /// The edges as `(start, end)`: top, right, bottom, left.
    fn edges(&self) -> [(Point, Point); 4] {
        let [a, b, c, d] = self.0;
        [(a, b), (b, c), (c, d), (d, a)]
    }

    /// Signed distance from `(x, y)` to the outline, positive inside (the smallest distance to
    /// the four edge lines: exact inside, a lower bound outside).
    pub fn distance(&self, x: f32, y: f32) -> f32 {
        self.edges()
            .iter()
            .map(|&(a, b)| edge_distance(a, b, x, y))
            .fold(f32::INFINITY, f32::min)
    }

    /// Whether `(x, y)` is inside.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        self.distance(x, y) > 0.0
    }

    /// The bounding box.
    pub fn bounds(&self) -> Rect {
        let xs = self.0.map(|q| q.x);
        let ys = self.0.map(|q| q.y);
        let min = |v: [f32; 4]| v.into_iter().fold(f32::INFINITY, f32::min);
        let max = |v: [f32; 4]| v.into_iter().fold(f32::NEG_INFINITY, f32::max);
        (min(xs), min(ys), max(xs), max(ys))
    }

    /// A box inside the quad: between the inner of the two left and right corners and of the
    /// two top and bottom corners (exact for rectangles; for slanted edges, inside them).
    pub fn inner_rect(&self) -> Rect {
        let [tl, tr, br, bl] = self.0;
        (
            tl.x.max(bl.x),
            tl.y.max(tr.y),
            tr.x.min(br.x),
            bl.y.min(br.y),
        )
    }

    /// Whether all edges are horizontal or vertical.
    pub fn is_rectangle(&self) -> bool {
        self.edges()
            .iter()
            .all(|(a, b)| (a.x - b.x).abs() < 1e-4 || (a.y - b.y).abs() < 1e-4)
    }

    /// Moves each edge (top, right, bottom, left) inward by its offset; `None` when the result
    /// is degenerate (the offsets eat the quad).
    fn inset(&self, offsets: [f32; 4]) -> Option<Quad> {
        let lines: Vec<(Point, f32)> = self
            .edges()
            .iter()
            .zip(offsets)
            .map(|(&(a, b), offset)| {
                let normal = inward_normal(a, b);
                (normal, normal.x * a.x + normal.y * a.y + offset)
            })
            .collect();
        let mut corners = [p(0.0, 0.0); 4];
        for (i, corner) in corners.iter_mut().enumerate() {
            // Corner i joins edge i-1 and edge i.
            let (n1, c1) = *lines.get((i + 3) % 4)?;
            let (n2, c2) = *lines.get(i)?;
            let det = n1.x * n2.y - n1.y * n2.x;
            if det.abs() < 1e-6 {
                return None;
            }
            *corner = p((c1 * n2.y - n1.y * c2) / det, (n1.x * c2 - c1 * n2.x) / det);
        }
        let quad = Quad(corners);
        // Still convex with the same orientation, and inside the original.
        let convex = quad
            .edges()
            .iter()
            .zip(self.edges())
            .all(|(&(a, b), (c, d))| {
                let n = inward_normal(a, b);
                let m = inward_normal(c, d);
                n.x * m.x + n.y * m.y > 0.99 && (b.x - a.x).hypot(b.y - a.y) > 1.0
            });
        let inside = corners.iter().all(|c| self.distance(c.x, c.y) > -1e-3);
        (convex && inside).then_some(quad)
    }
}

/// Unit normal of the edge `a → b` pointing into a quad whose corners run clockwise on screen.
fn inward_normal(a: Point, b: Point) -> Point {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let length = dx.hypot(dy).max(1e-12);
    p(-dy / length, dx / length)
}

/// Signed distance from `(x, y)` to the line through `a → b`, positive on the inner side.
fn edge_distance(a: Point, b: Point, x: f32, y: f32) -> f32 {
    let n = inward_normal(a, b);
    (x - a.x) * n.x + (y - a.y) * n.y
}

/// Signed distance to a convex polygon with corners clockwise on screen (positive inside).
fn polygon_distance(corners: &[Point], x: f32, y: f32) -> f32 {
    let mut distance = f32::INFINITY;
    for (i, &a) in corners.iter().enumerate() {
        let Some(&b) = corners.get((i + 1) % corners.len()) else {
            continue;
        };
        distance = distance.min(edge_distance(a, b, x, y));
    }
    distance
}

/// A page layout: where each panel goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    name: &'static str,
    cells: Vec<Quad>,
}

impl Template {
    /// Every template's name, by panel count.
    pub const NAMES: &'static [&'static str] = &[
        "single",
        "two-columns",
        "two-rows",
        "three-rows",
        "one-over-two",
        "manga-3",
        "grid-2x2",
        "manga-4",
        "two-one-two",
        "grid-2x3",
    ];

    /// The template called `name` (case, `_` and spaces ignored; `2x2` and `2x3` also work).
    pub fn by_name(name: &str) -> Option<Template> {
        let key = name.trim().to_lowercase().replace(['_', ' '], "-");
        let key = match key.as_str() {
            "2x2" => "grid-2x2",
            "2x3" => "grid-2x3",
            other => other,
        };
        let name = *Self::NAMES.iter().find(|n| **n == key)?;
        let third = 1.0 / 3.0;
        let two_thirds = 2.0 / 3.0;
        let cells = match name {
            "single" => vec![Quad::rect(0.0, 0.0, 1.0, 1.0)],
            "two-columns" => vec![
                Quad::rect(0.0, 0.0, 0.5, 1.0),
                Quad::rect(0.5, 0.0, 1.0, 1.0),
            ],
            "two-rows" => vec![
                Quad::rect(0.0, 0.0, 1.0, 0.5),
                Quad::rect(0.0, 0.5, 1.0, 1.0),
            ],
            "three-rows" => vec![
                Quad::rect(0.0, 0.0, 1.0, third),
                Quad::rect(0.0, third, 1.0, two_thirds),
                Quad::rect(0.0, two_thirds, 1.0, 1.0),
            ],
            "one-over-two" => vec![
                Quad::rect(0.0, 0.0, 1.0, 0.5),
                Quad::rect(0.0, 0.5, 0.5, 1.0),
                Quad::rect(0.5, 0.5, 1.0, 1.0),
            ],
            // A wide panel over two, the gutters slanted: y = 0.42 − 0.08·x across, and
            // x from 0.60 (top) to 0.46 (bottom) below it.
            "manga-3" => vec![
                Quad([p(0.0, 0.0), p(1.0, 0.0), p(1.0, 0.34), p(0.0, 0.42)]),
                Quad([p(0.0, 0.42), p(0.6, 0.372), p(0.46, 1.0), p(0.0, 1.0)]),
                Quad([p(0.6, 0.372), p(1.0, 0.34), p(1.0, 1.0), p(0.46, 1.0)]),
            ],
            "grid-2x2" => vec![
                Quad::rect(0.0, 0.0, 0.5, 0.5),
                Quad::rect(0.5, 0.0, 1.0, 0.5),
                Quad::rect(0.0, 0.5, 0.5, 1.0),
                Quad::rect(0.5, 0.5, 1.0, 1.0),
            ],
            // Two rows split by y = 0.55 − 0.10·x; the top row by x from 0.58 to 0.50, the bottom
            // row by x from 0.42 to 0.52 (reading order: left to right, top to bottom).
            "manga-4" => vec![
                Quad([p(0.0, 0.0), p(0.58, 0.0), p(0.5, 0.5), p(0.0, 0.55)]),
                Quad([p(0.58, 0.0), p(1.0, 0.0), p(1.0, 0.45), p(0.5, 0.5)]),
                Quad([p(0.0, 0.55), p(0.42, 0.508), p(0.52, 1.0), p(0.0, 1.0)]),
                Quad([p(0.42, 0.508), p(1.0, 0.45), p(1.0, 1.0), p(0.52, 1.0)]),
            ],
            "two-one-two" => vec![
                Quad::rect(0.0, 0.0, 0.5, third),
                Quad::rect(0.5, 0.0, 1.0, third),
                Quad::rect(0.0, third, 1.0, two_thirds),
                Quad::rect(0.0, two_thirds, 0.5, 1.0),
                Quad::rect(0.5, two_thirds, 1.0, 1.0),
            ],
            "grid-2x3" => {
                let mut cells = Vec::new();
                for row in 0..3 {
                    let (y0, y1) = (row as f32 * third, (row + 1) as f32 * third);
                    let (y0, y1) = (y0, if row == 2 { 1.0 } else { y1 });
                    cells.push(Quad::rect(0.0, y0, 0.5, y1));
                    cells.push(Quad::rect(0.5, y0, 1.0, y1));
                }
                cells
            }
            _ => return None,
        };
        Some(Template { name, cells })
    }

    /// The plain template for `count` panels: `single`, `two-rows`, `three-rows`, `grid-2x2`,
    /// `two-one-two`, `grid-2x3`; `None` for 0 or more than [`MAX_PANELS`].
    pub fn for_count(count: usize) -> Option<Template> {
        let name = match count {
            1 => "single",
            2 => "two-rows",
            3 => "three-rows",
            4 => "grid-2x2",
            5 => "two-one-two",
            6 => "grid-2x3",
            _ => return None,
        };
        Template::by_name(name)
    }

    /// The template's name (one of [`Template::NAMES`]).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How many panels it holds.
    pub fn capacity(&self) -> usize {
        self.cells.len()
    }

    /// The cells in the unit square, in reading order.
    pub fn unit_cells(&self) -> &[Quad] {
        &self.cells
    }

    /// The cells on `page`, in pixels: inside the margin, a gutter apart.
    pub fn cells(&self, page: &PageStyle) -> Result<Vec<Quad>, LayoutError> {
        let too_small = || LayoutError::PageTooSmall {
            width: page.width,
            height: page.height,
        };
        let (width, height) = (page.width as f32, page.height as f32);
        let margin = page.margin.max(0.0);
        let half_gutter = page.gutter.max(0.0) / 2.0;
        let (content_width, content_height) = (width - 2.0 * margin, height - 2.0 * margin);
        if content_width < 16.0 || content_height < 16.0 {
            return Err(too_small());
        }
        let on_border = |a: Point, b: Point| {
            (a.x == 0.0 && b.x == 0.0)
                || (a.x == 1.0 && b.x == 1.0)
                || (a.y == 0.0 && b.y == 0.0)
                || (a.y == 1.0 && b.y == 1.0)
        };
        self.cells
            .iter()
            .map(|unit| {
                let offsets = unit
                    .edges()
                    .map(|(a, b)| if on_border(a, b) { 0.0 } else { half_gutter });
                let scaled = Quad(
                    unit.0
                        .map(|q| p(margin + q.x * content_width, margin + q.y * content_height)),
                );
                scaled.inset(offsets).ok_or_else(too_small)
            })
            .collect()
    }
}

/// How the page looks.
#[derive(Clone, Debug, PartialEq)]
pub struct PageStyle {
    /// Page width in pixels.
    pub width: u32,
    /// Page height in pixels.
    pub height: u32,
    /// Space between the page edge and the panels, pixels.
    pub margin: f32,
    /// Space between panels, pixels (measured across the gutter, also for slanted ones).
    pub gutter: f32,
    /// Panel border width, pixels (inside the cell; 0 = none).
    pub border: f32,
    /// Page colour.
    pub background: [u8; 3],
    /// Panel border and balloon outline colour.
    pub border_color: [u8; 3],
    /// Caption box colour.
    pub caption_fill: [u8; 3],
    /// Speech bubble colour.
    pub bubble_fill: [u8; 3],
    /// Lettering colour.
    pub text_color: [u8; 3],
    /// Lettering em size, pixels (shrunk where a caption or bubble would not fit).
    pub text_size: f32,
    /// Lettering font.
    pub font: LetteringFont,
}

impl Default for PageStyle {
    fn default() -> Self {
        PageStyle {
            width: 1200,
            height: 1600,
            margin: 40.0,
            gutter: 24.0,
            border: 4.0,
            background: [255, 255, 255],
            border_color: [20, 20, 20],
            caption_fill: [255, 244, 200],
            bubble_fill: [255, 255, 255],
            text_color: [20, 20, 20],
            text_size: 28.0,
            font: LetteringFont::Sans,
        }
    }
}

impl PageStyle {
    /// The default style at `width` pixels, its height chosen so `template`'s cells have about
    /// the panels' aspect ratio (`panel` = panel width and height), which keeps the crop small.
    pub fn fitted(template: &Template, panel: (u32, u32), width: u32) -> PageStyle {
        let style = PageStyle {
            width,
            ..PageStyle::default()
        };
        let cells = template.unit_cells();
        let ratio = cells
            .iter()
            .map(|c| {
                let (x0, y0, x1, y1) = c.bounds();
                (x1 - x0) / (y1 - y0).max(1e-3)
            })
            .sum::<f32>()
            / cells.len().max(1) as f32;
        let content_width = width as f32 - 2.0 * style.margin;
        let panel_ratio = panel.0.max(1) as f32 / panel.1.max(1) as f32;
        let content_height = ratio * content_width / panel_ratio;
        let height = (content_height + 2.0 * style.margin).round();
        let height = height.clamp(width as f32 / 4.0, width as f32 * 3.0) as u32;
        PageStyle { height, ..style }
    }
}

/// One panel's picture and lettering.
#[derive(Clone, Debug)]
pub struct PanelArt {
    /// The generated picture (any size: it is cover-fitted into its cell).
    pub image: RgbImage,
    /// Caption box text.
    pub caption: Option<String>,
    /// Speech bubble text.
    pub speech: Option<String>,
}

impl PanelArt {
    /// `image` lettered with the script panel's caption and speech.
    pub fn new(image: RgbImage, panel: &super::script::Panel) -> PanelArt {
        PanelArt {
            image,
            caption: panel.caption.clone(),
            speech: panel.speech.clone(),
        }
    }
}

/// Why a page could not be laid out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayoutError {
    /// More panels than cells.
    #[error("{panels} panels do not fit layout '{template}', which holds {capacity}")]
    TooManyPanels {
        /// Panels given.
        panels: usize,
        /// Cells in the template.
        capacity: usize,
        /// The template's name.
        template: &'static str,
    },
    /// The page is too small (or too large) for its margins, gutters and cells.
    #[error(
        "page size {width}x{height} does not fit the layout (sides 64 to 16384 pixels, room for the margins and gutters)"
    )]
    PageTooSmall {
        /// Page width.
        width: u32,
        /// Page height.
        height: u32,
    },
    /// A panel picture without pixels.
    #[error("panel {index} has an empty picture")]
    EmptyPanel {
        /// 1-based panel number.
        index: usize,
    },
}

/// Lays out `panels` on a page with `template` (panels in reading order; cells left over stay
/// empty) and draws borders, captions and speech bubbles.
pub fn compose(
    panels: &[PanelArt],
    template: &Template,
    page: &PageStyle,
) -> Result<RgbImage, LayoutError> {
    if !PAGE_SIDE_RANGE.contains(&page.width) || !PAGE_SIDE_RANGE.contains(&page.height) {
        return Err(LayoutError::PageTooSmall {
            width: page.width,
            height: page.height,
        });
    }
    if panels.len() > template.capacity() {
        return Err(LayoutError::TooManyPanels {
            panels: panels.len(),
            capacity: template.capacity(),
            template: template.name(),
        });
    }
    if let Some(index) = panels
        .iter()
        .position(|a| a.image.width() == 0 || a.image.height() == 0)
    {
        return Err(LayoutError::EmptyPanel { index: index + 1 });
    }
    let cells = template.cells(page)?;
    let mut image = RgbImage::from_pixel(page.width, page.height, image::Rgb(page.background));
    for (art, cell) in panels.iter().zip(&cells) {
        draw_picture(&mut image, &art.image, cell);
        if page.border > 0.0 {
            let border = page.border;
            fill(&mut image, cell.bounds(), page.border_color, |x, y| {
                let d = cell.distance(x, y);
                d.min(border - d)
            });
        }
        let (x0, y0, x1, y1) = cell.inner_rect();
        let inset = page.border.max(0.0) + page.text_size * 0.35;
        let room = (x0 + inset, y0 + inset, x1 - inset, y1 - inset);
        if room.2 - room.0 < 8.0 || room.3 - room.1 < 8.0 {
            continue; // No room for lettering.
        }
        if let Some(caption) = art.caption.as_deref().filter(|c| !c.trim().is_empty()) {
            draw_caption(&mut image, caption, room, page);
        }
        if let Some(speech) = art.speech.as_deref().filter(|s| !s.trim().is_empty()) {
            draw_speech(&mut image, speech, room, page);
        }
    }
    Ok(image)
}

/// Scales `picture` to cover `width × height` and crops the centre.
fn cover_fit(picture: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (pw, ph) = (
        picture.width().max(1) as f32,
        picture.height().max(1) as f32,
    );
    let scale = (width as f32 / pw).max(height as f32 / ph);
    let scaled_width = ((pw * scale).round() as u32).max(width);
    let scaled_height = ((ph * scale).round() as u32).max(height);
    let scaled = if (scaled_width, scaled_height) == picture.dimensions() {
        picture.clone()
    } else {
        imageops::resize(
            picture,
            scaled_width,
            scaled_height,
            imageops::FilterType::CatmullRom,
        )
    };
    let (left, top) = ((scaled_width - width) / 2, (scaled_height - height) / 2);
    imageops::crop_imm(&scaled, left, top, width, height).to_image()
}

/// Draws the picture cover-fitted into the cell's bounding box, clipped to the cell.
fn draw_picture(image: &mut RgbImage, picture: &RgbImage, cell: &Quad) {
    let (x0, y0, x1, y1) = cell.bounds();
    let (left, top) = (x0.floor().max(0.0), y0.floor().max(0.0));
    let right = x1.ceil().min(image.width() as f32);
    let bottom = y1.ceil().min(image.height() as f32);
    if right <= left || bottom <= top {
        return;
    }
    let (left, top) = (left as u32, top as u32);
    let (width, height) = (right as u32 - left, bottom as u32 - top);
    let fitted = cover_fit(picture, width, height);
    for (fx, fy, pixel) in fitted.enumerate_pixels() {
        let (x, y) = (left + fx, top + fy);
        let coverage = (cell.distance(x as f32 + 0.5, y as f32 + 0.5) + 0.5).clamp(0.0, 1.0);
        paint::blend(image, i64::from(x), i64::from(y), pixel.0, coverage);
    }
}

/// Lays out `text` no wider than `max_width`, shrinking the size until the block fits `fits`.
fn fit_text(
    text: &str,
    page: &PageStyle,
    max_width: f32,
    fits: impl Fn(&TextBlock) -> bool,
) -> TextBlock {
    let mut size = if page.text_size.is_finite() {
        page.text_size.clamp(6.0, 512.0)
    } else {
        PageStyle::default().text_size
    };
    loop {
        let block = text::layout(text, page.font, size, max_width);
        if fits(&block) || size <= 8.0 {
            return block;
        }
        size *= 0.85;
    }
}

/// A caption box in the bottom-left corner of `room`.
fn draw_caption(image: &mut RgbImage, caption: &str, room: Rect, page: &PageStyle) {
    let (x0, y0, x1, y1) = room;
    let pad = page.text_size * 0.4;
    let max_width = x1 - x0 - 2.0 * pad;
    let block = fit_text(caption, page, max_width, |b| {
        b.height() + 2.0 * pad <= (y1 - y0) * 0.4
    });
    let pad = block.line_height * 0.35;
    let box_rect = (
        x0,
        (y1 - block.height() - 2.0 * pad).max(y0),
        (x0 + block.width() + 2.0 * pad).min(x1),
        y1,
    );
    let stroke = (page.border * 0.5).max(1.5);
    fill(image, box_rect, page.border_color, |x, y| {
        rect_distance(x, y, box_rect) + stroke
    });
    fill(image, box_rect, page.caption_fill, |x, y| {
        rect_distance(x, y, box_rect)
    });
    block.draw(image, x0 + pad, box_rect.1 + pad, false, page.text_color);
}

/// An oval speech bubble in the top-right corner of `room`, its tail pointing down-left.
fn draw_speech(image: &mut RgbImage, speech: &str, room: Rect, page: &PageStyle) {
    let (x0, y0, x1, y1) = room;
    let (room_width, room_height) = (x1 - x0, y1 - y0);
    let pad = page.text_size * 0.5;
    // The text box's corners touch the oval when its semi-axes are √2 × half the box.
    let axes = |b: &TextBlock| {
        (
            b.width() / 2.0 * std::f32::consts::SQRT_2 + pad,
            b.height() / 2.0 * std::f32::consts::SQRT_2 + pad,
        )
    };
    let block = fit_text(speech, page, room_width * 0.5, |b| {
        let (a, bb) = axes(b);
        2.0 * a <= room_width * 0.95 && 2.0 * bb <= room_height * 0.55
    });
    let (a, b) = axes(&block);
    let stroke = (page.border * 0.6).max(2.0);
    // Keep the outline clear of the panel border.
    let gap = stroke + page.text_size * 0.2;
    let (cx, cy) = (x1 - a - gap, y0 + b + gap);
    // Tail: a triangle from inside the oval's lower left to a point below it.
    let base_y = cy + 0.55 * b;
    let tip = p(
        cx - 0.75 * a,
        (cy + b + (0.6 * b).max(page.text_size)).min(y1),
    );
    let tail = [p(cx - 0.4 * a, base_y), p(cx - 0.1 * a, base_y), tip];
    let tail_bounds = (tip.x.min(cx - 0.4 * a), base_y, cx - 0.1 * a, tip.y);
    let oval_bounds = (cx - a, cy - b, cx + a, cy + b);
    let grow = |r: Rect| (r.0 - stroke, r.1 - stroke, r.2 + stroke, r.3 + stroke);
    fill(image, grow(oval_bounds), page.border_color, |x, y| {
        ellipse_distance(x, y, cx, cy, a, b) + stroke
    });
    fill(image, grow(tail_bounds), page.border_color, |x, y| {
        polygon_distance(&tail, x, y) + stroke
    });
    fill(image, oval_bounds, page.bubble_fill, |x, y| {
        ellipse_distance(x, y, cx, cy, a, b)
    });
    fill(image, tail_bounds, page.bubble_fill, |x, y| {
        polygon_distance(&tail, x, y)
    });
    block.draw(
        image,
        cx - block.width() / 2.0,
        cy - block.height() / 2.0,
        true,
        page.text_color,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// Distance from `(x, y)` to the segment `a–b`.
    fn segment_distance(a: Point, b: Point, x: f32, y: f32) -> f32 {
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let t = (((x - a.x) * dx + (y - a.y) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
        (x - (a.x + t * dx)).hypot(y - (a.y + t * dy))
    }

    /// Exact distance between two disjoint convex quads (vertex to edge, both ways).
    fn quad_gap(a: &Quad, b: &Quad) -> f32 {
        let one_way = |from: &Quad, to: &Quad| {
            from.0
                .iter()
                .flat_map(|v| to.edges().map(|(s, e)| segment_distance(s, e, v.x, v.y)))
                .fold(f32::INFINITY, f32::min)
        };
        one_way(a, b).min(one_way(b, a))
    }

    fn pages() -> Vec<PageStyle> {
        vec![
            PageStyle::default(),
            PageStyle {
                width: 1000,
                height: 700,
                margin: 0.0,
                gutter: 10.0,
                ..PageStyle::default()
            },
            PageStyle {
                width: 300,
                height: 900,
                margin: 12.0,
                gutter: 31.0,
                ..PageStyle::default()
            },
        ]
    }

    #[test]
    fn every_name_and_count_gives_a_template() {
        for name in Template::NAMES {
            let t = Template::by_name(name).unwrap();
            assert_eq!(t.name(), *name);
            assert!((1..=MAX_PANELS).contains(&t.capacity()));
        }
        for n in 1..=MAX_PANELS {
            assert_eq!(Template::for_count(n).unwrap().capacity(), n);
        }
        assert!(Template::for_count(0).is_none());
        assert!(Template::for_count(7).is_none());
        assert_eq!(Template::by_name(" Grid_2x2 ").unwrap().name(), "grid-2x2");
        assert_eq!(Template::by_name("2x3").unwrap().name(), "grid-2x3");
        assert!(Template::by_name("zigzag").is_none());
    }

    #[test]
    fn unit_cells_tile_the_square() {
        // Every sample point of the unit square is in exactly one cell (away from edges).
        for name in Template::NAMES {
            let t = Template::by_name(name).unwrap();
            for i in 0..50 {
                for j in 0..50 {
                    let (x, y) = ((i as f32 + 0.5) / 50.0, (j as f32 + 0.5) / 50.0);
                    let distances: Vec<f32> =
                        t.unit_cells().iter().map(|c| c.distance(x, y)).collect();
                    assert!(
                        distances.iter().any(|d| *d > -1e-4),
                        "{name}: ({x}, {y}) in no cell"
                    );
                    let strictly = distances.iter().filter(|d| **d > 1e-4).count();
                    assert!(strictly <= 1, "{name}: ({x}, {y}) in {strictly} cells");
                }
            }
        }
    }

    #[test]
    fn cells_are_inside_the_margin_and_a_gutter_apart() {
        for page in pages() {
            for name in Template::NAMES {
                let t = Template::by_name(name).unwrap();
                let cells = t.cells(&page).unwrap();
                assert_eq!(cells.len(), t.capacity());
                for cell in &cells {
                    for v in cell.0 {
                        assert!(v.x >= page.margin - 1e-3, "{name}: {v:?}");
                        assert!(v.y >= page.margin - 1e-3, "{name}: {v:?}");
                        assert!(
                            v.x <= page.width as f32 - page.margin + 1e-3,
                            "{name}: {v:?}"
                        );
                        assert!(
                            v.y <= page.height as f32 - page.margin + 1e-3,
                            "{name}: {v:?}"
                        );
                    }
                    // The inner box is inside the cell.
                    let (x0, y0, x1, y1) = cell.inner_rect();
                    assert!(x1 > x0 && y1 > y0, "{name}: {cell:?}");
                    for (x, y) in [(x0, y0), (x1, y0), (x1, y1), (x0, y1)] {
                        assert!(cell.distance(x, y) > -1e-3, "{name}: ({x}, {y}) {cell:?}");
                    }
                }
                let mut closest = f32::INFINITY;
                for (i, a) in cells.iter().enumerate() {
                    for b in cells.iter().skip(i + 1) {
                        // No vertex of one inside the other, and at least a gutter apart.
                        for v in a.0 {
                            assert!(!b.contains(v.x, v.y), "{name}: overlap");
                        }
                        for v in b.0 {
                            assert!(!a.contains(v.x, v.y), "{name}: overlap");
                        }
                        let gap = quad_gap(a, b);
                        assert!(
                            gap >= page.gutter - 0.02,
                            "{name}: gap {gap} < {}",
                            page.gutter
                        );
                        closest = closest.min(gap);
                    }
                }
                // Neighbours are exactly a gutter apart (not more).
                if cells.len() > 1 {
                    assert!(
                        (closest - page.gutter).abs() < 0.05,
                        "{name}: closest {closest}"
                    );
                }
                // No pixel centre lies in two cells.
                for y in (0..page.height).step_by(3) {
                    for x in (0..page.width).step_by(3) {
                        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                        let count = cells.iter().filter(|c| c.contains(px, py)).count();
                        assert!(count <= 1, "{name}: pixel {x},{y} in {count} cells");
                    }
                }
            }
        }
    }

    #[test]
    fn grid_numbers() {
        let page = PageStyle {
            width: 1000,
            height: 800,
            margin: 20.0,
            gutter: 16.0,
            ..PageStyle::default()
        };
        let cells = Template::by_name("grid-2x2").unwrap().cells(&page).unwrap();
        assert_eq!(cells[0], Quad::rect(20.0, 20.0, 492.0, 392.0));
        assert_eq!(cells[1], Quad::rect(508.0, 20.0, 980.0, 392.0));
        assert_eq!(cells[3], Quad::rect(508.0, 408.0, 980.0, 780.0));
        assert!(cells.iter().all(Quad::is_rectangle));
    }

    #[test]
    fn diagonal_cells_are_slanted_quads() {
        let page = PageStyle::default();
        for name in ["manga-3", "manga-4"] {
            let cells = Template::by_name(name).unwrap().cells(&page).unwrap();
            assert!(cells.iter().any(|c| !c.is_rectangle()), "{name}");
        }
        // manga-4: the slanted gutter between the top-left and bottom-left cells is a gutter
        // wide measured along its normal: the top-left's bottom edge and the bottom-left's top
        // edge are parallel lines `gutter` apart.
        let cells = Template::by_name("manga-4").unwrap().cells(&page).unwrap();
        let (top, bottom) = (cells[0], cells[2]);
        let (a, b) = (top.0[3], top.0[2]); // bottom-left → bottom-right of the top cell
        let n = inward_normal(a, b); // points down, out of the top cell
        for v in [bottom.0[0], bottom.0[1]] {
            let across = (v.x - a.x) * n.x + (v.y - a.y) * n.y;
            assert!((across - page.gutter).abs() < 0.01, "{across}");
        }
        // The slanted gutter's middle is page background between two pictures.
        let red = RgbImage::from_pixel(64, 64, Rgb([220, 0, 0]));
        let art = |image: &RgbImage| PanelArt {
            image: image.clone(),
            caption: None,
            speech: None,
        };
        let pictures = vec![art(&red); 4];
        let page_image = compose(&pictures, &Template::by_name("manga-4").unwrap(), &page).unwrap();
        let mid = p((a.x + b.x) / 2.0, (a.y + b.y) / 2.0);
        let gutter_middle = p(
            mid.x + n.x * page.gutter / 2.0,
            mid.y + n.y * page.gutter / 2.0,
        );
        let pixel = |q: Point| page_image.get_pixel(q.x as u32, q.y as u32).0;
        assert_eq!(pixel(gutter_middle), page.background);
        let above = p(mid.x - n.x * 20.0, mid.y - n.y * 20.0);
        let below = p(
            mid.x + n.x * (page.gutter + 20.0),
            mid.y + n.y * (page.gutter + 20.0),
        );
        assert_eq!(pixel(above), [220, 0, 0]);
        assert_eq!(pixel(below), [220, 0, 0]);
    }

    fn solid(color: [u8; 3], width: u32, height: u32) -> PanelArt {
        PanelArt {
            image: RgbImage::from_pixel(width, height, Rgb(color)),
            caption: None,
            speech: None,
        }
    }

    #[test]
    fn panels_fill_their_cells_with_borders() {
        let page = PageStyle {
            width: 800,
            height: 600,
            ..PageStyle::default()
        };
        let colors = [[200, 0, 0], [0, 160, 0], [0, 0, 200], [200, 200, 0]];
        let panels: Vec<PanelArt> = colors.iter().map(|c| solid(*c, 96, 64)).collect();
        let template = Template::by_name("grid-2x2").unwrap();
        let image = compose(&panels, &template, &page).unwrap();
        assert_eq!(image.dimensions(), (800, 600));
        let cells = template.cells(&page).unwrap();
        for (cell, color) in cells.iter().zip(colors) {
            let (x0, y0, x1, y1) = cell.bounds();
            let centre = image.get_pixel(((x0 + x1) / 2.0) as u32, ((y0 + y1) / 2.0) as u32);
            assert_eq!(centre.0, color);
            // Border just inside the edge, background just outside.
            let mid_y = ((y0 + y1) / 2.0) as u32;
            assert_eq!(image.get_pixel(x0 as u32 + 1, mid_y).0, page.border_color);
            assert_eq!(image.get_pixel(x0 as u32 - 2, mid_y).0, page.background);
        }
        // The margin is background.
        assert_eq!(image.get_pixel(10, 10).0, page.background);
        assert_eq!(image.get_pixel(400, 300).0, page.background); // gutter crossing
    }

    #[test]
    fn pictures_are_cover_fitted_by_centre_crop() {
        // A wide picture in thirds: red | green | blue. In a square cell only the middle
        // third shows (scaled to the height, then cropped).
        let mut wide = RgbImage::new(300, 100);
        for (x, _, pixel) in wide.enumerate_pixels_mut() {
            pixel.0 = match x / 100 {
                0 => [255, 0, 0],
                1 => [0, 255, 0],
                _ => [0, 0, 255],
            };
        }
        let fitted = cover_fit(&wide, 200, 200);
        assert_eq!(fitted.dimensions(), (200, 200));
        assert_eq!(fitted.get_pixel(5, 100).0, [0, 255, 0]);
        assert_eq!(fitted.get_pixel(194, 100).0, [0, 255, 0]);
        // A tall picture in a wide cell keeps its middle rows.
        let mut tall = RgbImage::new(100, 300);
        for (_, y, pixel) in tall.enumerate_pixels_mut() {
            pixel.0 = if (100..200).contains(&y) {
                [9, 9, 9]
            } else {
                [250, 250, 250]
            };
        }
        let fitted = cover_fit(&tall, 300, 100);
        assert_eq!(fitted.dimensions(), (300, 100));
        assert_eq!(fitted.get_pixel(150, 3).0, [9, 9, 9]);
        assert_eq!(fitted.get_pixel(150, 96).0, [9, 9, 9]);
    }

    #[test]
    fn captions_and_bubbles_are_lettered() {
        let page = PageStyle {
            width: 900,
            height: 600,
            text_color: [1, 2, 3],
            ..PageStyle::default()
        };
        let dark = [40, 40, 120];
        let mut panels = vec![solid(dark, 64, 64), solid(dark, 64, 64)];
        panels[0].caption = Some("Morning again. 又是早晨。".into());
        panels[1].speech = Some("「いい匂い！」 Smells good!".into());
        let template = Template::by_name("two-columns").unwrap();
        let image = compose(&panels, &template, &page).unwrap();
        let cells = template.cells(&page).unwrap();
        let count = |cell: &Quad, color: [u8; 3]| {
            let (x0, y0, x1, y1) = cell.bounds();
            image
                .enumerate_pixels()
                .filter(|(x, y, px)| {
                    let (x, y) = (*x as f32, *y as f32);
                    x >= x0 && x < x1 && y >= y0 && y < y1 && px.0 == color
                })
                .count()
        };
        // Caption box (fill and lettering) in the lower half of the first panel.
        assert!(count(&cells[0], page.caption_fill) > 2000);
        assert_eq!(count(&cells[1], page.caption_fill), 0);
        let (_, y0, _, y1) = cells[0].bounds();
        let top_of_box = image
            .enumerate_pixels()
            .filter(|(_, _, px)| px.0 == page.caption_fill)
            .map(|(_, y, _)| y as f32)
            .fold(f32::INFINITY, f32::min);
        assert!(
            top_of_box > (y0 + y1) / 2.0,
            "caption box not at the bottom"
        );
        // Bubble in the second panel only, with dark lettering inside it.
        assert!(count(&cells[1], page.bubble_fill) > 2000);
        assert_eq!(count(&cells[0], page.bubble_fill), 0);
        assert!(count(&cells[1], page.text_color) > 50);
        assert!(count(&cells[0], page.text_color) > 50);
    }

    #[test]
    fn long_lettering_shrinks_to_fit() {
        let page = PageStyle {
            width: 400,
            height: 300,
            ..PageStyle::default()
        };
        let mut art = solid([0, 0, 0], 32, 32);
        art.caption = Some("很长的旁白文字。".repeat(15));
        let template = Template::by_name("single").unwrap();
        let image = compose(&[art], &template, &page).unwrap();
        // The caption box stays in the lower part of the panel (0.4 of its height at most).
        let top = image
            .enumerate_pixels()
            .filter(|(_, _, px)| px.0 == page.caption_fill)
            .map(|(_, y, _)| y)
            .min()
            .unwrap();
        assert!(top > 300 / 2 - 20, "caption box starts at row {top}");
    }

    #[test]
    fn bad_pages_and_panels_are_errors() {
        let template = Template::by_name("two-rows").unwrap();
        let three = vec![solid([0; 3], 8, 8); 3];
        assert!(matches!(
            compose(&three, &template, &PageStyle::default()),
            Err(LayoutError::TooManyPanels {
                panels: 3,
                capacity: 2,
                ..
            })
        ));
        let tiny = PageStyle {
            width: 100,
            height: 100,
            margin: 45.0,
            ..PageStyle::default()
        };
        assert!(matches!(
            compose(&three[..1], &template, &tiny),
            Err(LayoutError::PageTooSmall { .. })
        ));
        let huge_gutter = PageStyle {
            gutter: 5000.0,
            ..PageStyle::default()
        };
        assert!(compose(&three[..2], &template, &huge_gutter).is_err());
        let zero = PageStyle {
            width: 0,
            ..PageStyle::default()
        };
        assert!(compose(&three[..1], &template, &zero).is_err());
        let empty = PanelArt {
            image: RgbImage::new(0, 0),
            caption: None,
            speech: None,
        };
        assert_eq!(
            compose(&[three[0].clone(), empty], &template, &PageStyle::default()),
            Err(LayoutError::EmptyPanel { index: 2 })
        );
        // Fewer panels than cells: the rest stay empty.
        let image = compose(&three[..1], &template, &PageStyle::default()).unwrap();
        assert_eq!(image.get_pixel(600, 1200).0, [255, 255, 255]);
    }

    #[test]
    fn odd_styles_are_errors_or_still_draw() {
        let template = Template::by_name("manga-3").unwrap();
        let mut art = solid([9, 9, 9], 16, 16);
        art.caption = Some("caption".into());
        art.speech = Some("speech".into());
        let panels = vec![art; 3];
        let results: Vec<bool> = [
            PageStyle {
                margin: f32::NAN,
                gutter: f32::INFINITY,
                ..PageStyle::default()
            },
            PageStyle {
                text_size: f32::INFINITY,
                border: f32::NAN,
                ..PageStyle::default()
            },
            PageStyle {
                text_size: f32::NAN,
                ..PageStyle::default()
            },
            PageStyle {
                width: 64,
                height: 64,
                margin: 0.0,
                gutter: 2.0,
                ..PageStyle::default()
            },
        ]
        .iter()
        .map(|style| compose(&panels, &template, style).is_ok())
        .collect();
        // No panic and no endless shrinking: bad geometry is an error, bad text sizes fall
        // back, and a tiny page still draws.
        assert_eq!(results, [false, true, true, true]);
    }

    #[test]
    fn fitted_pages_match_the_panel_shape() {
        let grid = Template::by_name("grid-2x2").unwrap();
        let page = PageStyle::fitted(&grid, (768, 512), 1200);
        assert_eq!(page.width, 1200);
        // Cells of 1120/2 wide should be about 2/3 as tall.
        let cells = grid.cells(&page).unwrap();
        let (x0, y0, x1, y1) = cells[0].bounds();
        let ratio = (x1 - x0) / (y1 - y0);
        assert!((ratio - 1.5).abs() < 0.1, "{ratio}");
    }
}
