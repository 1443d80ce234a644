//! LDM / A1111 / ComfyUI single-file checkpoints: family detection, config inference and key
//! mapping to diffusers names (`FORMATS.md` §1.4–§1.8, UNet configs §4.1), mirroring diffusers'
//! `single_file_utils` so that a single file loads exactly like a diffusers folder.
//!
//! [`inspect_single_file`] reads only the header (names, dtypes, shapes) and returns, per
//! component, a diffusers `config.json` equivalent plus a map from diffusers tensor names to the
//! stored tensors. Rules that cannot be read off the weights:
//!
//! * **Family** comes from the text-encoder prefix (`cond_stage_model.transformer.` SD1,
//!   `cond_stage_model.model.` SD2, `conditioner.embedders.0.transformer.` +
//!   `conditioner.embedders.1.model.` SDXL, `conditioner.embedders.0.model.` alone SDXL refiner),
//!   confirmed by the UNet: its cross-attention width must equal the text width(s) and it has
//!   `label_emb` exactly for SDXL. With no text encoder the UNet alone decides, for real sizes
//!   only (cross-attention 768 SD1, 1024 SD2, 2048 + `label_emb` SDXL, 1280 + `label_emb` refiner).
//!   No block index is assumed, so tiny test models work too.
//! * **UNet heads** (diffusers' `attention_head_dim`, which is a head *count*): SD1 always 8 (as in
//!   every SD1 config); other families one entry per level, `channels / 64` (head dim 64) and, for
//!   widths that are not multiples of 64 (tiny models), `channels / 8` (head dim 8), else 1.
//! * **Text-encoder heads**: `hidden / 64`, else `hidden / 8` for tiny widths, else 1.
//! * **SD2** text encoder: 23 of 24 OpenCLIP layers, no projection (diffusers' convention);
//!   `upcast_attention` stays false and `v_prediction` is unknown (`None`: diffusers assumes the
//!   2.1 768-v config). A `v_pred` marker tensor (ComfyUI convention) sets v-prediction.
//! * **SDXL** `addition_time_embed_dim` = (`label_emb` in-features − pooled width) / 6 for base,
//!   / 5 for the refiner (256 in real models); the pooled width is text_encoder_2's projection.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::Path;

use serde_json::{Value, json};

use crate::io::family::{Family, ModelKind};
use crate::{Error, Result};

/// Stored dtype and shape of one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorMeta {
    /// dtype as written in the header (e.g. "F16").
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
}

impl From<&safetensors::tensor::TensorInfo> for TensorMeta {
    fn from(info: &safetensors::tensor::TensorInfo) -> Self {
        TensorMeta {
            dtype: info.dtype.to_string(),
            shape: info.shape.clone(),
        }
    }
}

/// A safetensors header: stored tensor name → dtype and shape.
pub type Header = BTreeMap<String, TensorMeta>;

/// The [`Header`] of parsed safetensors metadata (`SafeTensors::read_metadata`).
pub fn header_from_metadata(metadata: &safetensors::tensor::Metadata) -> Header {
    metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, TensorMeta::from(info)))
        .collect()
}

/// How a stored tensor becomes the diffusers tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTransform {
    /// Unchanged (a trailing `[.., 1, 1]` may still need squeezing: LDM VAE attention convs).
    Identity,
    /// Rows `start..start+len` of dim 0 (OpenCLIP `in_proj` q/k/v split, weight and bias).
    Rows {
        /// First row.
        start: usize,
        /// Row count.
        len: usize,
    },
    /// Matrix transpose (OpenCLIP `text_projection` → HF `text_projection.weight`).
    Transpose,
}

impl KeyTransform {
    /// Shape of the result for a stored tensor of shape `stored`; `None` if it does not apply.
    pub fn output_shape(&self, stored: &[usize]) -> Option<Vec<usize>> {
        match *self {
            KeyTransform::Identity => Some(stored.to_vec()),
            KeyTransform::Rows { start, len } => {
                let (&rows, rest) = stored.split_first()?;
                (start.checked_add(len)? <= rows).then(|| {
                    let mut shape = vec![len];
                    shape.extend_from_slice(rest);
                    shape
                })
            }
            KeyTransform::Transpose => match stored {
                [rows, cols] => Some(vec![*cols, *rows]),
                _ => None,
            },
        }
    }
}

/// A diffusers tensor's source in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedTensor {
    /// Stored name (full, with its prefix).
    pub source: String,
    /// Transform to apply.
    pub transform: KeyTransform,
}

/// One diffusers component found in a single file.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// `"unet"`, `"vae"`, `"text_encoder"` or `"text_encoder_2"` (diffusers folder names).
    pub name: &'static str,
    /// What diffusers would write in the component's `config.json`.
    pub config: Value,
    /// diffusers tensor name → stored tensor.
    pub tensors: BTreeMap<String, MappedTensor>,
}

/// What a single-file checkpoint holds, ready to load like a diffusers folder.
#[derive(Clone, Debug, PartialEq)]
pub struct SingleFile {
    /// Family and variant.
    pub kind: ModelKind,
    /// Components present, in the order unet, vae, text_encoder, text_encoder_2. The UNet is
    /// always there; a file without a VAE (rare "no-VAE" releases) has no `vae` entry.
    pub components: Vec<Component>,
    /// Stored tensors deliberately not used (EMA copies, `position_ids`, `logit_scale`, the
    /// SD2 text encoder's last layer, schedule buffers, ...), for a report.
    pub unmapped: Vec<String>,
}

impl SingleFile {
    /// The component with this diffusers name, if the file has it.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }
}

/// Renames old diffusers VAE attention tensors (`query/key/value/proj_attn`, written by
/// diffusers < 0.14) to the current names (`to_q/to_k/to_v/to_out.0`); `None` if `name` is not
/// one of them. Usable on diffusers-folder VAEs too.
pub fn legacy_vae_name(name: &str) -> Option<String> {
    const RENAMES: [(&str, &str); 4] = [
        (".query.", ".to_q."),
        (".key.", ".to_k."),
        (".value.", ".to_v."),
        (".proj_attn.", ".to_out.0."),
    ];
    if !name.contains("mid_block.attentions.") {
        return None;
    }
    RENAMES
        .iter()
        .find(|(old, _)| name.contains(old))
        .map(|(old, new)| name.replacen(old, new, 1))
}

const UNET_PREFIX: &str = "model.diffusion_model.";
const VAE_PREFIXES: [&str; 2] = ["first_stage_model.", "vae."];
const SD1_TEXT: &str = "cond_stage_model.transformer.";
const SD2_TEXT: &str = "cond_stage_model.model.";
const SDXL_TEXT_1: &str = "conditioner.embedders.0.transformer.";
const SDXL_TEXT_2: &str = "conditioner.embedders.1.model.";
const REFINER_TEXT: &str = "conditioner.embedders.0.model.";

/// Internal result whose error is the detail of an [`Error::UnknownCheckpoint`].
type Detail<T> = std::result::Result<T, String>;

/// Stored tensors under one prefix, by name with the prefix stripped.
struct Sub<'a> {
    prefix: &'static str,
    tensors: BTreeMap<&'a str, &'a TensorMeta>,
}

impl<'a> Sub<'a> {
    fn new(header: &'a Header, prefix: &'static str) -> Self {
        let tensors = header
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .filter_map(|(name, meta)| Some((name.strip_prefix(prefix)?, meta)))
            .collect();
        Sub { prefix, tensors }
    }

    fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn shape(&self, name: &str) -> Option<&'a [usize]> {
        self.tensors.get(name).map(|meta| meta.shape.as_slice())
    }

    fn dim(&self, name: &str, axis: usize) -> Option<usize> {
        self.shape(name)?.get(axis).copied()
    }

    /// Like [`Sub::dim`], with an error naming the full stored tensor.
    fn need_dim(&self, name: &str, axis: usize) -> Detail<usize> {
        self.dim(name, axis).ok_or_else(|| {
            format!(
                "missing tensor {}{name} (or it has fewer than {} dims)",
                self.prefix,
                axis + 1
            )
        })
    }

    /// Names under `within` (a sub-prefix), with `within` stripped.
    fn under<'s>(&'s self, within: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.tensors
            .range::<str, _>((Bound::Included(within), Bound::Unbounded))
            .map(|(name, _)| *name)
            .take_while(move |name| name.starts_with(within))
            .filter_map(move |name| name.strip_prefix(within))
    }

    /// Distinct numbers `n` of names `within{n}.…`.
    fn indices(&self, within: &str) -> BTreeSet<usize> {
        self.under(within)
            .filter_map(|rest| split_index(rest).map(|(n, _)| n))
            .collect()
    }

    fn full(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// Splits `"12.rest"` into `(12, "rest")`; plain ASCII digits only.
pub(crate) fn split_index(s: &str) -> Option<(usize, &str)> {
    let (number, rest) = s.split_once('.')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, rest))
}

/// Splits a tensor name into module path and parameter (`weight` or `bias`).
fn module_of(name: &str) -> Option<&str> {
    let (module, leaf) = name.rsplit_once('.')?;
    matches!(leaf, "weight" | "bias").then_some(module)
}

