//! `scale · ΔW` of one module (FORMATS §5.1–5.2), in f32, shaped like the target weight.

use super::file::{Factor, Factors, Module, PeftScale};
use candle_core::{Result, Tensor};

/// The scale `α / r` (or its LoHa/LoKr/PEFT/rsLoRA form) of a module.
pub fn scale(module: &Module, peft: Option<&PeftScale>, module_path: &str) -> Result<f64> {
    let alpha = module.alpha.map(f64::from);
    Ok(match &module.factors {
        Factors::LoRA { down, .. } => {
            let rank = down.dim(0)? as f64;
            match (alpha, peft) {
                (Some(alpha), _) => alpha / rank,
                (None, Some(p)) => {
                    let r = pattern(&p.rank_pattern, module_path)
                        .or(p.r)
                        .map_or(rank, f64::from);
                    let a = pattern(&p.alpha_pattern, module_path)
                        .or(p.alpha)
                        .map_or(r, f64::from);
                    if p.rslora { a / r.sqrt() } else { a / r }
                }
                (None, None) => 1.0,
            }
        }
        Factors::LoHa { w1b, .. } => {
            let rank = w1b.dim(0)? as f64;
            alpha.map_or(1.0, |a| a / rank)
        }
        Factors::LoKr { w1, w2 } => {
            let dim = match (w1, w2) {
                (_, Factor::Product(_, b)) | (Factor::Product(_, b), Factor::Full(_)) => {
                    Some(b.dim(0)? as f64)
                }
                (Factor::Full(_), Factor::Full(_)) => None,
            };
            match (dim, alpha) {
                (Some(dim), Some(alpha)) => alpha / dim,
                _ => 1.0,
            }
        }
        Factors::Full(_) => 1.0,
    })
}

/// PEFT's pattern rule: a key matches a module path that equals it or ends with `.key`.
fn pattern(patterns: &std::collections::BTreeMap<String, f32>, path: &str) -> Option<f32> {
    patterns
        .iter()
        .find(|(k, _)| path == k.as_str() || path.ends_with(&format!(".{k}")))
        .map(|(_, v)| *v)
}

/// `ΔW` (unscaled) reshaped to `target` dims, or `None` when its size does not fit.
pub fn delta(factors: &Factors, target: &[usize]) -> Result<Option<Tensor>> {
    let out = target.first().copied().unwrap_or(0);
    let numel: usize = target.iter().product();
    let flat = match factors {
        Factors::LoRA { down, up, mid } => {
            let up = up.flatten_from(1)?;
            match mid {
                None => up.matmul(&down.flatten_from(1)?)?,
                Some(mid) => tucker(&up, mid, down)?,
            }
        }
        Factors::LoHa { w1a, w1b, w2a, w2b } => {
            let a = w1a.flatten_from(1)?.matmul(&w1b.flatten_from(1)?)?;
            let b = w2a.flatten_from(1)?.matmul(&w2b.flatten_from(1)?)?;
            (a * b)?
        }
        Factors::LoKr { w1, w2 } => match kron(w1, w2, target)? {
            Some(t) => t,
            None => return Ok(None),
        },
        Factors::Full(diff) => diff.clone(),
    };
    if flat.elem_count() != numel || flat.dim(0)? != out {
        return Ok(None);
    }
    Ok(Some(flat.reshape(target)?.contiguous()?))
}

/// LoCon with a Tucker core: `ΔW[o,i,:,:] = Σ_ab up[o,a] · mid[a,b,:,:] · down[b,i]`.
fn tucker(up: &Tensor, mid: &Tensor, down: &Tensor) -> Result<Tensor> {
    let (r_out, r_in) = (mid.dim(0)?, mid.dim(1)?);
    let taps: usize = mid.dims().iter().skip(2).product();
    let out = up.dim(0)?;
    // [out, r_in·taps] → [out, r_in, taps] → [out, taps, r_in] · [r_in, in] → [out, taps, in].
    let t = up.matmul(&mid.reshape((r_out, r_in * taps))?)?;
    let t = t
        .reshape((out, r_in, taps))?
        .transpose(1, 2)?
        .contiguous()?;
    let down = down.flatten_from(1)?;
    let t = t.broadcast_matmul(&down)?;
    let inputs = down.dim(1)?;
    t.transpose(1, 2)?
        .contiguous()?
        .reshape((out, inputs * taps))
}

