//! Story panels for comic pages (`docs/COMIC.md`): the order in which a story's panels are
//! generated so that each character looks the same throughout, and a drift score.
//!
//! Every panel has at most one *lead* character (the first one it names; `None` for panels
//! without characters). For each character, in order of first appearance, the first
//! `references` panels it leads are its reference set: generated together in one batch with
//! consistent self-attention in write mode (`unet::consistent`), into that character's token
//! bank. Every later panel it leads is generated alone, reading that bank. Panels without a lead
//! are plain generations. Panel `k`'s picture depends only on its own request, its character's
//! reference set and the consistency settings, never on the other panels, so one panel can be
//! regenerated with a new seed while the others stay.

use crate::adapters::ip_adapter::clip_vision::{ClipVisionModel, preprocess};
use crate::pipelines::stable_diffusion::{GenerateRequest, StableDiffusion, StepInfo};
use crate::unet::consistent::{ConsistencySettings, StoryMode, TokenBank};
use crate::{CancelToken, Error, Result};
use candle_core::Tensor;
use image::RgbImage;
use std::sync::Arc;

/// One unit of work of a story.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoryJob {
    /// A character's reference panels (indices into the story's panels), generated together.
    References {
        /// The character (index of its card).
        character: usize,
        /// Its reference panels, in story order.
        panels: Vec<usize>,
    },
    /// A later panel of a character, reading its reference set's tokens.
    Read {
        /// The character.
        character: usize,
        /// The panel.
        panel: usize,
    },
    /// A panel without a lead character.
    Plain {
        /// The panel.
        panel: usize,
    },
}

/// The jobs for panels with these lead characters: each character's reference set first (in
/// order of first appearance), then its later panels and the plain ones in story order.
/// `references` is at least 1.
pub fn plan(leads: &[Option<usize>], references: usize) -> Vec<StoryJob> {
    let references = references.max(1);
    let mut order: Vec<usize> = Vec::new();
    for c in leads.iter().flatten() {
        if !order.contains(c) {
            order.push(*c);
        }
    }
    let mut jobs = Vec::new();
    let mut in_refs = vec![false; leads.len()];
    for &c in &order {
        let panels: Vec<usize> = leads
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == Some(c))
            .map(|(i, _)| i)
            .take(references)
            .collect();
        for &p in &panels {
            in_refs[p] = true;
        }
        jobs.push(StoryJob::References {
            character: c,
            panels,
        });
    }
    for (panel, lead) in leads.iter().enumerate() {
        if in_refs[panel] {
            continue;
        }
        jobs.push(match lead {
            Some(character) => StoryJob::Read {
                character: *character,
                panel,
            },
            None => StoryJob::Plain { panel },
        });
    }
    jobs
}

/// Progress of a story: which panels are being generated and the step.
#[derive(Clone, Debug)]
pub struct StoryProgress {
    /// Panels of the current batch.
    pub panels: Vec<usize>,
    /// Panels finished before this batch.
    pub done: usize,
    /// Panels in all.
    pub total_panels: usize,
    /// The step.
    pub step: StepInfo,
}

/// The panels of a story to generate.
#[derive(Clone, Debug)]
pub struct StoryRequest<'a> {
    /// One request per panel, all with the same sampler, steps, CFG and size.
    pub requests: &'a [GenerateRequest],
    /// Each panel's lead character (index of its card), `None` without characters.
    pub leads: &'a [Option<usize>],
    /// Consistent self-attention settings; `None` generates each panel plainly.
    pub consistency: Option<ConsistencySettings>,
    /// Reference panels per character (at least 1).
    pub references: usize,
}

