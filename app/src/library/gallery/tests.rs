use super::*;
use kiln_inference::SamplerKind;
use kiln_inference::io::png_meta::{a1111_parameters, encode_png};
use kiln_inference::recipe::{InitImage, ModelRef};
use std::time::{Duration, Instant, SystemTime};

fn recipe(prompt: &str, model: &str, seed: u64) -> Recipe {
    Recipe {
        model: ModelRef {
            path: PathBuf::from(format!("/models/{model}.safetensors")),
            hash: Some(format!("{model}-hash")),
            family: Some("sd1".into()),
        },
        prompt: prompt.into(),
        seed,
        ..Recipe::default()
    }
}

fn small_image(width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    })
}

/// Writes a PNG as Kiln does (A1111 parameters + recipe JSON) with a chosen modification time.
fn write_output(path: &Path, recipe: &Recipe, mtime_unix: u64) {
    let json = serde_json::to_string(recipe).unwrap();
    let bytes = encode_png(&small_image(16, 8), &a1111_parameters(recipe, &[]), &json).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    set_mtime(path, mtime_unix);
}

fn set_mtime(path: &Path, mtime_unix: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime_unix))
        .unwrap();
}

/// CRC-32 (IEEE) as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG with a `tEXt` chunk inserted right after `IHDR` (ComfyUI writes its graph so).
fn with_text_chunk(png: &[u8], keyword: &str, text: &str) -> Vec<u8> {
    let ihdr_end = 8 + 4 + 4 + 13 + 4;
    let mut data = b"tEXt".to_vec();
    data.extend_from_slice(keyword.as_bytes());
    data.push(0);
    data.extend_from_slice(text.as_bytes());
    let mut out = png[..ihdr_end].to_vec();
    out.extend_from_slice(&((data.len() - 4) as u32).to_be_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(&crc32(&data).to_be_bytes());
    out.extend_from_slice(&png[ihdr_end..]);
    out
}

fn text(text: &str) -> GalleryQuery {
    GalleryQuery {
        text: text.into(),
        ..GalleryQuery::default()
    }
}

fn prompts(entries: &[GalleryEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.prompt.as_str()).collect()
}

/// Three outputs on three days, two models.
fn sample_gallery(dir: &Path) -> Gallery {
    let gallery = Gallery::open(&dir.join("index").join("gallery.sqlite")).unwrap();
    let mut fox = recipe("a clay fox in the snow", "dreamshaper_8", 1);
    fox.negative = Some("blurry".into());
    let mut woman = recipe("Portrait of a CLAY woman, 100% detail", "dreamshaper_8", 2);
    woman.negative = Some("ugly fox".into());
    let city = recipe("neon city at night, 陶土狐狸", "sdxl_base", u64::MAX);
    for (name, recipe, day) in [("fox", &fox, 1), ("woman", &woman, 2), ("city", &city, 3)] {
        let path = dir.join(format!("{name}.png"));
        write_output(&path, recipe, 1_700_000_000 + day * 86_400);
        gallery.add(&path, recipe, None).unwrap();
    }
    gallery
}

#[test]
fn add_query_search_filter_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = sample_gallery(dir.path());
    assert!(
        gallery.fts,
        "the bundled SQLite should have FTS5 with trigrams"
    );

    let all = gallery.query(&GalleryQuery::default()).unwrap();
    assert_eq!(
        prompts(&all),
        [
            "neon city at night, 陶土狐狸",
            "Portrait of a CLAY woman, 100% detail",
            "a clay fox in the snow"
        ],
        "newest first"
    );
    let city = &all[0];
    assert_eq!(city.seed, u64::MAX);
    assert_eq!(city.model, "sdxl_base");
    assert_eq!(city.model_hash.as_deref(), Some("sdxl_base-hash"));
    assert_eq!((city.width, city.height, city.steps), (512, 512, 25));
    assert_eq!(city.sampler, "dpm++2m-karras");
    assert_eq!(city.created_unix, 1_700_000_000 + 3 * 86_400);
    assert_eq!(city.recipe().unwrap().seed, u64::MAX);
    assert_eq!(gallery.get(city.id).unwrap().as_ref(), Some(city));
    assert_eq!(gallery.get(-5).unwrap(), None);
    assert_eq!(
        gallery
            .get_by_path(&dir.path().join("city.png"))
            .unwrap()
            .as_ref(),
        Some(city)
    );

    // Text: case-insensitive substrings over prompt and negative, every word must match.
    assert_eq!(gallery.count(&text("clay")).unwrap(), 2);
    assert_eq!(
        gallery.count(&text("FOX")).unwrap(),
        2,
        "prompt or negative"
    );
    assert_eq!(
        prompts(&gallery.query(&text("clay snow")).unwrap()),
        ["a clay fox in the snow"]
    );
    // Each word may match either field: "fox" is in the woman's negative prompt.
    assert_eq!(gallery.count(&text("clay fox")).unwrap(), 2);
    assert_eq!(
        gallery.count(&text("ox")).unwrap(),
        2,
        "short words use LIKE"
    );
    assert_eq!(gallery.count(&text("lay wom")).unwrap(), 1);
    assert_eq!(gallery.count(&text("100%")).unwrap(), 1);
    assert_eq!(gallery.count(&text("0%")).unwrap(), 1);
    assert_eq!(gallery.count(&text("%")).unwrap(), 1, "% is not a wildcard");
    assert_eq!(gallery.count(&text("_")).unwrap(), 0, "_ is not a wildcard");
    assert_eq!(
        gallery.count(&text("陶土狐")).unwrap(),
        1,
        "CJK through trigrams"
    );
    assert_eq!(
        gallery.count(&text("狐狸")).unwrap(),
        1,
        "short CJK through LIKE"
    );
    assert_eq!(gallery.count(&text("\"quoted\" AND")).unwrap(), 0);
    assert_eq!(gallery.count(&text("   ")).unwrap(), 3);

    // Model and date filters.
    let dreamshaper = GalleryQuery {
        model: Some("dreamshaper_8".into()),
        ..GalleryQuery::default()
    };
    assert_eq!(gallery.count(&dreamshaper).unwrap(), 2);
    assert_eq!(gallery.models().unwrap(), ["dreamshaper_8", "sdxl_base"]);
    let day_two = GalleryQuery {
        since_unix: Some(1_700_000_000 + 2 * 86_400),
        until_unix: Some(1_700_000_000 + 3 * 86_400),
        ..GalleryQuery::default()
    };
    assert_eq!(
        prompts(&gallery.query(&day_two).unwrap()),
        ["Portrait of a CLAY woman, 100% detail"]
    );
    let combined = GalleryQuery {
        text: "clay".into(),
        since_unix: Some(1_700_000_000 + 2 * 86_400),
        ..dreamshaper.clone()
    };
    assert_eq!(gallery.count(&combined).unwrap(), 1);

    // Paging.
    let page = |offset, limit| {
        let q = GalleryQuery {
            offset,
            limit,
            ..GalleryQuery::default()
        };
        gallery.query(&q).unwrap()
    };
    assert_eq!(page(0, 2), all[..2]);
    assert_eq!(page(2, 2), all[2..]);
    assert_eq!(page(1, 1), all[1..2]);
    assert!(page(3, 2).is_empty());
    assert_eq!(page(0, 0), all, "limit 0 means no limit");
}

