//! Consistent self-attention (StoryDiffusion, Zhou et al. 2024) as an [`AttentionProcessor`]:
//! the panels of a character's reference set share self-attention tokens, so the same face,
//! hair and clothes come out in every panel; later panels read the tokens the reference set
//! stored, so a story of any length runs with memory bounded by the reference set.
//!
//! Exact semantics (`docs/COMIC.md`, and the reference processor of
//! `tests/fixtures/make_story.py`):
//!
//! - **Where.** Only self-attention (`attn1`) layers of the UNet's up blocks
//!   (`site.part == UNetPart::Up(_)`, `!site.cross`), as StoryDiffusion installs its
//!   `SpatialAttnProcessor` on `up_blocks.*.attn1`. Every other layer runs the default.
//! - **When.** Step `i` of `n` (scheduler step index, 0-based) is *consistent* when
//!   `i ≥ start·n` and `i < end·n`. The default window `[0.1, 1.0]` skips the first tenth of
//!   sampling, as StoryDiffusion skips its first 5 of 50 steps (the layout forms freely, the
//!   details are then shared). Other steps run the default attention and store nothing.
//! - **Batch layout.** The UNet batch holds `halves · images` rows: with CFG
//!   `[uncond_0 … uncond_{N−1}, cond_0 … cond_{N−1}]` (diffusers' order for a batch of
//!   prompts), without CFG `[cond_0 … cond_{N−1}]`. Each CFG half shares only within itself
//!   (StoryDiffusion applies consistency to both halves the same way).
//! - **Sampling.** At consistent step `i` and layer `l` (the layer's `attn_processors` index),
//!   token `t` (row-major on the layer's grid) of reference image `r` (its position in the
//!   reference batch) is *kept* when `keep(seed, i, l, r, t)`: with splitmix64's finaliser
//!   `mix(x) = splitmix64(x)` (add `0x9E3779B97F4A7C15`, then the two xor-shift-multiply
//!   rounds), `h = mix(mix(mix(mix(mix(seed) ^ i) ^ l) ^ r) ^ t)`, kept iff
//!   `(h >> 40) < round(rate · 2^24)`. The kept set does not depend on the query image or
//!   the CFG half (StoryDiffusion draws one mask row per step shared by all images; we draw
//!   one per step and layer). `rate` 0.5 is StoryDiffusion's `sa32 = sa64 = 0.5`.
//! - **Write mode** (the reference set, generated together as one batch): image `i` attends
//!   with its own queries to keys/values projected from its own tokens followed by the kept
//!   tokens of every other reference image in index order
//!   (`[x_i, kept_0, …, kept_{i−1}, kept_{i+1}, …]`). The kept tokens of all references
//!   (`[kept_0, …, kept_{N−1}]`, the layer's normalised input, before `to_k`/`to_v`) are
//!   stored per half for that step and layer in the [`TokenBank`].
//! - **Read mode** (later panels, any batch size): each image attends to its own tokens
//!   followed by the stored `[kept_0, …, kept_{N−1}]` of its CFG half, at the same step and
//!   layer. A read at a consistent step with no stored tokens is an error (the reference set
//!   must be generated first with the same steps, size and CFG setting).
//!
//! Attending only to kept tokens is the same as StoryDiffusion's boolean attention mask over
//! all tokens (masked-out keys get zero weight). The bank holds about
//! `rate · references · halves · Σ_up-attn1 (tokens · channels)` values per consistent step
//! (SDXL at 1024², two references, CFG, f32: about 440 MB per step; SD1.5 at 512²: 55 MB).

use crate::unet::attention::{Attention, AttentionProcessor, AttnSite, UNetPart};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How the panels of a story share attention.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConsistencySettings {
    /// Probability of keeping each token of another reference image (0–1).
    pub rate: f32,
    /// First fraction of the steps that share tokens.
    pub start: f32,
    /// Fraction of the steps after the last sharing step.
    pub end: f32,
    /// Seed of the token sampling.
    pub seed: u64,
}

impl Default for ConsistencySettings {
    fn default() -> Self {
        ConsistencySettings {
            rate: 0.5,
            start: 0.1,
            end: 1.0,
            seed: 0,
        }
    }
}

