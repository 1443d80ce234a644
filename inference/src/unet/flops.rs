//! Analytic FLOP counts for one batch-1 forward pass of the UNet and the VAE decoder
//! (FORMATS.md §12.2), used by `kiln bench` to report achieved GFLOP/s.
//!
//! Convention (the one of `torch.utils.flop_counter`): 1 FLOP = one multiply or one add, so a
//! multiply-accumulate is 2 FLOP. Counted:
//! - convolutions: `2 · C_in · C_out · k² · H_out · W_out` (bias adds not counted);
//! - linear layers: `2 · in · out · tokens` (bias adds not counted);
//! - attention: `Q·Kᵀ` and `P·V`, `2 · N · M · C` each, so `4·N·M·C` per layer (all heads).
//!
//! Not counted: normalisations (GroupNorm, LayerNorm), activations (SiLU, GELU, the GEGLU
//! product), softmax, the attention scale, residual adds, upsampling and concatenation. They are
//! below 1% of the total for SD-family models and are memory-bound anyway.

use crate::unet::config::UNetConfig;
use crate::vae::VaeConfig;

/// Accumulates FLOPs by kind (kept separate so tests and reports can show the split).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FlopCount {
    /// Convolutions.
    pub conv: f64,
    /// Linear layers (including 1×1 projections written as Linear).
    pub linear: f64,
    /// Attention matrix products (`Q·Kᵀ` and `P·V`).
    pub attention: f64,
}

impl FlopCount {
    /// All FLOPs.
    pub fn total(&self) -> f64 {
        self.conv + self.linear + self.attention
    }

    fn conv(&mut self, c_in: usize, c_out: usize, kernel: usize, h: usize, w: usize) {
        self.conv += 2.0 * (c_in * c_out * kernel * kernel) as f64 * (h * w) as f64;
    }

    fn linear(&mut self, d_in: usize, d_out: usize, tokens: usize) {
        self.linear += 2.0 * (d_in * d_out) as f64 * tokens as f64;
    }

    fn attention(&mut self, queries: usize, keys: usize, channels: usize) {
        self.attention += 4.0 * queries as f64 * keys as f64 * channels as f64;
    }

    /// diffusers `ResnetBlock2D` (time projection when `temb` is given).
    fn resnet(&mut self, c_in: usize, c_out: usize, h: usize, w: usize, temb: Option<usize>) {
        self.conv(c_in, c_out, 3, h, w);
        if let Some(t) = temb {
            self.linear(t, c_out, 1);
        }
        self.conv(c_out, c_out, 3, h, w);
        if c_in != c_out {
            self.conv(c_in, c_out, 1, h, w);
        }
    }

    /// diffusers `Transformer2DModel` with `depth` `BasicTransformerBlock`s (self-attention,
    /// cross-attention over `context_len` tokens of width `context_dim`, GEGLU feed-forward).
    #[allow(clippy::too_many_arguments)]
    fn transformer(
        &mut self,
        channels: usize,
        depth: usize,
        h: usize,
        w: usize,
        context_dim: usize,
        context_len: usize,
        linear_projection: bool,
    ) {
        let n = h * w;
        let c = channels;
        let project = |f: &mut FlopCount| {
            if linear_projection {
                f.linear(c, c, n);
            } else {
                f.conv(c, c, 1, h, w);
            }
        };
        project(self);
        for _ in 0..depth {
            // attn1: q, k, v, out projections and N×N attention.
            self.linear(c, 3 * c, n);
            self.attention(n, n, c);
            self.linear(c, c, n);
            // attn2: q and out on the image tokens, k and v on the context.
            self.linear(c, c, n);
            self.linear(context_dim, 2 * c, context_len);
            self.attention(n, context_len, c);
            self.linear(c, c, n);
            // GEGLU feed-forward: C → 2·4C, then 4C → C.
            self.linear(c, 8 * c, n);
            self.linear(4 * c, c, n);
        }
        project(self);
    }
}

