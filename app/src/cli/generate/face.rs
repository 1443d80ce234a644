//! `--face FILE [--face-strength F] [--face-keypoints F] [--pose FILE] [--face-index N]
//! [--face-model DIR] [--face-analysis DIR]`: InstantID on SDXL.

use crate::library::instantid::find_instantid;
use anyhow::{Context, bail};
use kiln_inference::recipe::{DEFAULT_FACE_STRENGTH, FaceSpec};
use kiln_inference::vision::face::find_models;
use std::path::PathBuf;

/// The InstantID options of `kiln generate`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct FaceArgs {
    /// InstantID (SDXL): keep the identity of the face in this photo (its largest face, or
    /// --face-index). Needs the InstantID files and the antelopev2 face models.
    #[arg(long, value_name = "PHOTO")]
    pub face: Option<PathBuf>,
    /// Identity strength: weight of the face tokens in every cross-attention (0.8). Also the
    /// keypoint strength unless --face-keypoints is given.
    #[arg(long, value_name = "F")]
    pub face_strength: Option<f32>,
    /// Keypoint strength: IdentityNet's ControlNet scale (default: --face-strength, 0.8).
    #[arg(long, value_name = "F")]
    pub face_keypoints: Option<f32>,
    /// Take the head position and angle from the largest face in this photo instead.
    #[arg(long, value_name = "PHOTO")]
    pub pose: Option<PathBuf>,
    /// Which face of --face: 0 = the largest, 1 = the next, …
    #[arg(long, value_name = "N")]
    pub face_index: Option<usize>,
    /// InstantID folder (ip-adapter.safetensors + ControlNetModel/); default: an `InstantID`
    /// folder in the model folders.
    #[arg(long, value_name = "DIR")]
    pub face_model: Option<PathBuf>,
    /// Face analysis folder (antelopev2); default: found in the model folders.
    #[arg(long, value_name = "DIR")]
    pub face_analysis: Option<PathBuf>,
}

fn strength(value: Option<f32>, flag: &str, default: f32) -> anyhow::Result<f32> {
    let v = value.unwrap_or(default);
    if !(0.0..=2.0).contains(&v) {
        bail!("{flag} must be between 0 and 2, got {v}");
    }
    Ok(v)
}

/// The recipe's [`FaceSpec`] from the options, or `None` without `--face`.
pub fn face_spec(args: &FaceArgs, model_dirs: &[PathBuf]) -> anyhow::Result<Option<FaceSpec>> {
    let Some(image) = &args.face else {
        for (given, flag) in [
            (args.face_strength.is_some(), "--face-strength"),
            (args.face_keypoints.is_some(), "--face-keypoints"),
            (args.pose.is_some(), "--pose"),
            (args.face_index.is_some(), "--face-index"),
            (args.face_model.is_some(), "--face-model"),
        ] {
            if given {
                bail!("{flag} needs --face PHOTO");
            }
        }
        return Ok(None);
    };
    if !image.is_file() {
        bail!("face photo not found: {}", image.display());
    }
    if let Some(pose) = &args.pose
        && !pose.is_file()
    {
        bail!("pose photo not found: {}", pose.display());
    }
    let identity = strength(args.face_strength, "--face-strength", DEFAULT_FACE_STRENGTH)?;
    let keypoints = strength(args.face_keypoints, "--face-keypoints", identity)?;
    let model = match &args.face_model {
        Some(path) => {
            if !path.exists() {
                bail!("--face-model not found: {}", path.display());
            }
            path.clone()
        }
        None => find_instantid(model_dirs).with_context(|| {
            format!(
                "InstantID files not found in the model folders ({}): put the InstantX/InstantID \
                 files (ip-adapter.bin converted with `kiln models convert`, and ControlNetModel/) \
                 in an `InstantID` folder there, or pass --face-model DIR",
                model_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
    };
    let analysis = match &args.face_analysis {
        Some(dir) => dir.clone(),
        None => find_models(model_dirs).unwrap_or_default(),
    };
    Ok(Some(FaceSpec {
        image: image.clone(),
        index: args.face_index,
        strength: identity,
        keypoints,
        pose: args.pose.clone(),
        model,
        analysis,
    }))
}