#[test]
fn re_adding_a_path_replaces_its_row_and_keeps_the_id() {
    let gallery = Gallery::open_in_memory().unwrap();
    let path = Path::new("/nowhere/out.png");
    let first = gallery.add(path, &recipe("first", "m", 1), None).unwrap();
    let second = gallery.add(path, &recipe("second", "m", 2), None).unwrap();
    assert_eq!(first, second);
    assert_eq!(gallery.count(&GalleryQuery::default()).unwrap(), 1);
    assert_eq!(
        gallery.count(&text("first")).unwrap(),
        0,
        "FTS follows updates"
    );
    assert_eq!(gallery.count(&text("second")).unwrap(), 1);
    assert!(gallery.remove(first).unwrap());
    assert!(!gallery.remove(first).unwrap());
    assert_eq!(
        gallery.count(&text("second")).unwrap(),
        0,
        "FTS follows deletes"
    );
}

#[test]
fn add_png_reads_kiln_a1111_and_comfy_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = Gallery::open_in_memory().unwrap();

    let kiln = dir.path().join("kiln.png");
    let mut kiln_recipe = recipe("kiln prompt", "juggernaut.v9", 42);
    kiln_recipe.sampler = SamplerKind::Euler;
    write_output(&kiln, &kiln_recipe, 1_700_000_000);
    let id = gallery.add_png(&kiln).unwrap().unwrap();
    let entry = gallery.get(id).unwrap().unwrap();
    assert_eq!(entry.recipe().unwrap(), kiln_recipe);
    assert_eq!(entry.model, "juggernaut.v9");
    assert_eq!(
        (entry.width, entry.height),
        (16, 8),
        "size of the file itself"
    );
    assert_eq!(entry.sampler, "euler");
    assert_eq!(entry.path, std::path::absolute(&kiln).unwrap());

    let a1111 = dir.path().join("a1111.png");
    let parameters = "masterpiece, 1girl\nNegative prompt: lowres\nSteps: 20, Sampler: DPM++ SDE, \
                      Schedule type: Karras, CFG scale: 5.5, Seed: 1234, Size: 512x768, \
                      Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1";
    std::fs::write(
        &a1111,
        encode_png(&small_image(4, 6), parameters, "").unwrap(),
    )
    .unwrap();
    let entry = gallery
        .get(gallery.add_png(&a1111).unwrap().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(entry.prompt, "masterpiece, 1girl");
    assert_eq!(entry.negative.as_deref(), Some("lowres"));
    assert_eq!((entry.seed, entry.steps, entry.cfg), (1234, 20, 5.5));
    assert_eq!(
        entry.sampler, "DPM++ SDE Karras",
        "A1111's name when Kiln has none"
    );
    assert_eq!(entry.model, "v1-5-pruned-emaonly");
    assert_eq!(entry.model_hash.as_deref(), Some("6ce0161689"));
    assert_eq!((entry.width, entry.height), (4, 6));
    assert_eq!(entry.recipe().unwrap().height, 768);

    let comfy = dir.path().join("comfy.png");
    let graph = r#"{"3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 12, "cfg": 4.0,
        "sampler_name": "euler", "scheduler": "normal", "model": ["4", 0],
        "positive": ["6", 0], "negative": ["7", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SDXL\\juggernaut.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "comfy cat"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": ""}}}"#;
    let mut bytes = Vec::new();
    small_image(2, 2)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    let bytes = with_text_chunk(&bytes, "prompt", graph);
    std::fs::write(&comfy, bytes).unwrap();
    let entry = gallery
        .get(gallery.add_png(&comfy).unwrap().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!((entry.prompt.as_str(), entry.negative), ("comfy cat", None));
    assert_eq!((entry.seed, entry.steps, entry.cfg), (7, 12, 4.0));
    assert_eq!(
        (entry.sampler.as_str(), entry.model.as_str()),
        ("euler", "juggernaut")
    );

    // No metadata: not indexed, and an old row for the path goes away.
    let plain = dir.path().join("plain.png");
    small_image(3, 3).save(&plain).unwrap();
    gallery.add(&plain, &recipe("stale", "m", 0), None).unwrap();
    assert_eq!(gallery.add_png(&plain).unwrap(), None);
    assert_eq!(gallery.get_by_path(&plain).unwrap(), None);

    // Not a PNG, or not there: an error naming the file.
    let not_png = dir.path().join("fake.png");
    std::fs::write(&not_png, b"hello").unwrap();
    let error = format!("{:#}", gallery.add_png(&not_png).unwrap_err());
    assert!(error.contains("fake.png"), "{error}");
    assert!(gallery.add_png(&dir.path().join("gone.png")).is_err());
}

#[test]
fn rebuild_from_a_folder_of_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs");
    for i in 0..5u64 {
        let sub = if i % 2 == 0 { "" } else { "2024-05-01" };
        let path = outputs.join(sub).join(format!("img-{i}.png"));
        write_output(
            &path,
            &recipe(&format!("prompt {i}"), "m", i),
            1_700_000_000 + i,
        );
    }
    small_image(2, 2)
        .save(outputs.join("no-metadata.png"))
        .unwrap();
    std::fs::write(outputs.join("broken.png"), b"not a png").unwrap();
    std::fs::write(outputs.join("notes.txt"), b"text").unwrap();
    write_output(
        &outputs.join(".hidden").join("h.png"),
        &recipe("h", "m", 9),
        1,
    );

    let gallery = Gallery::open(&dir.path().join("gallery.sqlite")).unwrap();
    // A stale row for a file that is gone.
    gallery
        .add(
            &outputs.join("deleted.png"),
            &recipe("deleted", "m", 0),
            None,
        )
        .unwrap();
    let mut calls = Vec::new();
    let indexed = gallery
        .rebuild_from_folder(&outputs, &mut |done, total| calls.push((done, total)))
        .unwrap();
    assert_eq!(indexed, 5);
    assert_eq!(calls.first(), Some(&(0, 7)));
    assert_eq!(calls.last(), Some(&(7, 7)));
    assert_eq!(calls.len(), 8);
    let all = gallery.query(&GalleryQuery::default()).unwrap();
    assert_eq!(
        prompts(&all),
        ["prompt 4", "prompt 3", "prompt 2", "prompt 1", "prompt 0"]
    );
    // Rebuilding again changes nothing (same ids, same rows).
    let again = gallery
        .rebuild_from_folder(&outputs, &mut |_, _| {})
        .unwrap();
    assert_eq!(again, 5);
    assert_eq!(gallery.query(&GalleryQuery::default()).unwrap(), all);
    assert!(
        gallery
            .rebuild_from_folder(&dir.path().join("nope"), &mut |_, _| {})
            .is_err()
    );
}

#[test]
fn missing_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = sample_gallery(dir.path());
    assert_eq!(gallery.remove_missing().unwrap(), 0);
    std::fs::remove_file(dir.path().join("woman.png")).unwrap();
    std::fs::remove_file(dir.path().join("fox.png")).unwrap();
    assert_eq!(gallery.remove_missing().unwrap(), 2);
    assert_eq!(
        prompts(&gallery.query(&GalleryQuery::default()).unwrap()),
        ["neon city at night, 陶土狐狸"]
    );
    assert_eq!(gallery.count(&text("clay")).unwrap(), 0);
}

