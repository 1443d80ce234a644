//! transformers' Depth Anything neck and head (`DepthAnythingNeck`,
//! `DepthAnythingDepthEstimationHead`): the DPT decoder. Field names follow the checkpoint
//! keys under `neck.` and `head.`.

use super::config::DepthConfig;
use crate::Result;
use crate::kernels::conv::Conv2d;
use crate::vision::interpolate::{Mode, interpolate};
use crate::vision::layers::{ConvTranspose2d, conv_transpose2d, conv2d, conv2d_no_bias};
use candle_core::Tensor;
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, VarBuilder};

fn padded(padding: usize) -> Conv2dConfig {
    Conv2dConfig {
        padding,
        ..Default::default()
    }
}

/// The `resize` of a `DepthAnythingReassembleLayer`.
#[derive(Debug)]
enum Resize {
    Up(ConvTranspose2d),
    Same,
    Down(Conv2d),
}

/// transformers `DepthAnythingReassembleLayer`: 1×1 projection, then resize by `factor`.
#[derive(Debug)]
struct ReassembleLayer {
    projection: Conv2d,
    resize: Resize,
}

impl ReassembleLayer {
    fn new(vb: VarBuilder, in_channels: usize, channels: usize, factor: f64) -> Result<Self> {
        let projection = conv2d(
            in_channels,
            channels,
            1,
            Default::default(),
            vb.pp("projection"),
        )?;
        let resize = if factor > 1.0 {
            let k = factor.round() as usize;
            Resize::Up(conv_transpose2d(
                channels,
                channels,
                k,
                ConvTranspose2dConfig {
                    stride: k,
                    ..Default::default()
                },
                vb.pp("resize"),
            )?)
        } else if factor == 1.0 {
            Resize::Same
        } else {
            let stride = (1.0 / factor) as usize;
            Resize::Down(conv2d(
                channels,
                channels,
                3,
                Conv2dConfig {
                    padding: 1,
                    stride: stride.max(1),
                    ..Default::default()
                },
                vb.pp("resize"),
            )?)
        };
        Ok(ReassembleLayer { projection, resize })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.projection.forward(x)?;
        Ok(match &self.resize {
            Resize::Up(conv) => conv.forward(&x)?,
            Resize::Same => x,
            Resize::Down(conv) => conv.forward(&x)?,
        })
    }
}

/// transformers `DepthAnythingPreActResidualLayer`: relu-conv-relu-conv plus the input.
#[derive(Debug)]
struct ResidualLayer {
    convolution1: Conv2d,
    convolution2: Conv2d,
}

