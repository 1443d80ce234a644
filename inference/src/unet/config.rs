//! UNet configuration: the diffusers `unet/config.json` and the validated runtime form.

use crate::{Error, Result};
use serde::Deserialize;

/// An int or a per-level list, as diffusers allows for several UNet fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PerLevel {
    /// One value for all levels.
    One(usize),
    /// One value per level.
    Each(Vec<usize>),
}

impl PerLevel {
    fn expand(&self, levels: usize, field: &str) -> Result<Vec<usize>> {
        match self {
            PerLevel::One(v) => Ok(vec![*v; levels]),
            PerLevel::Each(v) if v.len() == levels => Ok(v.clone()),
            PerLevel::Each(v) => Err(Error::InvalidArgument(format!(
                "unet config: {field} has {} entries for {levels} levels",
                v.len()
            ))),
        }
    }
}

/// Mirror of diffusers `UNet2DConditionModel` config.json (fields Kiln reads).
#[derive(Clone, Debug, Deserialize)]
pub struct UNetJson {
    #[serde(default = "four")]
    in_channels: usize,
    #[serde(default = "four")]
    out_channels: usize,
    block_out_channels: Vec<usize>,
    #[serde(default = "two")]
    layers_per_block: usize,
    down_block_types: Vec<String>,
    /// Absent in ControlNet configs (encoder only): mirrored from the down blocks.
    #[serde(default)]
    up_block_types: Vec<String>,
    #[serde(default)]
    mid_block_type: Option<String>,
    #[serde(default)]
    transformer_layers_per_block: Option<PerLevel>,
    #[serde(default)]
    attention_head_dim: Option<PerLevel>,
    #[serde(default)]
    num_attention_heads: Option<PerLevel>,
    cross_attention_dim: PerLevel,
    #[serde(default)]
    use_linear_projection: bool,
    #[serde(default = "thirty_two")]
    norm_num_groups: usize,
    #[serde(default = "norm_eps")]
    norm_eps: f64,
    #[serde(default = "yes")]
    flip_sin_to_cos: bool,
    #[serde(default)]
    freq_shift: f64,
    #[serde(default)]
    addition_embed_type: Option<String>,
    #[serde(default)]
    addition_time_embed_dim: Option<usize>,
    #[serde(default)]
    projection_class_embeddings_input_dim: Option<usize>,
    #[serde(default)]
    upcast_attention: bool,
    #[serde(default)]
    class_embed_type: Option<String>,
    #[serde(default)]
    time_cond_proj_dim: Option<usize>,
    #[serde(default)]
    encoder_hid_dim_type: Option<String>,
    #[serde(default)]
    only_cross_attention: Option<serde_json::Value>,
    #[serde(default)]
    dual_cross_attention: bool,
    #[serde(default)]
    resnet_time_scale_shift: Option<String>,
    #[serde(default)]
    sample_size: Option<usize>,
}

fn four() -> usize {
    4
}
fn two() -> usize {
    2
}
fn thirty_two() -> usize {
    32
}
fn norm_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// One UNet level.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelConfig {
    /// Output channels of the level.
    pub channels: usize,
    /// Whether the level has cross-attention transformers.
    pub attention: bool,
    /// Transformer blocks per Transformer2D.
    pub transformer_depth: usize,
    /// Attention heads.
    pub heads: usize,
}

/// SDXL-style added conditioning (`addition_embed_type = "text_time"`).
#[derive(Clone, Debug, PartialEq)]
pub struct TextTimeConfig {
    /// Sinusoid width per time id (256 for SDXL).
    pub time_embed_dim: usize,
    /// Input width of `add_embedding` (pooled + ids·time_embed_dim).
    pub input_dim: usize,
}