/// FLOPs of one batch-1 UNet forward on a `latent_h × latent_w` latent with `context_len` text
/// tokens (77 per prompt chunk), split by kind.
pub fn unet_flop_count(
    config: &UNetConfig,
    latent_h: usize,
    latent_w: usize,
    context_len: usize,
) -> FlopCount {
    let mut f = FlopCount::default();
    let Some(first) = config.down.first().map(|l| l.channels) else {
        return f;
    };
    let temb = config.time_embed_dim();
    let ctx = config.cross_attention_dim;
    let lin = config.use_linear_projection;
    // Time embedding MLP (and SDXL's added text_time embedding).
    f.linear(first, temb, 1);
    f.linear(temb, temb, 1);
    if let Some(tt) = &config.text_time {
        f.linear(tt.input_dim, temb, 1);
        f.linear(temb, temb, 1);
    }

    let (mut h, mut w) = (latent_h, latent_w);
    f.conv(config.in_channels, first, 3, h, w);
    // Skip features: (channels, h, w), as the forward pass pushes them.
    let mut skips = vec![(first, h, w)];
    let mut ch = first;
    let levels = config.down.len();
    for (i, level) in config.down.iter().enumerate() {
        for _ in 0..config.layers_per_block {
            f.resnet(ch, level.channels, h, w, Some(temb));
            ch = level.channels;
            if level.attention {
                f.transformer(ch, level.transformer_depth, h, w, ctx, context_len, lin);
            }
            skips.push((ch, h, w));
        }
        if i + 1 < levels {
            // 3×3, stride 2, padding 1: ceil(h / 2).
            h = h.div_ceil(2);
            w = w.div_ceil(2);
            f.conv(ch, ch, 3, h, w);
            skips.push((ch, h, w));
        }
    }

    f.resnet(ch, ch, h, w, Some(temb));
    if let Some((depth, _heads)) = config.mid {
        f.transformer(ch, depth, h, w, ctx, context_len, lin);
    }
    f.resnet(ch, ch, h, w, Some(temb));

    for (i, level) in config.up.iter().enumerate() {
        for _ in 0..=config.layers_per_block {
            let (skip_ch, _, _) = skips.pop().unwrap_or((0, h, w));
            f.resnet(ch + skip_ch, level.channels, h, w, Some(temb));
            ch = level.channels;
            if level.attention {
                f.transformer(ch, level.transformer_depth, h, w, ctx, context_len, lin);
            }
        }
        if i + 1 < config.up.len() {
            // Nearest upsampling to the next skip's size, then a 3×3 conv.
            let (_, sh, sw) = skips.last().copied().unwrap_or((0, 2 * h, 2 * w));
            h = sh;
            w = sw;
            f.conv(ch, ch, 3, h, w);
        }
    }
    f.conv(first, config.out_channels, 3, h, w);
    f
}

/// FLOPs of one batch-1 UNet forward (see [`unet_flop_count`]). A CFG step runs batch 2: twice
/// this.
pub fn unet_flops(
    config: &UNetConfig,
    latent_h: usize,
    latent_w: usize,
    context_len: usize,
) -> f64 {
    unet_flop_count(config, latent_h, latent_w, context_len).total()
}

/// FLOPs of one batch-1 VAE decode of a `latent_h × latent_w` latent, split by kind.
pub fn vae_decode_flop_count(cfg: &VaeConfig, latent_h: usize, latent_w: usize) -> FlopCount {
    let mut f = FlopCount::default();
    let Some(&top) = cfg.block_out_channels.last() else {
        return f;
    };
    let (mut h, mut w) = (latent_h, latent_w);
    let lat = cfg.latent_channels;
    if cfg.use_post_quant_conv {
        f.conv(lat, lat, 1, h, w);
    }
    f.conv(lat, top, 3, h, w);
    // Mid block: resnet, single-head self-attention over all pixels, resnet.
    f.resnet(top, top, h, w, None);
    if cfg.mid_block_add_attention {
        let n = h * w;
        f.linear(top, 4 * top, n); // q, k, v and out
        f.attention(n, n, top);
    }
    f.resnet(top, top, h, w, None);
    let mut ch = top;
    let levels = cfg.block_out_channels.len();
    for (i, &out) in cfg.block_out_channels.iter().rev().enumerate() {
        for _ in 0..=cfg.layers_per_block {
            f.resnet(ch, out, h, w, None);
            ch = out;
        }
        if i + 1 < levels {
            h *= 2;
            w *= 2;
            f.conv(ch, ch, 3, h, w);
        }
    }
    f.conv(ch, cfg.out_channels, 3, h, w);
    f
}

