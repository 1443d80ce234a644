//! Comic lettering: text shaped with `harfrust` (the Rust port of HarfBuzz that egui's own text
//! layout uses, so the workspace builds one shaper), broken into lines at Unicode line-break
//! opportunities (UAX #14 via `unicode-linebreak`: between CJK characters, at spaces in Latin,
//! never before `。`, `、` or `」`) and rasterised with `ab_glyph` from the shaped glyph ids.
//!
//! Fonts are the bundled ones: WenQuanYi Micro Hei (Chinese, Japanese kana, Latin) and Ubuntu
//! Light (egui's Latin font); characters the chosen font lacks come from WenQuanYi. A word wider
//! than the line is broken between characters.

use ab_glyph::{Font as _, GlyphId, PxScale, point};
use image::RgbImage;
use std::sync::OnceLock;

/// A bundled lettering font.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LetteringFont {
    /// WenQuanYi Micro Hei: Chinese, Japanese kana and Latin.
    #[default]
    Sans,
    /// Ubuntu Light for what it covers (Latin), WenQuanYi Micro Hei for the rest.
    Latin,
}

/// A font face loaded for shaping (harfrust) and drawing (ab_glyph).
struct Face {
    shaping: harfrust::FontRef<'static>,
    shaper_data: harfrust::ShaperData,
    glyphs: ab_glyph::FontRef<'static>,
    units_per_em: f32,
}

impl Face {
    fn load(bytes: &'static [u8], index: u32) -> Option<Face> {
        let shaping = harfrust::FontRef::from_index(bytes, index).ok()?;
        let shaper_data = harfrust::ShaperData::new(&shaping);
        let glyphs = ab_glyph::FontRef::try_from_slice_and_index(bytes, index).ok()?;
        let units_per_em = glyphs.units_per_em().unwrap_or(1000.0);
        Some(Face {
            shaping,
            shaper_data,
            glyphs,
            units_per_em,
        })
    }

    /// Pixels per font unit at an em size of `size` pixels.
    fn px_per_unit(&self, size: f32) -> f32 {
        size / self.units_per_em
    }

    /// ab_glyph's scale (which counts ascent minus descent) for an em size of `size` pixels.
    fn scale(&self, size: f32) -> PxScale {
        PxScale::from(size * self.glyphs.height_unscaled() / self.units_per_em)
    }

    fn covers(&self, c: char) -> bool {
        self.glyphs.glyph_id(c).0 != 0
    }
}

/// Which loaded face: the CJK-capable fallback or Ubuntu Light.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaceId {
    Sans,
    Latin,
}

fn face(id: FaceId) -> Option<&'static Face> {
    static SANS: OnceLock<Option<Face>> = OnceLock::new();
    static LATIN_BYTES: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    static LATIN: OnceLock<Option<Face>> = OnceLock::new();
    match id {
        FaceId::Sans => SANS
            .get_or_init(|| Face::load(crate::i18n::CJK_FONT, 0))
            .as_ref(),
        FaceId::Latin => LATIN
            .get_or_init(|| {
                let bytes = LATIN_BYTES
                    .get_or_init(|| {
                        let fonts = egui::FontDefinitions::default();
                        let data = fonts.font_data.get("Ubuntu-Light")?;
                        let bytes: &[u8] = (*data.font).as_ref();
                        Some(bytes.to_vec())
                    })
                    .as_deref()?;
                Face::load(bytes, 0)
            })
            .as_ref(),
    }
}

/// The face for `c`: the chosen font when it has the glyph (or for whitespace), else Sans.
fn face_for(font: LetteringFont, c: char) -> FaceId {
    match font {
        LetteringFont::Sans => FaceId::Sans,
        LetteringFont::Latin => match face(FaceId::Latin) {
            Some(latin) if c.is_whitespace() || latin.covers(c) => FaceId::Latin,
            _ => FaceId::Sans,
        },
    }
}

/// One shaped glyph, positioned on its line.
#[derive(Clone, Debug)]
struct Glyph {
    face: FaceId,
    id: u16,
    /// Byte offset of the glyph's cluster in its paragraph.
    cluster: usize,
    /// Pen position from the line's left edge, pixels (after layout).
    x: f32,
    advance: f32,
    x_offset: f32,
    y_offset: f32,
}

/// One laid-out line.
#[derive(Clone, Debug)]
pub struct Line {
    /// The line's text (without the spaces at a break).
    pub text: String,
    /// Width of the inked advance, pixels (trailing spaces not counted).
    pub width: f32,
    glyphs: Vec<Glyph>,
}

