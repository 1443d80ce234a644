//! FLOP estimates of a clip before it starts, so the app can show how long it will take.
//!
//! Read from the weights themselves rather than the config: every matrix (linear or
//! convolution, including the temporal 3×1×1 ones) costs `2 · numel` FLOPs per position it is
//! applied to, and the position count follows from where the weight sits in the UNet (level `l`
//! runs at `(h/2^l)·(w/2^l)` positions per frame) or in the VAE decoder (up block `i` runs at
//! `2^i` times the latent size). Spatial self-attention adds `4·N²·C` per frame (`N` pixels of
//! its level), temporal self-attention `4·F²·C` per pixel. Time and context embeddings,
//! cross-attention keys and values and normalisations are left out (well under 1%).

use crate::io::weights::Weights;

/// One weight's share of the cost.
#[derive(Clone, Debug, PartialEq)]
enum Term {
    /// A matrix of `numel` entries applied at every position of a level.
    Matrix { level: i32, numel: usize },
    /// Spatial self-attention of width `channels` at a level.
    SpatialAttention { level: i32, channels: usize },
    /// Temporal self-attention of width `channels` at a level.
    TemporalAttention { level: i32, channels: usize },
}

/// The cost terms of a model part, read once from its weight names and shapes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CostModel {
    terms: Vec<Term>,
}

/// Where a UNet weight runs: its resolution level (0 = the latent size), or `None` for weights
/// applied per frame or per context token rather than per pixel.
fn unet_level(name: &str, levels: i32) -> Option<i32> {
    if name.contains("time_emb")
        || name.contains("time_pos_embed")
        || name.contains("attn2.to_k")
        || name.contains("attn2.to_v")
        || name.starts_with("time_embedding")
        || name.starts_with("add_embedding")
    {
        return None;
    }
    let index = |prefix: &str| -> Option<i32> {
        name.strip_prefix(prefix)?
            .split('.')
            .next()?
            .parse::<i32>()
            .ok()
    };
    if let Some(i) = index("down_blocks.") {
        return Some(if name.contains(".downsamplers.") {
            i + 1
        } else {
            i
        });
    }
    if let Some(i) = index("up_blocks.") {
        let level = levels - 1 - i;
        return Some(if name.contains(".upsamplers.") {
            level - 1
        } else {
            level
        });
    }
    if name.starts_with("mid_block.") {
        return Some(levels - 1);
    }
    Some(0)
}

/// Where a VAE decoder weight runs, as a level of `−i` (2^i times the latent size); `None`
/// outside the decoder.
fn decoder_level(name: &str, ups: i32) -> Option<i32> {
    let rest = name.strip_prefix("decoder.")?;
    if let Some(after) = rest.strip_prefix("up_blocks.") {
        let i: i32 = after.split('.').next()?.parse().ok()?;
        return Some(
            -(if rest.contains(".upsamplers.") {
                i + 1
            } else {
                i
            }),
        );
    }
    if rest.starts_with("mid_block.") || rest.starts_with("conv_in.") {
        return Some(0);
    }
    Some(-(ups - 1).max(0))
}

/// Number of levels: one more than the highest `down_blocks.N` (UNet) or `decoder.up_blocks.N`.
fn count_blocks(names: &[String], prefix: &str) -> i32 {
    names
        .iter()
        .filter_map(|n| {
            n.strip_prefix(prefix)?
                .split('.')
                .next()?
                .parse::<i32>()
                .ok()
        })
        .max()
        .map_or(1, |m| m + 1)
}

impl CostModel {
    fn from_weights(weights: &Weights, level_of: impl Fn(&str) -> Option<i32>) -> Self {
        let mut terms = Vec::new();
        for name in weights.names() {
            let Some(shape) = weights.shape_of(&name) else {
                continue;
            };
            if shape.len() < 2 || !name.ends_with(".weight") {
                continue;
            }
            let Some(level) = level_of(&name) else {
                continue;
            };
            terms.push(Term::Matrix {
                level,
                numel: shape.iter().product(),
            });
            if name.ends_with("attn1.to_q.weight") || name.ends_with("attentions.0.to_q.weight") {
                let channels = shape[0];
                terms.push(if name.contains("temporal_transformer_blocks") {
                    Term::TemporalAttention { level, channels }
                } else {
                    Term::SpatialAttention { level, channels }
                });
            }
        }
        CostModel { terms }
    }

    /// The cost model of a spatio-temporal UNet (diffusers names).
    pub fn unet(weights: &Weights) -> Self {
        let levels = count_blocks(&weights.names(), "down_blocks.");
        Self::from_weights(weights, |n| unet_level(n, levels))
    }

