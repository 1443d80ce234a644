//! Element-wise activations in one pass, written so the compiler vectorises them for the
//! features chosen at run time: affine + SiLU (the tail of the fused GroupNorm) and the GEGLU product
//! `a · gelu(g)` of the UNet feed-forward (one pass instead of candle's narrow + erf-GELU +
//! multiply, each a full copy).

use crate::Result;
use candle_core::{D, DType, Device, Tensor};
use rayon::prelude::*;

/// `exp(x)` for `x ≤ 0`, Cephes-style: `2^n · p(r)`, relative error about 1e-7, branch-free.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = x.mul_add(std::f32::consts::LOG2_E, 0.5).floor();
    let r = n.mul_add(-0.693_359_4, x);
    let r = n.mul_add(2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5e-1);
    let y = p.mul_add(r * r, r) + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `x · sigmoid(x)` through [`exp_neg`] of `−|x|` (no overflow for large `|x|`).
#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    let e = exp_neg(-x.abs());
    let s = if x >= 0.0 { 1.0 } else { e } / (1.0 + e);
    x * s
}

/// `erf(x)`, Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), branch-free.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / 0.327_591_1f32.mul_add(a, 1.0);
    let mut p = 1.061_405_4f32;
    p = p.mul_add(t, -1.453_152_1);
    p = p.mul_add(t, 1.421_413_8);
    p = p.mul_add(t, -0.284_496_74);
    p = p.mul_add(t, 0.254_829_6);
    let y = 1.0 - p * t * exp_neg(-a * a);
    if x < 0.0 { -y } else { y }
}

/// `gelu(x) = x/2 · (1 + erf(x/√2))`.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `x ← silu(x · scale + shift)` over `values` (the tail of a fused GroupNorm).
pub(crate) fn affine_silu_in_place(values: &mut [f32], scale: f32, shift: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature.
            return unsafe { affine_silu_avx512(values, scale, shift) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { affine_silu_avx2(values, scale, shift) };
        }
    }
    affine_silu_plain(values, scale, shift);
}

#[inline(always)]
fn affine_silu_plain(values: &mut [f32], scale: f32, shift: f32) {
    values
        .iter_mut()
        .for_each(|x| *x = silu(x.mul_add(scale, shift)));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn affine_silu_avx512(values: &mut [f32], scale: f32, shift: f32) {
    affine_silu_plain(values, scale, shift);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn affine_silu_avx2(values: &mut [f32], scale: f32, shift: f32) {
    affine_silu_plain(values, scale, shift);
}

/// `out[i] = a[i] · gelu(g[i])` over one row.
fn geglu_row(a: &[f32], g: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature.
            return unsafe { geglu_avx512(a, g, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { geglu_avx2(a, g, out) };
        }
    }
    geglu_plain(a, g, out);
}

#[inline(always)]
fn geglu_plain(a: &[f32], g: &[f32], out: &mut [f32]) {
    for ((o, &a), &g) in out.iter_mut().zip(a).zip(g) {
        *o = a * gelu(g);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn geglu_avx512(a: &[f32], g: &[f32], out: &mut [f32]) {
    geglu_plain(a, g, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn geglu_avx2(a: &[f32], g: &[f32], out: &mut [f32]) {
    geglu_plain(a, g, out);
}

/// diffusers `GEGLU` after its projection: `h [.., 2·inner]` → `a · gelu(g)` with `a, g` the
/// two halves of the last dimension (exact-erf GELU). f32 CPU tensors take one fused pass;
/// others use candle ops.
pub fn geglu(h: &Tensor) -> Result<Tensor> {
    let width = h.dim(D::Minus1)?;
    let inner = width / 2;
    if !(matches!(h.device(), Device::Cpu) && h.dtype() == DType::F32) || width % 2 != 0 {
        let a = h.narrow(D::Minus1, 0, inner)?;
        let g = h.narrow(D::Minus1, inner, inner)?;
        return Ok((a * g.gelu_erf()?)?);
    }
    let rows = h.elem_count() / width.max(1);
    let mut out = vec![0f32; rows * inner];
    super::with_f32(h, |values| {
        out.par_chunks_mut(inner.max(1))
            .zip(values.par_chunks(width.max(1)))
            .with_min_len(16)
            .for_each(|(o, row)| {
                let (a, g) = row.split_at(inner);
                geglu_row(a, g, o);
            });
    })?;
    let mut dims = h.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = inner;
    }
    Ok(Tensor::from_vec(out, dims, h.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silu_and_erf_match_libm() {
        let mut worst = (0f64, 0f64);
        for i in 0..200_001 {
            let x = -30.0 + 60.0 * i as f32 / 200_000.0;
            let want_silu = x as f64 / (1.0 + (-(x as f64)).exp());
            worst.0 = worst
                .0
                .max((silu(x) as f64 - want_silu).abs() / want_silu.abs().max(1.0));
            let want_gelu = 0.5 * x as f64 * (1.0 + libm_erf(x as f64 / 2f64.sqrt()));
            worst.1 = worst
                .1
                .max((gelu(x) as f64 - want_gelu).abs() / want_gelu.abs().max(1.0));
        }
        assert!(worst.0 < 1e-6 && worst.1 < 1e-6, "{worst:?}");
        let mut values: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) / 37.0).collect();
        let want: Vec<f32> = values.iter().map(|&x| silu(x.mul_add(0.5, 0.25))).collect();
        affine_silu_in_place(&mut values, 0.5, 0.25);
        assert_eq!(values, want);
    }

    /// erf by its series / continued fraction in f64 (reference only).
    fn libm_erf(x: f64) -> f64 {
        // erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1)): cancellation costs about 1e-8 at
        // |x| = 4.5; beyond, 1 − |erf| < 3e-10.
        if x.abs() > 4.5 {
            return x.signum();
        }
        let mut sum = 0f64;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-18 * sum.abs().max(1e-300) || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
            if n > 400.0 {
                break;
            }
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }

    #[test]
    fn geglu_matches_candle() {
        let dev = Device::Cpu;
        let h = Tensor::randn(0f32, 2.0, (2, 7, 2 * 40), &dev).unwrap();
        let a = h.narrow(D::Minus1, 0, 40).unwrap();
        let g = h.narrow(D::Minus1, 40, 40).unwrap();
        let want = (a * g.gelu_erf().unwrap()).unwrap();
        let ours = geglu(&h).unwrap();
        assert_eq!(ours.dims(), want.dims());
        let diff = (ours - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
    }
}
