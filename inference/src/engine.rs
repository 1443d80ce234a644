//! `Engine`: loads and caches models, runs a `Recipe`, reports `Progress`, honours cancel.

use crate::adapters::controlnet::ControlNet;
use crate::adapters::lora::LoraFile;
use crate::io::model::ModelFiles;
pub use crate::kernels::Precision;
use crate::pipelines::inpaint::{Region, crop_region, crop_resize, crop_resize_mask, paste_back};
use crate::pipelines::stable_diffusion::{ControlRequest, GenerateRequest, StableDiffusion};
use crate::recipe::{ControlSpec, Preprocessor, Recipe};
use crate::vae::preview::latents_to_rgb;
use crate::vae::taesd::{TaesdDecoder, find_taesd};
use crate::{Error, Result};
use candle_core::{DType, Device};
use image::RgbImage;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A shared flag that stops a running job at the next step.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a job is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Loading a model part (named).
    Loading(String),
    /// Denoising.
    Sampling,
    /// VAE decode.
    Decoding,
    /// Face fix: redoing face `face` (0-based) of the `faces` found in the current image
    /// (`step`/`total` are that face's denoising steps).
    FixingFace {
        /// Index of the face.
        face: usize,
        /// Faces being redone in this image.
        faces: usize,
    },
}

/// Progress of a running job.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Current stage.
    pub stage: Stage,
    /// Steps done in the current image.
    pub step: usize,
    /// Steps per image.
    pub total: usize,
    /// Index of the current image in the batch.
    pub image: usize,
    /// Images in the batch.
    pub images: usize,
    /// Time since the job started.
    pub elapsed: Duration,
    /// Estimated time left for the whole job, once a step has run.
    pub eta: Option<Duration>,
    /// Preview of the current latents (when previews are on): a full-size TAESD decode when
    /// TAESD weights were found, else the latent-resolution latent→RGB map.
    pub preview: Option<RgbImage>,
}

impl Progress {
    /// "Loading `part`" before the first step of `recipe`'s job.
    pub fn loading(part: impl Into<String>, recipe: &Recipe, started: Instant) -> Self {
        Progress {
            stage: Stage::Loading(part.into()),
            step: 0,
            total: recipe.steps,
            image: 0,
            images: recipe.batch.max(1) as usize,
            elapsed: started.elapsed(),
            eta: None,
            preview: None,
        }
    }
}

/// One finished image with the recipe that reproduces it alone (its own seed, batch 1).
#[derive(Clone, Debug)]
pub struct Output {
    /// The image.
    pub image: RgbImage,
    /// Reproducing recipe.
    pub recipe: Recipe,
    /// Things the user should know (e.g. LoRA layers that matched nothing), one line each.
    pub warnings: Vec<String>,
}

/// Identity of an applied LoRA: file, weight, and the file's size and time (a changed file is
/// applied again).
#[derive(Clone, Debug, PartialEq)]
struct AppliedLora {
    path: PathBuf,
    weight: f32,
    stamp: Option<(u64, std::time::SystemTime)>,
    hash: Option<String>,
}

struct Loaded {
    path: PathBuf,
    model: StableDiffusion,
    hash: Option<String>,
    family: String,
    loras: Vec<AppliedLora>,
    lora_warnings: Vec<String>,
    /// Why the model runs on the CPU although a GPU was asked for.
    gpu_warning: Option<String>,
}

/// Runs recipes; keeps the last model loaded for the next job.
pub struct Engine {
    device: Device,
    loaded: Option<Loaded>,
    /// Produce a latent preview with every progress event.
    pub previews: bool,
    /// Weight precision of the UNet and VAE (a change reloads the model).
    pub precision: Precision,
    /// Where the UNet and VAE decoder run (a change reloads the model).
    pub compute: crate::gpu::ComputeDevice,
    /// The GPU opened for `compute`, with the choice it was opened for.
    gpu: Option<(crate::gpu::ComputeDevice, Option<Arc<crate::gpu::Gpu>>)>,
    /// Folders searched for TAESD preview decoders ([`find_taesd`]); empty = never.
    pub taesd_dirs: Vec<PathBuf>,
    /// Loaded TAESD decoders by family (`true` = SDXL), with the path they came from.
    taesd: HashMap<bool, (PathBuf, Arc<TaesdDecoder>)>,
    /// ControlNets of the last job, by path (kept for the next one).
    controlnets: HashMap<PathBuf, Arc<ControlNet>>,
    /// IP-Adapters and CLIP image encoders of the last job, by path (kept for the next one).
    ip_adapters: HashMap<PathBuf, Arc<crate::adapters::ip_adapter::IpAdapter>>,
    image_encoders:
        HashMap<PathBuf, Arc<crate::adapters::ip_adapter::clip_vision::ClipVisionModel>>,
    /// Preprocessor networks (depth, lineart, HED) and the folders searched for them
    /// (`preprocessors.model_dirs`: the model folders; empty = model-free preprocessors only).
    pub preprocessors: crate::vision::annotators::Preprocessors,
    /// The face analyser of the last job that needed one, with the folder it came from.
    faces: Option<(PathBuf, Arc<crate::vision::face::FaceAnalyzer>)>,
    /// InstantID of the last job that used one, by path.
    instantid: Option<(PathBuf, Arc<crate::adapters::instantid::InstantId>)>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// An engine on the CPU.
    pub fn new() -> Self {
        Engine {
            device: Device::Cpu,
            loaded: None,
            previews: false,
            precision: Precision::F32,
            compute: crate::gpu::ComputeDevice::Cpu,
            gpu: None,
            taesd_dirs: Vec::new(),
            taesd: HashMap::new(),
            controlnets: HashMap::new(),
            ip_adapters: HashMap::new(),
            image_encoders: HashMap::new(),
            preprocessors: Default::default(),
            faces: None,
            instantid: None,
        }
    }

