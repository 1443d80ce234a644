//! Convolution layers of the preprocessor networks on Kiln's fast CPU convolution
//! ([`crate::kernels::conv`], always f32): `nn.Conv2d` and `nn.ConvTranspose2d` (candle's CPU
//! transposed convolution is a direct loop, several times slower than torch on these sizes).

use crate::kernels::conv::Conv2d as FastConv;
use crate::kernels::{Precision, with_precision};
use crate::{Error, Result};
use candle_core::{DType, Tensor};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, VarBuilder};

/// `nn.Conv2d(in, out, kernel, stride, padding)` (bias when the file has one); candle's
/// signature, on Kiln's convolution (dilation and groups must be 1).
pub fn conv2d(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> Result<FastConv> {
    if cfg.dilation != 1 || cfg.groups != 1 {
        return Err(Error::InvalidArgument(
            "dilated or grouped convolutions are not supported here".into(),
        ));
    }
    with_precision(Precision::F32, || {
        FastConv::new(in_ch, out_ch, kernel, cfg.stride, cfg.padding, vb)
    })
}

/// [`conv2d`] for layers without a bias (the same loader: a bias is used only when present).
pub fn conv2d_no_bias(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> Result<FastConv> {
    conv2d(in_ch, out_ch, kernel, cfg, vb)
}

/// `nn.ConvTranspose2d` with candle's signature (see [`ConvTranspose2d`]).
pub fn conv_transpose2d(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    cfg: ConvTranspose2dConfig,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    if cfg.dilation != 1 {
        return Err(Error::InvalidArgument(
            "dilated transposed convolutions are not supported here".into(),
        ));
    }
    ConvTranspose2d::new(
        in_ch,
        out_ch,
        kernel,
        (cfg.stride, cfg.padding, cfg.output_padding),
        vb,
    )
}

/// `nn.ConvTranspose2d(in, out, kernel, stride, padding, output_padding)` with bias.
#[derive(Debug)]
pub struct ConvTranspose2d {
    /// `kernel == stride`, no padding: a per-pixel matmul; else the equivalent convolution.
    path: Path,
    bias: Tensor,
    out_ch: usize,
    kernel: usize,
}

#[derive(Debug)]
enum Path {
    /// Weight as `[in, out·k·k]`.
    PixelMatmul(Tensor),
    /// Zero-stuffed input convolved with the flipped, transposed kernel.
    Stuffed {
        conv: FastConv,
        stride: usize,
        pad_low: usize,
        pad_high: usize,
    },
}

impl ConvTranspose2d {
    /// Loads `weight [in, out, k, k]` and `bias [out]` under `vb`.
    pub fn new(
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        (stride, padding, output_padding): (usize, usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb
            .get((in_ch, out_ch, kernel, kernel), "weight")?
            .to_dtype(DType::F32)?;
        let bias = vb.get(out_ch, "bias")?.to_dtype(DType::F32)?;
        if stride == 0 || padding >= kernel || output_padding >= stride {
            return Err(Error::InvalidArgument(format!(
                "unsupported transposed convolution (kernel {kernel}, stride {stride}, padding \
                 {padding})"
            )));
        }
        let path = if kernel == stride && padding == 0 && output_padding == 0 {
            Path::PixelMatmul(weight.reshape((in_ch, out_ch * kernel * kernel))?)
        } else {
            // out = conv(stuff(x), W') with W'[o, i, a, b] = W[i, o, k-1-a, k-1-b].
            let flipped = weight.flip(&[2, 3])?.transpose(0, 1)?.contiguous()?;
            let vb = VarBuilder::from_tensors(
                [("weight".to_string(), flipped)].into_iter().collect(),
                DType::F32,
                vb.device(),
            );
            let conv = conv2d(in_ch, out_ch, kernel, Conv2dConfig::default(), vb)?;
            Path::Stuffed {
                conv,
                stride,
                pad_low: kernel - 1 - padding,
                pad_high: kernel - 1 - padding + output_padding,
            }
        };
        Ok(ConvTranspose2d {
            path,
            bias,
            out_ch,
            kernel,
        })
    }

    /// Applies the layer to `x [1, in, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, in_ch, h, w) = x.dims4()?;
        let out = match &self.path {
            Path::PixelMatmul(weight) => {
                let k = self.kernel;
                // [B·H·W, in] × [in, out·k·k] → [B, H, W, out, k, k] → [B, out, H, k, W, k].
                let pixels = x.permute((0, 2, 3, 1))?.reshape((batch * h * w, in_ch))?;
                let y = pixels.matmul(weight)?;
                y.reshape((batch, h, w, self.out_ch, k, k))?
                    .permute((0, 3, 1, 4, 2, 5))?
                    .reshape((batch, self.out_ch, h * k, w * k))?
            }
            Path::Stuffed {
                conv,
                stride,
                pad_low,
                pad_high,
            } => {
                let stuffed = stuff(x, *stride, *pad_low, *pad_high)?;
                conv.forward(&stuffed)?
            }
        };
        Ok(out.broadcast_add(&self.bias.reshape((1, self.out_ch, 1, 1))?)?)
    }
}

/// `x` with `stride − 1` zeros between pixels and zero borders `low` (top/left) and `high`
/// (bottom/right).
fn stuff(x: &Tensor, stride: usize, low: usize, high: usize) -> Result<Tensor> {
    let (batch, channels, h, w) = x.dims4()?;
    let out_h = (h.max(1) - 1) * stride + 1 + low + high;
    let out_w = (w.max(1) - 1) * stride + 1 + low + high;
    let input = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; batch * channels * out_h * out_w];
    for (plane_in, plane_out) in input.chunks(h * w).zip(out.chunks_mut(out_h * out_w)) {
        for y in 0..h {
            let row = &plane_in[y * w..(y + 1) * w];
            let dst = &mut plane_out[(low + y * stride) * out_w..];
            for (x, &v) in row.iter().enumerate() {
                dst[low + x * stride] = v;
            }
        }
    }
    Ok(Tensor::from_vec(
        out,
        (batch, channels, out_h, out_w),
        x.device(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use std::collections::HashMap;

    fn check(in_ch: usize, out_ch: usize, k: usize, stride: usize, padding: usize, op: usize) {
        let dev = Device::Cpu;
        let weight = Tensor::randn(0f32, 1.0, (in_ch, out_ch, k, k), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, out_ch, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, in_ch, 5, 7), &dev).unwrap();
        let tensors: HashMap<String, Tensor> = [
            ("weight".to_string(), weight.clone()),
            ("bias".to_string(), bias.clone()),
        ]
        .into_iter()
        .collect();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let layer = ConvTranspose2d::new(in_ch, out_ch, k, (stride, padding, op), vb).unwrap();
        let got = layer.forward(&x).unwrap();
        let want = x
            .conv_transpose2d(&weight, padding, op, stride, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, out_ch, 1, 1)).unwrap())
            .unwrap();
        assert_eq!(got.dims(), want.dims());
        let err = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(err < 1e-4, "k{k} s{stride} p{padding} op{op}: {err}");
    }

    #[test]
    fn transposed_convolutions_match_candle() {
        check(3, 4, 3, 2, 1, 1);
        check(4, 2, 4, 4, 0, 0);
        check(2, 3, 2, 2, 0, 0);
        check(3, 2, 3, 1, 1, 0);
    }
}
