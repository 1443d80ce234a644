//! Times a full-size Stable Video Diffusion UNet step and a temporal-VAE decode chunk on the
//! CPU with constant weights (the cost of dense layers does not depend on the values), and
//! reports peak memory:
//!
//! `cargo run --release -p kiln-inference --example svd_bench [WIDTH HEIGHT FRAMES CHUNK] [bf16] [decode-only]`
//! (default 1024 576 14 2, f32 weights). The UNet step is classifier-free guided (batch 2 × FRAMES), as
//! every SVD step with max guidance > 1; a clip costs `steps × step + ceil(FRAMES / CHUNK) ×
//! chunk`. Configs are the released SVD ones (`unet/config.json`, `vae/config.json`).
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use kiln_inference::kernels::{Precision, with_precision};
use kiln_inference::vae::VaeConfig;
use kiln_inference::video::{SvdUNet, SvdUNetConfig, TemporalVae};
use std::collections::HashMap;
use std::time::Instant;

/// Peak resident memory (VmHWM) in GiB, Linux only.
fn peak_rss_gib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0)
}

/// Named constant tensors and their element count.
type Weights = (HashMap<String, Tensor>, usize);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let width = args.first().copied().unwrap_or(1024);
    let height = args.get(1).copied().unwrap_or(576);
    let frames = args.get(2).copied().unwrap_or(14);
    let chunk = args.get(3).copied().unwrap_or(2).min(frames);
    let precision = if std::env::args().any(|a| a == "bf16") {
        Precision::Bf16
    } else {
        Precision::F32
    };
    let device = Device::Cpu;
    let unet_config = SvdUNetConfig::from_json(&serde_json::json!({
        "addition_time_embed_dim": 256,
        "block_out_channels": [320, 640, 1280, 1280],
        "cross_attention_dim": 1024,
        "down_block_types": ["CrossAttnDownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal",
                             "CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
        "up_block_types": ["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal",
                           "CrossAttnUpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"],
        "in_channels": 8,
        "out_channels": 4,
        "layers_per_block": 2,
        "num_attention_heads": [5, 10, 20, 20],
        "num_frames": frames,
        "projection_class_embeddings_input_dim": 768,
        "transformer_layers_per_block": 1
    }))?;
    let vae_config = VaeConfig::from_json(&serde_json::json!({
        "block_out_channels": [128, 256, 512, 512],
        "layers_per_block": 2,
        "latent_channels": 4,
        "in_channels": 3,
        "out_channels": 3,
        "scaling_factor": 0.18215
    }))?;
    let start = Instant::now();
    // Build once on a VarMap to learn every weight's name and shape, then again on plain
    // (non-variable, so no autograd graph) constant tensors whose pages are all written, as
    // loaded weights are.
    let constant_weights = |vars: &VarMap| -> Result<Weights, Box<dyn std::error::Error>> {
        let mut map = HashMap::new();
        let mut count = 0;
        for (name, var) in vars.data().lock().map_err(|e| e.to_string())?.iter() {
            count += var.elem_count();
            map.insert(name.clone(), Tensor::full(1e-3f32, var.shape(), &device)?);
        }
        Ok((map, count))
    };
    let vars = VarMap::new();
    SvdUNet::new(
        VarBuilder::from_varmap(&vars, DType::F32, &device),
        &unet_config,
    )?;
    let (unet_weights, unet_params) = constant_weights(&vars)?;
    let vars = VarMap::new();
    TemporalVae::new(
        VarBuilder::from_varmap(&vars, DType::F32, &device),
        &vae_config,
    )?;
    let (vae_weights, vae_params) = constant_weights(&vars)?;
    drop(vars);
    let unet = with_precision(precision, || {
        SvdUNet::new(
            VarBuilder::from_tensors(unet_weights, DType::F32, &device),
            &unet_config,
        )
    })?;
    let vae = with_precision(precision, || {
        TemporalVae::new(
            VarBuilder::from_tensors(vae_weights, DType::F32, &device),
            &vae_config,
        )
    })?;
    println!(
        "build: {:.1} s, UNet {:.2} B params, VAE {:.0} M params ({precision:?}), peak RSS {:.2} GiB",
        start.elapsed().as_secs_f64(),
        unet_params as f64 / 1e9,
        vae_params as f64 / 1e6,
        peak_rss_gib()
    );
    let (lh, lw) = (height / 8, width / 8);
    let sample = Tensor::randn(0f32, 1.0, (2, frames, 8, lh, lw), &device)?;
    let context = Tensor::randn(0f32, 1.0, (2, 1, 1024), &device)?;
    let ids = Tensor::new(&[[6f32, 127.0, 0.02], [6.0, 127.0, 0.02]], &device)?;
    let decode_only = std::env::args().any(|a| a == "decode-only");
    let start = Instant::now();
    let out = if decode_only {
        sample.clone()
    } else {
        unet.forward(&sample, 0.25 * 14.6f32.ln(), &context, &ids)?
    };
    println!(
        "unet step {width}x{height} x {frames} frames, CFG batch 2: {:.1} s ({:?}), peak RSS {:.2} GiB",
        start.elapsed().as_secs_f64(),
        out.dims(),
        peak_rss_gib()
    );
    drop(out);
    drop(sample);
    let z = Tensor::randn(0f32, 1.0, (chunk, 4, lh, lw), &device)?;
    let start = Instant::now();
    let decoded = vae.decode_chunk(&z)?;
    println!(
        "vae decode chunk of {chunk} frames: {:.1} s ({:?}), peak RSS {:.2} GiB",
        start.elapsed().as_secs_f64(),
        decoded.dims(),
        peak_rss_gib()
    );
    Ok(())
}