    /// The face analyser (antelopev2) from `folder`, or, when `folder` is empty, from the
    /// model folders (`preprocessors.model_dirs`); loaded once and kept while the folder stays.
    pub fn face_analyzer(
        &mut self,
        folder: &std::path::Path,
    ) -> Result<Arc<crate::vision::face::FaceAnalyzer>> {
        use crate::vision::face::{CATALOG_ID, FaceAnalyzer, find_models};
        let dir = if folder.as_os_str().is_empty() {
            find_models(&self.preprocessors.model_dirs).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "face analysis models not found in the model folders: download \
                     `{CATALOG_ID}` in the model manager (or `kiln models download {CATALOG_ID}`)"
                ))
            })?
        } else {
            folder.to_path_buf()
        };
        if let Some((cached, analyzer)) = &self.faces
            && *cached == dir
        {
            return Ok(analyzer.clone());
        }
        let analyzer = Arc::new(FaceAnalyzer::load_dir(&dir)?);
        self.faces = Some((dir, analyzer.clone()));
        Ok(analyzer)
    }

    /// The TAESD decoder for previews of this family, if its weights are found and load;
    /// loaded once and cached. A load error only disables TAESD previews for this job.
    fn taesd_for(&mut self, sdxl: bool) -> Option<Arc<TaesdDecoder>> {
        let path = find_taesd(&self.taesd_dirs, sdxl)?;
        if let Some((cached, decoder)) = self.taesd.get(&sdxl)
            && *cached == path
        {
            return Some(decoder.clone());
        }
        let decoder = Arc::new(TaesdDecoder::load(&path, &self.device, DType::F32).ok()?);
        self.taesd.insert(sdxl, (path, decoder.clone()));
        Some(decoder)
    }

    /// The GPU adapter the loaded model runs on (none: the CPU).
    pub fn gpu_adapter(&self) -> Option<String> {
        self.loaded
            .as_ref()
            .and_then(|l| l.model.gpu_adapter().map(str::to_owned))
    }

    /// The GPU for [`Self::compute`] (opened once per choice).
    fn gpu(&mut self) -> Result<Option<Arc<crate::gpu::Gpu>>> {
        if let Some((choice, gpu)) = &self.gpu
            && *choice == self.compute
        {
            return Ok(gpu.clone());
        }
        let gpu = self.compute.open()?;
        self.gpu = Some((self.compute, gpu.clone()));
        Ok(gpu)
    }

    /// Loads (or reuses) the recipe's model.
    fn ensure_loaded(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        started: Instant,
    ) -> Result<&Loaded> {
        let path = recipe.model.path.clone();
        let precision = self.precision;
        let gpu = self.gpu()?;
        let reuse = self.loaded.as_ref().is_some_and(|l| {
            l.path == path
                && l.model.precision() == precision
                && (l.model.gpu_adapter().is_some() || l.gpu_warning.is_some()) == gpu.is_some()
        });
        if !reuse {
            self.loaded = None;
            // ControlNets follow the model's precision: built again after a change.
            self.controlnets.clear();
            self.instantid = None;
            let files = ModelFiles::open(&path)?;
            let mut report = |part: &str| {
                on_progress(&Progress::loading(part, recipe, started));
            };
            let mut model =
                StableDiffusion::load_with(&files, &self.device, precision, &mut report)?;
            let mut gpu_warning = None;
            if let Some(gpu) = gpu {
                report("GPU");
                match model.use_gpu(gpu, &files) {
                    Ok(()) => {}
                    // Out of GPU memory while uploading: the model runs on the CPU.
                    Err(Error::Gpu(reason)) => {
                        gpu_warning = Some(format!(
                            "the model does not fit on the GPU, it runs on the CPU: {reason}"
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            let hash = files.autov2_hash().ok();
            self.loaded = Some(Loaded {
                path,
                family: files.kind.family.id().to_string(),
                model,
                hash,
                loras: Vec::new(),
                lora_warnings: Vec::new(),
                gpu_warning,
            });
        }
        self.loaded
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("model failed to load".into()))
    }

    /// Loads (or reuses) the recipe's ControlNets and makes their guides (inpainting guides
    /// from `inputs`, the init image and mask as the UNet sees them).
    fn control_requests(
        &mut self,
        recipe: &Recipe,
        inputs: &GenerationInputs,
        on_progress: &mut dyn FnMut(&Progress),
        started: Instant,
    ) -> Result<Vec<ControlRequest>> {
        let cross = self
            .model()
            .map(|m| m.unet().config().cross_attention_dim)
            .unwrap_or_default();
        self.controlnets
            .retain(|path, _| recipe.controls.iter().any(|c| &c.model == path));
        let mut requests = Vec::with_capacity(recipe.controls.len());
        for spec in &recipe.controls {
            let net = match self.controlnets.get(&spec.model) {
                Some(net) => net.clone(),
                None => {
                    on_progress(&Progress::loading("ControlNet", recipe, started));
                    // ControlNets are built in the model's precision (packed bf16 weights in
                    // bf16 mode: half the memory of an SDXL ControlNet).
                    let net = Arc::new(crate::kernels::with_precision(self.precision, || {
                        ControlNet::load(&spec.model, &self.device)
                    })?);
                    self.controlnets.insert(spec.model.clone(), net.clone());
                    net
                }
            };
            let net_cross = net.config().unet.cross_attention_dim;
            if net_cross != cross {
                return Err(Error::InvalidArgument(format!(
                    "ControlNet {:?} was made for another model family (text width {net_cross}, \
                     the model has {cross})",
                    spec.model
                )));
            }
            let (guide, masked) = if spec.preprocessor == Preprocessor::Inpaint {
                let (guide, mask) = inpaint_guide(recipe, spec, inputs)?;
                (guide, Some(mask))
            } else {
                if spec.image.as_os_str().is_empty() {
                    return Err(Error::InvalidArgument(format!(
                        "ControlNet {:?} has no guide image",
                        spec.model
                    )));
                }
                let image = load_init_image(&spec.image, recipe.width, recipe.height)?;
                let guide = crate::vision::preprocess::guide_with(
                    &mut self.preprocessors,
                    spec.preprocessor,
                    &image,
                    None,
                    &Default::default(),
                    &self.device,
                )?;
                (guide, None)
            };
            requests.push(ControlRequest {
                net,
                guide,
                masked,
                context: None,
                scale: spec.scale,
                start: spec.start,
                end: spec.end,
            });
        }
        Ok(requests)
    }

    /// Loads (or reuses) the recipe's IP-Adapters and image encoders and computes each
    /// adapter's image tokens.
    fn ip_adapter_requests(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        started: Instant,
    ) -> Result<Vec<crate::adapters::ip_adapter::IpAdapterRequest>> {
        use crate::adapters::ip_adapter::{IpAdapter, IpAdapterRequest, clip_vision};
        let cross = self
            .model()
            .map(|m| m.unet().config().cross_attention_dim)
            .unwrap_or_default();
        self.ip_adapters
            .retain(|path, _| recipe.ip_adapters.iter().any(|a| &a.model == path));
        self.image_encoders
            .retain(|path, _| recipe.ip_adapters.iter().any(|a| &a.encoder == path));
        let mut requests = Vec::with_capacity(recipe.ip_adapters.len());
        for spec in &recipe.ip_adapters {
            let adapter = match self.ip_adapters.get(&spec.model) {
                Some(a) => a.clone(),
                None => {
                    on_progress(&Progress::loading("IP-Adapter", recipe, started));
                    let a = Arc::new(IpAdapter::load(&spec.model, &self.device)?);
                    self.ip_adapters.insert(spec.model.clone(), a.clone());
                    a
                }
            };
            if adapter.context_dim() != cross {
                return Err(Error::InvalidArgument(format!(
                    "IP-Adapter {:?} was made for another model family (token width {}, the model \
                     has {cross})",
                    spec.model,
                    adapter.context_dim()
                )));
            }
            let encoder = match self.image_encoders.get(&spec.encoder) {
                Some(e) => e.clone(),
                None => {
                    on_progress(&Progress::loading("image encoder", recipe, started));
                    let e = Arc::new(clip_vision::ClipVisionModel::load(
                        &spec.encoder,
                        &self.device,
                    )?);
                    self.image_encoders.insert(spec.encoder.clone(), e.clone());
                    e
                }
            };
            let image = load_rgb(&spec.image)?;
            requests.push(IpAdapterRequest {
                tokens: adapter.image_tokens(&encoder, &image)?,
                adapter,
                scale: spec.scale,
            });
        }
        Ok(requests)
    }

    /// InstantID (`recipe.face`): the face photo's embedding becomes face tokens for a face
    /// adapter (appended to `ip_adapters`) and for IdentityNet, which reads the keypoint image
    /// (put first in `controls`, as InstantID orders it). A face with both strengths 0 is only
    /// the reference of the identity score: nothing is loaded but the face analyser.
    fn face_requests(
        &mut self,
        recipe: &Recipe,
        mut controls: Vec<ControlRequest>,
        mut ip_adapters: Vec<crate::adapters::ip_adapter::IpAdapterRequest>,
        on_progress: &mut dyn FnMut(&Progress),
        started: Instant,
    ) -> Result<(
        Vec<ControlRequest>,
        Vec<crate::adapters::ip_adapter::IpAdapterRequest>,
    )> {
        use crate::adapters::instantid::{InstantId, cover_keypoints, pick_face};
        use crate::adapters::ip_adapter::IpAdapterRequest;
        let Some(face) = &recipe.face else {
            self.instantid = None;
            return Ok((controls, ip_adapters));
        };
        if face.strength == 0.0 && face.keypoints == 0.0 {
            return Ok((controls, ip_adapters));
        }
        let cross = self
            .model()
            .map(|m| m.unet().config().cross_attention_dim)
            .unwrap_or_default();
        on_progress(&Progress::loading("face analysis", recipe, started));
        let analyzer = self.face_analyzer(&face.analysis)?;
        let photo = load_rgb(&face.image)?;
        let chosen = pick_face(&analyzer.detect(&photo)?, face.index, "face photo")?;
        let embedding = analyzer.embed_raw(&photo, &chosen)?;
        let (kps, kps_size) = match &face.pose {
            Some(pose) => {
                let pose_photo = load_rgb(pose)?;
                let pose_face = pick_face(&analyzer.detect(&pose_photo)?, None, "pose photo")?;
                (pose_face.kps, pose_photo.dimensions())
            }
            None => (chosen.kps, photo.dimensions()),
        };
        let instantid = match &self.instantid {
            Some((path, loaded)) if *path == face.model => loaded.clone(),
            _ => {
                on_progress(&Progress::loading("InstantID", recipe, started));
                let loaded = Arc::new(crate::kernels::with_precision(self.precision, || {
                    InstantId::load(&face.model, &self.device)
                })?);
                self.instantid = Some((face.model.clone(), loaded.clone()));
                loaded
            }
        };
        let net_cross = instantid.identity_net.config().unet.cross_attention_dim;
        if instantid.adapter.context_dim() != cross || net_cross != cross {
            return Err(Error::InvalidArgument(format!(
                "InstantID works with SDXL models: {:?} makes {}-wide face tokens, the model \
                 reads {cross}-wide ones",
                face.model,
                instantid.adapter.context_dim()
            )));
        }
        let tokens = instantid.adapter.embedding_tokens(&embedding)?;
        let size = (recipe.width, recipe.height);
        let guide = crate::vision::face::keypoints::draw_keypoints(
            size.0,
            size.1,
            &cover_keypoints(&kps, kps_size, size),
        );
        controls.insert(
            0,
            ControlRequest {
                net: instantid.identity_net.clone(),
                guide,
                masked: None,
                context: Some((tokens.positive.clone(), tokens.negative.clone())),
                scale: face.keypoints,
                start: 0.0,
                end: 1.0,
            },
        );
        ip_adapters.push(IpAdapterRequest {
            adapter: instantid.adapter.clone(),
            tokens,
            scale: face.strength,
        });
        Ok((controls, ip_adapters))
    }

    /// Applies the recipe's LoRAs to the loaded model unless exactly these are applied already.
    fn ensure_loras(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        started: Instant,
    ) -> Result<()> {
        let wanted: Vec<AppliedLora> = recipe
            .loras
            .iter()
            .map(|l| AppliedLora {
                path: l.path.clone(),
                weight: l.weight,
                stamp: file_stamp(&l.path),
                hash: None,
            })
            .collect();
        let loaded = self
            .loaded
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("model failed to load".into()))?;
        let same = |a: &AppliedLora, b: &AppliedLora| {
            a.path == b.path && a.weight == b.weight && a.stamp == b.stamp
        };
        if wanted.len() == loaded.loras.len()
            && wanted.iter().zip(&loaded.loras).all(|(a, b)| same(a, b))
        {
            return Ok(());
        }
        on_progress(&Progress::loading("LoRA", recipe, started));
        let mut files = Vec::with_capacity(wanted.len());
        for lora in &wanted {
            files.push((LoraFile::open(&lora.path)?, lora.weight));
        }
        // Whatever happens next, the model no longer matches the old list.
        loaded.loras.clear();
        loaded.lora_warnings.clear();
        let reports = match loaded.model.set_loras(&files) {
            Ok(reports) => reports,
            Err(e) => {
                // Leave the base model in place rather than a half-patched one.
                let _ = loaded.model.set_loras(&[]);
                return Err(e);
            }
        };
        loaded.lora_warnings = reports.iter().flat_map(|r| r.warnings()).collect();
        loaded.loras = wanted
            .into_iter()
            .map(|mut l| {
                l.hash = lora_hash(&l.path);
                l
            })
            .collect();
        Ok(())
    }

    /// The loaded model, if any (for token counts and tests).
    pub fn model(&self) -> Option<&StableDiffusion> {
        self.loaded.as_ref().map(|l| &l.model)
    }

    /// The recipe's model with the recipe's LoRAs applied, loaded or reused, with the LoRA
    /// warnings (story pages drive its batches directly: `pipelines::story`).
    pub fn prepare_model(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<(&StableDiffusion, Vec<String>)> {
        let started = Instant::now();
        self.ensure_loaded(recipe, on_progress, started)?;
        self.ensure_loras(recipe, on_progress, started)?;
        let loaded = self
            .loaded
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("model failed to load".into()))?;
        Ok((&loaded.model, loaded.lora_warnings.clone()))
    }

    /// Runs a recipe: `batch` images with seeds `seed, seed+1, …`.
    pub fn run(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> Result<Vec<Output>> {
        let started = Instant::now();
        let extended;
        let recipe = match outpaint_size(recipe)? {
            Some((width, height)) => {
                extended = Recipe {
                    width,
                    height,
                    ..recipe.clone()
                };
                &extended
            }
            None => recipe,
        };
        validate(recipe)?;
        let (init, mask, paste) = prepare_inputs(recipe)?;
        let (regions, region_warnings) = region_inputs(recipe, paste.as_ref())?;
        let overlay = match &recipe.overlay {
            Some(path) => Some(load_overlay(path, recipe.width, recipe.height)?),
            None => None,
        };
        // Face analysis first: a photo without a face fails before any model loads.
        let faces = crate::pipelines::faces::JobFaces::prepare(self, recipe)?;
        let previews = self.previews;
        self.ensure_loaded(recipe, on_progress, started)?;
        self.ensure_loras(recipe, on_progress, started)?;
        let inputs = GenerationInputs {
            init: init.as_ref().map(|(image, _)| image),
            mask: mask.as_ref(),
            paste: paste.as_ref(),
        };
        let controls = self.control_requests(recipe, &inputs, on_progress, started)?;
        let ip_adapters = self.ip_adapter_requests(recipe, on_progress, started)?;
        let (controls, ip_adapters) =
            self.face_requests(recipe, controls, ip_adapters, on_progress, started)?;
        let family = self
            .model()
            .ok_or_else(|| Error::InvalidArgument("model failed to load".into()))?
            .kind()
            .family;
        let taesd = if previews {
            self.taesd_for(family.is_sdxl())
        } else {
            None
        };
        let loaded = self
            .loaded
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("model failed to load".into()))?;
        let images = recipe.batch.max(1) as usize;
        let mut outputs = Vec::with_capacity(images);
        let sampling_started = Instant::now();
        let mut steps_done = 0usize;
        for index in 0..images {
            let seed = recipe.seed.wrapping_add(index as u64);
            let request = GenerateRequest {
                prompt: recipe.prompt.clone(),
                negative: recipe.negative.clone(),
                sampler: recipe.sampler,
                steps: recipe.steps,
                cfg: recipe.cfg,
                width: recipe.width,
                height: recipe.height,
                init: init.clone(),
                clip_skip: recipe.clip_skip,
                seed,
                controls: controls.clone(),
                guess_mode: recipe.guess_mode,
                mask: mask.clone(),
                regions: regions.clone(),
                ip_adapters: ip_adapters.clone(),
            };
            let mut on_step = |info: crate::pipelines::stable_diffusion::StepInfo| {
                steps_done += 1;
                let per_step = sampling_started.elapsed() / steps_done as u32;
                let left = (images - index) * info.total - info.step;
                let preview = if previews {
                    taesd
                        .as_ref()
                        .and_then(|t| t.decode_to_image(&info.latents).ok())
                        .or_else(|| latents_to_rgb(&info.latents, family).ok())
                } else {
                    None
                };
                on_progress(&Progress {
                    stage: Stage::Sampling,
                    step: info.step,
                    total: info.total,
                    image: index,
                    images,
                    elapsed: started.elapsed(),
                    eta: Some(per_step * left as u32),
                    preview,
                });
            };
            let image = loaded.model.generate(&request, &mut on_step, cancel)?;
            let image = match &paste {
                Some(p) => paste_back(&p.original, &image, &p.mask, p.region, p.blur),
                None => image,
            };
            let mut face_warnings = Vec::new();
            let image = faces.fix(
                &loaded.model,
                &request,
                image,
                (index, images),
                started,
                on_progress,
                cancel,
                &mut face_warnings,
            )?;
            let image = match &overlay {
                Some(overlay) => composite_over(image, overlay),
                None => image,
            };
            let mut image_recipe = recipe.clone();
            image_recipe.seed = seed;
            image_recipe.batch = 1;
            image_recipe.identity = faces.identity(&image)?;
            image_recipe.model.hash = loaded.hash.clone();
            image_recipe.model.family = Some(loaded.family.clone());
            for (spec, applied) in image_recipe.loras.iter_mut().zip(&loaded.loras) {
                spec.hash = applied.hash.clone();
            }
            let mut warnings = loaded.lora_warnings.clone();
            warnings.extend(loaded.gpu_warning.iter().cloned());
            if let Some(reason) = loaded.model.gpu_failure() {
                warnings.push(format!(
                    "the GPU was given up, the image was made on the CPU: {reason}"
                ));
            }
            warnings.extend(region_warnings.iter().cloned());
            warnings.extend(face_warnings);
            if recipe.uses_face_models() {
                warnings.push(format!(
                    "licence: {}; not for commercial use",
                    crate::recipe::FACE_MODELS_LICENCE
                ));
            }
            outputs.push(Output {
                image,
                recipe: image_recipe,
                warnings,
            });
        }
        Ok(outputs)
    }
}

/// How an inpainting result goes back over the original.
struct PasteBack {
    original: RgbImage,
    /// Binary mask at the original's size.
    mask: image::GrayImage,
    region: Region,
    blur: u32,
}

/// The init image and mask of a generation as the UNet sees them (cropped in "only masked"
/// mode, extended for outpainting), and how the result goes back.
struct GenerationInputs<'a> {
    init: Option<&'a RgbImage>,
    mask: Option<&'a image::GrayImage>,
    paste: Option<&'a PasteBack>,
}

/// The guide and mask of an inpainting ControlNet (`pre=inpaint`, diffusers'
/// `make_inpaint_condition`; the mask's pixels become −1 in `control_guides`): the control
/// image, or the init image when it has none, and the inpainting mask, both at the generation
/// size with the geometry the UNet sees: a control image is cropped like the init image in
/// "only masked" mode and extended like it for outpainting.
fn inpaint_guide(
    recipe: &Recipe,
    spec: &ControlSpec,
    inputs: &GenerationInputs,
) -> Result<(RgbImage, image::GrayImage)> {
    let (Some(init), Some(mask), Some(init_spec)) = (inputs.init, inputs.mask, &recipe.init) else {
        return Err(inpaint_needs_mask(spec));
    };
    if spec.image.as_os_str().is_empty() {
        return Ok((init.clone(), mask.clone()));
    }
    let (w, h) = (recipe.width, recipe.height);
    let only_masked = recipe.mask.as_ref().is_some_and(|m| m.only_masked);
    let guide = match (&recipe.outpaint, inputs.paste) {
        (Some(outpaint), _) => {
            // The control image stands for the original picture: extended as it is.
            let (ow, oh) = image::image_dimensions(&init_spec.path).map_err(|e| {
                Error::Image(format!("cannot read {:?} as an image: {e}", init_spec.path))
            })?;
            let image = load_init_image(&spec.image, ow, oh)?;
            crate::pipelines::outpaint::prepare(&image, outpaint)?.init
        }
        (None, Some(paste)) if only_masked => {
            let (ow, oh) = paste.original.dimensions();
            crop_resize(&load_init_image(&spec.image, ow, oh)?, paste.region, w, h)
        }
        _ => load_init_image(&spec.image, w, h)?,
    };
    Ok((guide, mask.clone()))
}

/// The error of an inpainting ControlNet in a recipe without an inpainting mask.
fn inpaint_needs_mask(spec: &ControlSpec) -> Error {
    Error::InvalidArgument(format!(
        "ControlNet {:?}: pre=inpaint needs an init image and an inpainting mask (--init and \
         --mask, or --outpaint)",
        spec.model
    ))
}

/// Init image, mask and paste-back of a recipe: plain img2img; masked at the output size
/// (pasted back when the edge is blurred); or "only masked", a crop around the mask at the
/// output size, pasted back into the original at its own size.
#[allow(clippy::type_complexity)]
fn prepare_inputs(
    recipe: &Recipe,
) -> Result<(
    Option<(RgbImage, f32)>,
    Option<image::GrayImage>,
    Option<PasteBack>,
)> {
    let (w, h) = (recipe.width, recipe.height);
    let Some(init) = &recipe.init else {
        if recipe.mask.is_some() {
            return Err(Error::InvalidArgument(
                "an inpainting mask needs an init image (--init)".into(),
            ));
        }
        return Ok((None, None, None));
    };
    if let Some(spec) = &recipe.outpaint {
        if recipe.mask.is_some() {
            return Err(Error::InvalidArgument(
                "outpainting makes its own mask: give either a mask or an outpaint extension, \
                 not both"
                    .into(),
            ));
        }
        let original = load_rgb(&init.path)?;
        let prepared = crate::pipelines::outpaint::prepare(&original, spec)?;
        let paste = PasteBack {
            original: prepared.init.clone(),
            mask: prepared.alpha,
            region: Region {
                x0: 0,
                y0: 0,
                x1: prepared.plan.width(),
                y1: prepared.plan.height(),
            },
            blur: 0,
        };
        return Ok((
            Some((prepared.init, init.strength)),
            Some(prepared.mask),
            Some(paste),
        ));
    }
    let Some(spec) = &recipe.mask else {
        return Ok((
            Some((load_init_image(&init.path, w, h)?, init.strength)),
            None,
            None,
        ));
    };
    let binary = |m: image::GrayImage| {
        image::GrayImage::from_fn(m.width(), m.height(), |x, y| {
            image::Luma([if m.get_pixel(x, y).0[0] >= 128 {
                255
            } else {
                0
            }])
        })
    };
    if spec.only_masked {
        let original = load_rgb(&init.path)?;
        let mask = binary(load_mask(&spec.path, original.width(), original.height())?);
        let region = crop_region(&mask, spec.padding, w, h).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the mask {:?} is empty (no white pixels)",
                spec.path
            ))
        })?;
        let crop = crop_resize(&original, region, w, h);
        let crop_mask = crop_resize_mask(&mask, region, w, h);
        let paste = PasteBack {
            original,
            mask,
            region,
            blur: spec.blur,
        };
        return Ok((Some((crop, init.strength)), Some(crop_mask), Some(paste)));
    }
    let image = load_init_image(&init.path, w, h)?;
    let mask = load_mask(&spec.path, w, h)?;
    let paste = (spec.blur > 0).then(|| PasteBack {
        original: image.clone(),
        mask: binary(mask.clone()),
        region: Region {
            x0: 0,
            y0: 0,
            x1: w,
            y1: h,
        },
        blur: spec.blur,
    });
    Ok((Some((image, init.strength)), Some(mask), paste))
}

