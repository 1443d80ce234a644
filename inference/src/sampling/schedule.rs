//! Training noise schedule and inference timestep grids, with the float semantics of the
//! torch/numpy code diffusers runs (FORMATS §3.1–3.2).
//!
//! diffusers builds its tables in torch float32 (betas, ᾱ, σ), then works in numpy float64
//! (`np.linspace`, `np.arange`, `np.interp`, Karras sigmas, `_sigma_to_t`) and converts back to
//! float32. Each helper here names the numpy/torch call it reproduces; numbers that diffusers holds
//! as float32 are `f32` here too.

use super::scheduler_config::BetaSchedule;

/// `torch.linspace(start, end, n, dtype=float32)` on CPU: `fma(step, i, start)` for the first
/// half, `fma(−step, n−1−i, end)` for the second (`step` rounded once to f32).
pub(crate) fn torch_linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let halfway = n / 2;
    (0..n)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((n - 1 - i) as f32, end)
            }
        })
        .collect()
}

/// The training betas as the float32 tensor diffusers builds.
pub(crate) fn betas(schedule: &BetaSchedule, n: usize) -> Vec<f32> {
    match schedule {
        BetaSchedule::Linear { start, end } => torch_linspace_f32(*start as f32, *end as f32, n),
        BetaSchedule::ScaledLinear { start, end } => {
            torch_linspace_f32(start.sqrt() as f32, end.sqrt() as f32, n)
                .into_iter()
                .map(|b| b * b)
                .collect()
        }
        BetaSchedule::SquaredCosCapV2 => {
            // `betas_for_alpha_bar(n)` (cosine), in Python floats, then `torch.tensor(.., float32)`.
            let alpha_bar = |t: f64| {
                let c = ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos();
                c * c
            };
            (0..n)
                .map(|i| {
                    let t1 = i as f64 / n as f64;
                    let t2 = (i + 1) as f64 / n as f64;
                    (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
                })
                .collect()
        }
        BetaSchedule::Trained(betas) => betas.iter().map(|&b| b as f32).collect(),
    }
}

/// `torch.cumprod(1.0 - betas, 0)` on float32: torch accumulates in f64 and rounds each prefix.
pub(crate) fn alphas_cumprod(betas: &[f32]) -> Vec<f32> {
    let mut product = 1.0f64;
    betas
        .iter()
        .map(|&beta| {
            product *= f64::from(1.0 - beta);
            product as f32
        })
        .collect()
}

/// `((1 - ᾱ) / ᾱ) ** 0.5` in float32, ascending in t.
pub(crate) fn training_sigmas(alphas_cumprod: &[f32]) -> Vec<f32> {
    alphas_cumprod
        .iter()
        .map(|&a| ((1.0 - a) / a).sqrt())
        .collect()
}

/// `np.linspace(start, stop, num, endpoint)` in float64.
pub(crate) fn np_linspace(start: f64, stop: f64, num: usize, endpoint: bool) -> Vec<f64> {
    let div = if endpoint { num.saturating_sub(1) } else { num };
    let delta = stop - start;
    let mut values: Vec<f64> = (0..num)
        .map(|i| {
            let i = i as f64;
            if div == 0 {
                i * delta + start
            } else {
                let step = delta / div as f64;
                if step == 0.0 {
                    i / div as f64 * delta + start
                } else {
                    i * step + start
                }
            }
        })
        .collect();
    if endpoint
        && num > 1
        && let Some(last) = values.last_mut()
    {
        *last = stop;
    }
    values
}

/// `np.arange(start, stop, step)` with a float step: length `ceil((stop − start) / step)`,
/// values `start + i·((start + step) − start)`.
pub(crate) fn np_arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let length = ((stop - start) / step).ceil();
    if length.is_nan() || length <= 0.0 {
        return Vec::new();
    }
    let length = length as usize;
    let delta = (start + step) - start;
    (0..length)
        .map(|i| match i {
            0 => start,
            1 => start + step,
            _ => start + i as f64 * delta,
        })
        .collect()
}

/// `np.interp(x, np.arange(len(fp)), fp)` for one point (float64 arithmetic, no FMA).
pub(crate) fn np_interp_arange(x: f64, fp: &[f32]) -> f64 {
    let Some((&first, &last)) = fp.first().zip(fp.last()) else {
        return f64::NAN;
    };
    let n = fp.len();
    if x.is_nan() {
        return x;
    }
    if x < 0.0 {
        return f64::from(first);
    }
    if x >= (n - 1) as f64 {
        return f64::from(last);
    }
    let j = x.floor() as usize;
    let (y0, y1) = (f64::from(fp[j]), f64::from(fp[j + 1]));
    let xj = j as f64;
    if xj == x {
        return y0;
    }
    let slope = (y1 - y0) / ((j + 1) as f64 - xj);
    let value = slope * (x - xj) + y0;
    if value.is_nan() {
        let value = slope * (x - (j + 1) as f64) + y1;
        if value.is_nan() && y0 == y1 {
            return y0;
        }
        return value;
    }
    value
}

