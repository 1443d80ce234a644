//! `Recipe`: everything needed to reproduce an output (serde, versioned).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Current recipe format version; bump it and add a migration when fields change meaning.
pub const RECIPE_VERSION: u32 = 1;

/// Sampler names as the CLI spells them; each maps to one diffusers scheduler class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SamplerKind {
    /// diffusers `EulerDiscreteScheduler`.
    #[serde(rename = "euler")]
    Euler,
    /// diffusers `EulerAncestralDiscreteScheduler`.
    #[serde(rename = "euler-a")]
    EulerAncestral,
    /// diffusers `DPMSolverMultistepScheduler` (dpmsolver++, order 2).
    #[serde(rename = "dpm++2m")]
    DpmPlusPlus2M,
    /// As above with `use_karras_sigmas=True`.
    #[default]
    #[serde(rename = "dpm++2m-karras")]
    DpmPlusPlus2MKarras,
    /// diffusers `DDIMScheduler` (eta 0).
    #[serde(rename = "ddim")]
    Ddim,
    /// diffusers `LCMScheduler`.
    #[serde(rename = "lcm")]
    Lcm,
}

impl SamplerKind {
    /// All samplers, in the order the UI lists them.
    pub const ALL: [SamplerKind; 6] = [
        SamplerKind::Euler,
        SamplerKind::EulerAncestral,
        SamplerKind::DpmPlusPlus2M,
        SamplerKind::DpmPlusPlus2MKarras,
        SamplerKind::Ddim,
        SamplerKind::Lcm,
    ];

    /// The CLI name (`euler`, `euler-a`, `dpm++2m`, `dpm++2m-karras`, `ddim`, `lcm`).
    pub fn cli_name(self) -> &'static str {
        match self {
            SamplerKind::Euler => "euler",
            SamplerKind::EulerAncestral => "euler-a",
            SamplerKind::DpmPlusPlus2M => "dpm++2m",
            SamplerKind::DpmPlusPlus2MKarras => "dpm++2m-karras",
            SamplerKind::Ddim => "ddim",
            SamplerKind::Lcm => "lcm",
        }
    }

    /// Parses a CLI name.
    pub fn from_cli_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.cli_name() == name)
    }

    /// A1111 `Sampler` and `Schedule type` values (the ≥ 1.9 form).
    pub fn a1111_names(self) -> (&'static str, &'static str) {
        match self {
            SamplerKind::Euler => ("Euler", "Automatic"),
            SamplerKind::EulerAncestral => ("Euler a", "Automatic"),
            SamplerKind::DpmPlusPlus2M => ("DPM++ 2M", "Automatic"),
            SamplerKind::DpmPlusPlus2MKarras => ("DPM++ 2M", "Karras"),
            SamplerKind::Ddim => ("DDIM", "Automatic"),
            SamplerKind::Lcm => ("LCM", "Automatic"),
        }
    }
}

/// The model a recipe ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelRef {
    /// Diffusers folder or single `.safetensors` file.
    pub path: PathBuf,
    /// AutoV2 hash (first 10 hex of SHA-256 of the file; for folders, of the UNet file).
    pub hash: Option<String>,
    /// Detected family, e.g. "sd1", "sdxl".
    pub family: Option<String>,
}

/// Image-to-image input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InitImage {
    /// The image file.
    pub path: PathBuf,
    /// Denoising strength in (0, 1].
    pub strength: f32,
}

/// One LoRA (or LyCORIS) file applied with a user weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraSpec {
    /// The `.safetensors` file.
    pub path: PathBuf,
    /// User weight `m` (scale = m · alpha / rank); A1111's `<lora:name:m>`.
    pub weight: f32,
    /// Name as written in prompts (file stem), for A1111 metadata.
    #[serde(default)]
    pub name: String,
    /// AutoV2-style short hash of the file, for A1111's `Lora hashes`.
    #[serde(default)]
    pub hash: Option<String>,
}

/// How a ControlNet guide is made from its image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preprocessor {
    /// The image is the guide already.
    #[default]
    None,
    /// Canny edges (thresholds 100/200 unless given).
    Canny,
    /// White strokes on black from a sketch or photo.
    Scribble,
    /// Line art.
    Lineart,
    /// Relative depth.
    Depth,
    /// Inpainting guide (diffusers `make_inpaint_condition`, `control_v11p_sd15_inpaint`): the
    /// image (the init image when none is given) with the masked pixels set to −1; needs an init
    /// image and a mask (or outpainting).
    Inpaint,
}

