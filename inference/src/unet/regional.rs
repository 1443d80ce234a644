//! Regional prompts in cross-attention: the "attention" mode of A1111's Regional Prompter and
//! of diffusers' community regional prompting pipeline, as `docs/REGIONAL.md` defines it.
//!
//! In every cross-attention layer (attn2), each batch row that has region layers attends with
//! the same query to its base context and to every region's context. The layer's result (before
//! `to_out`) at each token is the base result with the region results composited over it like
//! layers, bottom to top, each with opacity `α = weight · coverage`, where coverage is the
//! region's pixel coverage area-averaged to the layer's feature grid (torch
//! `adaptive_avg_pool2d`, i.e. `interpolate(mode="area")`):
//!
//! ```text
//! out = base · Π_j (1 − α_j) + Σ_i out_i · α_i · Π_{j>i} (1 − α_j)
//! ```
//!
//! The weights sum to one, so a later region wins where regions overlap with α = 1, and
//! `to_out` (affine) gives the same result before or after the mix. A region covering nothing
//! leaves the layer's output bit-identical to the base; one covering everything with weight 1
//! replaces it. Rows without region layers, and attn1 layers, run the default attention.
//!
//! The processor is a [`AttentionProcessor`] hook; [`RegionalAttention::mix`] works on
//! attention results before `to_out`, so a later processor that adds its own term (IP-Adapter's
//! decoupled attention) can call it and add to its result.

use crate::unet::attention::{Attention, AttentionProcessor, AttnSite};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One region over a batch row's base attention.
#[derive(Clone, Debug)]
pub struct RegionLayer {
    /// The region's text context `[1, M, C]` (any number of 77-token chunks).
    pub context: Tensor,
    /// Opacity per output pixel, row-major `height × width`, in `[0, 1]` (coverage × weight).
    pub alpha: Arc<[f32]>,
}

/// The region layers of one batch row, bottom to top.
#[derive(Clone, Debug)]
pub struct RowRegions {
    /// Batch row (with CFG: 0 = unconditional, 1 = conditional).
    pub row: usize,
    /// Layers composited over the row's base attention, in order.
    pub layers: Vec<RegionLayer>,
}

/// Compositing weights of one row at one grid: `[1, N, 1]` each, f32.
struct RowWeights {
    base: Tensor,
    layers: Vec<Tensor>,
}

/// Compositing weights of every row, per feature grid `(height, width)`.
type WeightCache = HashMap<(usize, usize), Arc<Vec<RowWeights>>>;

/// The regional-prompt attention processor for one generation.
pub struct RegionalAttention {
    /// `(height, width)` of the alpha maps (the output image).
    pixels: (usize, usize),
    rows: Vec<RowRegions>,
    /// Weights per feature grid `(height, width)`, made on first use.
    cache: Mutex<WeightCache>,
}

impl std::fmt::Debug for RegionalAttention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionalAttention")
            .field("pixels", &self.pixels)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// torch `adaptive_avg_pool2d` (= `interpolate(mode="area")`) of a row-major `from` map to
/// `to`: output cell `(i, j)` averages rows `⌊i·H/h⌋ ≤ y < ⌈(i+1)·H/h⌉` and the columns
/// likewise.
pub fn area_resize(src: &[f32], from: (usize, usize), to: (usize, usize)) -> Vec<f32> {
    let ((src_h, src_w), (dst_h, dst_w)) = (from, to);
    let window = |i: usize, src: usize, dst: usize| (i * src / dst, ((i + 1) * src).div_ceil(dst));
    let mut out = Vec::with_capacity(dst_h * dst_w);
    for i in 0..dst_h {
        let (y0, y1) = window(i, src_h, dst_h);
        for j in 0..dst_w {
            let (x0, x1) = window(j, src_w, dst_w);
            let mut sum = 0f64;
            for y in y0..y1 {
                let row = src.get(y * src_w + x0..y * src_w + x1).unwrap_or(&[]);
                sum += row.iter().map(|&v| f64::from(v)).sum::<f64>();
            }
            let count = ((y1 - y0) * (x1 - x0)).max(1);
            out.push((sum / count as f64) as f32);
        }
    }
    out
}

/// Compositing weights at one position for layers of opacity `alphas` (bottom to top) over a
/// base: returns the base's weight `Π (1 − α_j)` and fills `weights[i] = α_i · Π_{j>i} (1 − α_j)`.
pub fn composite_weights(alphas: &[f32], weights: &mut [f32]) -> f32 {
    let mut remaining = 1f32;
    for (alpha, weight) in alphas.iter().zip(weights.iter_mut()).rev() {
        *weight = alpha * remaining;
        remaining *= 1.0 - alpha;
    }
    remaining
}