/// The output size of an outpainting recipe (the init image's size plus the extension), read
/// from the init image's header; `None` for other recipes.
pub fn outpaint_size(recipe: &Recipe) -> Result<Option<(u32, u32)>> {
    let Some(spec) = &recipe.outpaint else {
        return Ok(None);
    };
    let Some(init) = &recipe.init else {
        return Err(Error::InvalidArgument(
            "outpainting needs an init image (--init) to extend".into(),
        ));
    };
    let (width, height) = image::image_dimensions(&init.path)
        .map_err(|e| Error::Image(format!("cannot read {:?} as an image: {e}", init.path)))?;
    let plan = crate::pipelines::outpaint::plan(width, height, spec)?;
    Ok(Some((plan.width(), plan.height())))
}

/// Loads an overlay as straight-alpha RGBA at `width × height` (Lanczos when it differs).
pub fn load_overlay(path: &std::path::Path, width: u32, height: u32) -> Result<image::RgbaImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(e, path))?;
    let decoded = image::load_from_memory(&bytes)
        .map_err(|e| Error::Image(format!("cannot read {path:?} as an overlay image: {e}")))?;
    let rgba = decoded.to_rgba8();
    if rgba.dimensions() == (width, height) {
        return Ok(rgba);
    }
    Ok(image::imageops::resize(
        &rgba,
        width,
        height,
        image::imageops::FilterType::Lanczos3,
    ))
}