/// `"a, b, c and 4 more"` for error messages.
fn examples(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// A component's name map being built, with the resulting diffusers shapes.
#[derive(Default)]
struct Mapped {
    tensors: BTreeMap<String, MappedTensor>,
    shapes: BTreeMap<String, Vec<usize>>,
    /// Stored names that map to nothing.
    unknown: Vec<String>,
    /// diffusers names produced twice.
    duplicates: Vec<String>,
    /// Stored names whose shape does not suit the transform.
    bad_shapes: Vec<String>,
}

impl Mapped {
    fn add(&mut self, name: String, source: String, transform: KeyTransform, stored: &[usize]) {
        let Some(shape) = transform.output_shape(stored) else {
            self.bad_shapes.push(format!("{source} {stored:?}"));
            return;
        };
        if self.tensors.contains_key(&name) {
            self.duplicates
                .push(format!("{name} (again from {source})"));
            return;
        }
        self.shapes.insert(name.clone(), shape);
        self.tensors
            .insert(name, MappedTensor { source, transform });
    }

    fn dim(&self, name: &str, axis: usize) -> Option<usize> {
        self.shapes.get(name)?.get(axis).copied()
    }

    fn need_dim(&self, component: &str, name: &str, axis: usize) -> Detail<usize> {
        self.dim(name, axis)
            .ok_or_else(|| format!("{component}: missing weight {name}"))
    }

    /// Distinct numbers `n` of diffusers names `within{n}.…`.
    fn indices(&self, within: &str) -> BTreeSet<usize> {
        self.tensors
            .range::<str, _>((Bound::Included(within), Bound::Unbounded))
            .map(|(name, _)| name.as_str())
            .take_while(|name| name.starts_with(within))
            .filter_map(|name| split_index(name.strip_prefix(within)?).map(|(n, _)| n))
            .collect()
    }

    /// Fails if any stored tensor could not be mapped, listing a few.
    fn check(&self, component: &str) -> Detail<()> {
        if !self.unknown.is_empty() {
            return Err(format!(
                "{component}: {} tensor(s) with unexpected names, e.g. {}",
                self.unknown.len(),
                examples(&self.unknown)
            ));
        }
        if !self.duplicates.is_empty() {
            return Err(format!(
                "{component}: tensors mapped twice: {}",
                examples(&self.duplicates)
            ));
        }
        if !self.bad_shapes.is_empty() {
            return Err(format!(
                "{component}: tensors with unexpected shapes: {}",
                examples(&self.bad_shapes)
            ));
        }
        Ok(())
    }

    fn into_component(self, name: &'static str, config: Value) -> Component {
        Component {
            name,
            config,
            tensors: self.tensors,
        }
    }
}

/// Inspects a single-file checkpoint from its header: what it is, and how to load each component
/// as diffusers would. `path` is only used in messages.
///
/// Refuses ([`Error::Refused`]) files that are something else (LoRA, ControlNet, IP-Adapter,
/// embedding, a lone UNet/VAE/text encoder) or unsupported models (SVD, Playground v2.5, CosXL,
/// InstructPix2Pix, SD3, Flux); any other layout problem, including a UNet or VAE tensor that does
/// not map, is an [`Error::UnknownCheckpoint`].
pub fn inspect_single_file(header: &Header, path: &Path) -> Result<SingleFile> {
    if header.is_empty() {
        return Err(unknown("the file holds no tensors", path));
    }
    let unet = Sub::new(header, UNET_PREFIX);
    refuse_other_files(header, &unet, path)?;
    if unet.is_empty() {
        return Err(partial_file_error(header, path));
    }
    refuse_unsupported_unets(&unet, path)?;
    inspect(header, &unet).map_err(|detail| unknown(detail, path))
}

fn unknown(detail: impl Into<String>, path: &Path) -> Error {
    Error::UnknownCheckpoint {
        detail: detail.into(),
        path: path.to_path_buf(),
    }
}

fn refused(what: &str, path: &Path) -> Error {
    Error::Refused(format!("{what}: {path:?}"))
}

fn has_prefix(header: &Header, prefix: &str) -> bool {
    header
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .next()
        .is_some_and(|(name, _)| name.starts_with(prefix))
}

/// Adapters and other non-checkpoint files that might be picked as a checkpoint by mistake.
fn refuse_other_files(header: &Header, unet: &Sub, path: &Path) -> Result<()> {
    let any = |test: &dyn Fn(&str) -> bool| header.keys().any(|name| test(name));
    let controlnet = has_prefix(header, "control_model.")
        || has_prefix(header, "input_hint_block.")
        || has_prefix(header, "zero_convs.")
        || any(&|n| {
            n.contains("controlnet_cond_embedding.") || n.contains("controlnet_down_blocks.")
        });
    if controlnet {
        let sdxl = any(&|n| n.contains("label_emb.") || n.contains("add_embedding."));
        let which = if sdxl {
            "an SDXL ControlNet"
        } else {
            "a ControlNet"
        };
        return Err(refused(
            &format!(
                "this file is {which}, not a checkpoint: put it in the ControlNet folder and pick a \
                 base model separately"
            ),
            path,
        ));
    }
    if unet.is_empty() {
        let lora = any(&|n| {
            n.starts_with("lora_")
                || n.contains(".lora_down.")
                || n.contains(".lora_up.")
                || n.contains(".lora_A.")
                || n.contains(".lora_B.")
                || n.contains(".hada_w1_")
                || n.contains(".lokr_w1")
        });
        if lora {
            return Err(refused(
                "this file is a LoRA, not a checkpoint: put it in the LoRA folder and apply it on \
                 top of a base model",
                path,
            ));
        }
        if has_prefix(header, "image_proj.") || has_prefix(header, "ip_adapter.") {
            return Err(refused(
                "this file is an IP-Adapter, not a checkpoint: put it in the IP-Adapter folder",
                path,
            ));
        }
        let embedding = header.keys().all(|n| {
            matches!(n.as_str(), "emb_params" | "clip_l" | "clip_g")
                || n.starts_with("string_to_param.")
        });
        if embedding {
            return Err(refused(
                "this file is a textual-inversion embedding, not a checkpoint: put it in the \
                 embeddings folder",
                path,
            ));
        }
    }
    if header.contains_key("edm_mean") || header.contains_key("edm_std") {
        return Err(refused(
            "Playground v2.5 checkpoints (EDM latent statistics) are not supported",
            path,
        ));
    }
    if header.contains_key("edm_vpred.sigma_max") {
        return Err(refused(
            "CosXL / EDM v-prediction checkpoints are not supported",
            path,
        ));
    }
    Ok(())
}

/// The error for a file without `model.diffusion_model.*`: say what it is if we can tell.
fn partial_file_error(header: &Header, path: &Path) -> Error {
    let has = |name: &str| header.contains_key(name);
    let need_full = "Kiln needs a full checkpoint (UNet, VAE and text encoders in one file) or a \
                     diffusers model folder";
    if has("conv_in.weight")
        && (has("time_embedding.linear_1.weight") || has_prefix(header, "down_blocks."))
    {
        return refused(
            &format!("this file holds only a UNet (diffusers layout); {need_full}"),
            path,
        );
    }
    if has("input_blocks.0.0.weight") && has("time_embed.0.weight") {
        return refused(
            &format!("this file holds only a UNet (LDM layout); {need_full}"),
            path,
        );
    }
    if has("encoder.conv_in.weight") && has("decoder.conv_in.weight") {
        return refused(
            "this file is a standalone VAE, not a checkpoint: choose it as the VAE of a model",
            path,
        );
    }
    if has("text_model.embeddings.token_embedding.weight")
        || has("embeddings.token_embedding.weight")
        || has("token_embedding.weight")
    {
        return refused(
            &format!("this file holds only a text encoder; {need_full}"),
            path,
        );
    }
    if has_prefix(header, "double_blocks.") {
        return refused("Flux checkpoints are not supported", path);
    }
    if has_prefix(header, "joint_blocks.") {
        return refused("Stable Diffusion 3 checkpoints are not supported", path);
    }
    unknown(
        format!(
            "no UNet weights ({UNET_PREFIX}*) among {} tensors, e.g. {}",
            header.len(),
            examples(&header.keys().take(5).cloned().collect::<Vec<_>>())
        ),
        path,
    )
}

/// Known UNets Kiln cannot run from a single file yet.
fn refuse_unsupported_unets(unet: &Sub, path: &Path) -> Result<()> {
    let names = || unet.tensors.keys();
    if names().any(|n| n.contains("time_stack") || n.contains("time_mixer")) {
        return Err(refused(
            "Stable Video Diffusion single-file checkpoints are not supported yet; use the \
             diffusers folder of the model",
            path,
        ));
    }
    if unet.under("joint_blocks.").next().is_some() {
        return Err(refused(
            "Stable Diffusion 3 checkpoints are not supported",
            path,
        ));
    }
    if unet.under("double_blocks.").next().is_some() {
        return Err(refused("Flux checkpoints are not supported", path));
    }
    if unet.dim("input_blocks.0.0.weight", 1) == Some(8) {
        return Err(refused(
            "InstructPix2Pix checkpoints (8 UNet input channels) are not supported",
            path,
        ));
    }
    Ok(())
}

/// Everything after the refusals: layout, family, components.
fn inspect(header: &Header, unet: &Sub) -> Detail<SingleFile> {
    let layout = UnetLayout::analyze(unet, false)?;
    let inpainting = match layout.in_channels {
        4 => false,
        9 => true,
        other => {
            return Err(format!(
                "the UNet takes {other} input channels (expected 4, or 9 for inpainting)"
            ));
        }
    };

    let family = detect_family(header, &layout)?;
    let mut kind = ModelKind::new(family);
    kind.inpainting = inpainting;
    if header.contains_key("v_pred") {
        kind.v_prediction = Some(true);
    }

    // Text encoders first: their widths confirm the family and size the UNet's added embedding.
    let mut texts = Vec::new();
    let mut used_prefixes = vec![UNET_PREFIX];
    let mut unmapped = Vec::new();
    let text_plan: &[(&'static str, &'static str, TextLayout)] = match family {
        Family::Sd1 => &[(SD1_TEXT, "text_encoder", TextLayout::HfClip)],
        Family::Sd2 => &[(SD2_TEXT, "text_encoder", TextLayout::OpenClipSd2)],
        Family::Sdxl => &[
            (SDXL_TEXT_1, "text_encoder", TextLayout::HfClip),
            (SDXL_TEXT_2, "text_encoder_2", TextLayout::OpenClipProjected),
        ],
        Family::SdxlRefiner => &[(
            REFINER_TEXT,
            "text_encoder_2",
            TextLayout::OpenClipProjected,
        )],
        Family::Svd => &[],
    };
    for &(prefix, name, text_layout) in text_plan {
        let sub = Sub::new(header, prefix);
        if sub.is_empty() {
            continue;
        }
        used_prefixes.push(prefix);
        texts.push(text_encoder(&sub, name, text_layout, &mut unmapped)?);
    }
    confirm_family(family, &layout, &texts)?;

    let pooled_width = texts
        .iter()
        .find(|text| text.component.name == "text_encoder_2")
        .and_then(|text| text.projection_dim);
    let mut components = vec![layout.component(unet, family, pooled_width)?];

    if let Some(prefix) = vae_prefix(header)? {
        used_prefixes.push(prefix);
        components.push(vae_component(&Sub::new(header, prefix), family)?);
    }
    components.extend(texts.into_iter().map(|text| text.component));

    unmapped.extend(
        header
            .keys()
            .filter(|name| !used_prefixes.iter().any(|p| name.starts_with(p)))
            .cloned(),
    );
    unmapped.sort();
    Ok(SingleFile {
        kind,
        components,
        unmapped,
    })
}

/// The family from the text-encoder prefixes, else (real sizes only) from the UNet.
fn detect_family(header: &Header, layout: &UnetLayout) -> Detail<Family> {
    let has = |prefix| has_prefix(header, prefix);
    let mut found = Vec::new();
    match (has(SDXL_TEXT_1), has(SDXL_TEXT_2)) {
        (true, true) => found.push(Family::Sdxl),
        (true, false) | (false, true) => {
            return Err(format!(
                "an SDXL checkpoint needs both text encoders ({SDXL_TEXT_1}* and \
                 {SDXL_TEXT_2}*), this file has one"
            ));
        }
        (false, false) => {}
    }
    if has(REFINER_TEXT) {
        found.push(Family::SdxlRefiner);
    }
    if has(SD2_TEXT) {
        found.push(Family::Sd2);
    }
    if has(SD1_TEXT) {
        found.push(Family::Sd1);
    }
    match found.as_slice() {
        [family] => Ok(*family),
        [] => match (layout.cross_attention_dim, layout.label_in.is_some()) {
            (Some(768), false) => Ok(Family::Sd1),
            (Some(1024), false) => Ok(Family::Sd2),
            (Some(2048), true) => Ok(Family::Sdxl),
            (Some(1280), true) => Ok(Family::SdxlRefiner),
            (cross, label) => Err(format!(
                "no text encoder found, and the UNet (cross-attention width {cross:?}, \
                 {}added embedding) does not identify a known family",
                if label { "" } else { "no " }
            )),
        },
        several => Err(format!(
            "text encoders of several families in one file ({})",
            several
                .iter()
                .map(|f| f.label())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// UNet shapes must agree with the family the text encoders announced.
fn confirm_family(family: Family, layout: &UnetLayout, texts: &[TextEncoder]) -> Detail<()> {
    if family.is_sdxl() != layout.label_in.is_some() {
        return Err(format!(
            "the text encoders say {} but the UNet {} SDXL's added embedding (label_emb)",
            family.label(),
            if layout.label_in.is_some() {
                "has"
            } else {
                "lacks"
            }
        ));
    }
    let expected_texts = match family {
        Family::Sdxl => 2,
        Family::Sd1 | Family::Sd2 | Family::SdxlRefiner => 1,
        Family::Svd => 0,
    };
    if texts.len() == expected_texts
        && let Some(cross) = layout.cross_attention_dim
    {
        let width: usize = texts.iter().map(|text| text.hidden).sum();
        if cross != width {
            return Err(format!(
                "the UNet's cross-attention width {cross} does not match the {} text encoder \
                 width {width}",
                family.label()
            ));
        }
    }
    Ok(())
}

fn vae_prefix(header: &Header) -> Detail<Option<&'static str>> {
    let present: Vec<&'static str> = VAE_PREFIXES
        .into_iter()
        .filter(|prefix| has_prefix(header, prefix))
        .collect();
    match present.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(format!(
            "two VAEs in one file ({})",
            present.join("*, ") + "*"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// ControlNet
// ---------------------------------------------------------------------------------------------

/// A single-file ControlNet (LDM names, `control_model.` prefix optional; FORMATS §6): the
/// diffusers-name map and a diffusers `config.json` value inferred from the shapes.
pub fn controlnet_component(
    header: &Header,
    path: &Path,
) -> Result<(BTreeMap<String, MappedTensor>, Value)> {
    let prefix = if header.keys().any(|k| k.starts_with("control_model.")) {
        "control_model."
    } else {
        ""
    };
    let bad = |detail: String| Error::UnknownCheckpoint {
        detail: format!("not a ControlNet Kiln can read: {detail}"),
        path: path.to_path_buf(),
    };
    // The encoder part is analysed like a UNet under the UNet prefix; the rest is mapped here.
    let mut encoder = Header::new();
    let mut sources = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    let mut hint: BTreeMap<usize, Vec<(String, String, Vec<usize>)>> = BTreeMap::new();
    for (name, meta) in header {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let identity = |target: String| {
            (
                target,
                MappedTensor {
                    source: name.clone(),
                    transform: KeyTransform::Identity,
                },
            )
        };
        if let Some(r) = rest.strip_prefix("input_hint_block.") {
            if let Some((n, leaf)) = split_index(r) {
                hint.entry(n).or_default().push((
                    leaf.to_string(),
                    name.clone(),
                    meta.shape.clone(),
                ));
            }
        } else if let Some(r) = rest.strip_prefix("zero_convs.") {
            let Some((n, leaf)) = split_index(r) else {
                return Err(bad(format!("unexpected tensor {name}")));
            };
            let leaf = leaf.strip_prefix("0.").unwrap_or(leaf);
            let (k, v) = identity(format!("controlnet_down_blocks.{n}.{leaf}"));
            tensors.insert(k, v);
        } else if let Some(leaf) = rest.strip_prefix("middle_block_out.0.") {
            let (k, v) = identity(format!("controlnet_mid_block.{leaf}"));
            tensors.insert(k, v);
        } else {
            let renamed = format!("{UNET_PREFIX}{rest}");
            sources.insert(rest.to_string(), name.clone());
            encoder.insert(renamed, meta.clone());
        }
    }
    if hint.is_empty()
        || !tensors
            .keys()
            .any(|k| k.starts_with("controlnet_mid_block"))
    {
        return Err(bad(
            "no input_hint_block / middle_block_out tensors (ControlNet-LLLite, T2I-Adapter and \
             Control-LoRA files are not supported)"
                .into(),
        ));
    }
    // Hint convs: first → conv_in, last → conv_out, the ones between → blocks.0…
    let convs: Vec<usize> = hint.keys().copied().collect();
    let mut embedding_channels = Vec::new();
    for (k, n) in convs.iter().enumerate() {
        let target = match k {
            0 => "conv_in".to_string(),
            k if k + 1 == convs.len() => "conv_out".to_string(),
            k => format!("blocks.{}", k - 1),
        };
        for (leaf, source, shape) in hint.get(n).into_iter().flatten() {
            if leaf == "weight" && (k == 0 || (k + 1 < convs.len() && k % 2 == 0)) {
                embedding_channels.push(shape.first().copied().unwrap_or(0));
            }
            tensors.insert(
                format!("controlnet_cond_embedding.{target}.{leaf}"),
                MappedTensor {
                    source: source.clone(),
                    transform: KeyTransform::Identity,
                },
            );
        }
    }
    let conditioning_channels = hint
        .get(&convs[0])
        .and_then(|parts| parts.iter().find(|(leaf, _, _)| leaf == "weight"))
        .and_then(|(_, _, shape)| shape.get(1).copied())
        .unwrap_or(3);
    let sub = Sub::new(&encoder, UNET_PREFIX);
    let layout = UnetLayout::analyze(&sub, true).map_err(&bad)?;
    let family = match layout.cross_attention_dim {
        Some(2048) => Family::Sdxl,
        Some(1024) => Family::Sd2,
        _ => Family::Sd1,
    };
    for &name in sub.tensors.keys() {
        let Some(target) = layout.map_name(name) else {
            return Err(bad(format!("unexpected tensor {prefix}{name}")));
        };
        let source = sources.get(name).cloned().unwrap_or_default();
        tensors.insert(
            target,
            MappedTensor {
                source,
                transform: KeyTransform::Identity,
            },
        );
    }
    let mut config = layout.config(family, None).map_err(&bad)?;
    if let Some(obj) = config.as_object_mut() {
        obj.insert("_class_name".into(), json!("ControlNetModel"));
        obj.insert(
            "conditioning_embedding_out_channels".into(),
            json!(embedding_channels),
        );
        obj.insert("conditioning_channels".into(), json!(conditioning_channels));
        obj.insert("global_pool_conditions".into(), json!(false));
        obj.insert("controlnet_conditioning_channel_order".into(), json!("rgb"));
    }
    Ok((tensors, config))
}

// ---------------------------------------------------------------------------------------------
// UNet
// ---------------------------------------------------------------------------------------------

/// The UNet structure read off the LDM names and shapes.
#[derive(Debug)]
struct UnetLayout {
    in_channels: usize,
    out_channels: usize,
    /// Resnets per down level (`L`; up levels have `L + 1`).
    layers_per_block: usize,
    /// Output channels per level.
    channels: Vec<usize>,
    /// Transformer depth per down level, `None` without attention.
    down_depth: Vec<Option<usize>>,
    /// Transformer depth per up block (deepest level first), `None` without attention.
    up_depth: Vec<Option<usize>>,
    mid_depth: usize,
    cross_attention_dim: Option<usize>,
    linear_projection: bool,
    /// In-features of `label_emb.0.0` (SDXL added embedding).
    label_in: Option<usize>,
    time_embed_dim: usize,
}

impl UnetLayout {
    fn levels(&self) -> usize {
        self.channels.len()
    }

    /// Reads the layout; `encoder_only` (ControlNet) has no output blocks and mirrors the down
    /// levels upwards.
    fn analyze(unet: &Sub, encoder_only: bool) -> Detail<Self> {
        let in_channels = unet.need_dim("input_blocks.0.0.weight", 1)?;
        let out_channels = if encoder_only {
            in_channels
        } else {
            unet.need_dim("out.2.weight", 0)?
        };
        let time_embed_dim = unet.need_dim("time_embed.0.weight", 0)?;

        let inputs = unet.indices("input_blocks.");
        let outputs = unet.indices("output_blocks.");
        let max_in = inputs.last().copied().unwrap_or(0);
        if max_in == 0 || inputs.len() != max_in + 1 {
            return Err(format!(
                "input_blocks are not numbered 0..n (found {inputs:?})"
            ));
        }
        let downsamplers: Vec<usize> = inputs
            .iter()
            .copied()
            .filter(|&n| n > 0 && unet.has(&format!("input_blocks.{n}.0.op.weight")))
            .collect();
        let (layers, levels) = match downsamplers.first() {
            None => (max_in, 1),
            Some(&first) => (first - 1, (max_in + 1) / first),
        };
        let expected_downsamplers: Vec<usize> = (1..levels).map(|b| b * (layers + 1)).collect();
        if layers == 0
            || levels * (layers + 1) != max_in + 1
            || downsamplers != expected_downsamplers
        {
            return Err(format!(
                "input_blocks 0..={max_in} with downsamplers at {downsamplers:?} do not form levels \
                 of equal resnet counts"
            ));
        }
        if !encoder_only
            && (outputs.len() != levels * (layers + 1)
                || outputs.last().copied() != Some(levels * (layers + 1) - 1))
        {
            return Err(format!(
                "expected output_blocks 0..{} for {levels} levels of {layers} layers, found {} \
                 blocks",
                levels * (layers + 1),
                outputs.len()
            ));
        }

        let mut channels = Vec::with_capacity(levels);
        let mut down_depth = Vec::with_capacity(levels);
        for b in 0..levels {
            let mut level: Option<(usize, Option<usize>)> = None;
            for j in 0..layers {
                let n = (layers + 1) * b + j + 1;
                let width = unet.need_dim(&format!("input_blocks.{n}.0.out_layers.3.weight"), 0)?;
                let depth = attention_depth(unet, &format!("input_blocks.{n}.1."))?;
                match level {
                    None => level = Some((width, depth)),
                    Some(seen) if seen == (width, depth) => {}
                    Some(seen) => {
                        return Err(format!(
                            "down level {b} is not uniform: input_blocks.{n} has width {width} \
                             and transformer depth {depth:?}, earlier blocks {seen:?}"
                        ));
                    }
                }
            }
            let (width, depth) = level.ok_or("no resnets in a down level")?;
            channels.push(width);
            down_depth.push(depth);
        }

        unet.need_dim("middle_block.0.out_layers.3.weight", 0)?;
        unet.need_dim("middle_block.2.out_layers.3.weight", 0)?;
        let mid_depth = attention_depth(unet, "middle_block.1.")?.ok_or(
            "the middle block has no attention (middle_block.1), which Kiln does not support",
        )?;

        let mut up_depth = Vec::with_capacity(levels);
        for b in 0..levels {
            if encoder_only {
                up_depth = down_depth.iter().rev().copied().collect();
                break;
            }
            let mut level: Option<Option<usize>> = None;
            for j in 0..=layers {
                let n = (layers + 1) * b + j;
                unet.need_dim(&format!("output_blocks.{n}.0.out_layers.3.weight"), 0)?;
                let depth = attention_depth(unet, &format!("output_blocks.{n}.1."))?;
                match level {
                    None => level = Some(depth),
                    Some(seen) if seen == depth => {}
                    Some(seen) => {
                        return Err(format!(
                            "up level {b} is not uniform: output_blocks.{n} has transformer depth \
                             {depth:?}, earlier blocks {seen:?}"
                        ));
                    }
                }
            }
            let depth = level.flatten();
            if b + 1 < levels {
                let n = (layers + 1) * b + layers;
                let slot = if depth.is_some() { 2 } else { 1 };
                unet.need_dim(&format!("output_blocks.{n}.{slot}.conv.weight"), 0)?;
            }
            up_depth.push(depth);
        }

        let mut cross_dims = BTreeSet::new();
        let mut projection_ranks = BTreeSet::new();
        for (name, meta) in &unet.tensors {
            if name.ends_with(".attn2.to_k.weight")
                && let Some(&width) = meta.shape.get(1)
            {
                cross_dims.insert(width);
            }
            if name.ends_with(".proj_in.weight") {
                projection_ranks.insert(meta.shape.len());
            }
        }
        if cross_dims.len() > 1 {
            return Err(format!(
                "several cross-attention widths in one UNet: {cross_dims:?}"
            ));
        }
        let linear_projection = match projection_ranks.into_iter().collect::<Vec<_>>().as_slice() {
            [] | [4] => false,
            [2] => true,
            ranks => return Err(format!("proj_in weights of ranks {ranks:?}")),
        };

        Ok(UnetLayout {
            in_channels,
            out_channels,
            layers_per_block: layers,
            channels,
            down_depth,
            up_depth,
            mid_depth,
            cross_attention_dim: cross_dims.first().copied(),
            linear_projection,
            label_in: unet.dim("label_emb.0.0.weight", 1),
            time_embed_dim,
        })
    }

    /// The diffusers config and the name map.
    fn component(
        &self,
        unet: &Sub,
        family: Family,
        pooled_width: Option<usize>,
    ) -> Detail<Component> {
        let mut mapped = Mapped::default();
        for (&name, meta) in &unet.tensors {
            match self.map_name(name) {
                Some(target) => {
                    mapped.add(target, unet.full(name), KeyTransform::Identity, &meta.shape)
                }
                None => mapped.unknown.push(unet.full(name)),
            }
        }
        mapped.check("unet")?;
        let config = self.config(family, pooled_width)?;
        Ok(mapped.into_component("unet", config))
    }

    fn config(&self, family: Family, pooled_width: Option<usize>) -> Detail<Value> {
        let levels = self.levels();
        let down_types: Vec<&str> = self
            .down_depth
            .iter()
            .map(|d| {
                if d.is_some() {
                    "CrossAttnDownBlock2D"
                } else {
                    "DownBlock2D"
                }
            })
            .collect();
        let up_types: Vec<&str> = self
            .up_depth
            .iter()
            .map(|d| {
                if d.is_some() {
                    "CrossAttnUpBlock2D"
                } else {
                    "UpBlock2D"
                }
            })
            .collect();

        // diffusers reads the mid depth from the last level and mirrors the down depths upwards.
        let attention_depths: BTreeSet<usize> = self
            .down_depth
            .iter()
            .flatten()
            .copied()
            .chain([self.mid_depth])
            .collect();
        let transformer_layers = match attention_depths.iter().collect::<Vec<_>>().as_slice() {
            [one] => json!(one),
            _ => {
                let mut per_level: Vec<usize> =
                    self.down_depth.iter().map(|d| d.unwrap_or(1)).collect();
                match (self.down_depth.last(), per_level.last_mut()) {
                    (Some(None), Some(last)) => *last = self.mid_depth,
                    (Some(Some(depth)), _) if *depth != self.mid_depth => {
                        return Err(format!(
                            "the middle block has {} transformer layers but the last level {}, \
                             which a diffusers config cannot express",
                            self.mid_depth, depth
                        ));
                    }
                    _ => {}
                }
                json!(per_level)
            }
        };
        for (b, up) in self.up_depth.iter().enumerate() {
            let down = self.down_depth.get(levels - 1 - b).copied().flatten();
            if let (Some(up), Some(down)) = (up, down)
                && *up != down
            {
                return Err(format!(
                    "up block {b} has {up} transformer layers but its down level {down}"
                ));
            }
        }

        let heads = if family == Family::Sd1 {
            json!(8)
        } else {
            json!(
                self.channels
                    .iter()
                    .map(|&c| head_count(c))
                    .collect::<Vec<_>>()
            )
        };

        let (addition_type, addition_time_dim) = match self.label_in {
            Some(label_in) => {
                let ids = if family == Family::SdxlRefiner { 5 } else { 6 };
                let pooled = pooled_width.unwrap_or(1280);
                let rest = label_in
                    .checked_sub(pooled)
                    .filter(|r| *r > 0 && r.is_multiple_of(ids));
                let Some(rest) = rest else {
                    return Err(format!(
                        "label_emb takes {label_in} features, which is not the pooled width \
                         {pooled} plus {ids} time-id embeddings"
                    ));
                };
                (json!("text_time"), json!(rest / ids))
            }
            None => (Value::Null, Value::Null),
        };
        let default_time_dim = self.channels.first().map(|c| c * 4);
        let time_embedding_dim = if default_time_dim == Some(self.time_embed_dim) {
            Value::Null
        } else {
            json!(self.time_embed_dim)
        };
        let cross = self
            .cross_attention_dim
            .map_or(Value::Null, |width| json!(width));

        Ok(json!({
            "_class_name": "UNet2DConditionModel",
            "_kiln_source": "single-file",
            "act_fn": "silu",
            "addition_embed_type": addition_type,
            "addition_embed_type_num_heads": 64,
            "addition_time_embed_dim": addition_time_dim,
            "attention_head_dim": heads,
            "block_out_channels": self.channels,
            "center_input_sample": false,
            "class_embed_type": null,
            "cross_attention_dim": cross,
            "down_block_types": down_types,
            "downsample_padding": 1,
            "dual_cross_attention": false,
            "flip_sin_to_cos": true,
            "freq_shift": 0,
            "in_channels": self.in_channels,
            "layers_per_block": self.layers_per_block,
            "mid_block_scale_factor": 1,
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "norm_eps": 1e-5,
            "norm_num_groups": 32,
            "num_attention_heads": null,
            "only_cross_attention": false,
            "out_channels": self.out_channels,
            "projection_class_embeddings_input_dim": self.label_in,
            "resnet_time_scale_shift": "default",
            "sample_size": family.unet_sample_size(),
            "time_embedding_dim": time_embedding_dim,
            "transformer_layers_per_block": transformer_layers,
            "up_block_types": up_types,
            "upcast_attention": false,
            "use_linear_projection": self.linear_projection,
        }))
    }

    /// LDM UNet name (prefix stripped) → diffusers name (`FORMATS.md` §1.5, any `L`).
    fn map_name(&self, name: &str) -> Option<String> {
        let module = module_of(name)?;
        let leaf = name.rsplit_once('.')?.1;
        self.map_module(module).map(|m| format!("{m}.{leaf}"))
    }

    fn map_module(&self, module: &str) -> Option<String> {
        let fixed = match module {
            "time_embed.0" => Some("time_embedding.linear_1"),
            "time_embed.2" => Some("time_embedding.linear_2"),
            "label_emb.0.0" => Some("add_embedding.linear_1"),
            "label_emb.0.2" => Some("add_embedding.linear_2"),
            "input_blocks.0.0" => Some("conv_in"),
            "out.0" => Some("conv_norm_out"),
            "out.2" => Some("conv_out"),
            _ => None,
        };
        if let Some(fixed) = fixed {
            return Some(fixed.to_string());
        }
        let layers = self.layers_per_block;
        let levels = self.levels();
        if let Some(rest) = module.strip_prefix("input_blocks.") {
            let (n, rest) = split_index(rest)?;
            let (slot, rest) = split_index(rest)?;
            let b = n.checked_sub(1)? / (layers + 1);
            let j = (n - 1) % (layers + 1);
            if b >= levels {
                return None;
            }
            if j == layers {
                return (b + 1 < levels && slot == 0 && rest == "op")
                    .then(|| format!("down_blocks.{b}.downsamplers.0.conv"));
            }
            return match slot {
                0 => resnet_module(rest).map(|r| format!("down_blocks.{b}.resnets.{j}.{r}")),
                1 => {
                    attention_module(rest).then(|| format!("down_blocks.{b}.attentions.{j}.{rest}"))
                }
                _ => None,
            };
        }
        if let Some(rest) = module.strip_prefix("middle_block.") {
            return match split_index(rest)? {
                (0, rest) => resnet_module(rest).map(|r| format!("mid_block.resnets.0.{r}")),
                (1, rest) => {
                    attention_module(rest).then(|| format!("mid_block.attentions.0.{rest}"))
                }
                (2, rest) => resnet_module(rest).map(|r| format!("mid_block.resnets.1.{r}")),
                _ => None,
            };
        }
        if let Some(rest) = module.strip_prefix("output_blocks.") {
            let (n, rest) = split_index(rest)?;
            let (slot, rest) = split_index(rest)?;
            let (b, j) = (n / (layers + 1), n % (layers + 1));
            if b >= levels {
                return None;
            }
            if rest == "conv" && slot >= 1 {
                let expected_slot = if self.up_depth.get(b)?.is_some() {
                    2
                } else {
                    1
                };
                return (j == layers && b + 1 < levels && slot == expected_slot)
                    .then(|| format!("up_blocks.{b}.upsamplers.0.conv"));
            }
            return match slot {
                0 => resnet_module(rest).map(|r| format!("up_blocks.{b}.resnets.{j}.{r}")),
                1 => attention_module(rest).then(|| format!("up_blocks.{b}.attentions.{j}.{rest}")),
                _ => None,
            };
        }
        None
    }
}

/// Transformer blocks under an attention prefix (`input_blocks.4.1.`); `None` without attention.
fn attention_depth(unet: &Sub, within: &str) -> Detail<Option<usize>> {
    let mut any = false;
    let mut blocks = BTreeSet::new();
    for rest in unet.under(within) {
        if rest.starts_with("conv.") {
            continue; // an upsampler in slot 1
        }
        any = true;
        if let Some(block) = rest
            .strip_prefix("transformer_blocks.")
            .and_then(split_index)
        {
            blocks.insert(block.0);
        }
    }
    if !any {
        return Ok(None);
    }
    if blocks.is_empty() || blocks.last().copied() != Some(blocks.len() - 1) {
        return Err(format!(
            "attention {}{within}* has transformer blocks {blocks:?}",
            unet.prefix
        ));
    }
    Ok(Some(blocks.len()))
}

/// LDM resnet module inside a block → diffusers `ResnetBlock2D` module.
pub(crate) fn resnet_module(module: &str) -> Option<&'static str> {
    Some(match module {
        "in_layers.0" => "norm1",
        "in_layers.2" => "conv1",
        "emb_layers.1" => "time_emb_proj",
        "out_layers.0" => "norm2",
        "out_layers.3" => "conv2",
        "skip_connection" => "conv_shortcut",
        _ => return None,
    })
}

/// Whether a module inside a `SpatialTransformer` is one diffusers' `Transformer2DModel` has
/// (the names are the same in both formats).
fn attention_module(module: &str) -> bool {
    if matches!(module, "norm" | "proj_in" | "proj_out") {
        return true;
    }
    let Some((_, inner)) = module
        .strip_prefix("transformer_blocks.")
        .and_then(split_index)
    else {
        return false;
    };
    matches!(
        inner,
        "norm1"
            | "norm2"
            | "norm3"
            | "attn1.to_q"
            | "attn1.to_k"
            | "attn1.to_v"
            | "attn1.to_out.0"
            | "attn2.to_q"
            | "attn2.to_k"
            | "attn2.to_v"
            | "attn2.to_out.0"
            | "ff.net.0.proj"
            | "ff.net.2"
    )
}

/// Heads for an attention width: head dim 64, else 8 (tiny models), else one head.
pub(crate) fn head_count(width: usize) -> usize {
    if width.is_multiple_of(64) {
        width / 64
    } else if width.is_multiple_of(8) {
        width / 8
    } else {
        1
    }
}

// ---------------------------------------------------------------------------------------------
// VAE
// ---------------------------------------------------------------------------------------------

/// The VAE component: LDM names mapped (§1.6), or diffusers names kept (old attention names
/// renamed), then the config read off the diffusers names.
fn vae_component(vae: &Sub, family: Family) -> Detail<Component> {
    let ldm =
        vae.under("encoder.down.").next().is_some() || vae.under("decoder.up.").next().is_some();
    let levels = if ldm {
        vae.indices("encoder.down.").len()
    } else {
        vae.indices("encoder.down_blocks.").len()
    };
    let mut mapped = Mapped::default();
    for (&name, meta) in &vae.tensors {
        let target = if ldm {
            map_vae_name(name, levels)
        } else {
            diffusers_vae_name(name)
        };
        match target {
            Some(target) => mapped.add(target, vae.full(name), KeyTransform::Identity, &meta.shape),
            None => mapped.unknown.push(vae.full(name)),
        }
    }
    mapped.check("vae")?;
    let config = vae_config(&mapped, family)?;
    Ok(mapped.into_component("vae", config))
}

fn vae_config(mapped: &Mapped, family: Family) -> Detail<Value> {
    let levels = mapped.indices("encoder.down_blocks.");
    if levels.is_empty() || levels.last().copied() != Some(levels.len() - 1) {
        return Err(format!("vae: encoder levels {levels:?}"));
    }
    let layers = mapped.indices("encoder.down_blocks.0.resnets.").len();
    let mut channels = Vec::with_capacity(levels.len());
    for i in 0..levels.len() {
        channels.push(mapped.need_dim(
            "vae",
            &format!("encoder.down_blocks.{i}.resnets.0.conv2.weight"),
            0,
        )?);
        let encoder_resnets = mapped
            .indices(&format!("encoder.down_blocks.{i}.resnets."))
            .len();
        let decoder_resnets = mapped
            .indices(&format!("decoder.up_blocks.{i}.resnets."))
            .len();
        if encoder_resnets != layers || decoder_resnets != layers + 1 {
            return Err(format!(
                "vae: level {i} has {encoder_resnets} encoder and {decoder_resnets} decoder \
                 resnets (expected {layers} and {})",
                layers + 1
            ));
        }
    }
    if mapped.indices("decoder.up_blocks.").len() != levels.len() {
        return Err("vae: encoder and decoder have different level counts".into());
    }
    let (width, height) = family.native_size();
    Ok(json!({
        "_class_name": "AutoencoderKL",
        "_kiln_source": "single-file",
        "act_fn": "silu",
        "block_out_channels": channels,
        "down_block_types": vec!["DownEncoderBlock2D"; levels.len()],
        "force_upcast": family.vae_force_upcast(),
        "in_channels": mapped.need_dim("vae", "encoder.conv_in.weight", 1)?,
        "latent_channels": mapped.need_dim("vae", "decoder.conv_in.weight", 1)?,
        "layers_per_block": layers,
        "mid_block_add_attention": mapped.tensors.contains_key("encoder.mid_block.attentions.0.to_q.weight"),
        "norm_num_groups": 32,
        "out_channels": mapped.need_dim("vae", "decoder.conv_out.weight", 0)?,
        "sample_size": width.max(height),
        "scaling_factor": family.vae_scaling_factor(),
        "up_block_types": vec!["UpDecoderBlock2D"; levels.len()],
        "use_post_quant_conv": mapped.tensors.contains_key("post_quant_conv.weight"),
        "use_quant_conv": mapped.tensors.contains_key("quant_conv.weight"),
    }))
}

/// A diffusers-named VAE tensor found inside a single file: kept, old attention names renamed.
fn diffusers_vae_name(name: &str) -> Option<String> {
    let known = ["encoder.", "decoder.", "quant_conv.", "post_quant_conv."];
    if !known.iter().any(|p| name.starts_with(p)) {
        return None;
    }
    Some(legacy_vae_name(name).unwrap_or_else(|| name.to_string()))
}

/// LDM VAE name (prefix stripped) → diffusers name (`FORMATS.md` §1.6).
pub(crate) fn map_vae_name(name: &str, levels: usize) -> Option<String> {
    let module = module_of(name)?;
    let leaf = name.rsplit_once('.')?.1;
    map_vae_module(module, levels).map(|m| format!("{m}.{leaf}"))
}

fn map_vae_module(module: &str, levels: usize) -> Option<String> {
    if matches!(module, "quant_conv" | "post_quant_conv") {
        return Some(module.to_string());
    }
    let (side, rest) = module.split_once('.')?;
    if !matches!(side, "encoder" | "decoder") {
        return None;
    }
    match rest {
        "conv_in" | "conv_out" => return Some(module.to_string()),
        "norm_out" => return Some(format!("{side}.conv_norm_out")),
        _ => {}
    }
    if let Some(mid) = rest.strip_prefix("mid.") {
        if let Some(r) = mid.strip_prefix("block_1.") {
            return vae_resnet_module(r).map(|r| format!("{side}.mid_block.resnets.0.{r}"));
        }
        if let Some(r) = mid.strip_prefix("block_2.") {
            return vae_resnet_module(r).map(|r| format!("{side}.mid_block.resnets.1.{r}"));
        }
        let attention = match mid.strip_prefix("attn_1.")? {
            "norm" => "group_norm",
            "q" => "to_q",
            "k" => "to_k",
            "v" => "to_v",
            "proj_out" => "to_out.0",
            _ => return None,
        };
        return Some(format!("{side}.mid_block.attentions.0.{attention}"));
    }
    let (level_word, blocks_word, sampler, sampler_word) = if side == "encoder" {
        ("down.", "down_blocks", "downsample.conv", "downsamplers")
    } else {
        ("up.", "up_blocks", "upsample.conv", "upsamplers")
    };
    let (i, rest) = split_index(rest.strip_prefix(level_word)?)?;
    if i >= levels {
        return None;
    }
    let block = if side == "encoder" { i } else { levels - 1 - i };
    if rest == sampler {
        let has_sampler = if side == "encoder" {
            i + 1 < levels
        } else {
            i > 0
        };
        return has_sampler.then(|| format!("{side}.{blocks_word}.{block}.{sampler_word}.0.conv"));
    }
    let (j, r) = split_index(rest.strip_prefix("block.")?)?;
    vae_resnet_module(r).map(|r| format!("{side}.{blocks_word}.{block}.resnets.{j}.{r}"))
}

pub(crate) fn vae_resnet_module(module: &str) -> Option<&'static str> {
    Some(match module {
        "norm1" => "norm1",
        "conv1" => "conv1",
        "norm2" => "norm2",
        "conv2" => "conv2",
        "nin_shortcut" => "conv_shortcut",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Text encoders
// ---------------------------------------------------------------------------------------------

/// How a text encoder is stored in the file and which diffusers component it becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextLayout {
    /// transformers `CLIPTextModel` names (OpenAI CLIP ViT-L), with or without `text_model.`.
    HfClip,
    /// OpenCLIP, SD2 convention: last layer and projection dropped.
    OpenClipSd2,
    /// OpenCLIP with projection (SDXL bigG) → `CLIPTextModelWithProjection`.
    OpenClipProjected,
}

struct TextEncoder {
    component: Component,
    hidden: usize,
    projection_dim: Option<usize>,
}

fn text_encoder(
    sub: &Sub,
    name: &'static str,
    layout: TextLayout,
    unmapped: &mut Vec<String>,
) -> Detail<TextEncoder> {
    let (mapped, projection_dim) = match layout {
        TextLayout::HfClip => (map_hf_clip(sub, unmapped), None),
        TextLayout::OpenClipSd2 => map_open_clip(sub, false, true, unmapped)?,
        TextLayout::OpenClipProjected => map_open_clip(sub, true, false, unmapped)?,
    };
    mapped.check(name)?;
    let (architecture, activation) = match layout {
        TextLayout::HfClip => ("CLIPTextModel", "quick_gelu"),
        TextLayout::OpenClipSd2 => ("CLIPTextModel", "gelu"),
        TextLayout::OpenClipProjected => ("CLIPTextModelWithProjection", "gelu"),
    };
    let token = "text_model.embeddings.token_embedding.weight";
    let vocab = mapped.need_dim(name, token, 0)?;
    let hidden = mapped.need_dim(name, token, 1)?;
    let layers = mapped.indices("text_model.encoder.layers.");
    if layers.is_empty() || layers.last().copied() != Some(layers.len() - 1) {
        return Err(format!("{name}: encoder layers {layers:?}"));
    }
    let dtype = sub
        .tensors
        .values()
        .next()
        .map_or("float32", |meta| torch_dtype(&meta.dtype));
    let config = json!({
        "_kiln_source": "single-file",
        "architectures": [architecture],
        "attention_dropout": 0.0,
        "bos_token_id": 49406,
        "dropout": 0.0,
        "eos_token_id": 49407,
        "hidden_act": activation,
        "hidden_size": hidden,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": mapped.need_dim(name, "text_model.encoder.layers.0.mlp.fc1.weight", 0)?,
        "layer_norm_eps": 1e-5,
        "max_position_embeddings": mapped.need_dim(name, "text_model.embeddings.position_embedding.weight", 0)?,
        "model_type": "clip_text_model",
        "num_attention_heads": head_count(hidden),
        "num_hidden_layers": layers.len(),
        "pad_token_id": 1,
        "projection_dim": projection_dim.unwrap_or(hidden),
        "torch_dtype": dtype,
        "vocab_size": vocab,
    });
    Ok(TextEncoder {
        component: mapped.into_component(name, config),
        hidden,
        projection_dim,
    })
}

fn torch_dtype(dtype: &str) -> &'static str {
    match dtype {
        "F16" => "float16",
        "BF16" => "bfloat16",
        _ => "float32",
    }
}

/// HF CLIP names (with or without the `text_model.` level) → `text_model.…`.
fn map_hf_clip(sub: &Sub, unmapped: &mut Vec<String>) -> Mapped {
    let mut mapped = Mapped::default();
    for (&name, meta) in &sub.tensors {
        let rest = name.strip_prefix("text_model.").unwrap_or(name);
        let ignored = rest.ends_with("position_ids")
            || matches!(rest, "logit_scale" | "text_projection.weight")
            || name.starts_with("vision_model.")
            || name.starts_with("visual_projection.");
        if ignored {
            unmapped.push(sub.full(name));
        } else if hf_clip_module(rest) {
            let target = format!("text_model.{rest}");
            mapped.add(target, sub.full(name), KeyTransform::Identity, &meta.shape);
        } else {
            mapped.unknown.push(sub.full(name));
        }
    }
    mapped
}

fn hf_clip_module(name: &str) -> bool {
    let Some(module) = module_of(name) else {
        return false;
    };
    if matches!(
        module,
        "embeddings.token_embedding" | "embeddings.position_embedding" | "final_layer_norm"
    ) {
        return true;
    }
    let Some((_, inner)) = module.strip_prefix("encoder.layers.").and_then(split_index) else {
        return false;
    };
    matches!(
        inner,
        "layer_norm1"
            | "layer_norm2"
            | "self_attn.q_proj"
            | "self_attn.k_proj"
            | "self_attn.v_proj"
            | "self_attn.out_proj"
            | "mlp.fc1"
            | "mlp.fc2"
    )
}

/// OpenCLIP text tower → HF CLIP names (§1.7); returns the projection width.
fn map_open_clip(
    sub: &Sub,
    with_projection: bool,
    drop_last_layer: bool,
    unmapped: &mut Vec<String>,
) -> Detail<(Mapped, Option<usize>)> {
    let layers = sub.indices("transformer.resblocks.");
    let last = layers.last().copied();
    let mut mapped = Mapped::default();
    let mut projection_dim = None;
    for (&name, meta) in &sub.tensors {
        let source = sub.full(name);
        let shape = meta.shape.as_slice();
        let identity = |target: &str| (format!("text_model.{target}"), KeyTransform::Identity);
        let target = match name {
            "positional_embedding" => Some(identity("embeddings.position_embedding.weight")),
            "token_embedding.weight" => Some(identity("embeddings.token_embedding.weight")),
            "ln_final.weight" => Some(identity("final_layer_norm.weight")),
            "ln_final.bias" => Some(identity("final_layer_norm.bias")),
            "text_projection" => {
                projection_dim = shape.get(1).copied();
                if !with_projection {
                    unmapped.push(source);
                    continue;
                }
                Some((
                    "text_projection.weight".to_string(),
                    KeyTransform::Transpose,
                ))
            }
            "logit_scale" | "attn_mask" => {
                unmapped.push(source);
                continue;
            }
            _ if name.starts_with("visual.") => {
                unmapped.push(source);
                continue;
            }
            _ => None,
        };
        if let Some((target, transform)) = target {
            mapped.add(target, source, transform, shape);
            continue;
        }
        let Some((layer, inner)) = name
            .strip_prefix("transformer.resblocks.")
            .and_then(split_index)
        else {
            mapped.unknown.push(source);
            continue;
        };
        if drop_last_layer && Some(layer) == last {
            unmapped.push(source);
            continue;
        }
        let base = format!("text_model.encoder.layers.{layer}");
        let in_proj = match inner {
            "attn.in_proj_weight" => Some("weight"),
            "attn.in_proj_bias" => Some("bias"),
            _ => None,
        };
        if let Some(leaf) = in_proj {
            let rows = shape.first().copied().unwrap_or(0);
            if rows == 0 || !rows.is_multiple_of(3) {
                mapped.bad_shapes.push(format!("{source} {shape:?}"));
                continue;
            }
            let len = rows / 3;
            for (k, part) in ["q_proj", "k_proj", "v_proj"].into_iter().enumerate() {
                let transform = KeyTransform::Rows {
                    start: k * len,
                    len,
                };
                mapped.add(
                    format!("{base}.self_attn.{part}.{leaf}"),
                    source.clone(),
                    transform,
                    shape,
                );
            }
            continue;
        }
        let renamed = module_of(inner).and_then(|module| {
            let leaf = inner.rsplit_once('.')?.1;
            let module = match module {
                "ln_1" => "layer_norm1",
                "ln_2" => "layer_norm2",
                "attn.out_proj" => "self_attn.out_proj",
                "mlp.c_fc" => "mlp.fc1",
                "mlp.c_proj" => "mlp.fc2",
                _ => return None,
            };
            Some(format!("{base}.{module}.{leaf}"))
        });
        match renamed {
            Some(target) => mapped.add(target, source, KeyTransform::Identity, shape),
            None => mapped.unknown.push(source),
        }
    }
    if with_projection && projection_dim.is_none() {
        return Err(format!("missing tensor {}text_projection", sub.prefix));
    }
    Ok((mapped, projection_dim))
}

#[cfg(test)]
mod tests {
    use super::*;

    // -----------------------------------------------------------------------------------------
    // Synthetic headers: the full LDM key sets with the shapes the real modules have.
    // -----------------------------------------------------------------------------------------

    fn add(h: &mut Header, name: String, shape: &[usize]) {
        let meta = TensorMeta {
            dtype: "F16".into(),
            shape: shape.to_vec(),
        };
        assert!(h.insert(name.clone(), meta).is_none(), "duplicate {name}");
    }

    fn linear(h: &mut Header, p: &str, out: usize, inp: usize) {
        add(h, format!("{p}.weight"), &[out, inp]);
        add(h, format!("{p}.bias"), &[out]);
    }

    fn conv(h: &mut Header, p: &str, out: usize, inp: usize, k: usize) {
        add(h, format!("{p}.weight"), &[out, inp, k, k]);
        add(h, format!("{p}.bias"), &[out]);
    }

    fn norm(h: &mut Header, p: &str, c: usize) {
        add(h, format!("{p}.weight"), &[c]);
        add(h, format!("{p}.bias"), &[c]);
    }

    struct UnetSpec {
        channels: Vec<usize>,
        layers: usize,
        depth: Vec<Option<usize>>,
        mid: usize,
        cross: usize,
        linear: bool,
        in_channels: usize,
        label_in: Option<usize>,
    }

    fn unet_resnet(h: &mut Header, p: &str, cin: usize, cout: usize, temb: usize) {
        norm(h, &format!("{p}.in_layers.0"), cin);
        conv(h, &format!("{p}.in_layers.2"), cout, cin, 3);
        linear(h, &format!("{p}.emb_layers.1"), cout, temb);
        norm(h, &format!("{p}.out_layers.0"), cout);
        conv(h, &format!("{p}.out_layers.3"), cout, cout, 3);
        if cin != cout {
            conv(h, &format!("{p}.skip_connection"), cout, cin, 1);
        }
    }

    fn spatial_transformer(h: &mut Header, p: &str, c: usize, depth: usize, spec: &UnetSpec) {
        norm(h, &format!("{p}.norm"), c);
        for proj in ["proj_in", "proj_out"] {
            if spec.linear {
                linear(h, &format!("{p}.{proj}"), c, c);
            } else {
                conv(h, &format!("{p}.{proj}"), c, c, 1);
            }
        }
        for k in 0..depth {
            let t = format!("{p}.transformer_blocks.{k}");
            for n in ["norm1", "norm2", "norm3"] {
                norm(h, &format!("{t}.{n}"), c);
            }
            for (attn, ctx) in [("attn1", c), ("attn2", spec.cross)] {
                add(h, format!("{t}.{attn}.to_q.weight"), &[c, c]);
                add(h, format!("{t}.{attn}.to_k.weight"), &[c, ctx]);
                add(h, format!("{t}.{attn}.to_v.weight"), &[c, ctx]);
                linear(h, &format!("{t}.{attn}.to_out.0"), c, c);
            }
            linear(h, &format!("{t}.ff.net.0.proj"), 8 * c, c);
            linear(h, &format!("{t}.ff.net.2"), c, 4 * c);
        }
    }

    fn ldm_unet(h: &mut Header, spec: &UnetSpec) {
        let p = UNET_PREFIX;
        let c0 = spec.channels[0];
        let temb = 4 * c0;
        linear(h, &format!("{p}time_embed.0"), temb, c0);
        linear(h, &format!("{p}time_embed.2"), temb, temb);
        if let Some(label_in) = spec.label_in {
            linear(h, &format!("{p}label_emb.0.0"), temb, label_in);
            linear(h, &format!("{p}label_emb.0.2"), temb, temb);
        }
        conv(h, &format!("{p}input_blocks.0.0"), c0, spec.in_channels, 3);
        let levels = spec.channels.len();
        let mut skips = vec![c0];
        let mut ch = c0;
        let mut n = 1;
        for b in 0..levels {
            let c = spec.channels[b];
            for _ in 0..spec.layers {
                unet_resnet(h, &format!("{p}input_blocks.{n}.0"), ch, c, temb);
                ch = c;
                if let Some(depth) = spec.depth[b] {
                    spatial_transformer(h, &format!("{p}input_blocks.{n}.1"), c, depth, spec);
                }
                skips.push(ch);
                n += 1;
            }
            if b + 1 < levels {
                conv(h, &format!("{p}input_blocks.{n}.0.op"), ch, ch, 3);
                skips.push(ch);
                n += 1;
            }
        }
        unet_resnet(h, &format!("{p}middle_block.0"), ch, ch, temb);
        spatial_transformer(h, &format!("{p}middle_block.1"), ch, spec.mid, spec);
        unet_resnet(h, &format!("{p}middle_block.2"), ch, ch, temb);
        let mut n = 0;
        for r in (0..levels).rev() {
            let c = spec.channels[r];
            for j in 0..=spec.layers {
                let skip = skips.pop().unwrap();
                unet_resnet(h, &format!("{p}output_blocks.{n}.0"), ch + skip, c, temb);
                ch = c;
                if let Some(depth) = spec.depth[r] {
                    spatial_transformer(h, &format!("{p}output_blocks.{n}.1"), c, depth, spec);
                }
                if j == spec.layers && r > 0 {
                    let slot = if spec.depth[r].is_some() { 2 } else { 1 };
                    conv(h, &format!("{p}output_blocks.{n}.{slot}.conv"), c, c, 3);
                }
                n += 1;
            }
        }
        norm(h, &format!("{p}out.0"), c0);
        conv(h, &format!("{p}out.2"), 4, c0, 3);
    }

    fn vae_resnet(h: &mut Header, p: &str, cin: usize, cout: usize) {
        norm(h, &format!("{p}.norm1"), cin);
        conv(h, &format!("{p}.conv1"), cout, cin, 3);
        norm(h, &format!("{p}.norm2"), cout);
        conv(h, &format!("{p}.conv2"), cout, cout, 3);
        if cin != cout {
            conv(h, &format!("{p}.nin_shortcut"), cout, cin, 1);
        }
    }

    fn vae_mid(h: &mut Header, p: &str, c: usize) {
        vae_resnet(h, &format!("{p}.mid.block_1"), c, c);
        norm(h, &format!("{p}.mid.attn_1.norm"), c);
        for m in ["q", "k", "v", "proj_out"] {
            conv(h, &format!("{p}.mid.attn_1.{m}"), c, c, 1);
        }
        vae_resnet(h, &format!("{p}.mid.block_2"), c, c);
    }

    fn ldm_vae(h: &mut Header, p: &str, channels: &[usize], layers: usize) {
        let z = 4;
        let levels = channels.len();
        let (c0, last) = (channels[0], channels[levels - 1]);
        conv(h, &format!("{p}encoder.conv_in"), c0, 3, 3);
        let mut ch = c0;
        for (i, &c) in channels.iter().enumerate() {
            for j in 0..layers {
                vae_resnet(h, &format!("{p}encoder.down.{i}.block.{j}"), ch, c);
                ch = c;
            }
            if i + 1 < levels {
                conv(h, &format!("{p}encoder.down.{i}.downsample.conv"), c, c, 3);
            }
        }
        vae_mid(h, &format!("{p}encoder"), last);
        norm(h, &format!("{p}encoder.norm_out"), last);
        conv(h, &format!("{p}encoder.conv_out"), 2 * z, last, 3);
        conv(h, &format!("{p}quant_conv"), 2 * z, 2 * z, 1);
        conv(h, &format!("{p}post_quant_conv"), z, z, 1);
        conv(h, &format!("{p}decoder.conv_in"), last, z, 3);
        vae_mid(h, &format!("{p}decoder"), last);
        let mut ch = last;
        for i in (0..levels).rev() {
            let c = channels[i];
            for j in 0..=layers {
                vae_resnet(h, &format!("{p}decoder.up.{i}.block.{j}"), ch, c);
                ch = c;
            }
            if i > 0 {
                conv(h, &format!("{p}decoder.up.{i}.upsample.conv"), c, c, 3);
            }
        }
        norm(h, &format!("{p}decoder.norm_out"), c0);
        conv(h, &format!("{p}decoder.conv_out"), 3, c0, 3);
    }

    /// `(vocab, hidden, layers, intermediate)`.
    type TextSize = (usize, usize, usize, usize);

    fn hf_clip(h: &mut Header, p: &str, text_model: bool, (vocab, d, layers, inter): TextSize) {
        let t = if text_model {
            format!("{p}text_model.")
        } else {
            p.to_string()
        };
        add(
            h,
            format!("{t}embeddings.token_embedding.weight"),
            &[vocab, d],
        );
        add(
            h,
            format!("{t}embeddings.position_embedding.weight"),
            &[77, d],
        );
        add(h, format!("{t}embeddings.position_ids"), &[1, 77]);
        for i in 0..layers {
            let l = format!("{t}encoder.layers.{i}");
            norm(h, &format!("{l}.layer_norm1"), d);
            for m in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                linear(h, &format!("{l}.self_attn.{m}"), d, d);
            }
            norm(h, &format!("{l}.layer_norm2"), d);
            linear(h, &format!("{l}.mlp.fc1"), inter, d);
            linear(h, &format!("{l}.mlp.fc2"), d, inter);
        }
        norm(h, &format!("{t}final_layer_norm"), d);
    }

    fn open_clip(h: &mut Header, p: &str, (vocab, d, layers, inter): TextSize, proj: usize) {
        add(h, format!("{p}positional_embedding"), &[77, d]);
        add(h, format!("{p}token_embedding.weight"), &[vocab, d]);
        add(h, format!("{p}text_projection"), &[d, proj]);
        add(h, format!("{p}logit_scale"), &[]);
        for i in 0..layers {
            let l = format!("{p}transformer.resblocks.{i}");
            norm(h, &format!("{l}.ln_1"), d);
            add(h, format!("{l}.attn.in_proj_weight"), &[3 * d, d]);
            add(h, format!("{l}.attn.in_proj_bias"), &[3 * d]);
            linear(h, &format!("{l}.attn.out_proj"), d, d);
            norm(h, &format!("{l}.ln_2"), d);
            linear(h, &format!("{l}.mlp.c_fc"), inter, d);
            linear(h, &format!("{l}.mlp.c_proj"), d, inter);
        }
        norm(h, &format!("{p}ln_final"), d);
    }

    const CLIP_L: TextSize = (49408, 768, 12, 3072);
    const CLIP_H: TextSize = (49408, 1024, 24, 4096);
    const CLIP_G: TextSize = (49408, 1280, 32, 5120);
    const SD_VAE: [usize; 4] = [128, 256, 512, 512];

    fn sd15_unet_spec() -> UnetSpec {
        UnetSpec {
            channels: vec![320, 640, 1280, 1280],
            layers: 2,
            depth: vec![Some(1), Some(1), Some(1), None],
            mid: 1,
            cross: 768,
            linear: false,
            in_channels: 4,
            label_in: None,
        }
    }

    fn sd15() -> Header {
        let mut h = Header::new();
        ldm_unet(&mut h, &sd15_unet_spec());
        ldm_vae(&mut h, "first_stage_model.", &SD_VAE, 2);
        hf_clip(&mut h, SD1_TEXT, true, CLIP_L);
        add(&mut h, "model_ema.decay".into(), &[]);
        add(
            &mut h,
            "model_ema.diffusion_modelinput_blocks00weight".into(),
            &[320, 4, 3, 3],
        );
        add(&mut h, "alphas_cumprod".into(), &[1000]);
        h
    }

    fn sd2() -> Header {
        let mut h = Header::new();
        let spec = UnetSpec {
            cross: 1024,
            linear: true,
            ..sd15_unet_spec()
        };
        ldm_unet(&mut h, &spec);
        ldm_vae(&mut h, "first_stage_model.", &SD_VAE, 2);
        open_clip(&mut h, SD2_TEXT, CLIP_H, 1024);
        h
    }

    fn sdxl() -> Header {
        let mut h = Header::new();
        let spec = UnetSpec {
            channels: vec![320, 640, 1280],
            layers: 2,
            depth: vec![None, Some(2), Some(10)],
            mid: 10,
            cross: 2048,
            linear: true,
            in_channels: 4,
            label_in: Some(2816),
        };
        ldm_unet(&mut h, &spec);
        ldm_vae(&mut h, "first_stage_model.", &SD_VAE, 2);
        hf_clip(&mut h, SDXL_TEXT_1, true, CLIP_L);
        open_clip(&mut h, SDXL_TEXT_2, CLIP_G, 1280);
        h
    }

    fn refiner() -> Header {
        let mut h = Header::new();
        let spec = UnetSpec {
            channels: vec![384, 768, 1536, 1536],
            layers: 2,
            depth: vec![None, Some(4), Some(4), None],
            mid: 4,
            cross: 1280,
            linear: true,
            in_channels: 4,
            label_in: Some(2560),
        };
        ldm_unet(&mut h, &spec);
        ldm_vae(&mut h, "first_stage_model.", &SD_VAE, 2);
        open_clip(&mut h, REFINER_TEXT, CLIP_G, 1280);
        h
    }

    /// Shaped like the `tiny-sd15` fixture (`make_fixtures.py`): 2 UNet levels, 4 VAE levels.
    fn tiny_sd1(in_channels: usize) -> Header {
        let mut h = Header::new();
        let spec = UnetSpec {
            channels: vec![32, 64],
            layers: 2,
            depth: vec![Some(1), None],
            mid: 1,
            cross: 32,
            linear: false,
            in_channels,
            label_in: None,
        };
        ldm_unet(&mut h, &spec);
        ldm_vae(&mut h, "first_stage_model.", &[32, 32, 64, 64], 2);
        hf_clip(&mut h, SD1_TEXT, false, (1000, 32, 5, 37));
        h
    }

    fn inspect_ok(h: &Header) -> SingleFile {
        match inspect_single_file(h, Path::new("model.safetensors")) {
            Ok(file) => file,
            Err(e) => panic!("inspect failed: {e}"),
        }
    }

    fn component<'a>(file: &'a SingleFile, name: &str) -> &'a Component {
        file.component(name).unwrap_or_else(|| panic!("no {name}"))
    }

    fn source<'a>(c: &'a Component, diffusers: &str) -> &'a str {
        match c.tensors.get(diffusers) {
            Some(m) => &m.source,
            None => panic!("{} has no {diffusers}", c.name),
        }
    }

    fn error_text(h: &Header) -> String {
        match inspect_single_file(h, Path::new("x.safetensors")) {
            Ok(file) => panic!("expected an error, got {:?}", file.kind),
            Err(e) => e.to_string(),
        }
    }

    /// Every stored tensor is either mapped (at least once) or listed as unmapped.
    fn assert_accounted(h: &Header, file: &SingleFile) {
        let mut seen: BTreeSet<&str> = file.unmapped.iter().map(String::as_str).collect();
        for c in &file.components {
            for m in c.tensors.values() {
                assert!(
                    h.contains_key(&m.source),
                    "{} maps to missing {}",
                    c.name,
                    m.source
                );
                seen.insert(&m.source);
            }
        }
        let missing: Vec<_> = h.keys().filter(|k| !seen.contains(k.as_str())).collect();
        assert!(missing.is_empty(), "unaccounted: {missing:?}");
    }

    // -----------------------------------------------------------------------------------------
    // Real-size layouts
    // -----------------------------------------------------------------------------------------

    #[test]
    fn sd15_detection_configs_and_mapping() {
        let h = sd15();
        let file = inspect_ok(&h);
        assert_eq!(file.kind, ModelKind::new(Family::Sd1));
        assert_eq!(file.kind.label(), "SD1.x");
        let names: Vec<_> = file.components.iter().map(|c| c.name).collect();
        assert_eq!(names, ["unet", "vae", "text_encoder"]);
        assert_accounted(&h, &file);

        let unet = component(&file, "unet");
        assert_eq!(unet.tensors.len(), 686); // diffusers SD1.5 UNet tensor count
        let cfg = &unet.config;
        assert_eq!(cfg["block_out_channels"], json!([320, 640, 1280, 1280]));
        assert_eq!(cfg["layers_per_block"], 2);
        assert_eq!(cfg["attention_head_dim"], 8);
        assert_eq!(cfg["cross_attention_dim"], 768);
        assert_eq!(cfg["use_linear_projection"], false);
        assert_eq!(cfg["transformer_layers_per_block"], 1);
        assert_eq!(cfg["sample_size"], 64);
        assert_eq!(cfg["in_channels"], 4);
        assert_eq!(cfg["addition_embed_type"], Value::Null);
        assert_eq!(
            cfg["down_block_types"],
            json!([
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D"
            ])
        );
        assert_eq!(
            cfg["up_block_types"],
            json!([
                "UpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D"
            ])
        );
        let u = |s: &str| format!("{UNET_PREFIX}{s}");
        for (diffusers, ldm) in [
            (
                "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight",
            ),
            (
                "up_blocks.0.upsamplers.0.conv.weight",
                "output_blocks.2.1.conv.weight",
            ),
            (
                "up_blocks.1.upsamplers.0.conv.bias",
                "output_blocks.5.2.conv.bias",
            ),
            (
                "up_blocks.2.upsamplers.0.conv.weight",
                "output_blocks.8.2.conv.weight",
            ),
            (
                "down_blocks.0.downsamplers.0.conv.weight",
                "input_blocks.3.0.op.weight",
            ),
            (
                "down_blocks.3.resnets.1.conv2.weight",
                "input_blocks.11.0.out_layers.3.weight",
            ),
            (
                "down_blocks.1.resnets.0.conv_shortcut.weight",
                "input_blocks.4.0.skip_connection.weight",
            ),
            (
                "up_blocks.3.resnets.2.time_emb_proj.weight",
                "output_blocks.11.0.emb_layers.1.weight",
            ),
            (
                "up_blocks.3.attentions.2.proj_out.weight",
                "output_blocks.11.1.proj_out.weight",
            ),
            (
                "mid_block.attentions.0.norm.weight",
                "middle_block.1.norm.weight",
            ),
            (
                "mid_block.resnets.1.norm1.bias",
                "middle_block.2.in_layers.0.bias",
            ),
            ("time_embedding.linear_2.weight", "time_embed.2.weight"),
            ("conv_in.weight", "input_blocks.0.0.weight"),
            ("conv_norm_out.weight", "out.0.weight"),
            ("conv_out.bias", "out.2.bias"),
        ] {
            assert_eq!(source(unet, diffusers), u(ldm), "{diffusers}");
        }

        let vae = component(&file, "vae");
        assert_eq!(vae.tensors.len(), 248); // diffusers SD VAE tensor count
        assert_eq!(vae.config["block_out_channels"], json!(SD_VAE));
        assert_eq!(vae.config["layers_per_block"], 2);
        assert_eq!(vae.config["latent_channels"], 4);
        assert_eq!(vae.config["scaling_factor"], 0.18215);
        assert_eq!(vae.config["force_upcast"], false);
        for (diffusers, ldm) in [
            (
                "decoder.up_blocks.0.resnets.0.conv1.weight",
                "decoder.up.3.block.0.conv1.weight",
            ),
            (
                "decoder.up_blocks.3.resnets.2.norm2.bias",
                "decoder.up.0.block.2.norm2.bias",
            ),
            (
                "decoder.up_blocks.0.upsamplers.0.conv.weight",
                "decoder.up.3.upsample.conv.weight",
            ),
            (
                "decoder.up_blocks.3.resnets.0.conv_shortcut.weight",
                "decoder.up.0.block.0.nin_shortcut.weight",
            ),
            (
                "encoder.down_blocks.1.downsamplers.0.conv.bias",
                "encoder.down.1.downsample.conv.bias",
            ),
            (
                "encoder.mid_block.attentions.0.to_out.0.weight",
                "encoder.mid.attn_1.proj_out.weight",
            ),
            (
                "decoder.mid_block.attentions.0.group_norm.weight",
                "decoder.mid.attn_1.norm.weight",
            ),
            (
                "decoder.mid_block.resnets.1.conv2.weight",
                "decoder.mid.block_2.conv2.weight",
            ),
            ("encoder.conv_norm_out.bias", "encoder.norm_out.bias"),
            ("quant_conv.weight", "quant_conv.weight"),
        ] {
            assert_eq!(
                source(vae, diffusers),
                format!("first_stage_model.{ldm}"),
                "{diffusers}"
            );
        }

        let text = component(&file, "text_encoder");
        assert_eq!(text.tensors.len(), 196);
        let cfg = &text.config;
        assert_eq!(cfg["hidden_size"], 768);
        assert_eq!(cfg["num_hidden_layers"], 12);
        assert_eq!(cfg["num_attention_heads"], 12);
        assert_eq!(cfg["intermediate_size"], 3072);
        assert_eq!(cfg["hidden_act"], "quick_gelu");
        assert_eq!(cfg["vocab_size"], 49408);
        assert_eq!(cfg["max_position_embeddings"], 77);
        assert_eq!(cfg["architectures"], json!(["CLIPTextModel"]));
        assert_eq!(
            source(text, "text_model.encoder.layers.11.mlp.fc2.bias"),
            "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.bias"
        );

        for ignored in [
            "model_ema.decay",
            "alphas_cumprod",
            "cond_stage_model.transformer.text_model.embeddings.position_ids",
        ] {
            assert!(file.unmapped.iter().any(|u| u == ignored), "{ignored}");
        }
    }

    #[test]
    fn sd2_uses_openclip_h_with_23_layers() {
        let h = sd2();
        let file = inspect_ok(&h);
        assert_eq!(file.kind.family, Family::Sd2);
        assert_eq!(file.kind.v_prediction, None);
        assert_accounted(&h, &file);
        let unet = &component(&file, "unet").config;
        assert_eq!(unet["attention_head_dim"], json!([5, 10, 20, 20]));
        assert_eq!(unet["use_linear_projection"], true);
        assert_eq!(unet["cross_attention_dim"], 1024);
        assert_eq!(unet["sample_size"], 96);
        assert_eq!(unet["upcast_attention"], false);

        let text = component(&file, "text_encoder");
        let cfg = &text.config;
        assert_eq!(cfg["num_hidden_layers"], 23);
        assert_eq!(cfg["num_attention_heads"], 16);
        assert_eq!(cfg["hidden_act"], "gelu");
        assert_eq!(cfg["intermediate_size"], 4096);
        assert_eq!(text.tensors.len(), 23 * 16 + 4);
        assert!(!text.tensors.contains_key("text_projection.weight"));
        assert!(!text.tensors.keys().any(|k| k.contains("layers.23.")));
        assert!(
            file.unmapped
                .iter()
                .any(|u| u.ends_with("resblocks.23.mlp.c_proj.bias"))
        );
        assert!(
            file.unmapped
                .contains(&format!("{SD2_TEXT}text_projection"))
        );
        let v = &text.tensors["text_model.encoder.layers.3.self_attn.v_proj.weight"];
        assert_eq!(
            v.source,
            format!("{SD2_TEXT}transformer.resblocks.3.attn.in_proj_weight")
        );
        assert_eq!(
            v.transform,
            KeyTransform::Rows {
                start: 2048,
                len: 1024
            }
        );
        assert_eq!(
            source(text, "text_model.embeddings.position_embedding.weight"),
            format!("{SD2_TEXT}positional_embedding")
        );
    }

    #[test]
    fn sdxl_base_configs_and_openclip_mapping() {
        let h = sdxl();
        let file = inspect_ok(&h);
        assert_eq!(file.kind, ModelKind::new(Family::Sdxl));
        let names: Vec<_> = file.components.iter().map(|c| c.name).collect();
        assert_eq!(names, ["unet", "vae", "text_encoder", "text_encoder_2"]);
        assert_accounted(&h, &file);

        let unet = component(&file, "unet");
        assert_eq!(unet.tensors.len(), 1680); // diffusers SDXL UNet tensor count
        let cfg = &unet.config;
        assert_eq!(cfg["block_out_channels"], json!([320, 640, 1280]));
        assert_eq!(cfg["attention_head_dim"], json!([5, 10, 20]));
        assert_eq!(cfg["transformer_layers_per_block"], json!([1, 2, 10]));
        assert_eq!(
            cfg["down_block_types"],
            json!([
                "DownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D"
            ])
        );
        assert_eq!(
            cfg["up_block_types"],
            json!(["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"])
        );
        assert_eq!(cfg["cross_attention_dim"], 2048);
        assert_eq!(cfg["addition_embed_type"], "text_time");
        assert_eq!(cfg["addition_time_embed_dim"], 256);
        assert_eq!(cfg["projection_class_embeddings_input_dim"], 2816);
        assert_eq!(cfg["sample_size"], 128);
        assert_eq!(
            source(unet, "up_blocks.0.upsamplers.0.conv.weight"),
            format!("{UNET_PREFIX}output_blocks.2.2.conv.weight")
        );
        assert_eq!(
            source(unet, "add_embedding.linear_1.weight"),
            format!("{UNET_PREFIX}label_emb.0.0.weight")
        );
        assert_eq!(
            source(
                unet,
                "down_blocks.2.attentions.1.transformer_blocks.9.ff.net.2.weight"
            ),
            format!("{UNET_PREFIX}input_blocks.8.1.transformer_blocks.9.ff.net.2.weight")
        );

        let vae = &component(&file, "vae").config;
        assert_eq!(vae["scaling_factor"], 0.13025);
        assert_eq!(vae["force_upcast"], true);

        assert_eq!(component(&file, "text_encoder").config["hidden_size"], 768);
        let text2 = component(&file, "text_encoder_2");
        assert_eq!(text2.tensors.len(), 517);
        let cfg = &text2.config;
        assert_eq!(cfg["architectures"], json!(["CLIPTextModelWithProjection"]));
        assert_eq!(cfg["hidden_size"], 1280);
        assert_eq!(cfg["num_hidden_layers"], 32);
        assert_eq!(cfg["num_attention_heads"], 20);
        assert_eq!(cfg["intermediate_size"], 5120);
        assert_eq!(cfg["projection_dim"], 1280);
        assert_eq!(cfg["hidden_act"], "gelu");
        let in_proj = format!("{SDXL_TEXT_2}transformer.resblocks.0.attn.in_proj_weight");
        for (k, part) in ["q_proj", "k_proj", "v_proj"].into_iter().enumerate() {
            let m = &text2.tensors[&format!("text_model.encoder.layers.0.self_attn.{part}.weight")];
            assert_eq!(m.source, in_proj);
            assert_eq!(
                m.transform,
                KeyTransform::Rows {
                    start: k * 1280,
                    len: 1280
                }
            );
        }
        let bias = &text2.tensors["text_model.encoder.layers.0.self_attn.k_proj.bias"];
        assert_eq!(
            bias.source,
            format!("{SDXL_TEXT_2}transformer.resblocks.0.attn.in_proj_bias")
        );
        let projection = &text2.tensors["text_projection.weight"];
        assert_eq!(projection.source, format!("{SDXL_TEXT_2}text_projection"));
        assert_eq!(projection.transform, KeyTransform::Transpose);
        assert_eq!(
            source(text2, "text_model.encoder.layers.31.mlp.fc1.weight"),
            format!("{SDXL_TEXT_2}transformer.resblocks.31.mlp.c_fc.weight")
        );
        assert!(file.unmapped.contains(&format!("{SDXL_TEXT_2}logit_scale")));
    }

    #[test]
    fn sdxl_refiner() {
        let h = refiner();
        let file = inspect_ok(&h);
        assert_eq!(file.kind.family, Family::SdxlRefiner);
        let names: Vec<_> = file.components.iter().map(|c| c.name).collect();
        assert_eq!(names, ["unet", "vae", "text_encoder_2"]);
        assert_accounted(&h, &file);
        let cfg = &component(&file, "unet").config;
        assert_eq!(cfg["attention_head_dim"], json!([6, 12, 24, 24]));
        assert_eq!(cfg["transformer_layers_per_block"], 4);
        assert_eq!(cfg["addition_time_embed_dim"], 256);
        assert_eq!(cfg["projection_class_embeddings_input_dim"], 2560);
        assert_eq!(cfg["cross_attention_dim"], 1280);
        assert_eq!(
            cfg["down_block_types"],
            json!([
                "DownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D"
            ])
        );
    }

    #[test]
    fn unet_only_shape_decides_without_text_encoder() {
        let mut h = Header::new();
        ldm_unet(&mut h, &sd15_unet_spec());
        let file = inspect_ok(&h);
        assert_eq!(file.kind.family, Family::Sd1);
        assert_eq!(file.components.len(), 1);
    }

    // -----------------------------------------------------------------------------------------
    // Tiny layouts and variants
    // -----------------------------------------------------------------------------------------

    #[test]
    fn tiny_sd1_generalises_levels_and_heads() {
        let h = tiny_sd1(4);
        let file = inspect_ok(&h);
        assert_eq!(file.kind.family, Family::Sd1);
        assert_accounted(&h, &file);
        let unet = component(&file, "unet");
        let cfg = &unet.config;
        assert_eq!(cfg["block_out_channels"], json!([32, 64]));
        assert_eq!(
            cfg["down_block_types"],
            json!(["CrossAttnDownBlock2D", "DownBlock2D"])
        );
        assert_eq!(
            cfg["up_block_types"],
            json!(["UpBlock2D", "CrossAttnUpBlock2D"])
        );
        assert_eq!(cfg["attention_head_dim"], 8);
        assert_eq!(cfg["cross_attention_dim"], 32);
        assert_eq!(
            source(unet, "up_blocks.0.upsamplers.0.conv.weight"),
            format!("{UNET_PREFIX}output_blocks.2.1.conv.weight")
        );
        assert_eq!(
            source(
                unet,
                "up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_q.weight"
            ),
            format!("{UNET_PREFIX}output_blocks.5.1.transformer_blocks.0.attn1.to_q.weight")
        );
        let text = component(&file, "text_encoder");
        assert_eq!(text.config["num_attention_heads"], 4);
        assert_eq!(text.config["num_hidden_layers"], 5);
        // No `text_model.` level in the file: the diffusers names still have it.
        assert_eq!(
            source(text, "text_model.final_layer_norm.weight"),
            "cond_stage_model.transformer.final_layer_norm.weight"
        );
        let vae = component(&file, "vae");
        assert_eq!(vae.config["block_out_channels"], json!([32, 32, 64, 64]));
    }

    #[test]
    fn layers_per_block_other_than_two() {
        let mut h = Header::new();
        let spec = UnetSpec {
            channels: vec![32, 64, 64],
            layers: 1,
            depth: vec![Some(1), Some(1), None],
            mid: 1,
            cross: 768,
            linear: false,
            in_channels: 4,
            label_in: None,
        };
        ldm_unet(&mut h, &spec);
        let file = inspect_ok(&h);
        let unet = component(&file, "unet");
        assert_eq!(unet.config["layers_per_block"], 1);
        // L = 1: input_blocks 1 | 2 (op) | 3 | 4 (op) | 5.
        assert_eq!(
            source(unet, "down_blocks.1.downsamplers.0.conv.weight"),
            format!("{UNET_PREFIX}input_blocks.4.0.op.weight")
        );
        assert_eq!(
            source(unet, "down_blocks.2.resnets.0.conv1.weight"),
            format!("{UNET_PREFIX}input_blocks.5.0.in_layers.2.weight")
        );
        assert_eq!(
            source(unet, "up_blocks.1.upsamplers.0.conv.weight"),
            format!("{UNET_PREFIX}output_blocks.3.2.conv.weight")
        );
    }

    #[test]
    fn inpainting_and_v_prediction_marker() {
        let mut h = tiny_sd1(9);
        let file = inspect_ok(&h);
        assert!(file.kind.inpainting);
        assert_eq!(file.kind.to_string(), "SD1.x inpainting");
        assert_eq!(component(&file, "unet").config["in_channels"], 9);

        add(&mut h, "v_pred".into(), &[]);
        let file = inspect_ok(&h);
        assert_eq!(file.kind.v_prediction, Some(true));
        assert!(file.unmapped.contains(&"v_pred".to_string()));
    }

    #[test]
    fn vae_prefix_variant_and_diffusers_named_vae() {
        let mut h = Header::new();
        ldm_unet(&mut h, &sd15_unet_spec());
        ldm_vae(&mut h, "vae.", &[32, 64], 1);
        let file = inspect_ok(&h);
        let vae = component(&file, "vae");
        assert_eq!(vae.config["layers_per_block"], 1);
        assert_eq!(
            source(vae, "decoder.up_blocks.1.resnets.1.conv1.weight"),
            "vae.decoder.up.0.block.1.conv1.weight"
        );

        // A VAE stored under diffusers names with the old attention names.
        let mut h = Header::new();
        ldm_unet(&mut h, &sd15_unet_spec());
        let mut ldm = Header::new();
        ldm_vae(&mut ldm, "", &[32, 64], 1);
        for (name, meta) in &ldm {
            let diffusers = map_vae_name(name, 2).unwrap();
            let old = diffusers
                .replace(".to_q.", ".query.")
                .replace(".to_out.0.", ".proj_attn.");
            h.insert(format!("first_stage_model.{old}"), meta.clone());
        }
        let file = inspect_ok(&h);
        let vae = component(&file, "vae");
        assert_eq!(
            source(vae, "encoder.mid_block.attentions.0.to_q.weight"),
            "first_stage_model.encoder.mid_block.attentions.0.query.weight"
        );
        assert_eq!(
            source(vae, "decoder.mid_block.attentions.0.to_out.0.bias"),
            "first_stage_model.decoder.mid_block.attentions.0.proj_attn.bias"
        );
        assert_eq!(vae.config["block_out_channels"], json!([32, 64]));
        assert_eq!(
            legacy_vae_name("decoder.mid_block.attentions.0.key.weight").as_deref(),
            Some("decoder.mid_block.attentions.0.to_k.weight")
        );
        assert_eq!(legacy_vae_name("decoder.conv_in.weight"), None);
    }

    #[test]
    fn transforms_give_diffusers_shapes() {
        let rows = KeyTransform::Rows { start: 4, len: 4 };
        assert_eq!(rows.output_shape(&[12, 4]), Some(vec![4, 4]));
        assert_eq!(rows.output_shape(&[12]), Some(vec![4]));
        assert_eq!(rows.output_shape(&[6, 4]), None);
        assert_eq!(
            KeyTransform::Transpose.output_shape(&[3, 5]),
            Some(vec![5, 3])
        );
        assert_eq!(KeyTransform::Transpose.output_shape(&[3]), None);
    }

    // -----------------------------------------------------------------------------------------
    // Refusals and errors
    // -----------------------------------------------------------------------------------------

    #[test]
    fn refuses_files_that_are_not_checkpoints() {
        let one = |name: &str| {
            let mut h = Header::new();
            add(&mut h, name.into(), &[4, 4]);
            h
        };
        assert!(
            error_text(&one(
                "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"
            ))
            .contains("LoRA")
        );
        assert!(
            error_text(&one(
                "unet.down_blocks.0.attentions.0.proj_in.lora_A.weight"
            ))
            .contains("LoRA")
        );
        assert!(error_text(&one("control_model.time_embed.0.weight")).contains("ControlNet"));
        assert!(
            error_text(&one("controlnet_cond_embedding.conv_in.weight")).contains("ControlNet")
        );
        assert!(error_text(&one("input_hint_block.0.weight")).contains("ControlNet"));
        assert!(error_text(&one("image_proj.proj.weight")).contains("IP-Adapter"));
        assert!(error_text(&one("emb_params")).contains("embedding"));
        assert!(error_text(&one("something.else")).contains("no UNet weights"));
        assert!(error_text(&Header::new()).contains("no tensors"));

        let mut unet_only = one("conv_in.weight");
        add(
            &mut unet_only,
            "time_embedding.linear_1.weight".into(),
            &[4, 4],
        );
        let text = error_text(&unet_only);
        assert!(
            text.contains("only a UNet") && text.contains("full checkpoint"),
            "{text}"
        );

        let mut h = sdxl();
        add(&mut h, "edm_mean".into(), &[1, 4, 1, 1]);
        assert!(error_text(&h).contains("Playground"));
    }

    #[test]
    fn refuses_unsupported_unets() {
        let mut h = tiny_sd1(4);
        add(
            &mut h,
            format!("{UNET_PREFIX}input_blocks.1.0.time_stack.in_layers.0.weight"),
            &[32],
        );
        assert!(error_text(&h).contains("Video"));
        let text = error_text(&tiny_sd1(8));
        assert!(text.contains("InstructPix2Pix"), "{text}");
    }

    #[test]
    fn unknown_unet_and_vae_tensors_are_errors() {
        let mut h = tiny_sd1(4);
        add(
            &mut h,
            format!("{UNET_PREFIX}input_blocks.1.1.transformer_blocks.0.attn1.rotary.weight"),
            &[4],
        );
        let text = error_text(&h);
        assert!(
            text.contains("unet") && text.contains("attn1.rotary.weight"),
            "{text}"
        );

        let mut h = tiny_sd1(4);
        add(
            &mut h,
            "first_stage_model.decoder.up.0.extra.weight".into(),
            &[4],
        );
        let text = error_text(&h);
        assert!(
            text.contains("vae") && text.contains("decoder.up.0.extra.weight"),
            "{text}"
        );

        let mut h = tiny_sd1(4);
        h.remove(&format!("{UNET_PREFIX}output_blocks.2.1.conv.weight"));
        assert!(error_text(&h).contains("output_blocks.2.1.conv.weight"));
    }

    #[test]
    fn family_must_agree_with_the_unet() {
        // SD1 text encoder on an SDXL UNet.
        let mut h = Header::new();
        let spec = UnetSpec {
            label_in: Some(2816),
            ..sd15_unet_spec()
        };
        ldm_unet(&mut h, &spec);
        hf_clip(&mut h, SD1_TEXT, true, CLIP_L);
        assert!(error_text(&h).contains("label_emb"));

        // SD2 text encoder (1024) on an SD1 UNet (768).
        let mut h = Header::new();
        ldm_unet(&mut h, &sd15_unet_spec());
        open_clip(&mut h, SD2_TEXT, CLIP_H, 1024);
        assert!(error_text(&h).contains("cross-attention width 768"));

        // Half an SDXL.
        let mut h = sdxl();
        h.retain(|k, _| !k.starts_with(SDXL_TEXT_2));
        assert!(error_text(&h).contains("both text encoders"));
    }

    // -----------------------------------------------------------------------------------------
    // The real tiny fixture (make_fixtures.py `write_single_file`) against its diffusers twin
    // -----------------------------------------------------------------------------------------

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
    }

    fn read_header(path: &Path) -> Header {
        let bytes = std::fs::read(path).unwrap();
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        header_from_metadata(&metadata)
    }

    fn squeeze(shape: &[usize]) -> Vec<usize> {
        let mut shape = shape.to_vec();
        while shape.len() > 1 && shape.last() == Some(&1) {
            shape.pop();
        }
        shape
    }

    /// `8` and `[8, 8]` say the same for per-level fields.
    fn same_per_level(a: &Value, b: &Value) -> bool {
        let expand = |v: &Value, n: usize| match v {
            Value::Array(items) => items.clone(),
            other => vec![other.clone(); n],
        };
        let n = a.as_array().or(b.as_array()).map_or(1, Vec::len);
        expand(a, n) == expand(b, n)
    }

    #[test]
    fn tiny_sd15_fixture_matches_its_diffusers_folder() {
        let single = fixtures().join("tiny-sd15.safetensors");
        let folder = fixtures().join("tiny-sd15");
        assert!(
            single.exists() && folder.exists(),
            "missing committed fixtures {single:?} / {folder:?}"
        );
        let header = read_header(&single);
        let file = inspect_single_file(&header, &single).unwrap();
        assert_eq!(file.kind, ModelKind::new(Family::Sd1));
        assert_accounted(&header, &file);
        let checks: [(&str, &str, &[&str]); 3] = [
            (
                "unet",
                "diffusion_pytorch_model.safetensors",
                &[
                    "in_channels",
                    "out_channels",
                    "block_out_channels",
                    "layers_per_block",
                    "down_block_types",
                    "up_block_types",
                    "cross_attention_dim",
                    "attention_head_dim",
                    "use_linear_projection",
                    "transformer_layers_per_block",
                    "addition_embed_type",
                ],
            ),
            (
                "vae",
                "diffusion_pytorch_model.safetensors",
                &[
                    "block_out_channels",
                    "layers_per_block",
                    "latent_channels",
                    "in_channels",
                    "out_channels",
                    "scaling_factor",
                    "down_block_types",
                    "up_block_types",
                ],
            ),
            (
                "text_encoder",
                "model.safetensors",
                &[
                    "hidden_size",
                    "num_hidden_layers",
                    "num_attention_heads",
                    "intermediate_size",
                    "hidden_act",
                    "vocab_size",
                    "max_position_embeddings",
                ],
            ),
        ];
        for (name, weights, keys) in checks {
            let ours = component(&file, name);
            let theirs = read_header(&folder.join(name).join(weights));
            let theirs: BTreeMap<String, Vec<usize>> = theirs
                .into_iter()
                .filter(|(k, _)| !k.ends_with("position_ids"))
                .map(|(k, meta)| {
                    let k = if name == "text_encoder" && !k.starts_with("text_model.") {
                        format!("text_model.{k}")
                    } else {
                        k
                    };
                    (k, meta.shape)
                })
                .collect();
            let ours_names: BTreeSet<&String> = ours.tensors.keys().collect();
            let theirs_names: BTreeSet<&String> = theirs.keys().collect();
            assert_eq!(ours_names, theirs_names, "{name}: tensor names differ");
            for (k, m) in &ours.tensors {
                let shape = m.transform.output_shape(&header[&m.source].shape).unwrap();
                assert_eq!(squeeze(&shape), squeeze(&theirs[k]), "{name}: shape of {k}");
            }
            let json = std::fs::read_to_string(folder.join(name).join("config.json")).unwrap();
            let config: Value = serde_json::from_str(&json).unwrap();
            for key in keys {
                assert!(
                    same_per_level(&ours.config[*key], &config[*key]),
                    "{name}.{key}: inferred {} but config.json has {}",
                    ours.config[*key],
                    config[*key]
                );
            }
        }
    }
}
