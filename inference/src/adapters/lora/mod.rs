//! LoRA family adapters (FORMATS §5): kohya, PEFT/diffusers, LyCORIS LoHa and LoKr, conv layers.
//!
//! Several files at once, each with a user weight `m`: every matched weight becomes
//! `W + Σ m·scale·ΔW`, computed from the stored `W` (see [`crate::io::weights::Weights`]), so
//! changing or removing LoRAs restores the base weights exactly without reloading the model.
//! DoRA magnitudes are ignored, as diffusers does.

mod delta;
mod file;
mod names;

pub use file::{Factor, Factors, LoraFile, Module, PeftScale};
pub use names::{NameMap, Target, ldm_unet_module};

use crate::io::weights::Patches;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::PathBuf;

/// What happened to one LoRA file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoraReport {
    /// The file.
    pub path: PathBuf,
    /// Layers applied.
    pub matched: usize,
    /// Module names that match no layer of the model (ignored).
    pub unmatched: Vec<String>,
    /// Keys or modules of kinds Kiln does not apply (Tucker LoHa/LoKr, norm deltas, unknown).
    pub unsupported: Vec<String>,
    /// Modules whose DoRA magnitude was ignored.
    pub dora_ignored: usize,
}

impl LoraReport {
    /// One-line warnings for the user (empty when everything matched).
    pub fn warnings(&self) -> Vec<String> {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut out = Vec::new();
        if !self.unmatched.is_empty() {
            out.push(format!(
                "LoRA {name}: {} of {} layers match nothing in this model and were ignored (e.g. {})",
                self.unmatched.len(),
                self.unmatched.len() + self.matched,
                examples(&self.unmatched)
            ));
        }
        if !self.unsupported.is_empty() {
            out.push(format!(
                "LoRA {name}: {} keys of unsupported kinds were ignored (e.g. {})",
                self.unsupported.len(),
                examples(&self.unsupported)
            ));
        }
        if self.dora_ignored > 0 {
            out.push(format!(
                "LoRA {name}: DoRA magnitudes of {} layers ignored (applied as plain LoRA, like diffusers)",
                self.dora_ignored
            ));
        }
        out
    }
}

fn examples(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    shown.join(", ")
}

/// Patches per component ("unet", "text_encoder", "text_encoder_2") plus a report per file.
pub struct Applied {
    /// `Σ m·scale·ΔW` by component and weight name.
    pub patches: HashMap<String, Patches>,
    /// One report per file, in input order.
    pub reports: Vec<LoraReport>,
}

/// Computes the patches of `loras` (each with its user weight) for a model whose layers are in
/// `map` and whose weight shapes `shape_of` gives. `family` names the model in errors.
pub fn build_patches(
    loras: &[(LoraFile, f32)],
    map: &NameMap,
    shape_of: &dyn Fn(&Target) -> Option<Vec<usize>>,
    family: &str,
) -> Result<Applied> {
    let mut patches: HashMap<String, Patches> = HashMap::new();
    let mut reports = Vec::with_capacity(loras.len());
    for (lora, weight) in loras {
        let mut report = LoraReport {
            path: lora.path.clone(),
            unsupported: lora.unsupported.clone(),
            ..LoraReport::default()
        };
        for module in &lora.modules {
            let Some(target) = map.lookup(&module.name) else {
                report.unmatched.push(module.name.clone());
                continue;
            };
            let Some(shape) = shape_of(target) else {
                report.unmatched.push(module.name.clone());
                continue;
            };
            let Some(delta) = delta::delta(&module.factors, &shape)? else {
                return Err(Error::Lora {
                    detail: format!(
                        "layer {} does not fit {} {} of shape {shape:?}: the LoRA was made for \
                         another model family than this {family} model",
                        module.name, target.component, target.weight
                    ),
                    path: lora.path.clone(),
                });
            };
            report.matched += 1;
            report.dora_ignored += usize::from(module.dora);
            if *weight == 0.0 {
                continue;
            }
            let module_path = target.weight.trim_end_matches(".weight");
            let peft = lora
                .peft
                .get(&target.component)
                .or_else(|| lora.peft.get(""));
            let scale = delta::scale(module, peft, module_path)? * f64::from(*weight);
            let scaled = (delta * scale)?;
            let component = patches.entry(target.component.clone()).or_default();
            let sum = match component.remove(&target.weight) {
                Some(previous) => (previous + scaled)?,
                None => scaled,
            };
            component.insert(target.weight.clone(), sum);
        }
        if report.matched == 0 {
            return Err(Error::Lora {
                detail: format!(
                    "none of its {} layers match this {family} model (e.g. {}): it was made for \
                     another model family",
                    lora.modules.len(),
                    examples(&report.unmatched)
                ),
                path: lora.path.clone(),
            });
        }
        reports.push(report);
    }
    Ok(Applied { patches, reports })
}