/// `overlay` (straight alpha, same size) composited over `image` ("over", rounded).
pub fn composite_over(mut image: RgbImage, overlay: &image::RgbaImage) -> RgbImage {
    for (target, source) in image.pixels_mut().zip(overlay.pixels()) {
        let alpha = u32::from(source.0[3]);
        if alpha == 0 {
            continue;
        }
        for c in 0..3 {
            let mixed = u32::from(target.0[c]) * (255 - alpha) + u32::from(source.0[c]) * alpha;
            target.0[c] = ((mixed + 127) / 255) as u8;
        }
    }
    image
}

/// The recipe's regional prompts at the generation size: boxes and masks refer to the output
/// image, which is the pasted-back original when only a crop of it is generated.
fn region_inputs(
    recipe: &Recipe,
    paste: Option<&PasteBack>,
) -> Result<(Vec<crate::pipelines::regions::RegionRequest>, Vec<String>)> {
    let generation = (recipe.width, recipe.height);
    match paste {
        Some(p) => crate::pipelines::regions::region_requests(
            &recipe.regions,
            p.original.dimensions(),
            Some(p.region),
            generation,
        ),
        None => crate::pipelines::regions::region_requests(
            &recipe.regions,
            generation,
            None,
            generation,
        ),
    }
}

/// Loads an inpainting mask as 8-bit gray at `width × height` (any image mode; alpha is
/// ignored; nearest-neighbour resize keeps it hard-edged).
pub fn load_mask(path: &std::path::Path, width: u32, height: u32) -> Result<image::GrayImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(e, path))?;
    let decoded = image::load_from_memory(&bytes)
        .map_err(|e| Error::Image(format!("cannot read {path:?} as a mask image: {e}")))?;
    let gray = decoded.to_luma8();
    if gray.dimensions() == (width, height) {
        return Ok(gray);
    }
    Ok(image::imageops::resize(
        &gray,
        width,
        height,
        image::imageops::FilterType::Nearest,
    ))
}