/// Text laid out into lines, ready to draw.
#[derive(Clone, Debug)]
pub struct TextBlock {
    /// The lines, top to bottom.
    pub lines: Vec<Line>,
    /// Distance between baselines, pixels.
    pub line_height: f32,
    /// Top of a line to its baseline, pixels.
    pub ascent: f32,
    size: f32,
}

impl TextBlock {
    /// Width of the widest line, pixels.
    pub fn width(&self) -> f32 {
        self.lines.iter().map(|l| l.width).fold(0.0, f32::max)
    }

    /// Height of all lines, pixels.
    pub fn height(&self) -> f32 {
        self.lines.len() as f32 * self.line_height
    }

    /// Draws the block with its top left at `(x, y)`, each line centred in the block's width
    /// when `centred`, in `color`, blended by glyph coverage.
    pub fn draw(&self, image: &mut RgbImage, x: f32, y: f32, centred: bool, color: [u8; 3]) {
        let block_width = self.width();
        for (row, line) in self.lines.iter().enumerate() {
            let left = if centred {
                x + (block_width - line.width) / 2.0
            } else {
                x
            };
            let baseline = y + self.ascent + row as f32 * self.line_height;
            for glyph in &line.glyphs {
                let Some(face) = face(glyph.face) else {
                    continue;
                };
                let positioned = GlyphId(glyph.id).with_scale_and_position(
                    face.scale(self.size),
                    point(left + glyph.x + glyph.x_offset, baseline - glyph.y_offset),
                );
                let Some(outline) = face.glyphs.outline_glyph(positioned) else {
                    continue; // Spaces have no outline.
                };
                let bounds = outline.px_bounds();
                let (gx, gy) = (bounds.min.x.floor() as i64, bounds.min.y.floor() as i64);
                outline.draw(|px, py, coverage| {
                    let (ix, iy) = (gx + i64::from(px), gy + i64::from(py));
                    super::paint::blend(image, ix, iy, color, coverage);
                });
            }
        }
    }
}

/// Shapes one paragraph (no `\n`) with per-character font fallback.
fn shape_paragraph(text: &str, font: LetteringFont, size: f32) -> Vec<Glyph> {
    // Runs of one face.
    let mut runs: Vec<(FaceId, usize, usize)> = Vec::new();
    for (at, c) in text.char_indices() {
        let id = face_for(font, c);
        let end = at + c.len_utf8();
        match runs.last_mut() {
            Some((last, _, run_end)) if *last == id => *run_end = end,
            _ => runs.push((id, at, end)),
        }
    }
    let mut glyphs = Vec::new();
    for (id, start, end) in runs {
        let (Some(face), Some(slice)) = (face(id), text.get(start..end)) else {
            continue;
        };
        let shaper = face.shaper_data.shaper(&face.shaping).build();
        let mut buffer = harfrust::UnicodeBuffer::new();
        buffer.push_str(slice);
        buffer.guess_segment_properties();
        let shaped = shaper.shape(buffer, harfrust::ShapeOptions::new());
        let scale = face.px_per_unit(size);
        for (info, position) in shaped.glyph_infos().iter().zip(shaped.glyph_positions()) {
            glyphs.push(Glyph {
                face: id,
                id: u16::try_from(info.glyph_id).unwrap_or(0),
                cluster: start + info.cluster as usize,
                x: 0.0,
                advance: position.x_advance as f32 * scale,
                x_offset: position.x_offset as f32 * scale,
                y_offset: position.y_offset as f32 * scale,
            });
        }
    }
    glyphs
}

/// A stretch of a paragraph between two break opportunities.
struct Segment {
    start: usize,
    end: usize,
    /// Width with and without its trailing whitespace.
    width: f32,
    inked_width: f32,
}

/// Byte ranges of the characters of `text[start..end]`, as segments of their own.
fn split_chars(
    text: &str,
    start: usize,
    end: usize,
    advance_of: impl Fn(usize, usize) -> f32,
) -> Vec<Segment> {
    let Some(slice) = text.get(start..end) else {
        return Vec::new();
    };
    slice
        .char_indices()
        .map(|(at, c)| {
            let (s, e) = (start + at, start + at + c.len_utf8());
            let width = advance_of(s, e);
            Segment {
                start: s,
                end: e,
                width,
                inked_width: if c.is_whitespace() { 0.0 } else { width },
            }
        })
        .collect()
}

