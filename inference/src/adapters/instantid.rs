//! InstantID (Wang et al. 2024) on SDXL: identity from one face photo.
//!
//! Parts, as InstantID's pipeline (`pipeline_stable_diffusion_xl_instantid.py`) composes them:
//! - the raw 512-d ArcFace embedding of the face goes through the adapter's Resampler into 16
//!   face tokens (unconditional tokens: the Resampler of zeros);
//! - every cross-attention also attends to the face tokens with the identity strength (the
//!   decoupled IP-Adapter attention, [`crate::adapters::ip_adapter`]);
//! - IdentityNet, a ControlNet that attends to the face tokens instead of the prompt, reads the
//!   keypoint image ([`crate::vision::face::keypoints`]) and adds its residuals with the
//!   keypoint strength.
//!
//! Files (`InstantX/InstantID`): `ip-adapter.bin` — a PyTorch pickle, converted once to
//! `ip-adapter.safetensors` by `kiln models convert` (Kiln never loads pickles) — and
//! `ControlNetModel/` (`config.json` + `diffusion_pytorch_model.safetensors`).

use crate::adapters::controlnet::ControlNet;
use crate::adapters::ip_adapter::IpAdapter;
use crate::vision::face::Face;
use crate::{Error, Result};
use candle_core::Device;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The adapter file Kiln loads.
pub const ADAPTER_FILE: &str = "ip-adapter.safetensors";
/// The adapter as published (a pickle, converted once).
pub const ADAPTER_PICKLE: &str = "ip-adapter.bin";
/// IdentityNet's folder.
pub const CONTROLNET_DIR: &str = "ControlNetModel";
/// Catalog id of the InstantID files.
pub const CATALOG_ID: &str = "instantid";

/// A loaded InstantID: face adapter and IdentityNet.
#[derive(Debug)]
pub struct InstantId {
    /// The face adapter (Resampler + `to_k_ip`/`to_v_ip`).
    pub adapter: Arc<IpAdapter>,
    /// IdentityNet.
    pub identity_net: Arc<ControlNet>,
}

/// The adapter file and IdentityNet folder of an InstantID folder (or of the adapter file,
/// with `ControlNetModel/` beside it).
pub fn resolve(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let (adapter, dir) = if path.is_dir() {
        (path.join(ADAPTER_FILE), path.to_path_buf())
    } else {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (path.to_path_buf(), dir)
    };
    let is_pickle = adapter
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("bin") || e.eq_ignore_ascii_case("pth"));
    if is_pickle || (!adapter.is_file() && dir.join(ADAPTER_PICKLE).is_file()) {
        let pickle = if is_pickle {
            adapter.clone()
        } else {
            dir.join(ADAPTER_PICKLE)
        };
        return Err(Error::Refused(format!(
            "{} is a PyTorch pickle, which Kiln does not load; convert it once with \
             `kiln models convert {}` (it writes {ADAPTER_FILE} beside it)",
            pickle.display(),
            pickle.display()
        )));
    }
    if !adapter.is_file() {
        return Err(Error::InvalidArgument(format!(
            "InstantID adapter not found: {}; download `{CATALOG_ID}` in the model manager \
             (or `kiln models download {CATALOG_ID}`)",
            adapter.display()
        )));
    }
    let controlnet = dir.join(CONTROLNET_DIR);
    if !controlnet.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "InstantID's IdentityNet not found: {} (a ControlNet folder beside {ADAPTER_FILE})",
            controlnet.display()
        )));
    }
    Ok((adapter, controlnet))
}

impl InstantId {
    /// Loads the adapter and IdentityNet of an InstantID folder or adapter file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (adapter_file, controlnet) = resolve(path)?;
        let adapter = IpAdapter::load(&adapter_file, device)?;
        if !adapter.is_plus() {
            return Err(Error::InvalidFile {
                format: "InstantID adapter",
                detail: "its image projection is not a Resampler (a plain IP-Adapter?)".into(),
                path: adapter_file,
            });
        }
        let identity_net = ControlNet::load(&controlnet, device)?;
        Ok(InstantId {
            adapter: Arc::new(adapter),
            identity_net: Arc::new(identity_net),
        })
    }
}

/// The face `index` (largest first) or the largest one of `faces`, with the errors users see.
pub fn pick_face(faces: &[Face], index: Option<usize>, what: &str) -> Result<Face> {
    match (faces.is_empty(), index) {
        (true, _) => Err(Error::InvalidArgument(format!(
            "no face found in the {what}: use a photo where the face is clearly visible"
        ))),
        (false, Some(i)) => faces.get(i).copied().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the {what} has {} face(s); face {} was asked for (faces are counted from 0, \
                 largest first)",
                faces.len(),
                i
            ))
        }),
        (false, None) => Ok(faces[0]),
    }
}

/// Keypoints of a `(w, h)` photo in the coordinates of a `(width, height)` output that shows
/// the photo scaled to cover it, centred (the rest cropped).
pub fn cover_keypoints(
    kps: &[[f32; 2]; 5],
    photo: (u32, u32),
    output: (u32, u32),
) -> [[f32; 2]; 5] {
    let (w, h) = (photo.0 as f32, photo.1 as f32);
    let (ow, oh) = (output.0 as f32, output.1 as f32);
    let scale = (ow / w).max(oh / h);
    let (dx, dy) = ((w * scale - ow) / 2.0, (h * scale - oh) / 2.0);
    kps.map(|[x, y]| [x * scale - dx, y * scale - dy])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
    use super::*;

    #[test]
    fn keypoints_follow_a_cover_fit() {
        let kps = [[10.0, 20.0]; 5];
        // Same aspect: plain scaling.
        assert_eq!(
            cover_keypoints(&kps, (640, 480), (320, 240))[0],
            [5.0, 10.0]
        );
        // Wider output: scaled by width, cropped top and bottom.
        let out = cover_keypoints(&[[320.0, 240.0]; 5], (640, 480), (640, 240));
        assert_eq!(out[0], [320.0, 120.0]);
    }

    #[test]
    fn pickles_are_refused_with_the_conversion_command() {
        let dir = std::env::temp_dir().join(format!("kiln-instantid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(ADAPTER_PICKLE), b"not really").unwrap();
        let text = resolve(&dir).unwrap_err().to_string();
        assert!(text.contains("kiln models convert"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
        let text = resolve(Path::new("/nonexistent/instantid"))
            .unwrap_err()
            .to_string();
        assert!(text.contains(CATALOG_ID), "{text}");
    }
}
