//! Times Kiln's 3×3 convolution, bf16 (packed weights) against f32, on SD1.5 UNet and VAE
//! decoder shapes (`cargo run --release -p kiln-inference --example conv_bench [filter]`).
//! Runs are interleaved (f32, bf16, f32, bf16, …) and the median is reported, so a busy
//! machine slows both columns alike: compare the columns of one run.
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use kiln_inference::kernels::conv::Conv2d;
use kiln_inference::kernels::{Precision, with_precision};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let dev = Device::Cpu;
    // (name, batch, c_in, c_out, size, stride, repeats)
    for (name, b, c_in, c_out, size, stride, reps) in [
        ("unet 320 64² b2", 2, 320, 320, 64, 1, 5),
        ("unet 640 32² b2", 2, 640, 640, 32, 1, 5),
        ("unet 1280 16² b2", 2, 1280, 1280, 16, 1, 5),
        ("unet 1280 8² b2", 2, 1280, 1280, 8, 1, 5),
        ("unet 2560→1280 8² b2", 2, 2560, 1280, 8, 1, 5),
        ("unet down 320 s2 b2", 2, 320, 320, 64, 2, 5),
        ("vae 512 128²", 1, 512, 512, 128, 1, 3),
        ("vae 256 256²", 1, 256, 256, 256, 1, 3),
        ("vae 128 512²", 1, 128, 128, 512, 1, 3),
    ] {
        if !name.contains(&filter) {
            continue;
        }
        let weight = Tensor::randn(0f32, 0.02, (c_out, c_in, 3, 3), &dev)?;
        let bias = Tensor::randn(0f32, 0.1, c_out, &dev)?;
        let tensors = [("weight".to_string(), weight), ("bias".to_string(), bias)];
        let vb = VarBuilder::from_tensors(tensors.into_iter().collect(), DType::F32, &dev);
        let f32_conv = Conv2d::new(c_in, c_out, 3, stride, 1, vb.clone())?;
        let bf16_conv = with_precision(Precision::Bf16, || {
            Conv2d::new(c_in, c_out, 3, stride, 1, vb)
        })?;
        let x = Tensor::randn(0f32, 1.0, (b, c_in, size, size), &dev)?;
        let out = size.div_ceil(stride);
        let flop = 2.0 * (b * c_out * c_in * 9 * out * out) as f64;
        let (mut t32, mut t16) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let t = Instant::now();
            let _ = f32_conv.forward(&x)?;
            t32.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let _ = bf16_conv.forward(&x)?;
            t16.push(t.elapsed().as_secs_f64());
        }
        let (m32, m16) = (median(t32), median(t16));
        println!(
            "{name:22} f32 {:7.1} ms {:6.1} GFLOP/s   bf16 {:7.1} ms {:6.1} GFLOP/s   ({:.2}x)",
            m32 * 1e3,
            flop / m32 / 1e9,
            m16 * 1e3,
            flop / m16 / 1e9,
            m32 / m16
        );
    }
    Ok(())
}
