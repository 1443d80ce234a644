//! Text layers: a [`TextSpec`] (text, bundled font, size, colour, position, wrap width) laid out
//! and rasterised with `ab_glyph` into a layer's straight-alpha pixels, anti-aliased by glyph
//! coverage. Lines break at `\n` and, with a wrap width, between words (Latin) or between any
//! two CJK characters. Glyphs a font lacks come from the bundled WenQuanYi Micro Hei, which
//! covers Chinese, Japanese kana and Latin.

use super::PixelRect;
use ab_glyph::{Font, FontArc, GlyphId, PxScale, ScaleFont, point};
use std::sync::OnceLock;

/// Smallest and largest text size, in pixels (em size).
pub const TEXT_SIZE_RANGE: std::ops::RangeInclusive<f32> = 6.0..=1024.0;

/// A bundled font.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TextFont {
    /// WenQuanYi Micro Hei: Chinese, Japanese kana and Latin (`assets/fonts`).
    #[default]
    Sans,
    /// WenQuanYi Micro Hei Mono (face 1 of the same collection).
    Mono,
    /// Ubuntu Light (egui's default Latin font); other scripts fall back to Sans.
    Latin,
}

impl TextFont {
    /// Every font, in the order the panel lists them.
    pub const ALL: [TextFont; 3] = [TextFont::Sans, TextFont::Mono, TextFont::Latin];

    /// The font's own name (not translated).
    pub fn name(self) -> &'static str {
        match self {
            TextFont::Sans => "WenQuanYi Micro Hei",
            TextFont::Mono => "WenQuanYi Micro Hei Mono",
            TextFont::Latin => "Ubuntu Light",
        }
    }
}

/// What a text layer shows.
#[derive(Clone, Debug, PartialEq)]
pub struct TextSpec {
    /// The text; `\n` starts a new line.
    pub text: String,
    /// The font.
    pub font: TextFont,
    /// Em size in pixels.
    pub size: f32,
    /// Straight-alpha colour.
    pub color: [u8; 4],
    /// Left edge of the text box, canvas pixels.
    pub x: f32,
    /// Top edge of the text box (top of the first line), canvas pixels.
    pub y: f32,
    /// Lines wrap at this width in pixels; 0 = only at `\n`.
    pub wrap_width: f32,
}

impl Default for TextSpec {
    fn default() -> Self {
        TextSpec {
            text: String::new(),
            font: TextFont::Sans,
            size: 48.0,
            color: [255, 255, 255, 255],
            x: 0.0,
            y: 0.0,
            wrap_width: 0.0,
        }
    }
}

fn load(face: u32) -> Option<FontArc> {
    ab_glyph::FontRef::try_from_slice_and_index(crate::i18n::CJK_FONT, face)
        .ok()
        .map(FontArc::new)
}

fn font(which: TextFont) -> Option<&'static FontArc> {
    static SANS: OnceLock<Option<FontArc>> = OnceLock::new();
    static MONO: OnceLock<Option<FontArc>> = OnceLock::new();
    static LATIN: OnceLock<Option<FontArc>> = OnceLock::new();
    match which {
        TextFont::Sans => SANS.get_or_init(|| load(0)).as_ref(),
        TextFont::Mono => MONO.get_or_init(|| load(1)).as_ref(),
        TextFont::Latin => LATIN
            .get_or_init(|| {
                let fonts = egui::FontDefinitions::default();
                let data = fonts.font_data.get("Ubuntu-Light")?;
                let bytes: &[u8] = (*data.font).as_ref();
                ab_glyph::FontVec::try_from_vec_and_index(bytes.to_vec(), data.index)
                    .ok()
                    .map(FontArc::new)
            })
            .as_ref(),
    }
}

/// Whether a character is CJK (lines may break before and after it).
fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x3000..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF
        | 0xFF00..=0xFFEF | 0x20000..=0x2FA1F)
}

/// One placed glyph.
struct Placed {
    font: &'static FontArc,
    id: GlyphId,
    scale: PxScale,
    x: f32,
    baseline: f32,
}

/// The scale of `font` for an em size of `size` pixels.
fn scale_for(font: &FontArc, size: f32) -> PxScale {
    let units = font.units_per_em().unwrap_or(1000.0);
    PxScale::from(size * font.height_unscaled() / units)
}

/// Glyph font and id for `c`: the chosen font, else Sans (None when neither has it).
fn glyph_for(primary: &'static FontArc, c: char) -> Option<(&'static FontArc, GlyphId)> {
    let id = primary.glyph_id(c);
    if id.0 != 0 {
        return Some((primary, id));
    }
    let sans = font(TextFont::Sans)?;
    let id = sans.glyph_id(c);
    (id.0 != 0).then_some((sans, id))
}

