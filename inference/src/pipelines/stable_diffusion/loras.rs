//! Applying LoRAs to a loaded [`StableDiffusion`]: the UNet and text encoders are rebuilt from
//! their (cached) weights with patches, so the base weights are never reloaded and removing a
//! LoRA restores them exactly.

use super::StableDiffusion;
use crate::adapters::lora::{
    Applied, LoraFile, LoraReport, NameMap, Planned, Target, build_patches, deferred_patches,
};
use crate::io::weights::Weights;
use crate::text::clip::{ClipTextConfig, ClipTextModel};
use crate::unet::{UNet, UNetConfig};
use crate::{Error, Result};
use candle_core::DType;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A text encoder's weights and config.
pub(super) struct TextSource {
    component: &'static str,
    weights: Weights,
    config: ClipTextConfig,
    projection: bool,
}

/// Where the UNet's weights come from on a rebuild.
pub(super) enum UnetWeights {
    /// Kept open (with the cache of f32 tensors).
    Kept(Weights),
    /// Opened again from the model on the next LoRA change (bf16 models: keeping the mapped
    /// file would hold its pages in memory for the whole session).
    Reopen(std::path::PathBuf),
}

impl UnetWeights {
    fn get(&self) -> Result<Weights> {
        match self {
            UnetWeights::Kept(w) => Ok(w.clone()),
            UnetWeights::Reopen(path) => Ok(crate::io::model::ModelFiles::open(path)?
                .component("unet")?
                .weights
                .clone()),
        }
    }
}

/// The weights the adaptable parts were built from.
#[derive(Default)]
pub(super) struct Sources {
    unet: Option<(UnetWeights, UNetConfig)>,
    text: Vec<TextSource>,
    /// Components currently built with patches.
    patched: BTreeSet<String>,
}

impl Sources {
    /// Whether the UNet is built with LoRA patches now.
    pub(super) fn unet_patched(&self) -> bool {
        self.patched.contains("unet")
    }

    pub(super) fn set_unet(&mut self, weights: UnetWeights, config: UNetConfig) {
        self.unet = Some((weights, config));
    }

    pub(super) fn add_text(
        &mut self,
        component: &'static str,
        weights: Weights,
        config: ClipTextConfig,
        projection: bool,
    ) {
        self.text.push(TextSource {
            component,
            weights,
            config,
            projection,
        });
    }

    /// Every adaptable layer under each LoRA naming convention.
    fn name_map(&self, unet: Option<&Weights>, sdxl: bool) -> NameMap {
        let mut map = NameMap::default();
        if let (Some(weights), Some((_, config))) = (unet, &self.unet) {
            map.add_unet(&weights.names(), config);
        }
        for text in &self.text {
            let kohya: &[&str] = match (text.component, sdxl) {
                ("text_encoder_2", _) => &["lora_te2"],
                (_, true) => &["lora_te1"],
                (_, false) => &["lora_te", "lora_te1"],
            };
            map.add_text_encoder(&text.weights.names(), text.component, kohya);
        }
        map
    }

    fn text_weights(&self, component: &str) -> Option<&Weights> {
        self.text
            .iter()
            .find(|t| t.component == component)
            .map(|t| &t.weights)
    }
}

impl StableDiffusion {
    /// Applies `loras` (each with its user weight) in place of whatever was applied before;
    /// an empty list restores the base model. Returns one report per file.
    pub fn set_loras(&mut self, loras: &[(LoraFile, f32)]) -> Result<Vec<LoraReport>> {
        let applied = self.plan_patches(loras)?;
        let mut patches = applied.patches;
        let touched: BTreeSet<String> = self
            .sources
            .patched
            .iter()
            .cloned()
            .chain(patches.keys().cloned())
            .collect();
        let mut now_patched = BTreeSet::new();
        for component in touched {
            let patch = patches.remove(&component).map(Arc::new);
            if patch.is_some() {
                now_patched.insert(component.clone());
            }
            // Recorded before each rebuild: a failure half-way leaves a consistent record.
            self.sources.patched.insert(component.clone());
            self.rebuild(&component, patch)?;
            if !now_patched.contains(&component) {
                self.sources.patched.remove(&component);
            }
        }
        self.sources.patched = now_patched;
        Ok(applied.reports)
    }