/// Lays out `text` at an em size of `size` pixels, wrapping lines at `max_width` pixels
/// (`0` or less: only at `\n`).
pub fn layout(text: &str, font: LetteringFont, size: f32, max_width: f32) -> TextBlock {
    let size = size.clamp(4.0, 1024.0);
    let (ascent, line_height) = match face(FaceId::Sans) {
        Some(sans) => {
            let glyphs = &sans.glyphs;
            let unit = sans.px_per_unit(size);
            (
                glyphs.ascent_unscaled() * unit,
                (glyphs.ascent_unscaled() - glyphs.descent_unscaled() + glyphs.line_gap_unscaled())
                    * unit,
            )
        }
        None => (size, size * 1.2),
    };
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let paragraph = paragraph.trim_end_matches('\r');
        lay_out_paragraph(paragraph, font, size, max_width, &mut lines);
    }
    TextBlock {
        lines,
        line_height,
        ascent,
        size,
    }
}

fn lay_out_paragraph(
    paragraph: &str,
    font: LetteringFont,
    size: f32,
    max_width: f32,
    lines: &mut Vec<Line>,
) {
    let glyphs = shape_paragraph(paragraph, font, size);
    let advance_of = |start: usize, end: usize| -> f32 {
        glyphs
            .iter()
            .filter(|g| g.cluster >= start && g.cluster < end)
            .map(|g| g.advance)
            .sum()
    };
    // Segments between break opportunities; too-wide ones split between characters.
    let mut segments: Vec<Segment> = Vec::new();
    let mut start = 0;
    for (end, _) in unicode_linebreak::linebreaks(paragraph) {
        if end <= start {
            continue;
        }
        let Some(slice) = paragraph.get(start..end) else {
            continue;
        };
        let inked_end = start + slice.trim_end().len();
        let width = advance_of(start, end);
        let inked_width = advance_of(start, inked_end);
        if max_width > 0.0 && inked_width > max_width {
            segments.extend(split_chars(paragraph, start, end, advance_of));
        } else {
            segments.push(Segment {
                start,
                end,
                width,
                inked_width,
            });
        }
        start = end;
    }
    // Greedy fill.
    let mut line_ranges: Vec<(usize, usize, f32)> = Vec::new();
    let mut current: Option<(usize, usize, f32, f32)> = None; // start, end, width, inked
    for segment in segments {
        current = match current {
            Some((s, e, width, inked))
                if max_width > 0.0 && width + segment.inked_width > max_width && e > s =>
            {
                line_ranges.push((s, e, inked));
                Some((
                    segment.start,
                    segment.end,
                    segment.width,
                    segment.inked_width,
                ))
            }
            Some((s, _, width, inked)) => {
                let inked = if segment.inked_width > 0.0 {
                    width + segment.inked_width
                } else {
                    inked
                };
                Some((s, segment.end, width + segment.width, inked))
            }
            None => Some((
                segment.start,
                segment.end,
                segment.width,
                segment.inked_width,
            )),
        };
    }
    match current {
        Some((s, e, _, inked)) => line_ranges.push((s, e, inked)),
        None => line_ranges.push((0, 0, 0.0)),
    }
    for (s, e, inked) in line_ranges {
        let mut line_glyphs: Vec<Glyph> = glyphs
            .iter()
            .filter(|g| g.cluster >= s && g.cluster < e)
            .cloned()
            .collect();
        let mut pen = 0.0;
        for glyph in &mut line_glyphs {
            glyph.x = pen;
            pen += glyph.advance;
        }
        lines.push(Line {
            text: paragraph.get(s..e).unwrap_or("").trim_end().to_owned(),
            width: inked,
            glyphs: line_glyphs,
        });
    }
}

/// The lines `text` wraps into at `max_width` pixels (em size `size`): the line texts, for
/// tests and previews.
pub fn wrap(text: &str, font: LetteringFont, size: f32, max_width: f32) -> Vec<String> {
    layout(text, font, size, max_width)
        .lines
        .into_iter()
        .map(|l| l.text)
        .collect()
}

