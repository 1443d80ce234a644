//! `--ip-adapter model=FILE,encoder=DIR,image=IMG[,scale=F]`: one IP-Adapter with its CLIP
//! image encoder and reference image.

use crate::library::models::ModelFileKind;
use crate::library::presets::ModelLibrary;
use anyhow::{Context, bail};
use kiln_inference::recipe::IpAdapterSpec;
use std::path::{Path, PathBuf};

/// Whether a `--ip-adapter` value names its model by library name (not an existing path).
pub(super) fn needs_library(text: &str) -> bool {
    text.split(',')
        .filter_map(|p| p.strip_prefix("model="))
        .any(|m| !Path::new(m).exists())
}

/// Parses one `--ip-adapter` value; FILE may be an IP-Adapter name in the model folders.
pub(super) fn parse_ip_adapter(
    text: &str,
    library: &ModelLibrary,
) -> anyhow::Result<IpAdapterSpec> {
    let (mut model, mut encoder, mut image, mut scale) = (None, None, None, 1.0f32);
    for part in text.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            bail!("--ip-adapter: expected key=value, got {part:?} in {text:?}");
        };
        match key.trim() {
            "model" => model = Some(value.to_string()),
            "encoder" => encoder = Some(PathBuf::from(value)),
            "image" => image = Some(PathBuf::from(value)),
            "scale" => {
                scale = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .with_context(|| {
                        format!("--ip-adapter: scale must be a number, got {value:?}")
                    })?
            }
            other => bail!("--ip-adapter: unknown key {other:?} (model, encoder, image, scale)"),
        }
    }
    let (Some(model), Some(encoder), Some(image)) = (model, encoder, image) else {
        bail!("--ip-adapter needs model=FILE,encoder=DIR,image=IMG (in {text:?})");
    };
    let path = PathBuf::from(&model);
    let model = if path.is_file() {
        path
    } else {
        match library.find(
            &[ModelFileKind::IpAdapter],
            None,
            std::slice::from_ref(&model),
        ) {
            Some(entry) => entry.path.clone(),
            None => bail!(
                "IP-Adapter {model:?} not found (not a file, and no IP-Adapter of that name in the \
                 model folders; the catalog has ip-adapter-sd15 and ip-adapter-sdxl-vit-h)"
            ),
        }
    };
    if !encoder.join("config.json").is_file() || !encoder.join("model.safetensors").is_file() {
        bail!(
            "--ip-adapter encoder must be a CLIP image encoder folder with config.json and \
             model.safetensors (catalog id ip-adapter-image-encoder-vit-h): {}",
            encoder.display()
        );
    }
    if !image.is_file() {
        bail!("--ip-adapter image not found: {}", image.display());
    }
    Ok(IpAdapterSpec {
        model,
        encoder,
        image,
        scale,
    })
}