    /// The patches `loras` would apply (by component and weight name), without applying them.
    pub fn lora_patches(&self, loras: &[(LoraFile, f32)]) -> Result<Applied> {
        self.with_shapes(|map, shape_of, family| build_patches(loras, map, shape_of, family))
    }

    /// The patches of `loras`, each delta computed when the rebuild reads its weight.
    fn plan_patches(&self, loras: &[(LoraFile, f32)]) -> Result<Planned> {
        self.with_shapes(|map, shape_of, family| deferred_patches(loras, map, shape_of, family))
    }

    /// Calls `f` with the name map, the weight shapes and the family id.
    fn with_shapes<T>(
        &self,
        f: impl FnOnce(&NameMap, &dyn Fn(&Target) -> Option<Vec<usize>>, &str) -> Result<T>,
    ) -> Result<T> {
        let unet = match &self.sources.unet {
            Some((weights, _)) => Some(weights.get()?),
            None => None,
        };
        let map = self
            .sources
            .name_map(unet.as_ref(), self.kind.family.is_sdxl());
        let sources = &self.sources;
        let shape_of = |t: &Target| match t.component.as_str() {
            "unet" => unet.as_ref()?.shape_of(&t.weight),
            other => sources.text_weights(other)?.shape_of(&t.weight),
        };
        f(&map, &shape_of, self.kind.family.id())
    }

    /// Rebuilds one component from its weights with `patch`.
    fn rebuild(
        &mut self,
        component: &str,
        patch: Option<Arc<crate::io::weights::Patches>>,
    ) -> Result<()> {
        let device = self.device.clone();
        if component == "unet" {
            let (weights, config) = self
                .sources
                .unet
                .as_ref()
                .ok_or_else(|| missing(component))?;
            let weights = weights.get()?;
            let precision = self.precision;
            let build = |patch| {
                let vb = weights.with_patches(patch).var_builder(DType::F32, &device);
                crate::kernels::with_precision(precision, || UNet::new(vb, config))
            };
            // The old UNet goes before the new one is built, so the two never coexist (peak
            // memory: a bf16 SD1.5 UNet is 1.7 GB, an SDXL one 5.1 GB).
            if let Ok(placeholder) = placeholder_unet(&device) {
                drop(std::mem::replace(&mut self.unet, placeholder));
            }
            match build(patch) {
                Ok(unet) => self.unet = unet,
                Err(err) => {
                    // Leave a usable model behind: the base weights, as the caller expects
                    // after a failed change.
                    if let Ok(unet) = build(None) {
                        self.unet = unet;
                    }
                    return Err(err);
                }
            }
            return Ok(());
        }
        let text = self
            .sources
            .text
            .iter()
            .find(|t| t.component == component)
            .ok_or_else(|| missing(component))?;
        let vb = text
            .weights
            .with_patches(patch)
            .var_builder(DType::F32, &device);
        let model = crate::kernels::with_precision(self.precision, || {
            ClipTextModel::new(vb, &text.config, text.projection)
        })?;
        let slot = if component == "text_encoder_2" {
            &mut self.text_encoder_2
        } else {
            &mut self.text_encoder
        };
        if let Some((encoder, _)) = slot {
            *encoder = model;
        }
        Ok(())
    }
}

/// A tiny zero-weight UNet that holds the place of the real one while it is rebuilt.
fn placeholder_unet(device: &candle_core::Device) -> Result<UNet> {
    let config = UNetConfig::from_json(&serde_json::json!({
        "block_out_channels": [32],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"],
        "attention_head_dim": 8,
        "cross_attention_dim": 32,
    }))?;
    let vb = candle_nn::VarBuilder::zeros(DType::F32, device);
    crate::kernels::with_precision(crate::kernels::Precision::F32, || UNet::new(vb, &config))
}

fn missing(component: &str) -> Error {
    Error::InvalidArgument(format!("the model has no {component} to apply a LoRA to"))
}
