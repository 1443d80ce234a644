//! Running a story script: each panel's lead character, its generation request, the drift
//! scores of a finished story, and the outliers among them. Shared by `kiln comic` and the
//! app's Comic section (`gui::services::comic`).

use super::script::Story;
use anyhow::bail;
use kiln_inference::Recipe;
use kiln_inference::adapters::ip_adapter::clip_vision::ClipVisionModel;
use kiln_inference::pipelines::stable_diffusion::GenerateRequest;
use kiln_inference::pipelines::story::consistency_score;

/// A panel whose score is this far below the median of its story's scores is flagged.
pub const OUTLIER_MARGIN: f32 = 0.1;

/// Each panel's lead character (the first it names, as an index into the cards); `None` for
/// panels without characters.
pub fn leads(story: &Story) -> Vec<Option<usize>> {
    story
        .panels
        .iter()
        .map(|panel| {
            let name = panel.characters.first()?.to_lowercase();
            story
                .characters
                .iter()
                .position(|c| c.name.to_lowercase() == name)
        })
        .collect()
}

/// The text-to-image request of a panel's recipe.
pub fn request_of(recipe: &Recipe) -> GenerateRequest {
    GenerateRequest {
        prompt: recipe.prompt.clone(),
        negative: recipe.negative.clone(),
        sampler: recipe.sampler,
        steps: recipe.steps,
        cfg: recipe.cfg,
        width: recipe.width,
        height: recipe.height,
        clip_skip: recipe.clip_skip,
        seed: recipe.seed,
        ..GenerateRequest::default()
    }
}

/// Each panel's consistency score against its lead character's first panel (`None` for that
/// first panel, panels without a lead, and panels not drawn yet).
pub fn drift_scores(
    encoder: &ClipVisionModel,
    leads: &[Option<usize>],
    images: &[Option<&image::RgbImage>],
) -> kiln_inference::Result<Vec<Option<f32>>> {
    let mut scores = vec![None; leads.len()];
    for (k, lead) in leads.iter().enumerate() {
        let Some(character) = lead else { continue };
        let Some(first) = leads.iter().position(|l| l == &Some(*character)) else {
            continue;
        };
        if first == k {
            continue;
        }
        let (Some(Some(reference)), Some(Some(image))) = (images.get(first), images.get(k)) else {
            continue;
        };
        scores[k] = Some(consistency_score(encoder, reference, image)?);
    }
    Ok(scores)
}

/// Each character's photo, read (`None`: no photo, or one that cannot be read).
pub fn character_photos(story: &Story) -> Vec<Option<image::RgbImage>> {
    story
        .characters
        .iter()
        .map(|c| {
            c.photo
                .as_ref()
                .and_then(|p| kiln_inference::engine::load_rgb(p).ok())
        })
        .collect()
}

/// Each panel's identity score against its lead character's photo: the ArcFace cosine of the
/// photo's largest face and the panel's largest face (`None` for panels whose lead has no
/// photo, panels not drawn, and panels or photos without a face of a usable size).
pub fn identity_scores(
    analyzer: &kiln_inference::vision::face::FaceAnalyzer,
    photos: &[Option<image::RgbImage>],
    leads: &[Option<usize>],
    images: &[Option<&image::RgbImage>],
) -> Vec<Option<f32>> {
    let embed = |image: &image::RgbImage| {
        let face = analyzer.detect(image).ok()?.into_iter().next()?;
        analyzer.embed(image, &face).ok()
    };
    let references: Vec<_> = photos.iter().map(|p| p.as_ref().and_then(embed)).collect();
    leads
        .iter()
        .zip(images)
        .map(|(lead, image)| {
            let reference = references.get((*lead)?)?.as_ref()?;
            let face = embed(image.as_ref()?)?;
            Some(kiln_inference::vision::face::cosine(reference, &face))
        })
        .collect()
}

/// Which scores are outliers: more than [`OUTLIER_MARGIN`] below the median of the scores
/// given (a story needs two scores or more for one to stand out).
pub fn outliers(scores: &[Option<f32>]) -> Vec<bool> {
    let mut known: Vec<f32> = scores.iter().flatten().copied().collect();
    if known.len() < 2 {
        return vec![false; scores.len()];
    }
    known.sort_by(f32::total_cmp);
    let middle = known.len() / 2;
    let median = if known.len().is_multiple_of(2) {
        (known[middle - 1] + known[middle]) / 2.0
    } else {
        known[middle]
    };
    scores
        .iter()
        .map(|s| s.is_some_and(|s| s < median - OUTLIER_MARGIN))
        .collect()
}

/// Gives every panel led by a character with a photo that photo through the IP-Adapter (in
/// its request, and in its recipe for the panel's PNG).
pub fn add_face_adapter(
    sd: &kiln_inference::pipelines::stable_diffusion::StableDiffusion,
    story: &Story,
    leads: &[Option<usize>],
    (model, encoder_dir, scale): (&std::path::Path, &std::path::Path, f32),
    recipes: &mut [Recipe],
    requests: &mut [GenerateRequest],
) -> anyhow::Result<()> {
    use kiln_inference::adapters::ip_adapter::clip_vision::ClipVisionModel;
    use kiln_inference::adapters::ip_adapter::{IpAdapter, IpAdapterRequest};
    use kiln_inference::recipe::IpAdapterSpec;
    let device = candle_core::Device::Cpu;
    let adapter = std::sync::Arc::new(IpAdapter::load(model, &device)?);
    let cross = sd.unet().config().cross_attention_dim;
    if adapter.context_dim() != cross {
        bail!(
            "the IP-Adapter {} was made for another model family (token width {}, the model has {cross})",
            model.display(),
            adapter.context_dim()
        );
    }
    let encoder = ClipVisionModel::load(encoder_dir, &device)?;
    let mut tokens = vec![None; story.characters.len()];
    for (k, lead) in leads.iter().enumerate() {
        let Some(c) = *lead else { continue };
        let Some(photo) = &story.characters[c].photo else {
            continue;
        };
        if tokens[c].is_none() {
            let image = kiln_inference::engine::load_rgb(photo)?;
            tokens[c] = Some(adapter.image_tokens(&encoder, &image)?);
        }
        let Some(t) = &tokens[c] else { continue };
        requests[k].ip_adapters = vec![IpAdapterRequest {
            adapter: adapter.clone(),
            tokens: t.clone(),
            scale,
        }];
        recipes[k].ip_adapters = vec![IpAdapterSpec {
            model: model.to_path_buf(),
            encoder: encoder_dir.to_path_buf(),
            image: photo.clone(),
            scale,
        }];
    }
    Ok(())
}

