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

use crate::io::weights::{DeferredPatch, Patch, Patches};
use crate::{Error, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

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
    pub patches: HashMap<String, HashMap<String, Tensor>>,
    /// One report per file, in input order.
    pub reports: Vec<LoraReport>,
}

/// Deferred patches per component plus a report per file (see [`deferred_patches`]).
pub struct Planned {
    /// Patches by component and weight name, each computed when its weight is read.
    pub patches: HashMap<String, Patches>,
    /// One report per file, in input order.
    pub reports: Vec<LoraReport>,
}

/// The terms of one weight's patch: `Σ scale·ΔW(factors)` in the order the files and modules
/// give them, for a weight of `dims` (as [`delta::delta`] shapes it).
struct Terms {
    dims: Vec<usize>,
    terms: Vec<(Factors, f64)>,
}

impl Terms {
    fn sum(&self) -> candle_core::Result<Tensor> {
        let mut sum: Option<Tensor> = None;
        for (factors, scale) in &self.terms {
            let delta = delta::delta(factors, &self.dims)?.ok_or_else(|| {
                candle_core::Error::Msg(format!("LoRA delta does not fit {:?}", self.dims))
            })?;
            let scaled = (delta * *scale)?;
            sum = Some(match sum {
                Some(previous) => (previous + scaled)?,
                None => scaled,
            });
        }
        sum.ok_or_else(|| candle_core::Error::Msg("empty LoRA patch".into()))
    }
}

impl DeferredPatch for Terms {
    fn delta(&self) -> candle_core::Result<Tensor> {
        self.sum()
    }
}

/// Whether `factors` make a delta of `target` dims; plain LoRA factors are checked from their
/// shapes, the other kinds by computing the delta (dropped at once).
fn fits(factors: &Factors, target: &[usize]) -> Result<bool> {
    if let Factors::LoRA {
        down,
        up,
        mid: None,
    } = factors
    {
        let up_dims = up.flatten_from(1)?.dims().to_vec();
        let down_dims = down.flatten_from(1)?.dims().to_vec();
        if let ([out, rank], [down_rank, inputs]) = (up_dims.as_slice(), down_dims.as_slice())
            && rank == down_rank
        {
            let numel: usize = target.iter().product();
            return Ok(target.first() == Some(out) && out * inputs == numel);
        }
    }
    Ok(delta::delta(factors, target)?.is_some())
}

/// Computes the patches of `loras` (each with its user weight) for a model whose layers are in
/// `map` and whose weight shapes `shape_of` gives. `family` names the model in errors.
pub fn build_patches(
    loras: &[(LoraFile, f32)],
    map: &NameMap,
    shape_of: &dyn Fn(&Target) -> Option<Vec<usize>>,
    family: &str,
) -> Result<Applied> {
    let (terms, reports) = collect(loras, map, shape_of, family)?;
    let mut patches: HashMap<String, HashMap<String, Tensor>> = HashMap::new();
    for (component, weights) in terms {
        let mut out = HashMap::with_capacity(weights.len());
        for (name, terms) in weights {
            out.insert(name, terms.sum()?);
        }
        patches.insert(component, out);
    }
    Ok(Applied { patches, reports })
}

/// Like [`build_patches`], but each weight's delta is computed only when the model reads that
/// weight and dropped once added, so patching a model holds one full-size delta at a time.
pub fn deferred_patches(
    loras: &[(LoraFile, f32)],
    map: &NameMap,
    shape_of: &dyn Fn(&Target) -> Option<Vec<usize>>,
    family: &str,
) -> Result<Planned> {
    let (terms, reports) = collect(loras, map, shape_of, family)?;
    let patches = terms
        .into_iter()
        .map(|(component, weights)| {
            let patches: Patches = weights
                .into_iter()
                .map(|(name, terms)| {
                    let deferred: Arc<dyn DeferredPatch> = Arc::new(terms);
                    (name, Patch::Deferred(deferred))
                })
                .collect();
            (component, patches)
        })
        .collect();
    Ok(Planned { patches, reports })
}

type Collected = (HashMap<String, HashMap<String, Terms>>, Vec<LoraReport>);

/// Matches every module of `loras` to a weight and checks that it fits.
fn collect(
    loras: &[(LoraFile, f32)],
    map: &NameMap,
    shape_of: &dyn Fn(&Target) -> Option<Vec<usize>>,
    family: &str,
) -> Result<Collected> {
    let mut patches: HashMap<String, HashMap<String, Terms>> = HashMap::new();
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
            if !fits(&module.factors, &shape)? {
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
            patches
                .entry(target.component.clone())
                .or_default()
                .entry(target.weight.clone())
                .or_insert_with(|| Terms {
                    dims: shape.clone(),
                    terms: Vec::new(),
                })
                .terms
                .push((module.factors.clone(), scale));
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
    Ok((patches, reports))
}