/// Whether every non-space character of `text` has a glyph in the bundled fonts.
pub fn covers(text: &str) -> bool {
    let Some(sans) = face(FaceId::Sans) else {
        return false;
    };
    text.chars()
        .filter(|c| !c.is_whitespace())
        .all(|c| sans.covers(c) || face(FaceId::Latin).is_some_and(|l| l.covers(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: f32 = 20.0;

    #[test]
    fn latin_wraps_between_words() {
        let text = "the quick brown fox jumps over the lazy dog";
        for font in [LetteringFont::Sans, LetteringFont::Latin] {
            let lines = wrap(text, font, SIZE, 120.0);
            assert!(lines.len() >= 3, "{lines:?}");
            // Words are kept whole, spaces vanish at breaks, nothing is lost.
            let words: Vec<&str> = lines.iter().flat_map(|l| l.split(' ')).collect();
            assert_eq!(words.join(" "), text, "{lines:?}");
            let block = layout(text, font, SIZE, 120.0);
            for line in &block.lines {
                assert!(line.width <= 120.0 + 0.01, "{font:?} {line:?}");
                assert!(!line.text.starts_with(' ') && !line.text.ends_with(' '));
            }
        }
    }

    #[test]
    fn cjk_breaks_between_characters() {
        let text = "今天早上我们去面包店买了新鲜的面包";
        let lines = wrap(text, LetteringFont::Sans, SIZE, 5.5 * SIZE);
        assert!(lines.len() >= 3, "{lines:?}");
        assert_eq!(lines.concat(), text);
        for line in &lines {
            assert!(line.chars().count() <= 5, "{lines:?}");
        }
        // Japanese with kana, and no line starts with closing punctuation.
        let text = "パン屋へ歩いて、「いい匂い！」と言った。";
        let lines = wrap(text, LetteringFont::Sans, SIZE, 4.5 * SIZE);
        assert_eq!(lines.concat(), text);
        assert!(lines.len() >= 3, "{lines:?}");
        for line in &lines[1..] {
            let first = line.chars().next().unwrap();
            assert!(!"、。」！".contains(first), "{lines:?}");
        }
    }

    #[test]
    fn mixed_text_and_newlines() {
        let lines = wrap(
            "Mia 说：\n“早上好！” Good morning",
            LetteringFont::Latin,
            SIZE,
            0.0,
        );
        assert_eq!(lines, ["Mia 说：", "“早上好！” Good morning"]);
        // A word wider than the line is broken between letters instead of overflowing.
        let block = layout("Supercalifragilistic", LetteringFont::Sans, SIZE, 60.0);
        assert!(block.lines.len() >= 3);
        assert!(block.lines.iter().all(|l| l.width <= 60.0 + 0.01));
        assert_eq!(
            block
                .lines
                .iter()
                .map(|l| l.text.as_str())
                .collect::<String>(),
            "Supercalifragilistic"
        );
    }

    #[test]
    fn text_draws_ink_in_all_scripts() {
        for text in ["中文对白", "かなカナ", "Latin words"] {
            assert!(covers(text));
            for font in [LetteringFont::Sans, LetteringFont::Latin] {
                let block = layout(text, font, 24.0, 0.0);
                assert!(block.width() > 40.0, "{text}: {}", block.width());
                let mut image = RgbImage::from_pixel(200, 40, image::Rgb([255, 255, 255]));
                block.draw(&mut image, 4.0, 4.0, false, [0, 0, 0]);
                let dark = image.pixels().filter(|p| p.0[0] < 128).count();
                assert!(dark > 60, "{font:?} {text}: {dark} dark pixels");
                // Ink stays within the block's box (plus a pixel of anti-aliasing).
                for (x, y, p) in image.enumerate_pixels() {
                    if p.0[0] < 250 {
                        assert!(
                            (x as f32) <= 4.0 + block.width() + 2.0
                                && (y as f32) <= 4.0 + block.height() + 2.0,
                            "{text}: ink at {x},{y}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn latin_font_uses_ubuntu_light_and_falls_back() {
        let advances = |font| -> Vec<(FaceId, f32)> {
            layout("Hello", font, SIZE, 0.0).lines[0]
                .glyphs
                .iter()
                .map(|g| (g.face, g.advance))
                .collect()
        };
        let (sans, latin) = (
            advances(LetteringFont::Sans),
            advances(LetteringFont::Latin),
        );
        assert!(sans.iter().all(|(f, _)| *f == FaceId::Sans), "{sans:?}");
        assert!(latin.iter().all(|(f, _)| *f == FaceId::Latin), "{latin:?}");
        // Two fonts: the letters' advances differ (the totals happen to be close).
        assert!(
            sans.iter()
                .zip(&latin)
                .any(|(a, b)| (a.1 - b.1).abs() > 0.1)
        );
        let mixed = layout("Hi 你好", LetteringFont::Latin, SIZE, 0.0);
        let faces: Vec<FaceId> = mixed.lines[0].glyphs.iter().map(|g| g.face).collect();
        assert!(
            faces.contains(&FaceId::Latin) && faces.contains(&FaceId::Sans),
            "{faces:?}"
        );
        assert!(
            mixed.lines[0].glyphs.iter().all(|g| g.id != 0),
            "a .notdef glyph"
        );
    }
}