/// Strength of a character photo's IP-Adapter when none is given (`kiln comic`'s default).
pub const FACE_ADAPTER_SCALE: f32 = 0.6;

/// What a story with character photos says when no IP-Adapter of the model's family is found.
pub const NO_FACE_ADAPTER: &str = "character photos need an IP-Adapter of the model's family \
(Models: IP-Adapter Plus Face SD1.5 or IP-Adapter Plus SDXL ViT-H); the characters are drawn \
from their descriptions";

/// An IP-Adapter for `sd` in the model folders `dirs` (a face one first, then a Plus one;
/// only adapters whose token width is the model's), with the CLIP image encoder it reads: the
/// `image_encoder` folder nearest to the adapter file (the h94 layout), else any in `dirs`.
/// `None` when either is missing. Reads model files: call off the UI thread.
pub fn find_face_adapter(
    dirs: &[std::path::PathBuf],
    sd: &kiln_inference::pipelines::stable_diffusion::StableDiffusion,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    use crate::library::models::ModelFileKind;
    let cross = sd.unet().config().cross_attention_dim;
    let library = crate::library::presets::lookup::ModelLibrary::scan(dirs);
    let mut candidates: Vec<(bool, bool, String, std::path::PathBuf)> = library
        .entries()
        .iter()
        .filter(|e| e.kind == ModelFileKind::IpAdapter && e.usable())
        .map(|e| {
            let name = e.name.to_lowercase();
            (
                !name.contains("face"),
                !name.contains("plus"),
                name,
                e.path.clone(),
            )
        })
        .collect();
    candidates.sort();
    let device = candle_core::Device::Cpu;
    let adapter = candidates
        .into_iter()
        .map(|(_, _, _, path)| path)
        .find(|path| {
            kiln_inference::adapters::ip_adapter::IpAdapter::load(path, &device)
                .is_ok_and(|a| a.context_dim() == cross)
        })?;
    let near: Vec<std::path::PathBuf> = adapter
        .ancestors()
        .skip(1)
        .take(3)
        .map(std::path::Path::to_path_buf)
        .collect();
    let encoder = find_image_encoder(&near).or_else(|| find_image_encoder(dirs))?;
    Some((adapter, encoder))
}

/// A CLIP image encoder (`CLIPVisionModelWithProjection` folder, e.g. an IP-Adapter's
/// `image_encoder`) under one of `dirs` (searched three folders deep), for drift scores.
pub fn find_image_encoder(dirs: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    fn is_encoder(dir: &std::path::Path) -> bool {
        std::fs::read_to_string(dir.join("config.json"))
            .is_ok_and(|text| text.contains("CLIPVisionModelWithProjection"))
    }
    fn search(dir: &std::path::Path, depth: usize) -> Option<std::path::PathBuf> {
        if is_encoder(dir) {
            return Some(dir.to_path_buf());
        }
        if depth == 0 {
            return None;
        }
        let mut children: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        children.sort();
        children.iter().find_map(|child| search(child, depth - 1))
    }
    dirs.iter().find_map(|dir| search(dir, 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_scores_compare_each_panel_with_its_characters_photo() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let analyzer =
            kiln_inference::vision::face::FaceAnalyzer::load_dir(&fixtures.join("tiny-antelopev2"))
                .unwrap();
        let photo = image::open(fixtures.join("faces-640x480.png"))
            .unwrap()
            .to_rgb8();
        let blank = image::RgbImage::from_pixel(96, 96, image::Rgb([40, 40, 40]));
        let photos = vec![Some(photo.clone()), None];
        let leads = [Some(0), Some(1), None, Some(0)];
        let images = [Some(&photo), Some(&photo), Some(&photo), Some(&blank)];
        let scores = identity_scores(&analyzer, &photos, &leads, &images);
        assert!(scores[0].unwrap() > 0.999, "{scores:?}");
        // No photo, no lead, no face in the panel: no score.
        assert_eq!(scores[1..], [None, None, None]);
    }

    #[test]
    fn leads_follow_the_first_named_character() {
        let story = super::super::script::parse(
            "character Mia: a girl\ncharacter Pip: a cat\n---\n[Pip] and [Mia] sit\n[NC] a street\nboth\n",
        )
        .unwrap();
        assert_eq!(leads(&story), [Some(1), None, Some(0)]);
    }

    #[test]
    fn outliers_sit_well_below_the_median() {
        let scores = [None, Some(0.9), Some(0.88), Some(0.6), Some(0.91)];
        assert_eq!(outliers(&scores), [false, false, false, true, false]);
        assert_eq!(outliers(&[None, Some(0.2)]), [false, false]);
    }
}