/// Generates every panel of a story ([`plan`] order). `on_panel` gets each finished panel as
/// soon as its batch is done.
pub fn generate_story(
    sd: &StableDiffusion,
    story: &StoryRequest<'_>,
    on_step: &mut dyn FnMut(StoryProgress),
    on_panel: &mut dyn FnMut(usize, &RgbImage),
    cancel: &CancelToken,
) -> Result<Vec<RgbImage>> {
    let StoryRequest {
        requests,
        leads,
        consistency,
        references,
    } = *story;
    if requests.len() != leads.len() {
        return Err(Error::InvalidArgument(format!(
            "{} panel requests for {} panels",
            requests.len(),
            leads.len()
        )));
    }
    let mut banks: Vec<(usize, Arc<TokenBank>)> = Vec::new();
    let mut images: Vec<Option<RgbImage>> = vec![None; requests.len()];
    let mut done = 0;
    let total_panels = requests.len();
    for job in plan(leads, references) {
        let (panels, mode) = match (&job, consistency) {
            (StoryJob::References { character, panels }, Some(settings)) => {
                // Models run in bf16 keep their story's tokens in bf16 too (half the memory).
                let storage = match sd.precision() {
                    crate::kernels::Precision::Bf16 | crate::kernels::Precision::Int8 => {
                        Some(candle_core::DType::BF16)
                    }
                    crate::kernels::Precision::F32 => None,
                };
                let bank = TokenBank::with_storage(settings, storage)?;
                banks.push((*character, bank.clone()));
                (panels.clone(), Some(StoryMode::Write(bank)))
            }
            (StoryJob::Read { character, panel }, Some(_)) => {
                let bank = banks
                    .iter()
                    .find(|(c, _)| c == character)
                    .map(|(_, b)| b.clone())
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "panel {}: its character has no reference panels",
                            panel + 1
                        ))
                    })?;
                (vec![*panel], Some(StoryMode::Read(bank)))
            }
            (StoryJob::References { panels, .. }, None) => (panels.clone(), None),
            (StoryJob::Read { panel, .. } | StoryJob::Plain { panel }, _) => (vec![*panel], None),
        };
        let reqs: Vec<GenerateRequest> = panels.iter().map(|&p| requests[p].clone()).collect();
        // Without consistency every panel is its own generation (same pictures as `generate`).
        let outs = if mode.is_none() && reqs.len() > 1 {
            let mut outs = Vec::with_capacity(reqs.len());
            for (k, req) in reqs.iter().enumerate() {
                let mut step = |s: StepInfo| {
                    on_step(StoryProgress {
                        panels: vec![panels[k]],
                        done: done + k,
                        total_panels,
                        step: s,
                    })
                };
                outs.push(sd.generate(req, &mut step, cancel)?);
            }
            outs
        } else {
            let mut step = |s: StepInfo| {
                on_step(StoryProgress {
                    panels: panels.clone(),
                    done,
                    total_panels,
                    step: s,
                })
            };
            sd.generate_batch(&reqs, mode.as_ref(), &mut step, cancel)?
        };
        for (&p, image) in panels.iter().zip(outs) {
            on_panel(p, &image);
            images[p] = Some(image);
            done += 1;
        }
    }
    images
        .into_iter()
        .enumerate()
        .map(|(k, i)| {
            i.ok_or_else(|| Error::InvalidArgument(format!("panel {} was not generated", k + 1)))
        })
        .collect()
}

/// Character-consistency (drift) score of two panels: the cosine similarity of their CLIP
/// image embeddings (`image_embeds` of a `CLIPVisionModelWithProjection`, each picture
/// preprocessed like transformers' `CLIPImageProcessor`). 1 = the same picture; a panel far
/// below its story's others has drifted.
pub fn consistency_score(encoder: &ClipVisionModel, a: &RgbImage, b: &RgbImage) -> Result<f32> {
    let size = encoder.config().image_size;
    // Kiln's inference runs on the CPU (the encoder's weights live there).
    let device = candle_core::Device::Cpu;
    let pixels = Tensor::cat(
        &[
            &preprocess(a, size, &device)?,
            &preprocess(b, size, &device)?,
        ],
        0,
    )?;
    let e = encoder.image_embeds(&pixels)?;
    let dot = (e.get(0)? * e.get(1)?)?.sum_all()?.to_scalar::<f32>()?;
    let na = e.get(0)?.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt();
    let nb = e.get(1)?.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt();
    if na == 0.0 || nb == 0.0 {
        return Ok(0.0);
    }
    Ok(dot / (na * nb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_first_then_story_order() {
        // Panels: Mia, Mia, none, Pip, Mia, Pip, Pip.
        let leads = [Some(0), Some(0), None, Some(1), Some(0), Some(1), Some(1)];
        let jobs = plan(&leads, 2);
        assert_eq!(
            jobs,
            [
                StoryJob::References {
                    character: 0,
                    panels: vec![0, 1]
                },
                StoryJob::References {
                    character: 1,
                    panels: vec![3, 5]
                },
                StoryJob::Plain { panel: 2 },
                StoryJob::Read {
                    character: 0,
                    panel: 4
                },
                StoryJob::Read {
                    character: 1,
                    panel: 6
                },
            ]
        );
        assert_eq!(plan(&[None, None], 2).len(), 2);
    }
}