#[test]
fn chain_follows_parents_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let sketch = dir.path().join("sketch.png"); // A source outside the index.
    let mut previous = sketch.clone();
    for (i, step) in ["base", "refined", "final"].iter().enumerate() {
        let mut r = recipe(step, "m", i as u64);
        r.init = Some(InitImage {
            path: previous.clone(),
            strength: 0.5,
        });
        let path = dir.path().join(format!("{step}.png"));
        write_output(&path, &r, 1_700_000_000 + i as u64);
        previous = path;
    }
    let gallery = Gallery::open_in_memory().unwrap();
    gallery
        .rebuild_from_folder(dir.path(), &mut |_, _| {})
        .unwrap();
    let last = gallery.get_by_path(&previous).unwrap().unwrap();
    let chain = gallery.chain(last.id).unwrap();
    assert_eq!(prompts(&chain), ["base", "refined", "final"]);
    assert_eq!(chain[0].parent.as_deref(), Some(sketch.as_path()));
    assert_eq!(
        chain[2].parent.as_deref(),
        Some(dir.path().join("refined.png").as_path())
    );
    let base = gallery.chain(chain[0].id).unwrap();
    assert_eq!(prompts(&base), ["base"]);
    assert!(gallery.chain(12345).unwrap().is_empty());

    // A cycle (a file that names itself through another) ends.
    let a = Path::new("/x/a.png");
    let b = Path::new("/x/b.png");
    let id_a = gallery.add(a, &recipe("a", "m", 0), Some(b)).unwrap();
    gallery.add(b, &recipe("b", "m", 0), Some(a)).unwrap();
    assert_eq!(prompts(&gallery.chain(id_a).unwrap()), ["b", "a"]);

    // Explicit parents given to `add` work the same.
    let child = gallery
        .add(
            Path::new("/x/child.png"),
            &recipe("child", "m", 0),
            Some(&previous),
        )
        .unwrap();
    assert_eq!(
        prompts(&gallery.chain(child).unwrap()),
        ["base", "refined", "final", "child"]
    );
}