impl ConsistencySettings {
    /// Whether step `i` of `n` shares tokens: `start·n ≤ i < end·n`.
    pub fn active(&self, i: usize, n: usize) -> bool {
        let (i, n) = (i as f64, n as f64);
        i >= f64::from(self.start) * n && i < f64::from(self.end) * n
    }

    /// Whether token `token` of reference `image` is kept at step `step`, layer `layer`.
    pub fn keep(&self, step: usize, layer: usize, image: usize, token: usize) -> bool {
        let mut h = splitmix64(self.seed);
        for v in [step, layer, image, token] {
            h = splitmix64(h ^ v as u64);
        }
        (h >> 40) < self.threshold()
    }

    fn threshold(&self) -> u64 {
        (f64::from(self.rate.clamp(0.0, 1.0)) * f64::from(1u32 << 24)).round() as u64
    }

    /// Indices of the kept tokens of `image` among `tokens`.
    pub fn kept(&self, step: usize, layer: usize, image: usize, tokens: usize) -> Vec<u32> {
        (0..tokens)
            .filter(|&t| self.keep(step, layer, image, t))
            .map(|t| t as u32)
            .collect()
    }

    fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(Error::InvalidArgument(format!(
                "consistency sampling rate must be in [0, 1], got {}",
                self.rate
            )));
        }
        if !(0.0..=1.0).contains(&self.start)
            || !(0.0..=1.0).contains(&self.end)
            || self.start > self.end
        {
            return Err(Error::InvalidArgument(format!(
                "consistency step window must satisfy 0 ≤ start ≤ end ≤ 1, got {}–{}",
                self.start, self.end
            )));
        }
        Ok(())
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): add the golden gamma, then its finaliser.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the reference set was generated with; reads must match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BankShape {
    references: usize,
    halves: usize,
    steps: usize,
}

/// Kept tokens per CFG half (`None`: no token kept).
type Stored = Vec<Option<Tensor>>;

/// The sampled self-attention tokens of a reference set, per step and layer.
#[derive(Debug)]
pub struct TokenBank {
    settings: ConsistencySettings,
    /// Storage type of the tokens (`None`: as computed).
    storage: Option<DType>,
    shape: Mutex<Option<BankShape>>,
    tokens: Mutex<HashMap<(usize, usize), Stored>>,
}

impl TokenBank {
    /// An empty bank for a story with these settings.
    pub fn new(settings: ConsistencySettings) -> Result<Arc<Self>> {
        Self::with_storage(settings, None)
    }

    /// An empty bank that stores its tokens as `storage` (e.g. bf16: half the memory of f32;
    /// reads convert back, so later panels see the tokens rounded to bf16 while the reference
    /// panels saw them exact).
    pub fn with_storage(
        settings: ConsistencySettings,
        storage: Option<DType>,
    ) -> Result<Arc<Self>> {
        settings.check()?;
        Ok(Arc::new(TokenBank {
            settings,
            storage,
            shape: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }))
    }

    /// The settings.
    pub fn settings(&self) -> &ConsistencySettings {
        &self.settings
    }

    /// Whether a reference set has been written.
    pub fn is_written(&self) -> bool {
        self.shape.lock().map(|s| s.is_some()).unwrap_or(false)
    }

    /// Number of stored values (all steps, layers and halves).
    pub fn stored_values(&self) -> usize {
        self.tokens
            .lock()
            .map(|t| t.values().flatten().flatten().map(|x| x.elem_count()).sum())
            .unwrap_or(0)
    }