/// Lays out the text: glyphs with their pen positions relative to the box's top left, and the
/// line height.
fn layout(spec: &TextSpec) -> Vec<Placed> {
    let Some(primary) = font(spec.font) else {
        return Vec::new();
    };
    let size = spec
        .size
        .clamp(*TEXT_SIZE_RANGE.start(), *TEXT_SIZE_RANGE.end());
    let main_scale = scale_for(primary, size);
    let scaled = primary.as_scaled(main_scale);
    let line_height = scaled.ascent() - scaled.descent() + scaled.line_gap();
    let ascent = scaled.ascent();
    let advance = |c: char| -> f32 {
        match glyph_for(primary, c) {
            Some((f, id)) => f.as_scaled(scale_for(f, size)).h_advance(id),
            None => 0.0,
        }
    };
    let mut placed = Vec::new();
    let mut line = 0usize;
    for paragraph in spec.text.split('\n') {
        // Break points: words and spaces, each CJK character alone.
        let mut tokens: Vec<String> = Vec::new();
        for c in paragraph.chars() {
            let joins = !c.is_whitespace()
                && !is_cjk(c)
                && tokens.last().is_some_and(|t| {
                    t.chars()
                        .last()
                        .is_some_and(|l| !l.is_whitespace() && !is_cjk(l))
                });
            match tokens.last_mut() {
                Some(last) if joins => last.push(c),
                _ => tokens.push(c.to_string()),
            }
        }
        let mut pen = 0.0f32;
        let mut previous: Option<(&'static FontArc, GlyphId)> = None;
        for token in tokens {
            let width: f32 = token.chars().map(advance).sum();
            let blank = token.chars().all(char::is_whitespace);
            if spec.wrap_width > 0.0 && pen > 0.0 && pen + width > spec.wrap_width {
                line += 1;
                pen = 0.0;
                previous = None;
                if blank {
                    continue; // A space at a break disappears.
                }
            }
            for c in token.chars() {
                let Some((f, id)) = glyph_for(primary, c) else {
                    continue;
                };
                let scale = scale_for(f, size);
                let sf = f.as_scaled(scale);
                if let Some((pf, pid)) = previous
                    && std::ptr::eq(pf, f)
                {
                    pen += sf.kern(pid, id);
                }
                placed.push(Placed {
                    font: f,
                    id,
                    scale,
                    x: pen,
                    baseline: ascent + line as f32 * line_height,
                });
                pen += sf.h_advance(id);
                previous = Some((f, id));
            }
        }
        line += 1;
    }
    placed
}

/// Rasterises `spec` into a `width × height` coverage-coloured RGBA image: returns the pixels
/// of the touched rectangle (row-major RGBA, straight alpha) and the rectangle (empty when
/// nothing shows).
pub fn rasterize(spec: &TextSpec, width: u32, height: u32) -> (Vec<u8>, PixelRect) {
    let glyphs: Vec<_> = layout(spec)
        .into_iter()
        .filter_map(|g| {
            let glyph =
                g.id.with_scale_and_position(g.scale, point(spec.x + g.x, spec.y + g.baseline));
            g.font.outline_glyph(glyph)
        })
        .collect();
    let mut bounds = PixelRect::default();
    for glyph in &glyphs {
        let b = glyph.px_bounds();
        let clamp = |v: f32, max: u32| (v.max(0.0) as u32).min(max);
        bounds = bounds.union(PixelRect {
            x0: clamp(b.min.x.floor(), width),
            y0: clamp(b.min.y.floor(), height),
            x1: clamp(b.max.x.ceil(), width),
            y1: clamp(b.max.y.ceil(), height),
        });
    }
    if bounds.is_empty() {
        return (Vec::new(), PixelRect::default());
    }
    let (bw, bh) = (bounds.width() as usize, bounds.height() as usize);
    let mut coverage = vec![0.0f32; bw * bh];
    for glyph in &glyphs {
        let b = glyph.px_bounds();
        let (gx, gy) = (b.min.x.floor() as i64, b.min.y.floor() as i64);
        glyph.draw(|x, y, c| {
            let (px, py) = (gx + i64::from(x), gy + i64::from(y));
            let (lx, ly) = (px - i64::from(bounds.x0), py - i64::from(bounds.y0));
            if lx < 0 || ly < 0 || lx >= bw as i64 || ly >= bh as i64 {
                return;
            }
            if let Some(cell) = coverage.get_mut(ly as usize * bw + lx as usize) {
                *cell = (*cell + c).min(1.0);
            }
        });
    }
    let [r, g, b, a] = spec.color;
    let mut pixels = Vec::with_capacity(bw * bh * 4);
    for c in coverage {
        let alpha = (c * f32::from(a)).round() as u8;
        if alpha == 0 {
            pixels.extend_from_slice(&[0; 4]);
        } else {
            pixels.extend_from_slice(&[r, g, b, alpha]);
        }
    }
    (pixels, bounds)
}

/// The box a click may grab to move the text: the glyphs' bounds, at least one line tall,
/// in canvas pixels `(x0, y0, x1, y1)`.
pub fn hit_box(spec: &TextSpec, width: u32, height: u32) -> (f32, f32, f32, f32) {
    let (_, bounds) = rasterize(spec, width, height);
    let min_height = spec.size.max(8.0);
    if bounds.is_empty() {
        return (spec.x, spec.y, spec.x + min_height, spec.y + min_height);
    }
    (
        (bounds.x0 as f32).min(spec.x),
        (bounds.y0 as f32).min(spec.y),
        bounds.x1 as f32,
        (bounds.y1 as f32).max(spec.y + min_height),
    )
}

/// Whether every character of `text` (other than whitespace) has a glyph in a bundled font.
pub fn covers(font_choice: TextFont, text: &str) -> bool {
    let Some(primary) = font(font_choice) else {
        return false;
    };
    text.chars()
        .filter(|c| !c.is_whitespace())
        .all(|c| glyph_for(primary, c).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> TextSpec {
        TextSpec {
            text: text.into(),
            size: 32.0,
            color: [200, 30, 40, 255],
            x: 10.0,
            y: 12.0,
            ..TextSpec::default()
        }
    }

    fn inked(pixels: &[u8]) -> usize {
        pixels.chunks_exact(4).filter(|p| p[3] > 0).count()
    }

    #[test]
    fn chinese_kana_and_latin_all_render() {
        for text in ["中文海报", "かなカナ", "Latin text"] {
            for font_choice in TextFont::ALL {
                assert!(covers(font_choice, text), "{font_choice:?} {text}");
                let (pixels, bounds) = rasterize(
                    &TextSpec {
                        font: font_choice,
                        ..spec(text)
                    },
                    400,
                    100,
                );
                assert!(!bounds.is_empty(), "{text}");
                let ink = inked(&pixels);
                assert!(
                    ink > 100,
                    "{font_choice:?} {text}: only {ink} pixels of ink"
                );
            }
        }
    }

    #[test]
    fn the_box_starts_at_the_position_and_the_colour_is_kept() {
        let (pixels, bounds) = rasterize(&spec("Hello 世界"), 400, 100);
        assert!(bounds.x0 >= 10 && bounds.x0 <= 14, "{bounds:?}");
        assert!(bounds.y0 >= 12 && bounds.y0 <= 24, "{bounds:?}");
        // One 32 px line: the ink is at most ~1.3 em tall.
        assert!(bounds.height() <= 42, "{bounds:?}");
        assert!(bounds.width() > 100, "{bounds:?}");
        // Every inked pixel has the colour; the edges are anti-aliased.
        let alphas: Vec<u8> = pixels
            .chunks_exact(4)
            .filter(|p| p[3] > 0)
            .map(|p| {
                assert_eq!(&p[..3], &[200, 30, 40]);
                p[3]
            })
            .collect();
        assert!(alphas.contains(&255));
        assert!(alphas.iter().any(|&a| a > 20 && a < 235), "no soft edge");
    }

    #[test]
    fn newlines_and_wrapping_make_more_lines() {
        let one = rasterize(&spec("abc def"), 400, 300).1;
        let two = rasterize(&spec("abc\ndef"), 400, 300).1;
        assert!(two.height() > one.height() + 20, "{one:?} {two:?}");
        assert!(two.width() < one.width());
        let wrapped = TextSpec {
            wrap_width: 70.0,
            ..spec("abc def 中文字符")
        };
        let (_, bounds) = rasterize(&wrapped, 400, 300);
        assert!(bounds.width() <= 80, "{bounds:?}");
        assert!(bounds.height() > 2 * 32, "{bounds:?}");
    }

    #[test]
    fn text_outside_the_canvas_is_clipped() {
        let far = TextSpec {
            x: 500.0,
            ..spec("hidden")
        };
        assert!(rasterize(&far, 100, 100).1.is_empty());
    }
}