impl ResidualLayer {
    fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(ResidualLayer {
            convolution1: conv2d(channels, channels, 3, padded(1), vb.pp("convolution1"))?,
            convolution2: conv2d(channels, channels, 3, padded(1), vb.pp("convolution2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.convolution1.forward(&x.relu()?)?;
        let h = self.convolution2.forward(&h.relu()?)?;
        Ok((h + x)?)
    }
}

/// transformers `DepthAnythingFeatureFusionLayer`.
#[derive(Debug)]
struct FusionLayer {
    projection: Conv2d,
    residual_layer1: ResidualLayer,
    residual_layer2: ResidualLayer,
}

impl FusionLayer {
    fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(FusionLayer {
            projection: conv2d(
                channels,
                channels,
                1,
                Default::default(),
                vb.pp("projection"),
            )?,
            residual_layer1: ResidualLayer::new(vb.pp("residual_layer1"), channels)?,
            residual_layer2: ResidualLayer::new(vb.pp("residual_layer2"), channels)?,
        })
    }

    /// `size = None` doubles the map (`scale_factor=2`).
    fn forward(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        size: Option<(usize, usize)>,
    ) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let mut x = x.clone();
        if let Some(residual) = residual {
            let residual = if residual.dims() != x.dims() {
                interpolate(residual, (h, w), Mode::Bilinear, false)?
            } else {
                residual.clone()
            };
            x = (x + self.residual_layer1.forward(&residual)?)?;
        }
        let x = self.residual_layer2.forward(&x)?;
        let size = size.unwrap_or((h * 2, w * 2));
        let x = interpolate(&x, size, Mode::Bilinear, true)?;
        self.projection.forward(&x)
    }
}

/// transformers `DepthAnythingNeck` (reassemble, 3×3 convs, fusion) and
/// `DepthAnythingDepthEstimationHead`.
#[derive(Debug)]
pub struct DptDecoder {
    reassemble: Vec<ReassembleLayer>,
    convs: Vec<Conv2d>,
    fusion: Vec<FusionLayer>,
    head_conv1: Conv2d,
    head_conv2: Conv2d,
    head_conv3: Conv2d,
    head_in_index: usize,
    patch_size: usize,
    metric: bool,
    max_depth: f64,
}

impl DptDecoder {
    /// Loads the neck (`neck.`) and head (`head.`) from the model's root `vb`.
    pub fn new(vb: VarBuilder, cfg: &DepthConfig) -> Result<Self> {
        let neck = vb.pp("neck");
        let fusion_size = cfg.fusion_hidden_size;
        let reassemble = cfg
            .neck_hidden_sizes
            .iter()
            .zip(&cfg.reassemble_factors)
            .enumerate()
            .map(|(i, (&channels, &factor))| {
                ReassembleLayer::new(
                    neck.pp("reassemble_stage").pp("layers").pp(i),
                    cfg.reassemble_hidden_size,
                    channels,
                    factor,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let convs = cfg
            .neck_hidden_sizes
            .iter()
            .enumerate()
            .map(|(i, &channels)| {
                conv2d_no_bias(channels, fusion_size, 3, padded(1), neck.pp("convs").pp(i))
            })
            .collect::<Result<Vec<_>>>()?;
        let fusion = (0..cfg.neck_hidden_sizes.len())
            .map(|i| FusionLayer::new(neck.pp("fusion_stage").pp("layers").pp(i), fusion_size))
            .collect::<Result<Vec<_>>>()?;
        let head = vb.pp("head");
        let n = cfg.neck_hidden_sizes.len() as i64;
        let head_in_index = cfg.head_in_index.rem_euclid(n) as usize;
        Ok(DptDecoder {
            reassemble,
            convs,
            fusion,
            head_conv1: conv2d(fusion_size, fusion_size / 2, 3, padded(1), head.pp("conv1"))?,
            head_conv2: conv2d(
                fusion_size / 2,
                cfg.head_hidden_size,
                3,
                padded(1),
                head.pp("conv2"),
            )?,
            head_conv3: conv2d(
                cfg.head_hidden_size,
                1,
                1,
                Default::default(),
                head.pp("conv3"),
            )?,
            head_in_index,
            patch_size: cfg.patch_size,
            metric: cfg.depth_estimation_type == "metric",
            max_depth: cfg.max_depth.unwrap_or(1.0),
        })
    }

    /// Depth `[B, patch_h·patch, patch_w·patch]` from the backbone's hidden states
    /// (`[B, 1 + patch_h·patch_w, C]` each).
    pub fn forward(
        &self,
        hidden_states: &[Tensor],
        patch_h: usize,
        patch_w: usize,
    ) -> Result<Tensor> {
        let mut features = Vec::with_capacity(hidden_states.len());
        for ((hidden, layer), conv) in hidden_states.iter().zip(&self.reassemble).zip(&self.convs) {
            let (batch, tokens, channels) = hidden.dims3()?;
            let map = hidden
                .narrow(1, 1, tokens - 1)?
                .reshape((batch, patch_h, patch_w, channels))?
                .permute((0, 3, 1, 2))?
                .contiguous()?;
            features.push(conv.forward(&layer.forward(&map)?)?);
        }
        // Fusion runs from the coarsest map to the finest.
        features.reverse();
        let mut fused_maps = Vec::with_capacity(features.len());
        let mut fused: Option<Tensor> = None;
        for (i, (feature, layer)) in features.iter().zip(&self.fusion).enumerate() {
            let size = match features.get(i + 1) {
                Some(next) => {
                    let (_, _, h, w) = next.dims4()?;
                    Some((h, w))
                }
                None => None,
            };
            let out = match &fused {
                None => layer.forward(feature, None, size)?,
                Some(previous) => layer.forward(previous, Some(feature), size)?,
            };
            fused_maps.push(out.clone());
            fused = Some(out);
        }
        let Some(x) = fused_maps.get(self.head_in_index) else {
            return Err(crate::Error::InvalidArgument(
                "Depth Anything: no fused feature map for the head".into(),
            ));
        };
        let x = self.head_conv1.forward(x)?;
        let size = (patch_h * self.patch_size, patch_w * self.patch_size);
        let x = interpolate(&x, size, Mode::Bilinear, true)?;
        let x = self.head_conv2.forward(&x)?.relu()?;
        let x = self.head_conv3.forward(&x)?;
        let x = if self.metric {
            candle_nn::ops::sigmoid(&x)?
        } else {
            x.relu()?
        };
        Ok((x * self.max_depth)?.squeeze(1)?)
    }
}