#[test]
fn ten_thousand_rows_page_by_text() {
    const ROWS: usize = 10_000;
    let subjects = ["fox", "owl", "castle", "robot", "lighthouse"];
    let styles = ["clay", "watercolor", "pixel art", "oil painting"];
    let dir = tempfile::tempdir().unwrap();
    let gallery = Gallery::open(&dir.path().join("big.sqlite")).unwrap();
    let start = Instant::now();
    gallery
        .in_transaction(|gallery| {
            for i in 0..ROWS {
                let prompt = format!(
                    "a {} {} number {i}, highly detailed",
                    styles[i % styles.len()],
                    subjects[i % subjects.len()]
                );
                let model = format!("model-{}", i % 3);
                let path = PathBuf::from(format!("/outputs/{i:05}.png"));
                gallery.add(&path, &recipe(&prompt, &model, i as u64), None)?;
            }
            Ok(())
        })
        .unwrap();
    eprintln!("gallery: inserted {ROWS} rows in {:?}", start.elapsed());

    // "clay fox": i % 4 == 0 and i % 5 == 0, i.e. i % 20 == 0.
    let expected: Vec<usize> = (0..ROWS).rev().filter(|i| i % 20 == 0).collect();
    let query = GalleryQuery {
        text: "Clay FOX".into(),
        limit: 200,
        ..GalleryQuery::default()
    };
    let start = Instant::now();
    let page = gallery.query(&query).unwrap();
    let first_page_time = start.elapsed();
    let count = gallery.count(&query).unwrap();
    let second = gallery
        .query(&GalleryQuery {
            offset: 200,
            limit: 0,
            ..query.clone()
        })
        .unwrap();
    let start = Instant::now();
    let last_page = gallery
        .query(&GalleryQuery {
            text: String::new(),
            offset: ROWS - 200,
            ..query.clone()
        })
        .unwrap();
    eprintln!(
        "gallery: 200-row text page in {first_page_time:?}, last unfiltered page in {:?}",
        start.elapsed()
    );
    assert_eq!(count, expected.len());
    assert_eq!(page.len(), 200);
    assert_eq!(second.len(), expected.len() - 200);
    let seeds: Vec<usize> = page
        .iter()
        .chain(&second)
        .map(|e| e.seed as usize)
        .collect();
    assert_eq!(
        seeds, expected,
        "newest (highest id) first, no gaps or repeats"
    );
    assert!(page.iter().all(|e| e.prompt.contains("clay fox")));
    assert_eq!(last_page.len(), 200);
    assert_eq!(last_page.last().map(|e| e.seed), Some(0));
    let model_page = GalleryQuery {
        model: Some("model-1".into()),
        ..query
    };
    assert!(
        gallery
            .query(&model_page)
            .unwrap()
            .iter()
            .all(|e| e.model == "model-1")
    );
}