    /// The cost model of a (temporal) VAE decoder (diffusers names).
    pub fn decoder(weights: &Weights) -> Self {
        let ups = count_blocks(&weights.names(), "decoder.up_blocks.");
        Self::from_weights(weights, |n| decoder_level(n, ups))
    }

    /// FLOPs of one pass over `frames` frames of a `h × w` latent.
    pub fn flops(&self, h: usize, w: usize, frames: usize) -> f64 {
        let pixels = |level: i32| -> f64 {
            let (lh, lw) = if level >= 0 {
                (h >> level, w >> level)
            } else {
                (h << -level, w << -level)
            };
            (lh.max(1) * lw.max(1)) as f64
        };
        let f = frames as f64;
        self.terms
            .iter()
            .map(|term| match *term {
                Term::Matrix { level, numel } => 2.0 * numel as f64 * pixels(level) * f,
                Term::SpatialAttention { level, channels } => {
                    4.0 * pixels(level).powi(2) * channels as f64 * f
                }
                Term::TemporalAttention { level, channels } => {
                    4.0 * f * f * channels as f64 * pixels(level)
                }
            })
            .sum()
    }
}

/// What a clip will cost, in FLOPs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VideoEstimate {
    /// One denoising step (both guidance halves when guidance is on).
    pub step_flops: f64,
    /// Denoising steps.
    pub steps: usize,
    /// Decoding every frame.
    pub decode_flops: f64,
    /// Frames.
    pub frames: usize,
}

impl VideoEstimate {
    /// All FLOPs of the clip.
    pub fn total_flops(&self) -> f64 {
        self.step_flops * self.steps as f64 + self.decode_flops
    }

    /// Seconds at `gflops` GFLOP/s for the UNet and `decode_gflops` for the decoder.
    pub fn seconds(&self, gflops: f64, decode_gflops: f64) -> f64 {
        self.step_flops * self.steps as f64 / (gflops.max(1e-3) * 1e9)
            + self.decode_flops / (decode_gflops.max(1e-3) * 1e9)
    }
}

/// GFLOP/s per core this kind of CPU reaches (measured on 2 AVX-512 cores with a full-size SVD
/// at 1024×576, 14 frames): the UNet and the decoder, in float32 and bf16. A first guess; the
/// app refines it with the speed of the clips it has made.
pub fn default_gflops_per_core(bf16: bool) -> (f64, f64) {
    if bf16 { (105.0, 60.0) } else { (50.0, 45.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_placed_at_their_level() {
        assert_eq!(unet_level("conv_in.weight", 4), Some(0));
        assert_eq!(
            unet_level("down_blocks.1.resnets.0.spatial_res_block.conv1.weight", 4),
            Some(1)
        );
        assert_eq!(
            unet_level("down_blocks.1.downsamplers.0.conv.weight", 4),
            Some(2)
        );
        assert_eq!(
            unet_level("mid_block.attentions.0.proj_in.weight", 4),
            Some(3)
        );
        assert_eq!(unet_level("up_blocks.0.resnets.0.conv1.weight", 4), Some(3));
        assert_eq!(
            unet_level("up_blocks.0.upsamplers.0.conv.weight", 4),
            Some(2)
        );
        assert_eq!(
            unet_level(
                "up_blocks.3.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                4
            ),
            None
        );
        assert_eq!(unet_level("time_embedding.linear_1.weight", 4), None);
        assert_eq!(decoder_level("decoder.conv_in.weight", 4), Some(0));
        assert_eq!(
            decoder_level("decoder.up_blocks.2.resnets.0.conv1.weight", 4),
            Some(-2)
        );
        assert_eq!(
            decoder_level("decoder.up_blocks.2.upsamplers.0.conv.weight", 4),
            Some(-3)
        );
        assert_eq!(decoder_level("decoder.conv_out.weight", 4), Some(-3));
        assert_eq!(decoder_level("encoder.conv_in.weight", 4), None);
    }

    #[test]
    fn costs_scale_with_pixels_and_frames() {
        let model = CostModel {
            terms: vec![
                Term::Matrix {
                    level: 1,
                    numel: 10,
                },
                Term::SpatialAttention {
                    level: 0,
                    channels: 2,
                },
                Term::TemporalAttention {
                    level: 0,
                    channels: 3,
                },
            ],
        };
        // 2·10·(4·4)·2 + 4·64²·2·2 + 4·2²·3·64.
        let want = 640.0 + 65536.0 + 3072.0;
        assert_eq!(model.flops(8, 8, 2), want);
    }
}
