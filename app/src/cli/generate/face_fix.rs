//! `--face-fix [--face-fix-prompt TEXT] [--face-fix-strength F] [--face-fix-size N]`: redo every
//! face of each output at a higher resolution ("only masked" inpainting of a crop around it).

use anyhow::bail;
use kiln_inference::recipe::FaceFixSpec;
use std::path::{Path, PathBuf};

/// The face-fix options of `kiln generate`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct FaceFixArgs {
    /// Face fix: after generation, detect the faces (antelopev2 face models, found in the model
    /// folders or --face-analysis DIR) and redo each one at a higher resolution.
    #[arg(long)]
    pub face_fix: bool,
    /// Prompt for the faces (default: the image's prompt). Implies --face-fix.
    #[arg(long, value_name = "TEXT")]
    pub face_fix_prompt: Option<String>,
    /// Denoising strength of the redo, in (0, 1] (default 0.4). Implies --face-fix.
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub face_fix_strength: Option<f32>,
    /// Working resolution of a face crop's longer side, multiple of 8 (default: the model's
    /// native size, 512 for SD1.5, 1024 for SDXL). Implies --face-fix.
    #[arg(long, value_name = "N")]
    pub face_fix_size: Option<u32>,
}

/// The recipe's [`FaceFixSpec`], or `None` when no face-fix option is given. `analysis` is the
/// face analysis folder (empty: the engine looks in the model folders).
pub fn face_fix_spec(args: &FaceFixArgs, analysis: &Path) -> anyhow::Result<Option<FaceFixSpec>> {
    let wanted = args.face_fix
        || args.face_fix_prompt.is_some()
        || args.face_fix_strength.is_some()
        || args.face_fix_size.is_some();
    if !wanted {
        return Ok(None);
    }
    let mut spec = FaceFixSpec {
        prompt: args
            .face_fix_prompt
            .clone()
            .filter(|p| !p.trim().is_empty()),
        analysis: PathBuf::from(analysis),
        ..FaceFixSpec::default()
    };
    if let Some(strength) = args.face_fix_strength {
        if !(strength > 0.0 && strength <= 1.0) {
            bail!("--face-fix-strength must be in (0, 1], got {strength}");
        }
        spec.strength = strength;
    }
    if let Some(size) = args.face_fix_size {
        if !size.is_multiple_of(8) || !(64..=4096).contains(&size) {
            bail!("--face-fix-size must be a multiple of 8 from 64 to 4096, got {size}");
        }
        spec.size = size;
    }
    Ok(Some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_make_the_spec() {
        let none = FaceFixArgs::default();
        assert_eq!(face_fix_spec(&none, Path::new("")).unwrap(), None);
        let args = FaceFixArgs {
            face_fix_strength: Some(0.3),
            face_fix_prompt: Some("a detailed face".into()),
            ..FaceFixArgs::default()
        };
        let spec = face_fix_spec(&args, Path::new("/faces")).unwrap().unwrap();
        assert_eq!(spec.strength, 0.3);
        assert_eq!(spec.prompt.as_deref(), Some("a detailed face"));
        assert_eq!(spec.analysis, PathBuf::from("/faces"));
        assert_eq!(spec.padding, FaceFixSpec::default().padding);
        for bad in [
            FaceFixArgs {
                face_fix_strength: Some(0.0),
                ..FaceFixArgs::default()
            },
            FaceFixArgs {
                face_fix_size: Some(100),
                ..FaceFixArgs::default()
            },
        ] {
            assert!(face_fix_spec(&bad, Path::new("")).is_err());
        }
    }
}