    /// Number of stored tokens (all steps, layers and halves).
    pub fn stored_tokens(&self) -> usize {
        self.tokens
            .lock()
            .map(|t| {
                t.values()
                    .flatten()
                    .flatten()
                    .map(|x| x.dim(1).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }

    fn poisoned() -> Error {
        Error::InvalidArgument("consistent attention token bank poisoned".into())
    }
}

/// Whether a batch writes the bank (reference set) or reads it (later panels).
#[derive(Clone, Debug)]
pub enum StoryMode {
    /// Generate the reference set together and store its sampled tokens.
    Write(Arc<TokenBank>),
    /// Attend to the stored tokens of a reference set.
    Read(Arc<TokenBank>),
}

impl StoryMode {
    /// The bank.
    pub fn bank(&self) -> &Arc<TokenBank> {
        match self {
            StoryMode::Write(b) | StoryMode::Read(b) => b,
        }
    }
}

/// The consistent self-attention processor of one batch.
#[derive(Debug)]
pub struct ConsistentAttention {
    mode: StoryMode,
    images: usize,
    halves: usize,
    steps: usize,
    step: AtomicUsize,
}

impl ConsistentAttention {
    /// A processor for a batch of `images` panels (per CFG half), `halves` = 2 with CFG, over
    /// `steps` scheduler steps. Write mode clears the bank; read mode checks it was written
    /// with the same CFG setting and step count.
    pub fn new(mode: StoryMode, images: usize, halves: usize, steps: usize) -> Result<Self> {
        if images == 0 || !(1..=2).contains(&halves) {
            return Err(Error::InvalidArgument(format!(
                "consistent attention needs at least one image and 1 or 2 halves, got {images} and {halves}"
            )));
        }
        let bank = mode.bank();
        let mut shape = bank.shape.lock().map_err(|_| TokenBank::poisoned())?;
        match &mode {
            StoryMode::Write(_) => {
                *shape = Some(BankShape {
                    references: images,
                    halves,
                    steps,
                });
                bank.tokens
                    .lock()
                    .map_err(|_| TokenBank::poisoned())?
                    .clear();
            }
            StoryMode::Read(_) => match *shape {
                None => {
                    return Err(Error::InvalidArgument(
                        "consistent attention: no reference panels were generated yet (read mode needs the stored tokens of the reference set)".into(),
                    ));
                }
                Some(s) if s.halves != halves || s.steps != steps => {
                    return Err(Error::InvalidArgument(format!(
                        "consistent attention: the reference panels were generated with {} steps{}, this panel with {steps} steps{}; they must match",
                        s.steps,
                        if s.halves == 2 {
                            " and CFG"
                        } else {
                            " without CFG"
                        },
                        if halves == 2 {
                            " and CFG"
                        } else {
                            " without CFG"
                        },
                    )));
                }
                Some(_) => {}
            },
        }
        drop(shape);
        Ok(ConsistentAttention {
            mode,
            images,
            halves,
            steps,
            step: AtomicUsize::new(0),
        })
    }

    /// Sets the scheduler step index of the next UNet pass.
    pub fn set_step(&self, step: usize) {
        self.step.store(step, Ordering::Relaxed);
    }

    fn index_tensor(idx: Vec<u32>, device: &Device) -> Result<Option<Tensor>> {
        if idx.is_empty() {
            return Ok(None);
        }
        let n = idx.len();
        Ok(Some(Tensor::from_vec(idx, n, device)?))
    }

    fn write(
        &self,
        bank: &TokenBank,
        site: &AttnSite,
        attn: &Attention,
        hidden: &Tensor,
        step: usize,
    ) -> Result<Tensor> {
        let tokens = hidden.dim(1)?;
        let settings = &bank.settings;
        let indices = (0..self.images)
            .map(|r| {
                Self::index_tensor(settings.kept(step, site.index, r, tokens), hidden.device())
            })
            .collect::<Result<Vec<_>>>()?;
        let mut outs = Vec::with_capacity(self.halves * self.images);
        let mut stored = Vec::with_capacity(self.halves);
        for half in 0..self.halves {
            let rows = (0..self.images)
                .map(|i| hidden.narrow(0, half * self.images + i, 1))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let kept = rows
                .iter()
                .zip(&indices)
                .map(|(x, idx)| match idx {
                    Some(idx) => Ok(Some(x.index_select(idx, 1)?)),
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>>>()?;
            for (i, x) in rows.iter().enumerate() {
                let mut parts = vec![x];
                parts.extend(
                    kept.iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .filter_map(|(_, k)| k.as_ref()),
                );
                let source = if parts.len() == 1 {
                    x.clone()
                } else {
                    Tensor::cat(&parts, 1)?
                };
                let q = attn.query(x)?;
                let (k, v) = attn.key_value(&source)?;
                outs.push(attn.attend(&q, &k, &v)?);
            }
            let all: Vec<&Tensor> = kept.iter().flatten().collect();
            stored.push(if all.is_empty() {
                None
            } else {
                let kept = Tensor::cat(&all, 1)?;
                Some(match bank.storage {
                    Some(dtype) => kept.to_dtype(dtype)?,
                    None => kept,
                })
            });
        }
        bank.tokens
            .lock()
            .map_err(|_| TokenBank::poisoned())?
            .insert((step, site.index), stored);
        attn.out(&Tensor::cat(&outs, 0)?)
    }

    fn read(
        &self,
        bank: &TokenBank,
        site: &AttnSite,
        attn: &Attention,
        hidden: &Tensor,
        step: usize,
    ) -> Result<Tensor> {
        let stored = bank
            .tokens
            .lock()
            .map_err(|_| TokenBank::poisoned())?
            .get(&(step, site.index))
            .cloned()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "consistent attention: no stored reference tokens for step {} at layer {} (generate the reference panels first, with the same steps and size)",
                    step + 1,
                    site.index
                ))
            })?;
        let (_, _, channels) = hidden.dims3()?;
        let mut outs = Vec::with_capacity(self.halves);
        for (half, kept) in stored.iter().enumerate().take(self.halves) {
            let x = hidden.narrow(0, half * self.images, self.images)?;
            let source = match kept {
                Some(kept) => {
                    if kept.dim(2)? != channels {
                        return Err(Error::InvalidArgument(format!(
                            "consistent attention: stored tokens have {} channels, layer {} has {channels} (another model?)",
                            kept.dim(2)?,
                            site.index
                        )));
                    }
                    let kept = kept.to_dtype(x.dtype())?;
                    let kept = kept.broadcast_as((self.images, kept.dim(1)?, channels))?;
                    Tensor::cat(&[&x, &kept], 1)?
                }
                None => x.clone(),
            };
            let q = attn.query(&x)?;
            let (k, v) = attn.key_value(&source)?;
            outs.push(attn.attend(&q, &k, &v)?);
        }
        attn.out(&Tensor::cat(&outs, 0)?)
    }
}

impl AttentionProcessor for ConsistentAttention {
    fn process(
        &self,
        site: &AttnSite,
        attn: &Attention,
        hidden: &Tensor,
        context: Option<&Tensor>,
        _grid: (usize, usize),
    ) -> Result<Option<Tensor>> {
        if site.cross || context.is_some() || !matches!(site.part, UNetPart::Up(_)) {
            return Ok(None);
        }
        let step = self.step.load(Ordering::Relaxed);
        let bank = self.mode.bank();
        if !bank.settings.active(step, self.steps) {
            return Ok(None);
        }
        let rows = hidden.dim(0)?;
        if rows != self.halves * self.images {
            return Err(Error::InvalidArgument(format!(
                "consistent attention expected {} batch rows, got {rows}",
                self.halves * self.images
            )));
        }
        Ok(Some(match &self.mode {
            StoryMode::Write(bank) => self.write(bank, site, attn, hidden, step)?,
            StoryMode::Read(bank) => self.read(bank, site, attn, hidden, step)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // splitmix64 seeded with 0: first outputs of the reference generator.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn keep_rate_is_about_the_rate_and_the_window_is_half_open() {
        let s = ConsistencySettings::default();
        let kept = s.kept(3, 17, 1, 4096).len();
        assert!((1900..2200).contains(&kept), "{kept}");
        let none = ConsistencySettings { rate: 0.0, ..s };
        assert!(none.kept(3, 17, 1, 4096).is_empty());
        let all = ConsistencySettings { rate: 1.0, ..s };
        assert_eq!(all.kept(3, 17, 1, 4096).len(), 4096);
        let w = ConsistencySettings {
            start: 0.25,
            end: 1.0,
            ..s
        };
        let active: Vec<bool> = (0..4).map(|i| w.active(i, 4)).collect();
        assert_eq!(active, [false, true, true, true]);
    }

    #[test]
    fn read_before_write_is_an_error() {
        let bank = TokenBank::new(ConsistencySettings::default()).unwrap();
        let err = ConsistentAttention::new(StoryMode::Read(bank), 1, 2, 4).unwrap_err();
        assert!(err.to_string().contains("no reference panels"), "{err}");
    }
}