/// Karras et al. (2022) sigmas, ρ = 7, from `sigma_max` down to `sigma_min` (float64).
pub(crate) fn karras_sigmas(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    let rho = 7.0f64;
    let min_inv_rho = sigma_min.powf(1.0 / rho);
    let max_inv_rho = sigma_max.powf(1.0 / rho);
    np_linspace(0.0, 1.0, n, true)
        .into_iter()
        .map(|ramp| (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)).powf(rho))
        .collect()
}

/// diffusers `_sigma_to_t`: the fractional training timestep of `sigma`, interpolating linearly
/// in `log σ` between neighbouring training steps. `log_sigmas` is float32, ascending.
pub(crate) fn sigma_to_t(sigma: f64, log_sigmas: &[f32]) -> f64 {
    let n = log_sigmas.len();
    if n < 2 {
        return 0.0;
    }
    let log_sigma = sigma.max(1e-10).ln();
    // `cumsum(dists >= 0).argmax()`: the last index whose log σ is ≤ log_sigma (0 if none).
    let low_idx = log_sigmas
        .iter()
        .rposition(|&l| log_sigma - f64::from(l) >= 0.0)
        .unwrap_or(0)
        .min(n - 2);
    let high_idx = low_idx + 1;
    let low = log_sigmas[low_idx];
    let high = log_sigmas[high_idx];
    // numpy: f32 scalar − f64 scalar → f64; f32 − f32 stays f32.
    let w = (f64::from(low) - log_sigma) / f64::from(low - high);
    let w = w.clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * high_idx as f64
}

/// The natural log of each float32 sigma, in float32 (`np.log` on a float32 array).
pub(crate) fn log_f32(values: &[f32]) -> Vec<f32> {
    values.iter().map(|v| v.ln()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd_schedule() -> (Vec<f32>, Vec<f32>) {
        let betas = betas(
            &BetaSchedule::ScaledLinear {
                start: 0.00085,
                end: 0.012,
            },
            1000,
        );
        let ac = alphas_cumprod(&betas);
        (betas, ac)
    }

    #[test]
    fn golden_training_schedule() {
        // FORMATS §3.1.
        let (betas, ac) = sd_schedule();
        assert_eq!(betas[0], 0.000_849_999_95);
        assert_eq!(betas[1], 0.000_854_698_6);
        assert_eq!(betas[999], 0.011_999_999);
        assert_eq!(ac[0], 0.999_15);
        assert!((ac[999] - 0.004_660_095).abs() < 5e-10);
        let sigmas = training_sigmas(&ac);
        assert!((sigmas[999] - 14.614_647).abs() < 2e-6);
        // torch's float32 sqrt (MKL) is off by one ulp for ~20 % of the table; this is one of them.
        assert!((sigmas[0] - 0.029_167_535).abs() < 4e-9);
    }

    #[test]
    fn numpy_helpers() {
        assert_eq!(
            np_linspace(0.0, 1.0, 5, true),
            vec![0.0, 0.25, 0.5, 0.75, 1.0]
        );
        assert_eq!(
            np_linspace(0.0, 50.0, 4, false),
            vec![0.0, 12.5, 25.0, 37.5]
        );
        assert_eq!(np_linspace(3.0, 7.0, 1, true), vec![3.0]);
        // np.arange(1000, 0, -1000/61) has 62 entries (the last is ~1e-13).
        assert_eq!(np_arange(1000.0, 0.0, -1000.0 / 61.0).len(), 62);
        assert_eq!(
            np_arange(1000.0, 0.0, -250.0),
            vec![1000.0, 750.0, 500.0, 250.0]
        );
        let fp = [1.0f32, 3.0, 7.0];
        assert_eq!(np_interp_arange(-1.0, &fp), 1.0);
        assert_eq!(np_interp_arange(0.5, &fp), 2.0);
        assert_eq!(np_interp_arange(1.25, &fp), 4.0);
        assert_eq!(np_interp_arange(9.0, &fp), 7.0);
    }

    #[test]
    fn sigma_to_t_inverts_the_table() {
        let (_, ac) = sd_schedule();
        let sigmas = training_sigmas(&ac);
        let logs = log_f32(&sigmas);
        for t in [0usize, 1, 250, 500, 998, 999] {
            let got = sigma_to_t(f64::from(sigmas[t]), &logs);
            assert!((got - t as f64).abs() < 1e-3, "{t}: {got}");
        }
    }
}
