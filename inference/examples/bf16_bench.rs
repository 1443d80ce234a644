//! Times the bf16 matmul kernel against candle's f32 matmul on SD1.5 UNet layer shapes
//! (`cargo run --release -p kiln-inference --example bf16_bench`). Single runs on a busy machine
//! are noisy: compare the two columns of one run, not runs with each other.
use candle_core::{Device, Tensor};
use kiln_inference::kernels::bf16::{PackedB, matmul, simd_available};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    println!("avx512-bf16 kernel: {}", simd_available());
    // Peak: one thread, operands in cache (64 × 320 × 256, repeated).
    {
        let (m, k, n) = (64, 320, 256);
        let a = Tensor::randn(0f32, 1.0, (m, k), &dev)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let w = Tensor::randn(0f32, 0.05, (n, k), &dev)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let packed = PackedB::new(&w, n, k);
        let mut c = vec![0f32; m * n];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            pool.install(|| {
                for _ in 0..200 {
                    matmul(&a, m, &packed, None, &mut c);
                }
            });
            best = best.min(t.elapsed().as_secs_f64());
        }
        let flop = 200.0 * 2.0 * (m * n * k) as f64;
        println!("one thread, in cache: {:.1} GFLOP/s", flop / best / 1e9);
    }
    // (rows, in, out): attention projections, GEGLU in/out at 64×64 latents (batch 2), 32×32.
    for (m, k, n) in [
        (8192, 320, 320),
        (8192, 320, 2560),
        (8192, 1280, 320),
        (2048, 640, 640),
        (512, 1280, 10240),
    ] {
        let a = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let w = Tensor::randn(0f32, 0.05, (n, k), &dev)?;
        let flop = 2.0 * (m * n * k) as f64;
        let mut best_f32 = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let _ = a.matmul(&w.t()?)?;
            best_f32 = best_f32.min(t.elapsed().as_secs_f64());
        }
        let packed = PackedB::new(&w.flatten_all()?.to_vec1::<f32>()?, n, k);
        let a_host = a.flatten_all()?.to_vec1::<f32>()?;
        let mut c = vec![0f32; m * n];
        let mut best_bf16 = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            matmul(&a_host, m, &packed, None, &mut c);
            best_bf16 = best_bf16.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{m:5}x{k:5}x{n:5}: f32 {:6.1} GFLOP/s   bf16 {:6.1} GFLOP/s   ({:.2}x)",
            flop / best_f32 / 1e9,
            flop / best_bf16 / 1e9,
            best_f32 / best_bf16
        );
    }
    Ok(())
}