impl Preprocessor {
    /// The CLI / recipe name.
    pub fn name(self) -> &'static str {
        match self {
            Preprocessor::None => "none",
            Preprocessor::Canny => "canny",
            Preprocessor::Scribble => "scribble",
            Preprocessor::Lineart => "lineart",
            Preprocessor::Depth => "depth",
            Preprocessor::Inpaint => "inpaint",
        }
    }

    /// Parses a CLI name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Preprocessor::None,
            Preprocessor::Canny,
            Preprocessor::Scribble,
            Preprocessor::Lineart,
            Preprocessor::Depth,
            Preprocessor::Inpaint,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

/// One ControlNet with its guide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControlSpec {
    /// ControlNet diffusers folder or single file.
    pub model: PathBuf,
    /// Guide image (or the image to preprocess into one); for [`Preprocessor::Inpaint`] it may
    /// be empty: the init image.
    pub image: PathBuf,
    /// How the guide is made from `image`.
    pub preprocessor: Preprocessor,
    /// Residual scale (1.0).
    pub scale: f32,
    /// First fraction of the steps it acts on (0.0).
    pub start: f32,
    /// Last fraction of the steps it acts on (1.0).
    pub end: f32,
}

impl Default for ControlSpec {
    fn default() -> Self {
        ControlSpec {
            model: PathBuf::new(),
            image: PathBuf::new(),
            preprocessor: Preprocessor::None,
            scale: 1.0,
            start: 0.0,
            end: 1.0,
        }
    }
}

/// An inpainting mask (white = repaint) for the init image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MaskSpec {
    /// The mask image (any mode; gray values ≥ 50 % repaint).
    pub path: PathBuf,
    /// Gaussian blur radius in pixels of the edge used to paste the result over the init image
    /// (0 = no paste-back, diffusers' behaviour).
    pub blur: u32,
    /// Generate only a crop around the mask at full resolution and paste it back.
    pub only_masked: bool,
    /// Context pixels around the mask's bounding box in `only_masked` mode.
    pub padding: u32,
}

impl Default for MaskSpec {
    fn default() -> Self {
        MaskSpec {
            path: PathBuf::new(),
            blur: 0,
            only_masked: false,
            padding: 32,
        }
    }
}

/// Outpainting: the init image extended on some sides, the new area generated (an inpainting
/// job whose init image and mask Kiln makes, see `pipelines::outpaint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutpaintSpec {
    /// Pixels added on the left.
    pub left: u32,
    /// Pixels added on the right.
    pub right: u32,
    /// Pixels added at the top.
    pub top: u32,
    /// Pixels added at the bottom.
    pub bottom: u32,
    /// Band of the original, in pixels from each extended side, that is repainted too and
    /// blended smoothly (the seam disappears in it); beyond it the original stays exact.
    pub overlap: u32,
}

/// The default overlap band of outpainting, in pixels.
pub const DEFAULT_OUTPAINT_OVERLAP: u32 = 16;

impl Default for OutpaintSpec {
    fn default() -> Self {
        OutpaintSpec {
            left: 0,
            right: 0,
            top: 0,
            bottom: 0,
            overlap: DEFAULT_OUTPAINT_OVERLAP,
        }
    }
}

/// Where a regional prompt applies, in the coordinates of the output image
/// (`docs/REGIONAL.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionArea {
    /// A box `[x0, y0, x1, y1]` in fractions of the image's width and height, origin top left,
    /// `0 ≤ x0 < x1 ≤ 1` and `0 ≤ y0 < y1 ≤ 1`. It covers the pixel columns
    /// `floor(x0·W + ½) ≤ x < floor(x1·W + ½)` and the rows likewise (coverage 1 there, 0
    /// elsewhere). JSON: `{"box": [0.0, 0.5, 0.5, 1.0]}`.
    Box([f32; 4]),
    /// A mask image (PNG, any mode; alpha ignored): coverage = gray value / 255, so white is
    /// inside and gray is partly inside. Resized (bilinear) to the output size when its size
    /// differs; its aspect ratio must match. JSON: `{"mask": "path/to/mask.png"}`.
    Mask(PathBuf),
}

/// A regional prompt: its own prompt in one area of the image, applied through the UNet's
/// cross-attention (`docs/REGIONAL.md`).
///
/// In every cross-attention layer the conditional batch row attends to the base prompt and to
/// each region's prompt; the layer's output at each position is the base output with the
/// region outputs composited over it in list order, each with opacity
/// `weight · coverage` (coverage area-averaged to the layer's grid). The unconditional row
/// uses the base negative prompt, with the regions that have their own `negative` composited
/// over it the same way. Pooled text and time embeddings (SDXL) and ControlNets see only the
/// base prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionSpec {
    /// The region's prompt (A1111 syntax, encoded like the main prompt, clip skip included;
    /// `<lora:…>` tags are removed, not applied).
    pub prompt: String,
    /// The region's own negative prompt for the unconditional row; `None` = the base negative
    /// applies inside the region too.
    #[serde(default)]
    pub negative: Option<String>,
    /// Where it applies.
    pub area: RegionArea,
    /// Opacity in `[0, 1]`: 1 replaces the base prompt inside the region, 0.5 mixes them
    /// equally.
    #[serde(default = "full_weight")]
    pub weight: f32,
}

