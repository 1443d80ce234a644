//! One-time conversion of PyTorch `.bin`/`.pth` checkpoints to `.safetensors`.
//!
//! Some models are published only as PyTorch pickles (InstantID's `ip-adapter.bin`). Kiln never
//! loads pickles for generation; this converter reads the archive's pickle with candle's
//! data-only reader — it interprets the opcodes into plain values and never imports or calls
//! anything the pickle names — takes the tensors out of the `data/` records and writes them as
//! safetensors, which is what Kiln then loads.

use crate::{Error, Result};
use candle_core::Tensor;
use candle_core::pickle::{PthTensors, read_pth_tensor_info};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Top-level groups of adapter checkpoints (`{"image_proj": {...}, "ip_adapter": {...}}`);
/// their tensors are written as `group.name`.
const GROUPS: [&str; 2] = ["image_proj", "ip_adapter"];

fn unreadable(path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::InvalidFile {
        format: "PyTorch checkpoint",
        detail: format!("{detail} (only zip-format torch.save files with tensors are converted)"),
        path: path.to_path_buf(),
    }
}

/// The `.safetensors` path next to a checkpoint (`ip-adapter.bin` → `ip-adapter.safetensors`).
pub fn converted_path(input: &Path) -> PathBuf {
    input.with_extension("safetensors")
}

/// Converts `input` (a zip-format `torch.save` file) to safetensors at `output` (written to a
/// temporary file and renamed). Tensors of the groups `image_proj` and `ip_adapter` are named
/// `group.key`; a plain state dict (or one under `state_dict`) keeps its keys. Returns the
/// number of tensors written.
pub fn torch_to_safetensors(input: &Path, output: &Path) -> Result<usize> {
    if !input.is_file() {
        return Err(Error::io(
            std::io::Error::new(std::io::ErrorKind::NotFound, "checkpoint not found"),
            input,
        ));
    }
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut read_group = |key: Option<&str>, prefix: &str| -> Result<bool> {
        let infos = match read_pth_tensor_info(input, false, key) {
            Ok(infos) => infos,
            Err(e) if key.is_some() && e.to_string().contains("not found") => return Ok(false),
            Err(e) => return Err(unreadable(input, e)),
        };
        if infos.is_empty() {
            return Ok(false);
        }
        let reader = PthTensors::new(input, key).map_err(|e| unreadable(input, e))?;
        for info in infos {
            let tensor = reader
                .get(&info.name)
                .map_err(|e| unreadable(input, format!("{}: {e}", info.name)))?
                .ok_or_else(|| unreadable(input, format!("{} has no data", info.name)))?;
            tensors.insert(format!("{prefix}{}", info.name), tensor.contiguous()?);
        }
        Ok(true)
    };
    let mut grouped = false;
    for group in GROUPS {
        grouped |= read_group(Some(group), &format!("{group}."))?;
    }
    if !grouped && !read_group(Some("state_dict"), "")? && !read_group(None, "")? {
        return Err(unreadable(input, "no tensors found"));
    }
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    if let Err(e) = candle_core::safetensors::save(&tensors, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    std::fs::rename(&tmp, output).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(e, output)
    })?;
    Ok(tensors.len())
}
