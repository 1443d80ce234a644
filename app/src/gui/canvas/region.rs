//! Region layers: an area painted (or boxed) on the canvas with its own prompt. The layer's
//! alpha is the region's coverage (white = inside, partly transparent = partly inside); the
//! prompt, optional negative and weight live on the layer and are edited through the document
//! so undo sees them. When the canvas is used for a job, each visible region layer with a
//! prompt becomes a gray mask PNG and a `RegionSpec::from_mask` of the recipe
//! (docs/REGIONAL.md).

use kiln_inference::recipe::RegionSpec;
use std::path::PathBuf;

/// What a region layer asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionPrompt {
    /// The region's prompt (A1111 syntax); an empty one leaves the region out.
    pub prompt: String,
    /// The region's own negative prompt; empty = the base negative applies.
    pub negative: String,
    /// Opacity over the base prompt, `0..=1`.
    pub weight: f32,
}

impl Default for RegionPrompt {
    fn default() -> Self {
        RegionPrompt {
            prompt: String::new(),
            negative: String::new(),
            weight: 1.0,
        }
    }
}

impl RegionPrompt {
    /// Whether the region takes part in a job (it has a prompt).
    pub fn is_usable(&self) -> bool {
        !self.prompt.trim().is_empty()
    }

    /// The recipe's region for this prompt over the mask PNG at `mask`.
    pub fn to_spec(&self, mask: PathBuf) -> RegionSpec {
        let mut spec = RegionSpec::from_mask(self.prompt.trim(), mask);
        let negative = self.negative.trim();
        spec.negative = (!negative.is_empty()).then(|| negative.to_owned());
        spec.weight = if self.weight.is_finite() {
            self.weight.clamp(0.0, 1.0)
        } else {
            1.0
        };
        spec
    }
}

/// Distinct tints for region layers, by the layer's number ("Region 2" takes the second).
const COLORS: [[u8; 3]; 8] = [
    [0x3D, 0x9B, 0xFF],
    [0x3D, 0xD6, 0x8C],
    [0xFF, 0xB0, 0x30],
    [0xC0, 0x6B, 0xFF],
    [0x2E, 0xD8, 0xE0],
    [0xFF, 0x6B, 0xB5],
    [0xA8, 0xD6, 0x2E],
    [0xFF, 0x80, 0x40],
];

/// The tint of region layer number `number` (from 1) on the canvas and in lists.
pub fn region_color(number: u32) -> [u8; 3] {
    let index = (number.max(1) - 1) as usize % COLORS.len();
    COLORS.get(index).copied().unwrap_or([255, 255, 255])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_inference::recipe::RegionArea;

    #[test]
    fn prompts_become_recipe_regions() {
        let region = RegionPrompt {
            prompt: "  a puppy ".into(),
            negative: " ".into(),
            weight: 1.7,
        };
        assert!(region.is_usable());
        let spec = region.to_spec("/m.png".into());
        assert_eq!(spec.prompt, "a puppy");
        assert_eq!(spec.negative, None);
        assert_eq!(spec.weight, 1.0);
        assert_eq!(spec.area, RegionArea::Mask("/m.png".into()));
        let with_negative = RegionPrompt {
            negative: "cat".into(),
            weight: 0.5,
            ..region
        };
        let spec = with_negative.to_spec("/m.png".into());
        assert_eq!((spec.negative.as_deref(), spec.weight), (Some("cat"), 0.5));
        assert!(!RegionPrompt::default().is_usable());
        assert_ne!(region_color(1), region_color(2));
        assert_eq!(region_color(1), region_color(9));
    }
}
