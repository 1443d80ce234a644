//! Model families Kiln knows (SD1.x, SD2.x, SDXL base and refiner, SVD) and [`ModelKind`], what a
//! checkpoint is: family plus the variant facts the app reports ("SD1.x inpainting").
//!
//! Constants follow `FORMATS.md` §4.1 (UNet configs) and §4.3 (VAE scaling factors).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A model family: one UNet layout, text-encoder set and latent space.
///
/// Serialized (and shown by `Display`) as the stable ids `"sd1"`, `"sd2"`, `"sdxl"`,
/// `"sdxl-refiner"`, `"svd"`, which are also what [`crate::recipe`] stores; use
/// [`Family::label`] for the name shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Stable Diffusion 1.x (CLIP ViT-L text encoder, 512²).
    Sd1,
    /// Stable Diffusion 2.x (OpenCLIP ViT-H text encoder, 768²; 2.x-base is 512²).
    Sd2,
    /// SDXL base, Turbo, Lightning and merges (CLIP-L + OpenCLIP bigG, 1024²).
    Sdxl,
    /// SDXL refiner (OpenCLIP bigG only, 1024²).
    SdxlRefiner,
    /// Stable Video Diffusion img2vid (1024×576).
    Svd,
}

impl Family {
    /// Every family, in a stable order.
    pub const ALL: [Family; 5] = [
        Family::Sd1,
        Family::Sd2,
        Family::Sdxl,
        Family::SdxlRefiner,
        Family::Svd,
    ];

    /// Stable id, as serialized: `"sd1"`, `"sd2"`, `"sdxl"`, `"sdxl-refiner"`, `"svd"`.
    pub fn id(self) -> &'static str {
        match self {
            Family::Sd1 => "sd1",
            Family::Sd2 => "sd2",
            Family::Sdxl => "sdxl",
            Family::SdxlRefiner => "sdxl-refiner",
            Family::Svd => "svd",
        }
    }

    /// Name for users: "SD1.x", "SD2.x", "SDXL", "SDXL refiner", "SVD".
    pub fn label(self) -> &'static str {
        match self {
            Family::Sd1 => "SD1.x",
            Family::Sd2 => "SD2.x",
            Family::Sdxl => "SDXL",
            Family::SdxlRefiner => "SDXL refiner",
            Family::Svd => "SVD",
        }
    }

    /// Native (training) resolution as `(width, height)` in pixels.
    pub fn native_size(self) -> (u32, u32) {
        match self {
            Family::Sd1 => (512, 512),
            Family::Sd2 => (768, 768),
            Family::Sdxl | Family::SdxlRefiner => (1024, 1024),
            Family::Svd => (1024, 576),
        }
    }

    /// VAE latent scaling factor (`FORMATS.md` §4.3): 0.13025 for SDXL, 0.18215 otherwise.
    pub fn vae_scaling_factor(self) -> f64 {
        match self {
            Family::Sdxl | Family::SdxlRefiner => 0.13025,
            Family::Sd1 | Family::Sd2 | Family::Svd => 0.18215,
        }
    }

    /// Whether the VAE must run in fp32 (`force_upcast` in diffusers' SDXL VAE config).
    pub fn vae_force_upcast(self) -> bool {
        matches!(self, Family::Sdxl | Family::SdxlRefiner)
    }

    /// UNet `sample_size` in latent pixels, as diffusers' configs write it: the native size / 8,
    /// and 96 for SVD (`FORMATS.md` §4.1).
    pub fn unet_sample_size(self) -> u32 {
        match self {
            Family::Svd => 96,
            _ => self.native_size().0 / 8,
        }
    }

    /// Whether the UNet takes SDXL's `text_time` added conditioning (pooled text + size ids).
    pub fn is_sdxl(self) -> bool {
        matches!(self, Family::Sdxl | Family::SdxlRefiner)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Family {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        Family::ALL
            .into_iter()
            .find(|family| family.id() == s)
            .ok_or_else(|| {
                crate::Error::InvalidArgument(format!(
                    "unknown model family {s:?} (expected one of sd1, sd2, sdxl, sdxl-refiner, svd)"
                ))
            })
    }
}

/// What a checkpoint is: its family plus the variant facts the app shows and the pipelines need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelKind {
    /// Model family.
    pub family: Family,
    /// Inpainting UNet (9 input channels: latents, mask, masked-image latents).
    pub inpainting: bool,
    /// `Some(true)` v-prediction, `Some(false)` ε-prediction, `None` when the file does not say
    /// (SD2.x single files; diffusers then assumes the 2.1 768-v config, i.e. v-prediction).
    pub v_prediction: Option<bool>,
}

impl ModelKind {
    /// A plain (non-inpainting) model of `family` with the family's usual prediction type.
    pub fn new(family: Family) -> Self {
        let v_prediction = match family {
            Family::Sd1 | Family::Sdxl | Family::SdxlRefiner => Some(false),
            Family::Sd2 => None,
            Family::Svd => Some(true),
        };
        ModelKind {
            family,
            inpainting: false,
            v_prediction,
        }
    }

    /// Name for users, e.g. "SD1.x inpainting", "SD2.x (v-prediction)", "SDXL".
    pub fn label(&self) -> String {
        let mut label = self.family.label().to_string();
        if self.inpainting {
            label.push_str(" inpainting");
        }
        if self.v_prediction == Some(true) && self.family != Family::Svd {
            label.push_str(" (v-prediction)");
        }
        label
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_serde_display_and_from_str() {
        for family in Family::ALL {
            let json = serde_json::to_string(&family).unwrap();
            assert_eq!(json, format!("\"{}\"", family.id()));
            assert_eq!(serde_json::from_str::<Family>(&json).unwrap(), family);
            assert_eq!(family.to_string().parse::<Family>().unwrap(), family);
        }
        assert_eq!(Family::SdxlRefiner.to_string(), "sdxl-refiner");
        assert!("sd3".parse::<Family>().is_err());
    }

    #[test]
    fn constants() {
        assert_eq!(Family::Sd1.native_size(), (512, 512));
        assert_eq!(Family::Sd2.native_size(), (768, 768));
        assert_eq!(Family::Svd.native_size(), (1024, 576));
        assert_eq!(Family::Sdxl.vae_scaling_factor(), 0.13025);
        assert_eq!(Family::Sd2.vae_scaling_factor(), 0.18215);
        assert_eq!(Family::Sd1.unet_sample_size(), 64);
        assert_eq!(Family::Sd2.unet_sample_size(), 96);
        assert_eq!(Family::SdxlRefiner.unet_sample_size(), 128);
    }

    #[test]
    fn labels() {
        let mut kind = ModelKind::new(Family::Sd1);
        kind.inpainting = true;
        assert_eq!(kind.to_string(), "SD1.x inpainting");
        let mut kind = ModelKind::new(Family::Sdxl);
        assert_eq!(kind.label(), "SDXL");
        kind.v_prediction = Some(true);
        assert_eq!(kind.label(), "SDXL (v-prediction)");
        assert_eq!(ModelKind::new(Family::Sd2).v_prediction, None);
    }
}
