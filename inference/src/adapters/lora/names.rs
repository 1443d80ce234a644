//! Which model weight a LoRA module name means (FORMATS §5.1 "forward map").
//!
//! For every weight of the model, the names each LoRA convention would give its layer are
//! computed (kohya with diffusers paths, kohya with LDM paths for SDXL UNets, PEFT/diffusers,
//! with and without `text_model.`), and the file's module names are looked up in that table.
//! Names are never split on `_`: module names contain underscores themselves.

use crate::unet::config::UNetConfig;
use std::collections::HashMap;

/// A weight of one model component.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// "unet", "text_encoder" or "text_encoder_2".
    pub component: String,
    /// The weight's name in that component (`down_blocks.0….to_q.weight`).
    pub weight: String,
}

/// LoRA module name → model weight.
#[derive(Default)]
pub struct NameMap {
    map: HashMap<String, Target>,
}

impl NameMap {
    /// Adds the UNet's weights (`names` as the component's weights report them).
    pub fn add_unet(&mut self, names: &[String], config: &UNetConfig) {
        for module in modules(names) {
            let mut keys = vec![
                format!("lora_unet_{}", module.replace('.', "_")),
                format!("unet.{module}"),
                module.clone(),
            ];
            if let Some(ldm) = ldm_unet_module(&module, config) {
                keys.push(format!("lora_unet_{}", ldm.replace('.', "_")));
            }
            self.insert(keys, "unet", &module);
        }
    }

    /// Adds a text encoder's weights. `kohya` are the kohya prefixes for it (`lora_te`,
    /// `lora_te1`, `lora_te2`); `peft` its diffusers prefix (`text_encoder`, `text_encoder_2`).
    pub fn add_text_encoder(&mut self, names: &[String], component: &str, kohya: &[&str]) {
        for module in modules(names) {
            let inner = module.strip_prefix("text_model.").unwrap_or(&module);
            let hf = format!("text_model.{inner}");
            let mut keys: Vec<String> = kohya
                .iter()
                .map(|prefix| format!("{prefix}_{}", hf.replace('.', "_")))
                .collect();
            keys.push(format!("{component}.{hf}"));
            keys.push(format!("{component}.{inner}"));
            self.insert(keys, component, &module);
        }
    }

    fn insert(&mut self, keys: Vec<String>, component: &str, module: &str) {
        let target = Target {
            component: component.to_string(),
            weight: format!("{module}.weight"),
        };
        for key in keys {
            self.map.entry(key).or_insert_with(|| target.clone());
        }
    }

    /// The weight a file's module name means, if any.
    pub fn lookup(&self, name: &str) -> Option<&Target> {
        let name = name.strip_prefix("base_model.model.").unwrap_or(name);
        self.map.get(name)
    }
}

/// Module paths of the weights that LoRA can adapt (everything with a `.weight`; norms and
/// embeddings simply never match a LoRA name).
fn modules(names: &[String]) -> impl Iterator<Item = String> + '_ {
    names
        .iter()
        .filter_map(|n| n.strip_suffix(".weight").map(str::to_string))
}

/// The LDM (`input_blocks…`) path of a diffusers UNet module path (FORMATS §1.5), used by
/// kohya's SDXL names.
pub fn ldm_unet_module(module: &str, config: &UNetConfig) -> Option<String> {
    let l = config.layers_per_block;
    let fixed = [
        ("time_embedding.linear_1", "time_embed.0"),
        ("time_embedding.linear_2", "time_embed.2"),
        ("add_embedding.linear_1", "label_emb.0.0"),
        ("add_embedding.linear_2", "label_emb.0.2"),
        ("conv_in", "input_blocks.0.0"),
        ("conv_norm_out", "out.0"),
        ("conv_out", "out.2"),
    ];
    for (diffusers, ldm) in fixed {
        if module == diffusers {
            return Some(ldm.to_string());
        }
    }
    let parts: Vec<&str> = module.split('.').collect();
    match parts.as_slice() {
        ["down_blocks", b, kind, j, rest @ ..] => {
            let (b, j): (usize, usize) = (b.parse().ok()?, j.parse().ok()?);
            let base = (l + 1) * b + 1;
            match *kind {
                "resnets" => Some(format!("input_blocks.{}.0.{}", base + j, resnet(rest)?)),
                "attentions" => Some(format!("input_blocks.{}.1.{}", base + j, rest.join("."))),
                "downsamplers" if rest == ["conv"] => {
                    Some(format!("input_blocks.{}.0.op", base + l))
                }
                _ => None,
            }
        }
        ["mid_block", kind, j, rest @ ..] => {
            let j: usize = j.parse().ok()?;
            match *kind {
                "resnets" => Some(format!("middle_block.{}.{}", 2 * j, resnet(rest)?)),
                "attentions" if j == 0 => Some(format!("middle_block.1.{}", rest.join("."))),
                _ => None,
            }
        }
        ["up_blocks", b, kind, j, rest @ ..] => {
            let (b, j): (usize, usize) = (b.parse().ok()?, j.parse().ok()?);
            let base = (l + 1) * b;
            match *kind {
                "resnets" => Some(format!("output_blocks.{}.0.{}", base + j, resnet(rest)?)),
                "attentions" => Some(format!("output_blocks.{}.1.{}", base + j, rest.join("."))),
                "upsamplers" if rest == ["conv"] => {
                    let slot = if config.up.get(b)?.attention { 2 } else { 1 };
                    Some(format!("output_blocks.{}.{slot}.conv", base + l))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// LDM names of a resnet's layers.
fn resnet(rest: &[&str]) -> Option<&'static str> {
    Some(match rest {
        ["norm1"] => "in_layers.0",
        ["conv1"] => "in_layers.2",
        ["time_emb_proj"] => "emb_layers.1",
        ["norm2"] => "out_layers.0",
        ["conv2"] => "out_layers.3",
        ["conv_shortcut"] => "skip_connection",
        _ => return None,
    })
}
