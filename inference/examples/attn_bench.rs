//! Times the attention kernel on SD1.5's largest self-attention (batch 2 × 8 heads, 4096 tokens).
use candle_core::{Device, Tensor};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    let q = Tensor::randn(0f32, 1.0, (16, 4096, 40), &dev)?;
    let k = Tensor::randn(0f32, 1.0, (16, 4096, 40), &dev)?;
    let v = Tensor::randn(0f32, 1.0, (16, 4096, 40), &dev)?;
    for _ in 0..3 {
        let t = Instant::now();
        let _o = kiln_inference::kernels::attention::attention(&q, &k, &v, 0.158)?;
        let s = t.elapsed().as_secs_f64();
        let flop = 4.0 * 16.0 * 4096f64 * 4096.0 * 40.0;
        println!("attention {:.3} s, {:.1} GFLOP/s", s, flop / s / 1e9);
    }
    let a = Tensor::randn(0f32, 1.0, (2, 4096, 320), &dev)?;
    let w = Tensor::randn(0f32, 1.0, (320, 320), &dev)?;
    let t = Instant::now();
    let _ = a.broadcast_matmul(&w.t()?)?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "linear 8192x320x320 {:.4} s, {:.1} GFLOP/s",
        s,
        2.0 * 8192.0 * 320.0 * 320.0 / s / 1e9
    );
    let lin = candle_nn::Linear::new(Tensor::randn(0f32, 0.05, (2560, 320), &dev)?, None);
    let xs = Tensor::randn(0f32, 1.0, (2, 4096, 320), &dev)?;
    for label in ["3-D", "2-D"] {
        let t = Instant::now();
        for _ in 0..3 {
            if label == "3-D" {
                let _ = candle_nn::Module::forward(&lin, &xs)?;
            } else {
                let _ = candle_nn::Module::forward(&lin, &xs.reshape((8192, 320))?)?;
            }
        }
        let s = t.elapsed().as_secs_f64() / 3.0;
        println!(
            "linear {label} 8192x320->2560: {:.4} s, {:.1} GFLOP/s",
            s,
            2.0 * 8192.0 * 320.0 * 2560.0 / s / 1e9
        );
    }
    let x = Tensor::randn(0f32, 1.0, (2, 320, 64, 64), &dev)?;
    let gn = candle_nn::GroupNorm::new(
        Tensor::ones(320, candle_core::DType::F32, &dev)?,
        Tensor::zeros(320, candle_core::DType::F32, &dev)?,
        320,
        32,
        1e-5,
    )?;
    let t = Instant::now();
    for _ in 0..10 {
        let _ = candle_nn::Module::forward(&gn, &x)?;
    }
    println!(
        "groupnorm 2x320x64x64: {:.4} s each",
        t.elapsed().as_secs_f64() / 10.0
    );
    let wt = Tensor::randn(0f32, 0.1, (320, 320, 3, 3), &dev)?;
    let t = Instant::now();
    let _ = x.conv2d(&wt, 1, 1, 1, 1)?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "candle conv3x3 320->320 64x64 b2: {:.3} s, {:.1} GFLOP/s",
        s,
        2.0 * 2.0 * 4096.0 * 320.0 * 320.0 * 9.0 / s / 1e9
    );
    let vb = candle_nn::VarBuilder::from_tensors(
        [("weight".to_string(), wt.clone())].into_iter().collect(),
        candle_core::DType::F32,
        &dev,
    );
    let conv = kiln_inference::kernels::conv::Conv2d::new(320, 320, 3, 1, 1, vb)?;
    let t = Instant::now();
    let _ = conv.forward(&x)?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "conv3x3 320->320 64x64 b2: {:.3} s, {:.1} GFLOP/s",
        s,
        2.0 * 2.0 * 4096.0 * 320.0 * 320.0 * 9.0 / s / 1e9
    );
    let t = Instant::now();
    for _ in 0..10 {
        let _ = x.silu()?;
    }
    println!("silu: {:.4} s each", t.elapsed().as_secs_f64() / 10.0);
    Ok(())
}