/// Size and modification time of a file, to notice when it changed.
fn file_stamp(path: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// A1111's LoRA short hash ([`crate::io::model::lora_short_hash`]).
fn lora_hash(path: &std::path::Path) -> Option<String> {
    crate::io::model::lora_short_hash(path).ok()
}

/// Checks a recipe before any work starts.
pub fn validate(recipe: &Recipe) -> Result<()> {
    if recipe.width == 0
        || recipe.height == 0
        || !recipe.width.is_multiple_of(8)
        || !recipe.height.is_multiple_of(8)
    {
        return Err(Error::BadSize {
            width: recipe.width,
            height: recipe.height,
        });
    }
    if recipe.width > 8192 || recipe.height > 8192 {
        return Err(Error::InvalidArgument(format!(
            "size {}x{} is larger than 8192 pixels on a side",
            recipe.width, recipe.height
        )));
    }
    if recipe.steps == 0 || recipe.steps > 1000 {
        return Err(Error::InvalidArgument(format!(
            "steps must be between 1 and 1000, got {}",
            recipe.steps
        )));
    }
    if !recipe.cfg.is_finite() || recipe.cfg < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "cfg must be ≥ 0, got {}",
            recipe.cfg
        )));
    }
    for control in &recipe.controls {
        if control.preprocessor == Preprocessor::Inpaint
            && (recipe.init.is_none() || (recipe.mask.is_none() && recipe.outpaint.is_none()))
        {
            return Err(inpaint_needs_mask(control));
        }
        if !control.scale.is_finite()
            || !(0.0..=1.0).contains(&control.start)
            || !(0.0..=1.0).contains(&control.end)
            || control.start >= control.end
        {
            return Err(Error::InvalidArgument(format!(
                "ControlNet {:?}: scale must be a number and 0 ≤ start < end ≤ 1 (got scale {}, start {}, end {})",
                control.model, control.scale, control.start, control.end
            )));
        }
    }
    for (index, region) in recipe.regions.iter().enumerate() {
        crate::pipelines::regions::check_region(region, index)?;
    }
    if let Some(spec) = &recipe.face_fix {
        crate::pipelines::face_fix::check(spec)?;
    }
    for adapter in &recipe.ip_adapters {
        if !adapter.scale.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "IP-Adapter {:?}: scale must be a number, got {}",
                adapter.model, adapter.scale
            )));
        }
    }
    if let Some(init) = &recipe.init
        && !(init.strength > 0.0 && init.strength <= 1.0)
    {
        return Err(Error::InvalidArgument(format!(
            "strength must be in (0, 1], got {}",
            init.strength
        )));
    }
    Ok(())
}

/// Loads an image as RGB8 at its own size.
pub fn load_rgb(path: &std::path::Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(e, path))?;
    let decoded = image::load_from_memory(&bytes)
        .map_err(|e| Error::Image(format!("cannot read {path:?} as an image: {e}")))?;
    Ok(decoded.to_rgb8())
}

/// Loads an init image as RGB8 at `width × height` (Lanczos resize when it differs).
pub fn load_init_image(path: &std::path::Path, width: u32, height: u32) -> Result<RgbImage> {
    let rgb = load_rgb(path)?;
    if rgb.dimensions() == (width, height) {
        return Ok(rgb);
    }
    Ok(image::imageops::resize(
        &rgb,
        width,
        height,
        image::imageops::FilterType::Lanczos3,
    ))
}