fn full_weight() -> f32 {
    1.0
}

/// An IP-Adapter with its reference image (diffusers `load_ip_adapter` + `ip_adapter_image`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpAdapterSpec {
    /// Adapter weights in the original IP-Adapter layout (`ip-adapter_sd15.safetensors`,
    /// `ip-adapter-plus_sdxl_vit-h.safetensors`, …).
    pub model: PathBuf,
    /// CLIP vision encoder folder (`config.json` + `model.safetensors`).
    pub encoder: PathBuf,
    /// The reference image.
    pub image: PathBuf,
    /// Weight of the image's attention term (1.0).
    #[serde(default = "full_weight")]
    pub scale: f32,
}

/// The default identity and keypoint strengths of InstantID (its authors' defaults).
pub const DEFAULT_FACE_STRENGTH: f32 = 0.8;

/// InstantID (SDXL): keep the identity of a face photo. The photo's largest face (or the one
/// chosen) is detected and embedded with ArcFace; its embedding becomes 16 face tokens (the
/// adapter's Resampler) that every cross-attention also attends to, and IdentityNet (a
/// ControlNet that reads the face tokens instead of the prompt) draws the face where the five
/// keypoints of the face (or of the pose photo) say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaceSpec {
    /// The face photo.
    pub image: PathBuf,
    /// Which detected face, in the order of [`crate::vision::face`] detections sorted by area,
    /// largest first; `None` = the largest.
    pub index: Option<usize>,
    /// Weight of the face tokens' attention term (the adapter scale; 0.8).
    pub strength: f32,
    /// IdentityNet's residual scale (the keypoint strength; 0.8).
    pub keypoints: f32,
    /// A photo whose largest face gives the keypoints (head position and angle) instead of the
    /// face photo.
    pub pose: Option<PathBuf>,
    /// InstantID folder (`ip-adapter.safetensors` + `ControlNetModel/`) or the adapter file
    /// with `ControlNetModel/` beside it.
    pub model: PathBuf,
    /// Face analysis folder (antelopev2: `scrfd_10g_bnkps.onnx`, `glintr100.onnx`).
    pub analysis: PathBuf,
}

impl Default for FaceSpec {
    fn default() -> Self {
        FaceSpec {
            image: PathBuf::new(),
            index: None,
            strength: DEFAULT_FACE_STRENGTH,
            keypoints: DEFAULT_FACE_STRENGTH,
            pose: None,
            model: PathBuf::new(),
            analysis: PathBuf::new(),
        }
    }
}

/// Face fix: after generation every detected face is redone by "only masked" inpainting of a
/// crop around it at a higher working resolution, then pasted back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaceFixSpec {
    /// Prompt for the faces; `None` = the recipe's prompt.
    pub prompt: Option<String>,
    /// Denoising strength of the redo (0.4).
    pub strength: f32,
    /// Working resolution of the face crop's longer side (0 = the model's native size).
    pub size: u32,
    /// Context pixels around each face box, as a fraction of the box size (0.3).
    pub padding: f32,
    /// Face analysis folder (antelopev2); empty = found in the model folders.
    pub analysis: PathBuf,
}

impl Recipe {
    /// Whether the picture is made with the face models (InstantID's embedding and keypoints,
    /// or face fix's detections), whose licence (InsightFace antelopev2) is non-commercial; a
    /// face that is only the identity score's reference does not count.
    pub fn uses_face_models(&self) -> bool {
        self.face_fix.is_some()
            || self
                .face
                .as_ref()
                .is_some_and(|f| f.strength != 0.0 || f.keypoints != 0.0)
    }
}

/// What outputs made with the face models carry (A1111 `Licence` entry and a warning).
pub const FACE_MODELS_LICENCE: &str =
    "non-commercial (made with InsightFace's antelopev2 face models)";

impl Default for FaceFixSpec {
    fn default() -> Self {
        FaceFixSpec {
            prompt: None,
            strength: 0.4,
            size: 0,
            padding: 0.3,
            analysis: PathBuf::new(),
        }
    }
}

impl RegionSpec {
    /// A region from a mask file (a canvas layer exported as a gray PNG, white = inside).
    pub fn from_mask(prompt: impl Into<String>, mask: impl Into<PathBuf>) -> Self {
        RegionSpec {
            prompt: prompt.into(),
            negative: None,
            area: RegionArea::Mask(mask.into()),
            weight: 1.0,
        }
    }

