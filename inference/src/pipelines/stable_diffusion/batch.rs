//! Batched text-to-image: several panels, each with its own prompt, negative and seed, denoised
//! together in one UNet batch (diffusers' pipelines called with a list of prompts and a list of
//! generators), optionally sharing self-attention tokens (`unet::consistent`).
//!
//! Each panel keeps everything a single generation with its request would have: its own
//! `TorchRng` seeded with its seed (so its initial noise, and an ancestral sampler's noise, are
//! what `generate` draws), its own scheduler state. The UNet batch is
//! `[uncond_0 … uncond_{N−1}, cond_0 … cond_{N−1}]` with CFG, `[cond_0 … cond_{N−1}]` without.
//! Prompts are padded to the batch's largest 75-token chunk count, so a panel whose prompt has
//! fewer chunks than another's is conditioned on extra padding (short prompts: no difference).

use super::{GenerateRequest, StableDiffusion, StepInfo, tensor_to_image};
use crate::adapters::ip_adapter::{ImageTokens, IpAdapterRequest, attention_processor};
use crate::sampling::rng::TorchRng;
use crate::sampling::scheduler::Scheduler;
use crate::unet::attention::{Attention, AttentionProcessor, AttnSite};
use crate::unet::consistent::{ConsistentAttention, StoryMode};
use crate::unet::{TextTimeInputs, UNetHooks};
use crate::vae::tiled::{needs_tiling, tiled_decode};
use crate::{CancelToken, Error, Result};
use candle_core::Tensor;
use image::RgbImage;
use std::sync::Arc;