/// Validated runtime UNet configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct UNetConfig {
    /// Latent (plus extra) input channels: 4, 9 for inpainting.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Down levels, first to last; up levels mirror them.
    pub down: Vec<LevelConfig>,
    /// Up levels in execution order (deepest first).
    pub up: Vec<LevelConfig>,
    /// Mid-block transformer depth and heads (`None`: no mid attention).
    pub mid: Option<(usize, usize)>,
    /// Resnets per down level (up levels have one more).
    pub layers_per_block: usize,
    /// Width of the text context.
    pub cross_attention_dim: usize,
    /// proj_in/proj_out are Linear instead of 1×1 conv.
    pub use_linear_projection: bool,
    /// GroupNorm groups.
    pub norm_num_groups: usize,
    /// GroupNorm epsilon of resnets and output.
    pub norm_eps: f64,
    /// Timestep sinusoid order.
    pub flip_sin_to_cos: bool,
    /// Timestep sinusoid shift.
    pub freq_shift: f64,
    /// SDXL text_time conditioning.
    pub text_time: Option<TextTimeConfig>,
    /// Compute attention scores in f32 (SD2 768-v).
    pub upcast_attention: bool,
    /// `sample_size` from the config (latent side), if given.
    pub sample_size: Option<usize>,
}

impl UNetConfig {
    /// Parses and validates a diffusers `unet/config.json`.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let json: UNetJson = serde_json::from_value(crate::io::model::without_nulls(value))
            .map_err(|e| Error::InvalidArgument(format!("unet config: {e}")))?;
        json.try_into()
    }
}

fn unsupported(what: String) -> Error {
    Error::InvalidArgument(format!("unet config: unsupported {what}"))
}

impl TryFrom<UNetJson> for UNetConfig {
    type Error = Error;

    fn try_from(mut j: UNetJson) -> Result<Self> {
        let levels = j.block_out_channels.len();
        if j.up_block_types.is_empty() {
            j.up_block_types = j
                .down_block_types
                .iter()
                .rev()
                .map(|d| d.replace("Down", "Up"))
                .collect();
        }
        if levels == 0 || j.down_block_types.len() != levels || j.up_block_types.len() != levels {
            return Err(Error::InvalidArgument(format!(
                "unet config: {levels} block_out_channels but {} down and {} up blocks",
                j.down_block_types.len(),
                j.up_block_types.len()
            )));
        }
        if j.class_embed_type.is_some() {
            return Err(unsupported("class_embed_type".into()));
        }
        if j.encoder_hid_dim_type.is_some() {
            return Err(unsupported("encoder_hid_dim_type".into()));
        }
        if j.time_cond_proj_dim.is_some() {
            return Err(unsupported(
                "time_cond_proj_dim (LCM-distilled UNet)".into(),
            ));
        }
        if j.dual_cross_attention {
            return Err(unsupported("dual_cross_attention".into()));
        }
        if matches!(&j.only_cross_attention, Some(serde_json::Value::Bool(true)))
            || matches!(&j.only_cross_attention, Some(serde_json::Value::Array(a)) if a.iter().any(|v| v == &serde_json::Value::Bool(true)))
        {
            return Err(unsupported("only_cross_attention".into()));
        }
        if let Some(shift) = &j.resnet_time_scale_shift
            && shift != "default"
        {
            return Err(unsupported(format!("resnet_time_scale_shift {shift}")));
        }
        let cross_attention_dim = match &j.cross_attention_dim {
            PerLevel::One(v) => *v,
            PerLevel::Each(v) => match v.first() {
                Some(first) if v.iter().all(|x| x == first) => *first,
                _ => return Err(unsupported("per-level cross_attention_dim".into())),
            },
        };
        // diffusers: `num_attention_heads = num_attention_heads or attention_head_dim` (the
        // latter is misnamed and holds head counts for these UNets).
        let heads_field = j
            .num_attention_heads
            .as_ref()
            .or(j.attention_head_dim.as_ref())
            .cloned()
            .unwrap_or(PerLevel::One(8));
        let heads = heads_field.expand(levels, "num_attention_heads")?;
        let depth = j
            .transformer_layers_per_block
            .clone()
            .unwrap_or(PerLevel::One(1))
            .expand(levels, "transformer_layers_per_block")?;
        let attention_of = |name: &str, kind: &str| -> Result<bool> {
            match name {
                n if n == format!("CrossAttn{kind}Block2D") => Ok(true),
                n if n == format!("{kind}Block2D") => Ok(false),
                other => Err(unsupported(format!("block type {other}"))),
            }
        };
        let mut down = Vec::with_capacity(levels);
        for (i, name) in j.down_block_types.iter().enumerate() {
            down.push(LevelConfig {
                channels: j.block_out_channels[i],
                attention: attention_of(name, "Down")?,
                transformer_depth: depth[i],
                heads: heads[i],
            });
        }
        let mut up = Vec::with_capacity(levels);
        for (i, name) in j.up_block_types.iter().enumerate() {
            let level = levels - 1 - i;
            up.push(LevelConfig {
                channels: j.block_out_channels[level],
                attention: attention_of(name, "Up")?,
                transformer_depth: depth[level],
                heads: heads[level],
            });
        }
        let last = levels - 1;
        let mid = match j.mid_block_type.as_deref() {
            None | Some("UNetMidBlock2DCrossAttn") => Some((depth[last], heads[last])),
            Some("UNetMidBlock2D") => None,
            Some(other) => return Err(unsupported(format!("mid block {other}"))),
        };
        let text_time = match j.addition_embed_type.as_deref() {
            None => None,
            Some("text_time") => {
                let (Some(time_embed_dim), Some(input_dim)) = (
                    j.addition_time_embed_dim,
                    j.projection_class_embeddings_input_dim,
                ) else {
                    return Err(Error::InvalidArgument(
                        "unet config: text_time needs addition_time_embed_dim and projection_class_embeddings_input_dim".into(),
                    ));
                };
                Some(TextTimeConfig {
                    time_embed_dim,
                    input_dim,
                })
            }
            Some(other) => return Err(unsupported(format!("addition_embed_type {other}"))),
        };
        for level in down.iter().chain(up.iter()) {
            if level.heads == 0
                || level.channels % level.heads != 0
                || level.channels % j.norm_num_groups != 0
            {
                return Err(Error::InvalidArgument(format!(
                    "unet config: {} channels do not split into {} heads / {} groups",
                    level.channels, level.heads, j.norm_num_groups
                )));
            }
        }
        Ok(UNetConfig {
            in_channels: j.in_channels,
            out_channels: j.out_channels,
            down,
            up,
            mid,
            layers_per_block: j.layers_per_block,
            cross_attention_dim,
            use_linear_projection: j.use_linear_projection,
            norm_num_groups: j.norm_num_groups,
            norm_eps: j.norm_eps,
            flip_sin_to_cos: j.flip_sin_to_cos,
            freq_shift: j.freq_shift,
            text_time,
            upcast_attention: j.upcast_attention,
            sample_size: j.sample_size,
        })
    }
}

