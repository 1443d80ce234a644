//! Tiled VAE decode for large images, the scheme of diffusers' `AutoencoderKL.tiled_decode`:
//! latent tiles of 64 cells overlapping by a quarter, each decoded alone, blended linearly over
//! the overlap and cropped. Memory stays that of one 512² decode whatever the image size.

use crate::Result;
use crate::vae::Vae;
use candle_core::{D, Tensor};

/// Latent tile side (diffusers: `sample_size / 8` = 64 for SD VAEs).
pub const TILE_LATENT: usize = 64;
/// Fraction of a tile that overlaps its neighbour.
const OVERLAP: f64 = 0.25;

/// Whether a latent of this size is decoded in tiles: above 128×128 latents (1024² pixels) in
/// float32, from 128×128 on in bf16, so SDXL's native 1024² decodes in tiles in bf16 (the
/// untiled decode holds several 128-channel 1024² activations, ≈ 2.9 GB; tiled, a 512²-sized
/// peak) while the float32 path keeps diffusers' untiled default.
pub fn needs_tiling(h: usize, w: usize, precision: crate::kernels::Precision) -> bool {
    match precision {
        crate::kernels::Precision::F32 => h * w > 128 * 128,
        crate::kernels::Precision::Bf16 | crate::kernels::Precision::Int8 => h * w >= 128 * 128,
    }
}

/// Blends the last `extent` rows/columns of `a` into the first of `b` along `dim`.
fn blend(a: &Tensor, b: &Tensor, dim: usize, extent: usize) -> Result<Tensor> {
    let extent = extent.min(a.dim(dim)?).min(b.dim(dim)?);
    if extent == 0 {
        return Ok(b.clone());
    }
    let a_len = a.dim(dim)?;
    let a_tail = a.narrow(dim, a_len - extent, extent)?;
    let b_head = b.narrow(dim, 0, extent)?;
    let weights: Vec<f32> = (0..extent).map(|x| x as f32 / extent as f32).collect();
    let mut shape = vec![1usize; b.rank()];
    if let Some(s) = shape.get_mut(dim) {
        *s = extent;
    }
    let w = Tensor::from_vec(weights, shape, b.device())?.to_dtype(b.dtype())?;
    let one_minus = (w.ones_like()? - &w)?;
    let mixed = (a_tail.broadcast_mul(&one_minus)? + b_head.broadcast_mul(&w)?)?;
    let b_rest = b.narrow(dim, extent, b.dim(dim)? - extent)?;
    Ok(Tensor::cat(&[&mixed, &b_rest], dim)?)
}

/// Decodes `z` (already divided by the scaling factor) tile by tile.
pub fn tiled_decode(vae: &Vae, z: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = z.dims4()?;
    let factor = vae.config().scale_factor();
    let step = (TILE_LATENT as f64 * (1.0 - OVERLAP)) as usize;
    let tile_sample = TILE_LATENT * factor;
    let blend_extent = (tile_sample as f64 * OVERLAP) as usize;
    let row_limit = tile_sample - blend_extent;
    let mut rows: Vec<Vec<Tensor>> = Vec::new();
    for i in (0..h).step_by(step) {
        let mut row = Vec::new();
        for j in (0..w).step_by(step) {
            let tile =
                z.narrow(2, i, TILE_LATENT.min(h - i))?
                    .narrow(3, j, TILE_LATENT.min(w - j))?;
            row.push(vae.decode(&tile)?);
        }
        rows.push(row);
    }
    // Like diffusers, each tile is blended with its already-blended neighbours above and left.
    let mut result_rows = Vec::new();
    for i in 0..rows.len() {
        let mut result_row = Vec::new();
        for j in 0..rows.get(i).map(Vec::len).unwrap_or(0) {
            let Some(mut tile) = rows.get(i).and_then(|r| r.get(j)).cloned() else {
                continue;
            };
            if i > 0
                && let Some(above) = rows.get(i - 1).and_then(|r| r.get(j))
            {
                tile = blend(above, &tile, 2, blend_extent)?;
            }
            if j > 0
                && let Some(left) = rows.get(i).and_then(|r| r.get(j - 1))
            {
                tile = blend(left, &tile, 3, blend_extent)?;
            }
            let th = tile.dim(2)?.min(row_limit);
            let tw = tile.dim(3)?.min(row_limit);
            result_row.push(tile.narrow(2, 0, th)?.narrow(3, 0, tw)?);
            if let Some(slot) = rows.get_mut(i).and_then(|r| r.get_mut(j)) {
                *slot = tile;
            }
        }
        result_rows.push(Tensor::cat(&result_row, D::Minus1)?);
    }
    Ok(Tensor::cat(&result_rows, 2)?)
}

#[cfg(test)]
mod tests {
    use super::needs_tiling;
    use crate::kernels::Precision;

    #[test]
    fn bf16_tiles_sdxl_native_size_and_fp32_keeps_it_whole() {
        // 1024² pixels = a 128×128 latent.
        assert!(!needs_tiling(128, 128, Precision::F32));
        assert!(needs_tiling(128, 128, Precision::Bf16));
        assert!(needs_tiling(129, 128, Precision::F32));
        assert!(!needs_tiling(96, 128, Precision::Bf16));
        assert!(!needs_tiling(64, 64, Precision::F32));
    }
}