impl StableDiffusion {
    /// Generates one image per request in one UNet batch. Every request must share sampler,
    /// steps, CFG and size, and be text-to-image (no init image, mask, ControlNet or regions);
    /// IP-Adapters work when every panel has the same adapters at the same scales (each with
    /// its own image tokens). `story` turns on consistent self-attention: `Write` for a
    /// character's reference panels (generated together), `Read` for later panels.
    /// `on_step` gets the latents of every panel, `[N, 4, h, w]`.
    pub fn generate_batch(
        &self,
        reqs: &[GenerateRequest],
        story: Option<&StoryMode>,
        on_step: &mut dyn FnMut(StepInfo),
        cancel: &CancelToken,
    ) -> Result<Vec<RgbImage>> {
        let Some(first) = reqs.first() else {
            return Err(Error::InvalidArgument(
                "a batch needs at least one panel".into(),
            ));
        };
        for (i, r) in reqs.iter().enumerate() {
            if r.sampler != first.sampler
                || r.steps != first.steps
                || r.cfg != first.cfg
                || r.width != first.width
                || r.height != first.height
                || r.clip_skip != first.clip_skip
            {
                return Err(Error::InvalidArgument(format!(
                    "panel {}: every panel of a batch needs the same sampler, steps, CFG, clip skip and size",
                    i + 1
                )));
            }
            if r.init.is_some()
                || r.mask.is_some()
                || !r.controls.is_empty()
                || !r.regions.is_empty()
            {
                return Err(Error::InvalidArgument(format!(
                    "panel {}: init images, masks, ControlNets and regional prompts are not supported in a batch",
                    i + 1
                )));
            }
            let same_adapters = r.ip_adapters.len() == first.ip_adapters.len()
                && r.ip_adapters
                    .iter()
                    .zip(&first.ip_adapters)
                    .all(|(a, b)| Arc::ptr_eq(&a.adapter, &b.adapter) && a.scale == b.scale);
            if !same_adapters {
                return Err(Error::InvalidArgument(format!(
                    "panel {}: every panel of a batch needs the same IP-Adapters at the same scales (their images may differ)",
                    i + 1
                )));
            }
        }
        let factor = self.vae_scale_factor() as u32;
        if first.width == 0
            || first.height == 0
            || !first.width.is_multiple_of(8)
            || !first.height.is_multiple_of(8)
        {
            return Err(Error::BadSize {
                width: first.width,
                height: first.height,
            });
        }
        if first.steps == 0 {
            return Err(Error::InvalidArgument("steps must be at least 1".into()));
        }
        let n = reqs.len();
        let (h, w) = (
            (first.height / factor) as usize,
            (first.width / factor) as usize,
        );
        let use_cfg = first.cfg > 1.0;
        let chunks = reqs
            .iter()
            .map(|r| {
                self.chunks_needed(&r.prompt)
                    .max(self.chunks_needed(r.negative.as_deref().unwrap_or("")))
            })
            .max()
            .unwrap_or(1);
        let mut positives = Vec::with_capacity(n);
        let mut negatives = Vec::with_capacity(n);
        for r in reqs {
            let (p, q) = self.conditioning_padded(r, chunks)?;
            positives.push(p);
            negatives.push(q);
        }
        let rows: Vec<_> = if use_cfg {
            negatives.iter().chain(&positives).collect()
        } else {
            positives.iter().collect()
        };
        let contexts: Vec<&Tensor> = rows.iter().map(|c| &c.context).collect();
        let context = Tensor::cat(&contexts, 0)?;
        let text_time = match self.time_ids(first.height, first.width, false)? {
            Some(ids) if positives.iter().all(|p| p.pooled.is_some()) => {
                let neg_ids = self
                    .time_ids(first.height, first.width, true)?
                    .unwrap_or(ids.clone());
                let mut pooled = Vec::with_capacity(rows.len());
                let mut time_ids = Vec::with_capacity(rows.len());
                if use_cfg {
                    for (neg, pos) in negatives.iter().zip(&positives) {
                        let pos = pos.pooled.as_ref().ok_or_else(no_pooled)?;
                        pooled.push(match &neg.pooled {
                            Some(p) => p.clone(),
                            None => pos.zeros_like()?,
                        });
                        time_ids.push(neg_ids.clone());
                    }
                }
                for pos in &positives {
                    pooled.push(pos.pooled.clone().ok_or_else(no_pooled)?);
                    time_ids.push(ids.clone());
                }
                Some(TextTimeInputs {
                    text_embeds: Tensor::cat(&pooled, 0)?,
                    time_ids: Tensor::cat(&time_ids, 0)?,
                })
            }
            _ => None,
        };

        let sf = self.vae.config().scaling_factor;
        let mut schedulers = Vec::with_capacity(n);
        let mut rngs = Vec::with_capacity(n);
        let mut latents = Vec::with_capacity(n);
        for r in reqs {
            let mut rng = TorchRng::new(r.seed);
            let mut scheduler = Scheduler::new(r.sampler, &self.scheduler_config, r.steps)?;
            latents.push(self.initial_latents(r, &mut scheduler, &mut rng, (h, w))?);
            schedulers.push(scheduler);
            rngs.push(rng);
        }
        let extra = self.inpaint_channels(first, h, w, sf)?;
        let total = schedulers.first().map(Scheduler::len).unwrap_or(0);
        let timesteps: Vec<f64> = schedulers
            .first()
            .map(|s| s.timesteps().to_vec())
            .unwrap_or_default();
        let attention = match story {
            Some(mode) => Some(ConsistentAttention::new(
                mode.clone(),
                n,
                if use_cfg { 2 } else { 1 },
                total,
            )?),
            None => None,
        };
        // IP-Adapters: each slot's tokens stacked over the panels, so the processor's
        // `[negative, positive]` rows are `[neg_1 … neg_N, pos_1 … pos_N]`, the batch's order.
        let mut stacked = Vec::with_capacity(first.ip_adapters.len());
        for (slot, a) in first.ip_adapters.iter().enumerate() {
            let positive: Vec<&Tensor> = reqs
                .iter()
                .map(|r| &r.ip_adapters[slot].tokens.positive)
                .collect();
            let negative: Vec<&Tensor> = reqs
                .iter()
                .map(|r| &r.ip_adapters[slot].tokens.negative)
                .collect();
            stacked.push(IpAdapterRequest {
                adapter: a.adapter.clone(),
                tokens: ImageTokens {
                    positive: Tensor::cat(&positive, 0)?,
                    negative: Tensor::cat(&negative, 0)?,
                },
                scale: a.scale,
            });
        }
        let ip_attention = attention_processor(&stacked, use_cfg, None)?;
        let mut processors: Vec<&dyn AttentionProcessor> = Vec::new();
        if let Some(a) = &attention {
            processors.push(a);
        }
        if let Some(p) = &ip_attention {
            processors.push(p.as_ref());
        }
        let chain = Chain(processors);
        for (i, t) in timesteps.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let mut inputs = Vec::with_capacity(n);
            for (scheduler, x) in schedulers.iter().zip(&latents) {
                let x = scheduler.scale_model_input(x, i)?;
                inputs.push(match &extra {
                    Some(extra) => Tensor::cat(&[&x, extra], 1)?,
                    None => x,
                });
            }
            let model_in = Tensor::cat(&inputs, 0)?;
            let model_in = if use_cfg {
                Tensor::cat(&[&model_in, &model_in], 0)?
            } else {
                model_in
            };
            if let Some(a) = &attention {
                a.set_step(i);
            }
            let hooks = UNetHooks {
                attention: (!chain.0.is_empty()).then_some(&chain as &dyn AttentionProcessor),
                ..UNetHooks::default()
            };
            let out =
                self.unet
                    .forward(&model_in, *t as f32, &context, text_time.as_ref(), &hooks)?;
            for (j, ((scheduler, rng), x)) in schedulers
                .iter_mut()
                .zip(rngs.iter_mut())
                .zip(latents.iter_mut())
                .enumerate()
            {
                let guided = if use_cfg {
                    let uncond = out.narrow(0, j, 1)?;
                    let cond = out.narrow(0, n + j, 1)?;
                    (&uncond + ((cond - &uncond)? * first.cfg as f64)?)?
                } else {
                    out.narrow(0, j, 1)?
                };
                *x = scheduler.step(&guided, i, x, rng)?;
            }
            on_step(StepInfo {
                step: i + 1,
                total,
                latents: Tensor::cat(&latents, 0)?,
            });
        }
        let mut images = Vec::with_capacity(n);
        for x in latents {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let z = (x / sf)?;
            let (_, _, lh, lw) = z.dims4()?;
            let decoded = if needs_tiling(lh, lw, self.precision()) {
                tiled_decode(&self.vae, &z)?
            } else {
                self.vae.decode(&z)?
            };
            images.push(tensor_to_image(&decoded)?);
        }
        Ok(images)
    }
}

/// Processors tried in order; the first that replaces a layer wins (consistent self-attention
/// takes the up-block attn1 layers, IP-Adapters every attn2).
struct Chain<'a>(Vec<&'a dyn AttentionProcessor>);

impl AttentionProcessor for Chain<'_> {
    fn process(
        &self,
        site: &AttnSite,
        attn: &Attention,
        hidden: &Tensor,
        context: Option<&Tensor>,
        grid: (usize, usize),
    ) -> Result<Option<Tensor>> {
        for p in &self.0 {
            if let Some(out) = p.process(site, attn, hidden, context, grid)? {
                return Ok(Some(out));
            }
        }
        Ok(None)
    }
}

fn no_pooled() -> Error {
    Error::InvalidArgument("SDXL prompt without a pooled embedding".into())
}