    /// A region from a box `[x0, y0, x1, y1]` in fractions of the image.
    pub fn from_box(prompt: impl Into<String>, fractions: [f32; 4]) -> Self {
        RegionSpec {
            prompt: prompt.into(),
            negative: None,
            area: RegionArea::Box(fractions),
            weight: 1.0,
        }
    }

    /// One readable line for A1111's `Regions` entry:
    /// `a puppy [box 0 0.5 0.5 1]`, `a cat [mask cat.png, weight 0.7, negative: dog]`.
    pub fn summary(&self) -> String {
        let mut parts = vec![match &self.area {
            RegionArea::Box(b) => format!("box {} {} {} {}", b[0], b[1], b[2], b[3]),
            RegionArea::Mask(path) => format!(
                "mask {}",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
        }];
        if self.weight != 1.0 {
            parts.push(format!("weight {}", self.weight));
        }
        if let Some(negative) = &self.negative {
            parts.push(format!("negative: {negative}"));
        }
        format!("{} [{}]", self.prompt, parts.join(", "))
    }
}

/// Everything needed to reproduce one generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipe {
    /// Format version ([`RECIPE_VERSION`]).
    pub version: u32,
    /// The model.
    pub model: ModelRef,
    /// Positive prompt (A1111 syntax).
    pub prompt: String,
    /// Negative prompt; `None` means "not given" (matters for SDXL's zeroed negative).
    pub negative: Option<String>,
    /// Seed of the CPU torch-compatible generator.
    pub seed: u64,
    /// Sampler.
    pub sampler: SamplerKind,
    /// Number of sampling steps.
    pub steps: usize,
    /// Classifier-free guidance scale; ≤ 1 disables the unconditional pass.
    pub cfg: f32,
    /// Output width in pixels (multiple of 8).
    pub width: u32,
    /// Output height in pixels (multiple of 8).
    pub height: u32,
    /// Optional init image for image-to-image.
    pub init: Option<InitImage>,
    /// A1111-style clip skip (1 = last layer; 2 = penultimate …).
    pub clip_skip: u32,
    /// Number of images; image `i` uses seed `seed + i`.
    pub batch: u32,
    /// LoRAs applied to the model (resolved files; `<lora:…>` prompt tags are resolved into this
    /// list by the front end, the engine applies only this list).
    pub loras: Vec<LoraSpec>,
    /// ControlNets, applied together.
    pub controls: Vec<ControlSpec>,
    /// ControlNet guess mode (no prompt needed; residuals scaled 0.1 → 1.0).
    pub guess_mode: bool,
    /// Inpainting mask for `init`.
    pub mask: Option<MaskSpec>,
    /// Outpainting of `init` (the output is the init image's size plus the extension, rounded
    /// up to multiples of 8; `width` and `height` follow it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outpaint: Option<OutpaintSpec>,
    /// An RGBA image composited over every output at the output size after generation (the
    /// canvas's text layers, kept crisp rather than passed through the VAE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay: Option<PathBuf>,
    /// Regional prompts, composited over the prompt in this order ([`RegionSpec`]). Left out
    /// of the JSON when empty, so recipes without regions read and hash as before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionSpec>,
    /// IP-Adapters, applied together ([`IpAdapterSpec`]). Left out of the JSON when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_adapters: Vec<IpAdapterSpec>,
    /// InstantID face identity ([`FaceSpec`]). Left out of the JSON when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face: Option<FaceSpec>,
    /// Face fix after generation ([`FaceFixSpec`]). Left out of the JSON when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_fix: Option<FaceFixSpec>,
    /// Result, not input: the ArcFace cosine similarity between the reference face
    /// (`face.image`) and the output's largest face, written by the engine into each output's
    /// recipe (`None` when there is no reference, or no face in the output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<f32>,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            version: RECIPE_VERSION,
            model: ModelRef::default(),
            prompt: String::new(),
            negative: None,
            seed: 0,
            sampler: SamplerKind::default(),
            steps: 25,
            cfg: 7.0,
            width: 512,
            height: 512,
            init: None,
            clip_skip: 1,
            batch: 1,
            loras: Vec::new(),
            controls: Vec::new(),
            guess_mode: false,
            mask: None,
            outpaint: None,
            overlay: None,
            regions: Vec::new(),
            ip_adapters: Vec::new(),
            face: None,
            face_fix: None,
            identity: None,
        }
    }
}

/// A fresh seed in A1111's 32-bit range, from the OS's hash randomness and the clock.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() & 0xFFFF_FFFF
}
