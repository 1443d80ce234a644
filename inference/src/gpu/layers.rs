//! Layers with their weights on the GPU, and the loader that uploads them by diffusers name:
//! shared by the GPU UNet and VAE decoder.

use super::{Gpu, GpuTensor};
use crate::Result;
use crate::io::weights::Weights;
use candle_core::{DType, Device};

/// A Linear layer (`w [out, in]`; a 1×1 convolution's `[out, in, 1, 1]` is read as the same).
pub(crate) struct Linear {
    w: GpuTensor,
    b: Option<GpuTensor>,
}

impl Linear {
    pub(crate) fn forward(&self, gpu: &Gpu, x: &GpuTensor) -> Result<GpuTensor> {
        gpu.linear(x, &self.w, self.b.as_ref())
    }
}

/// A 2-D convolution with zero padding.
pub(crate) struct Conv {
    w: GpuTensor,
    b: Option<GpuTensor>,
    stride: usize,
    pad: usize,
}

impl Conv {
    pub(crate) fn forward(&self, gpu: &Gpu, x: &GpuTensor) -> Result<GpuTensor> {
        gpu.conv2d(x, &self.w, self.b.as_ref(), self.stride, self.pad)
    }
}

/// A normalisation's scale and shift.
pub(crate) struct Norm {
    pub(crate) gamma: GpuTensor,
    pub(crate) beta: GpuTensor,
}

/// Uploads weights by diffusers name.
pub(crate) struct Loader<'a> {
    pub(crate) gpu: &'a Gpu,
    pub(crate) weights: &'a Weights,
}

impl Loader<'_> {
    fn tensor(&self, name: &str) -> Result<GpuTensor> {
        let t = self
            .weights
            .load_raw(name, &Device::Cpu)?
            .to_dtype(DType::F32)?;
        let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
        self.gpu.upload(&values, t.dims())
    }

    fn optional(&self, name: &str) -> Result<Option<GpuTensor>> {
        if self.has(name) {
            Ok(Some(self.tensor(name)?))
        } else {
            Ok(None)
        }
    }

    /// Whether the weights hold `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.weights.contains(name)
    }

    /// `{p}.weight` and, when present, `{p}.bias` as a Linear layer.
    pub(crate) fn linear(&self, p: &str) -> Result<Linear> {
        let w = self.tensor(&format!("{p}.weight"))?;
        let w = match w.shape() {
            [o, i, 1, 1] => w.reshape(&[*o, *i])?,
            _ => w,
        };
        Ok(Linear {
            w,
            b: self.optional(&format!("{p}.bias"))?,
        })
    }

    /// `{p}.weight` (and bias) as a convolution.
    pub(crate) fn conv(&self, p: &str, stride: usize, pad: usize) -> Result<Conv> {
        Ok(Conv {
            w: self.tensor(&format!("{p}.weight"))?,
            b: self.optional(&format!("{p}.bias"))?,
            stride,
            pad,
        })
    }

    /// `{p}.weight` and `{p}.bias` of a normalisation.
    pub(crate) fn norm(&self, p: &str) -> Result<Norm> {
        Ok(Norm {
            gamma: self.tensor(&format!("{p}.weight"))?,
            beta: self.tensor(&format!("{p}.bias"))?,
        })
    }
}