/// FLOPs of one batch-1 VAE decode (see [`vae_decode_flop_count`]).
pub fn vae_decode_flops(cfg: &VaeConfig, latent_h: usize, latent_w: usize) -> f64 {
    vae_decode_flop_count(cfg, latent_h, latent_w).total()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `runwayml/stable-diffusion-v1-5` `unet/config.json`.
    const SD15_UNET: &str = r#"{
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": "0.6.0",
        "act_fn": "silu",
        "attention_head_dim": 8,
        "block_out_channels": [320, 640, 1280, 1280],
        "center_input_sample": false,
        "cross_attention_dim": 768,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                             "CrossAttnDownBlock2D", "DownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": true,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 2,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "out_channels": 4,
        "sample_size": 64,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                           "CrossAttnUpBlock2D"]
    }"#;

    /// `stabilityai/stable-diffusion-xl-base-1.0` `unet/config.json` (as published, except
    /// `upcast_attention`, which the hub file writes as `null` = false).
    const SDXL_UNET: &str = r#"{
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": "0.19.0.dev0",
        "act_fn": "silu",
        "addition_embed_type": "text_time",
        "addition_embed_type_num_heads": 64,
        "addition_time_embed_dim": 256,
        "attention_head_dim": [5, 10, 20],
        "block_out_channels": [320, 640, 1280],
        "center_input_sample": false,
        "class_embed_type": null,
        "class_embeddings_concat": false,
        "conv_in_kernel": 3,
        "conv_out_kernel": 3,
        "cross_attention_dim": 2048,
        "cross_attention_norm": null,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "downsample_padding": 1,
        "dual_cross_attention": false,
        "encoder_hid_dim": null,
        "encoder_hid_dim_type": null,
        "flip_sin_to_cos": true,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 2,
        "mid_block_only_cross_attention": null,
        "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "num_attention_heads": null,
        "num_class_embeds": null,
        "only_cross_attention": false,
        "out_channels": 4,
        "projection_class_embeddings_input_dim": 2816,
        "resnet_out_scale_factor": 1.0,
        "resnet_skip_time_act": false,
        "resnet_time_scale_shift": "default",
        "sample_size": 128,
        "time_cond_proj_dim": null,
        "time_embedding_act_fn": null,
        "time_embedding_dim": null,
        "time_embedding_type": "positional",
        "timestep_post_act": null,
        "transformer_layers_per_block": [1, 2, 10],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "upcast_attention": false,
        "use_linear_projection": true
    }"#;

    /// `runwayml/stable-diffusion-v1-5` `vae/config.json`.
    const SD_VAE: &str = r#"{
        "_class_name": "AutoencoderKL",
        "_diffusers_version": "0.6.0",
        "act_fn": "silu",
        "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D",
                             "DownEncoderBlock2D", "DownEncoderBlock2D"],
        "in_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "out_channels": 3,
        "sample_size": 512,
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D",
                           "UpDecoderBlock2D", "UpDecoderBlock2D"]
    }"#;

    fn unet(json: &str) -> UNetConfig {
        let value: serde_json::Value = serde_json::from_str(json).expect("test JSON");
        UNetConfig::from_json(&value).expect("valid UNet config")
    }

    fn vae(json: &str) -> VaeConfig {
        let value: serde_json::Value = serde_json::from_str(json).expect("test JSON");
        VaeConfig::from_json(&value).expect("valid VAE config")
    }

    fn assert_close(got: f64, want: f64, rel: f64) {
        assert!(
            ((got - want) / want).abs() <= rel,
            "got {:.1} GFLOP, want {:.1} GFLOP ±{}%",
            got / 1e9,
            want / 1e9,
            rel * 100.0
        );
    }

    #[test]
    fn sd15_unet_512() {
        let cfg = unet(SD15_UNET);
        let f = unet_flop_count(&cfg, 64, 64, 77);
        assert_close(f.total(), 803.3e9, 0.01);
        // PLATFORM.md split: conv 444, linear 233, attention 126 GFLOP.
        assert_close(f.conv, 444e9, 0.01);
        assert_close(f.linear, 233e9, 0.01);
        assert_close(f.attention, 126e9, 0.01);
        assert_eq!(unet_flops(&cfg, 64, 64, 77), f.total());
    }

    #[test]
    fn sdxl_unet_1024() {
        let cfg = unet(SDXL_UNET);
        assert_close(unet_flops(&cfg, 128, 128, 77), 6761e9, 0.02);
    }

    #[test]
    fn sd_vae_decode_512() {
        let cfg = vae(SD_VAE);
        assert_close(vae_decode_flops(&cfg, 64, 64), 2514.5e9, 0.01);
        // SDXL's VAE has the same layout: ≈ 10.5 T at 1024².
        assert_close(vae_decode_flops(&cfg, 128, 128), 10.5e12, 0.01);
    }

    #[test]
    fn odd_sizes_and_scaling() {
        let cfg = unet(SD15_UNET);
        // Non-square and odd latents are counted without panicking; larger is costlier.
        let small = unet_flops(&cfg, 64, 48, 77);
        let odd = unet_flops(&cfg, 65, 49, 77);
        assert!(odd > small && small > 0.0);
        // Longer prompts (two chunks) only add cross-attention K/V work.
        assert!(unet_flops(&cfg, 64, 64, 154) > unet_flops(&cfg, 64, 64, 77));
    }
}