#[test]
fn thumbnails_are_made_cached_and_keyed_by_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("thumbs");
    let image_path = dir.path().join("wide.png");
    small_image(300, 150).save(&image_path).unwrap();
    set_mtime(&image_path, 1_700_000_000);

    let thumb = load_or_make_thumbnail(&cache, &image_path, 64).unwrap();
    assert_eq!(thumb.dimensions(), (64, 32));
    let cached = thumbnail_path(&cache, &image_path, 64);
    assert!(cached.is_file());
    assert!(cached.starts_with(&cache));
    assert_eq!(image::open(&cached).unwrap().to_rgba8(), thumb);
    assert_eq!(
        load_or_make_thumbnail(&cache, &image_path, 64).unwrap(),
        thumb
    );

    assert_ne!(
        thumbnail_path(&cache, &image_path, 128),
        cached,
        "size is in the key"
    );
    set_mtime(&image_path, 1_700_000_001);
    assert_ne!(
        thumbnail_path(&cache, &image_path, 64),
        cached,
        "mtime is in the key"
    );

    let small = dir.path().join("small.png");
    small_image(20, 10).save(&small).unwrap();
    assert_eq!(
        load_or_make_thumbnail(&cache, &small, 64)
            .unwrap()
            .dimensions(),
        (20, 10)
    );
    assert!(load_or_make_thumbnail(&cache, &dir.path().join("gone.png"), 64).is_err());
    assert!(load_or_make_thumbnail(&cache, &small, 0).is_err());
}

#[test]
fn model_names() {
    use png_info::model_name;
    assert_eq!(
        model_name(Path::new("/m/dreamshaper_8.safetensors")),
        "dreamshaper_8"
    );
    assert_eq!(model_name(Path::new("/m/tiny-sd15")), "tiny-sd15");
    assert_eq!(model_name(Path::new("/m/tiny-sd15/")), "tiny-sd15");
    assert_eq!(model_name(Path::new("dreamshaper_8.5")), "dreamshaper_8.5");
    assert_eq!(model_name(Path::new("SDXL\\jugger.CKPT")), "jugger");
    assert_eq!(model_name(Path::new("")), "");
}