/// Kronecker product `w1 ⊗ w2` laid out as `[out, in·k·k]` for a `target` of `[out, in(, k, k)]`.
fn kron(w1: &Factor, w2: &Factor, target: &[usize]) -> Result<Option<Tensor>> {
    let w1 = product(w1)?;
    let w2 = product(w2)?;
    let (a, b) = (w1.dim(0)?, w1.elem_count() / w1.dim(0)?.max(1));
    let c = w2.dim(0)?;
    let (out, inputs) = (
        target.first().copied().unwrap_or(0),
        target.get(1).copied().unwrap_or(1),
    );
    let taps: usize = target.iter().skip(2).product();
    if a * c != out || b == 0 || !inputs.is_multiple_of(b) {
        return Ok(None);
    }
    let d = inputs / b;
    if w2.elem_count() != c * d * taps {
        return Ok(None);
    }
    let w1 = w1.reshape((a, 1, b, 1, 1))?;
    let w2 = w2.reshape((1, c, 1, d, taps))?;
    let k = w1.broadcast_mul(&w2)?; // [a, c, b, d, taps]
    Ok(Some(k.reshape((a * c, b * d * taps))?))
}

/// A factor as one matrix (`a · b` when stored as a product; conv factors keep their taps).
fn product(f: &Factor) -> Result<Tensor> {
    match f {
        Factor::Full(w) => Ok(w.clone()),
        Factor::Product(a, b) => a.flatten_from(1)?.matmul(&b.flatten_from(1)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(values: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(values, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn kron_of_small_matrices() {
        // [[1,2],[3,4]] ⊗ [[0,1]] = [[0,1,0,2],[0,3,0,4]]
        let w1 = Factor::Full(t(&[1., 2., 3., 4.], &[2, 2]));
        let w2 = Factor::Full(t(&[0., 1.], &[1, 2]));
        let k = kron(&w1, &w2, &[2, 4]).unwrap().unwrap();
        assert_eq!(
            k.to_vec2::<f32>().unwrap(),
            vec![vec![0., 1., 0., 2.], vec![0., 3., 0., 4.]]
        );
        // Wrong target → None.
        assert!(kron(&w1, &w2, &[3, 4]).unwrap().is_none());
    }

    #[test]
    fn lora_delta_is_up_times_down_and_checks_size() {
        let f = Factors::LoRA {
            down: t(&[1., 2.], &[1, 2]),
            up: t(&[3., 4.], &[2, 1]),
            mid: None,
        };
        let d = delta(&f, &[2, 2]).unwrap().unwrap();
        assert_eq!(
            d.to_vec2::<f32>().unwrap(),
            vec![vec![3., 6.], vec![4., 8.]]
        );
        assert!(delta(&f, &[4, 1]).unwrap().is_none());
        let d = delta(&f, &[2, 2, 1, 1]).unwrap().unwrap();
        assert_eq!(d.dims(), &[2, 2, 1, 1]);
    }

    #[test]
    fn tucker_matches_the_sum() {
        // r = 1, k = 2 taps: ΔW[o,i,t] = up[o]·mid[t]·down[i]
        let up = t(&[1., 2.], &[2, 1]);
        let mid = t(&[10., 20.], &[1, 1, 1, 2]);
        let down = t(&[1., -1., 3.], &[1, 3, 1, 1]);
        let f = Factors::LoRA {
            down,
            up,
            mid: Some(mid),
        };
        let d = delta(&f, &[2, 3, 1, 2]).unwrap().unwrap();
        let v = d.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut expected = Vec::new();
        for o in [1., 2.] {
            for i in [1., -1., 3.] {
                for m in [10., 20.] {
                    expected.push(o * m * i);
                }
            }
        }
        assert_eq!(v, expected);
    }
}