impl UNetConfig {
    /// Time embedding width (4 × first level channels).
    pub fn time_embed_dim(&self) -> usize {
        self.down.first().map(|l| l.channels * 4).unwrap_or(0)
    }

    /// Number of 2× downsamplings (levels − 1).
    pub fn downsamplings(&self) -> usize {
        self.down.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published SDXL base `unet/config.json` (abridged to the keys that matter), which
    /// writes several fields as `null`.
    #[test]
    fn sdxl_base_config_with_nulls_parses() {
        let json: serde_json::Value = serde_json::from_str(
            r#"{
            "_class_name": "UNet2DConditionModel",
            "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64,
            "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
            "block_out_channels": [320, 640, 1280], "center_input_sample": false,
            "class_embed_type": null, "conv_in_kernel": 3, "conv_out_kernel": 3,
            "cross_attention_dim": 2048, "cross_attention_norm": null,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "dual_cross_attention": false, "encoder_hid_dim": null, "encoder_hid_dim_type": null,
            "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
            "mid_block_only_cross_attention": null, "mid_block_scale_factor": 1,
            "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 32,
            "num_attention_heads": null, "num_class_embeds": null, "only_cross_attention": false,
            "out_channels": 4, "projection_class_embeddings_input_dim": 2816,
            "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": false,
            "resnet_time_scale_shift": "default", "sample_size": 128, "time_cond_proj_dim": null,
            "time_embedding_act_fn": null, "time_embedding_dim": null,
            "time_embedding_type": "positional", "timestep_post_act": null,
            "transformer_layers_per_block": [1, 2, 10],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "upcast_attention": null, "use_linear_projection": true
        }"#,
        )
        .unwrap();
        let cfg = UNetConfig::from_json(&json).unwrap();
        assert!(!cfg.upcast_attention);
        assert_eq!(cfg.down[2].heads, 20);
        assert_eq!(cfg.down[2].transformer_depth, 10);
        assert_eq!(cfg.mid, Some((10, 20)));
        assert_eq!(cfg.text_time.as_ref().unwrap().input_dim, 2816);
    }
}