impl RegionalAttention {
    /// A processor for alpha maps of `pixels = (height, width)` and the given rows.
    pub fn new(pixels: (usize, usize), rows: Vec<RowRegions>) -> Result<Self> {
        let size = pixels.0 * pixels.1;
        for row in &rows {
            for layer in &row.layers {
                if layer.alpha.len() != size {
                    return Err(Error::InvalidArgument(format!(
                        "region opacity map has {} values for a {}x{} image",
                        layer.alpha.len(),
                        pixels.1,
                        pixels.0
                    )));
                }
                if layer.context.dims().len() != 3 || layer.context.dim(0)? != 1 {
                    return Err(Error::InvalidArgument(format!(
                        "region context must be [1, M, C], got {:?}",
                        layer.context.dims()
                    )));
                }
            }
        }
        Ok(RegionalAttention {
            pixels,
            rows,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The compositing weights of every row at a feature grid (cached).
    fn weights(&self, grid: (usize, usize), device: &Device) -> Result<Arc<Vec<RowWeights>>> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| Error::InvalidArgument("regional attention cache poisoned".into()))?;
        if let Some(weights) = cache.get(&grid) {
            return Ok(weights.clone());
        }
        let n = grid.0 * grid.1;
        let mut all = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            let alphas: Vec<Vec<f32>> = row
                .layers
                .iter()
                .map(|l| area_resize(&l.alpha, self.pixels, grid))
                .collect();
            let mut base = vec![0f32; n];
            let mut layers = vec![vec![0f32; n]; alphas.len()];
            let mut at = vec![0f32; alphas.len()];
            let mut weights = vec![0f32; alphas.len()];
            for p in 0..n {
                for (a, map) in at.iter_mut().zip(&alphas) {
                    *a = map.get(p).copied().unwrap_or(0.0);
                }
                if let Some(b) = base.get_mut(p) {
                    *b = composite_weights(&at, &mut weights);
                }
                for (layer, w) in layers.iter_mut().zip(&weights) {
                    if let Some(slot) = layer.get_mut(p) {
                        *slot = *w;
                    }
                }
            }
            let tensor = |v: Vec<f32>| Tensor::from_vec(v, (1, n, 1), device);
            all.push(RowWeights {
                base: tensor(base)?,
                layers: layers
                    .into_iter()
                    .map(tensor)
                    .collect::<candle_core::Result<_>>()?,
            });
        }
        let all = Arc::new(all);
        cache.insert(grid, all.clone());
        Ok(all)
    }

    /// Mixes the region results into `base` (`[B, N, C]`, the attention result of `q` over the
    /// base context before `to_out`), on the feature grid `grid` (`N = grid.0 · grid.1`).
    pub fn mix(
        &self,
        attn: &Attention,
        q: &Tensor,
        base: Tensor,
        context_dtype: DType,
        grid: (usize, usize),
    ) -> Result<Tensor> {
        let (batch, n, _) = base.dims3()?;
        if n != grid.0 * grid.1 {
            return Err(Error::InvalidArgument(format!(
                "regional attention: {n} tokens for a {}x{} grid",
                grid.1, grid.0
            )));
        }
        let weights = self.weights(grid, base.device())?;
        let dtype = base.dtype();
        let mut rows = (0..batch)
            .map(|i| base.narrow(0, i, 1))
            .collect::<candle_core::Result<Vec<_>>>()?;
        for (regions, w) in self.rows.iter().zip(weights.iter()) {
            let Some(slot) = rows.get_mut(regions.row) else {
                return Err(Error::InvalidArgument(format!(
                    "regional attention: row {} of a batch of {batch}",
                    regions.row
                )));
            };
            let q_row = q.narrow(0, regions.row, 1)?;
            let mut mixed = slot.broadcast_mul(&w.base.to_dtype(dtype)?)?;
            for (layer, lw) in regions.layers.iter().zip(&w.layers) {
                let (k, v) = attn.key_value(&layer.context.to_dtype(context_dtype)?)?;
                let out = attn.attend(&q_row, &k, &v)?;
                mixed = (mixed + out.broadcast_mul(&lw.to_dtype(dtype)?)?)?;
            }
            *slot = mixed;
        }
        Ok(Tensor::cat(&rows, 0)?)
    }
}

impl AttentionProcessor for RegionalAttention {
    fn process(
        &self,
        site: &AttnSite,
        attn: &Attention,
        hidden: &Tensor,
        context: Option<&Tensor>,
        grid: (usize, usize),
    ) -> Result<Option<Tensor>> {
        let Some(context) = context else {
            return Ok(None);
        };
        if !site.cross || self.rows.is_empty() {
            return Ok(None);
        }
        let q = attn.query(hidden)?;
        let (k, v) = attn.key_value(context)?;
        let base = attn.attend(&q, &k, &v)?;
        let mixed = self.mix(attn, &q, base, context.dtype(), grid)?;
        Ok(Some(attn.out(&mixed)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_resize_averages_torch_windows() {
        // 5 -> 2 columns: windows [0, 3) and [2, 5) (they overlap, as in torch).
        let src = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(area_resize(&src, (1, 5), (1, 2)), vec![2.0, 4.0]);
        // 4x4 -> 2x2 block means.
        let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(
            area_resize(&src, (4, 4), (2, 2)),
            vec![2.5, 4.5, 10.5, 12.5]
        );
        // Same size: unchanged.
        assert_eq!(area_resize(&src, (4, 4), (4, 4)), src);
    }

    #[test]
    fn later_layers_win_and_weights_sum_to_one() {
        let mut w = [0.0; 2];
        assert_eq!(composite_weights(&[1.0, 1.0], &mut w), 0.0);
        assert_eq!(w, [0.0, 1.0]);
        assert_eq!(composite_weights(&[0.0, 0.0], &mut w), 1.0);
        assert_eq!(w, [0.0, 0.0]);
        let base = composite_weights(&[0.5, 0.25], &mut w);
        assert_eq!(w, [0.375, 0.25]);
        assert!((base + w[0] + w[1] - 1.0).abs() < 1e-7);
        let mut none: [f32; 0] = [];
        assert_eq!(composite_weights(&[], &mut none), 1.0);
    }

    #[test]
    fn alpha_maps_of_the_wrong_size_are_refused() {
        let context = Tensor::zeros((1, 77, 8), DType::F32, &Device::Cpu).unwrap();
        let rows = vec![RowRegions {
            row: 0,
            layers: vec![RegionLayer {
                context,
                alpha: vec![1.0; 15].into(),
            }],
        }];
        assert!(RegionalAttention::new((4, 4), rows).is_err());
    }
}
