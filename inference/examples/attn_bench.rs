//! Times the attention kernels on SD1.5 shapes (batch 2 × 8 heads): the multi-head kernel in
//! f32 and bf16 against splitting the heads and calling the single-head kernel (interleaved,
//! median of 3), then other single kernels.
use candle_core::{Device, Tensor};
use kiln_inference::kernels::Precision;
use kiln_inference::kernels::attention::{attention, multi_head};
use std::time::Instant;

fn split_heads(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (b, n, c) = q.dims3()?;
    let m = k.dim(1)?;
    let d = c / heads;
    let split = |t: &Tensor, len: usize| {
        t.reshape((b, len, heads, d))?
            .transpose(1, 2)?
            .reshape((b * heads, len, d))?
            .contiguous()
    };
    let out = attention(
        &split(q, n)?,
        &split(k, m)?,
        &split(v, m)?,
        (d as f64).powf(-0.5),
    )
    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    out.reshape((b, heads, n, d))?
        .transpose(1, 2)?
        .reshape((b, n, c))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    for (name, n, m, c) in [
        ("self 4096 x 320", 4096, 4096, 320),
        ("self 1024 x 640", 1024, 1024, 640),
        ("cross 4096 x 77 x 320", 4096, 77, 320),
    ] {
        let q = Tensor::randn(0f32, 1.0, (2, n, c), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (2, m, c), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (2, m, c), &dev)?;
        let scale = ((c / 8) as f64).powf(-0.5);
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..3 {
            let t = Instant::now();
            let _ = split_heads(&q, &k, &v, 8)?;
            times[0].push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let _ = multi_head(&q, &k, &v, 8, scale, Precision::F32)?;
            times[1].push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let _ = multi_head(&q, &k, &v, 8, scale, Precision::Bf16)?;
            times[2].push(t.elapsed().as_secs_f64());
        }
        let flop = 4.0 * 2.0 * (n * m * c) as f64;
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[1]
        };
        let [a, b, c] = times.each_mut().map(med);
        println!(
            "{name:22} split+f32 {:6.1} ms ({:5.1} GFLOP/s)  multi-head f32 {:6.1} ms ({:5.1})  bf16 {:6.1} ms ({:5.1})",
            a * 1e3,
            flop / a / 1e9,
            b * 1e3,
            flop / b / 1e9,
            c * 1e3,
            flop / c / 1e9
        );
    }
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
