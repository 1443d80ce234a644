use super::hash_jobs::HashResult;
use super::layout::find_external_installs_in;
use super::*;
use kiln_inference::io::model::sha256_file;
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Writes a safetensors file by hand: 8-byte little-endian header length, JSON header (padded
/// to 8 bytes with spaces, as the reference writer does), then zeroed F16 data.
fn write_safetensors(path: &Path, tensors: &[(&str, &[usize])]) {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<usize>() * 2;
        header.insert(
            (*name).into(),
            serde_json::json!({"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut json = serde_json::to_vec(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&json);
    file.resize(file.len() + offset, 0);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, file).unwrap();
}

fn link_or_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(from.canonicalize().unwrap(), to).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(from, to).unwrap();
}

fn find<'a>(entries: &'a [ModelEntry], relative: &str, root: &Path) -> &'a ModelEntry {
    let path = root.join(relative);
    entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{relative} not listed in {entries:#?}"))
}

/// A file to write: path relative to the models folder, and its tensors (name, shape).
type FakeFile<'a> = (&'a str, &'a [(&'a str, &'a [usize])]);

/// A models folder with one file of each kind, some broken ones and some to ignore.
fn sample_models(root: &Path) {
    let files: &[FakeFile] = &[
        (
            "Lora/style_kohya.safetensors",
            &[
                (
                    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight",
                    &[4, 768],
                ),
                (
                    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight",
                    &[320, 4],
                ),
                (
                    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha",
                    &[],
                ),
            ],
        ),
        (
            "Lora/xl_lora.safetensors",
            &[(
                "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
                &[4, 768],
            )],
        ),
        (
            "Lora/peft_style/pytorch_lora_weights.safetensors",
            &[(
                "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight",
                &[4, 2048],
            )],
        ),
        (
            "ControlNet/control_canny.safetensors",
            &[
                (
                    "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
                    &[320, 768],
                ),
                ("control_model.input_hint_block.0.weight", &[16, 3, 3, 3]),
            ],
        ),
        (
            "ControlNet/xl_depth/diffusion_pytorch_model.fp16.safetensors",
            &[
                ("controlnet_cond_embedding.conv_in.weight", &[16, 3, 3, 3]),
                ("add_embedding.linear_1.weight", &[64, 2816]),
                (
                    "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                    &[64, 2048],
                ),
            ],
        ),
        (
            "VAE/vae-ft-mse.safetensors",
            &[
                ("encoder.conv_in.weight", &[8, 3, 3, 3]),
                ("decoder.conv_in.weight", &[8, 4, 3, 3]),
            ],
        ),
        (
            "VAE/ldm_vae.safetensors",
            &[("first_stage_model.encoder.conv_in.weight", &[8, 3, 3, 3])],
        ),
        (
            "embeddings/bad_hands.safetensors",
            &[("emb_params", &[2, 768])],
        ),
        (
            "embeddings/xl_emb.safetensors",
            &[("clip_l", &[2, 768]), ("clip_g", &[2, 1280])],
        ),
        (
            "ipadapter/ip-adapter_sd15.safetensors",
            &[
                ("image_proj.proj.weight", &[16, 32]),
                ("ip_adapter.1.to_k_ip.weight", &[320, 768]),
            ],
        ),
        (
            "Stable-diffusion/unet_only.safetensors",
            &[(
                "model.diffusion_model.input_blocks.0.0.weight",
                &[8, 4, 3, 3],
            )],
        ),
        ("Stable-diffusion/empty.safetensors", &[]),
        ("misc/mystery.safetensors", &[("foo.weight", &[2, 2])]),
        (".hidden/ignored.safetensors", &[("emb_params", &[1, 768])]),
        ("deep/1/2/3/found.safetensors", &[("emb_params", &[1, 768])]),
        (
            "deep/1/2/3/4/too_deep.safetensors",
            &[("emb_params", &[1, 768])],
        ),
    ];
    for (relative, tensors) in files {
        write_safetensors(&root.join(relative), tensors);
    }
    let checkpoints = root.join("Stable-diffusion");
    link_or_copy(
        &fixtures().join("tiny-sd15.safetensors"),
        &checkpoints.join("tiny.safetensors"),
    );
    let full = std::fs::read(fixtures().join("tiny-sd15.safetensors")).unwrap();
    std::fs::write(checkpoints.join("truncated.safetensors"), &full[..100_000]).unwrap();
    std::fs::write(
        checkpoints.join("cut_in_header.safetensors"),
        &full[..1_000],
    )
    .unwrap();
    std::fs::write(checkpoints.join("tiny.safetensors.txt"), b"notes").unwrap();
    std::fs::write(checkpoints.join("garbage.safetensors"), b"hello").unwrap();
    let mut not_json = 16u64.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"this is not json");
    std::fs::write(checkpoints.join("not_json.safetensors"), not_json).unwrap();
    std::fs::write(checkpoints.join("old.ckpt"), b"PK\x03\x04 pickle").unwrap();
    std::fs::write(root.join("Lora/old_lora.pt"), b"pickle").unwrap();
    std::fs::create_dir_all(root.join("insightface")).unwrap();
    std::fs::write(root.join("insightface/det_10g.onnx"), b"onnx").unwrap();
    link_or_copy(
        &fixtures().join("tiny-sd15"),
        &root.join("diffusers/tiny-sd15"),
    );
    std::fs::create_dir_all(root.join("diffusers/broken")).unwrap();
    std::fs::write(root.join("diffusers/broken/model_index.json"), b"{}").unwrap();
}

#[test]
fn scan_classifies_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    sample_models(root);
    let entries = scan_folder(root);
    let kind = |relative| {
        let entry = find(&entries, relative, root);
        (entry.kind, entry.family)
    };
    use ModelFileKind::*;
    use kiln_inference::io::family::Family::*;
    assert_eq!(kind("Lora/style_kohya.safetensors"), (Lora, Some(Sd1)));
    assert_eq!(kind("Lora/xl_lora.safetensors"), (Lora, Some(Sdxl)));
    assert_eq!(
        kind("Lora/peft_style/pytorch_lora_weights.safetensors"),
        (Lora, Some(Sdxl))
    );
    assert_eq!(
        kind("ControlNet/control_canny.safetensors"),
        (ControlNet, Some(Sd1))
    );
    assert_eq!(
        kind("ControlNet/xl_depth/diffusion_pytorch_model.fp16.safetensors"),
        (ControlNet, Some(Sdxl))
    );
    assert_eq!(kind("VAE/vae-ft-mse.safetensors"), (Vae, None));
    assert_eq!(kind("VAE/ldm_vae.safetensors"), (Vae, None));
    assert_eq!(
        kind("embeddings/bad_hands.safetensors"),
        (Embedding, Some(Sd1))
    );
    assert_eq!(
        kind("embeddings/xl_emb.safetensors"),
        (Embedding, Some(Sdxl))
    );
    assert_eq!(
        kind("ipadapter/ip-adapter_sd15.safetensors"),
        (IpAdapter, Some(Sd1))
    );
    assert_eq!(kind("insightface/det_10g.onnx"), (Onnx, None));
    assert_eq!(kind("deep/1/2/3/found.safetensors"), (Embedding, Some(Sd1)));

    let tiny = find(&entries, "Stable-diffusion/tiny.safetensors", root);
    assert_eq!((tiny.kind, tiny.family), (Checkpoint, Some(Sd1)));
    assert_eq!(tiny.problem, None, "{tiny:?}");
    assert!(tiny.usable());
    assert_eq!(tiny.size_bytes, 8_327_112);
    assert_eq!(tiny.name, "tiny");
    assert_eq!(tiny.hash, None);

    let folder = find(&entries, "diffusers/tiny-sd15", root);
    assert_eq!((folder.kind, folder.family), (DiffusersFolder, Some(Sd1)));
    assert_eq!(folder.problem, None, "{folder:?}");
    assert_eq!(folder.name, "tiny-sd15");
    assert!(folder.size_bytes > 1_000_000);

    // Generic file names take their folder's name.
    assert_eq!(
        find(
            &entries,
            "Lora/peft_style/pytorch_lora_weights.safetensors",
            root
        )
        .name,
        "peft_style"
    );
    assert_eq!(
        find(
            &entries,
            "ControlNet/xl_depth/diffusion_pytorch_model.fp16.safetensors",
            root
        )
        .name,
        "xl_depth"
    );

    // Ignored: hidden folders, too deep, other extensions.
    for path in entries.iter().map(|e| &e.path) {
        let text = path.to_string_lossy();
        assert!(
            !text.contains(".hidden") && !text.contains("too_deep"),
            "{text}"
        );
        assert!(
            !text.ends_with(".txt") && !text.ends_with(".json"),
            "{text}"
        );
    }
    assert_eq!(entries.len(), 24, "{entries:#?}");

    // Sorted by name, case-insensitively; deterministic.
    let names: Vec<String> = entries.iter().map(|e| e.name.to_lowercase()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(scan_folder(root), entries);
}

#[test]
fn scan_reports_why_files_cannot_be_used() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    sample_models(root);
    let entries = scan_folder(root);
    let problem = |relative| {
        let entry = find(&entries, relative, root);
        assert!(!entry.usable());
        (entry.kind, entry.problem.clone().unwrap())
    };
    use ModelFileKind::*;

    let (kind, text) = problem("Stable-diffusion/old.ckpt");
    assert_eq!(kind, Checkpoint);
    assert!(text.starts_with("pickle: convert to safetensors"), "{text}");
    let (kind, text) = problem("Lora/old_lora.pt");
    assert_eq!(kind, Lora, "kind guessed from the folder");
    assert!(text.starts_with("pickle"), "{text}");

    let (kind, text) = problem("Stable-diffusion/truncated.safetensors");
    assert_eq!(kind, Unknown);
    assert!(text.contains("truncated"), "{text}");
    let (_, text) = problem("Stable-diffusion/cut_in_header.safetensors");
    assert!(text.contains("corrupt safetensors header"), "{text}");
    let (_, text) = problem("Stable-diffusion/garbage.safetensors");
    assert!(text.contains("only 5 bytes"), "{text}");
    let (_, text) = problem("Stable-diffusion/not_json.safetensors");
    assert!(text.contains("not JSON"), "{text}");
    let (_, text) = problem("Stable-diffusion/empty.safetensors");
    assert!(text.contains("no tensors"), "{text}");
    let (kind, text) = problem("Stable-diffusion/unet_only.safetensors");
    assert_eq!(kind, Checkpoint);
    assert!(!text.is_empty());
    let (kind, text) = problem("misc/mystery.safetensors");
    assert_eq!(kind, Unknown);
    assert!(text.contains("unrecognised"), "{text}");
    let (kind, text) = problem("diffusers/broken");
    assert_eq!(kind, DiffusersFolder);
    assert!(!text.is_empty());
}

#[test]
fn scan_of_a_model_folder_or_nothing() {
    let folder = scan_folder(&fixtures().join("tiny-sd15"));
    assert_eq!(folder.len(), 1);
    assert_eq!(folder[0].kind, ModelFileKind::DiffusersFolder);
    assert!(scan_folder(Path::new("/no/such/folder")).is_empty());
}

fn make_dirs(root: &Path, dirs: &[&str]) {
    for dir in dirs {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
}

#[test]
fn detects_a1111_comfyui_and_fooocus_layouts() {
    let dir = tempfile::tempdir().unwrap();

    let a1111 = dir.path().join("stable-diffusion-webui");
    make_dirs(
        &a1111,
        &[
            "models/Stable-diffusion",
            "models/Lora",
            "models/VAE",
            "models/ControlNet",
        ],
    );
    let layout = detect_layout(&a1111).unwrap();
    assert_eq!(layout.app, "A1111/Forge");
    assert_eq!(layout.root, a1111);
    assert_eq!(layout.checkpoints, [a1111.join("models/Stable-diffusion")]);
    assert_eq!(layout.loras, [a1111.join("models/Lora")]);
    assert_eq!(layout.controlnets, [a1111.join("models/ControlNet")]);
    assert_eq!(layout.vaes, [a1111.join("models/VAE")]);
    assert_eq!(layout.all_dirs().count(), 4);
    assert_eq!(
        detect_layout(&a1111.join("models")),
        Some(layout),
        "from the models folder"
    );

    let comfy = dir.path().join("ComfyUI");
    make_dirs(
        &comfy,
        &["models/checkpoints", "models/loras", "models/vae"],
    );
    std::fs::write(comfy.join("main.py"), b"").unwrap();
    let layout = detect_layout(&comfy).unwrap();
    assert_eq!(layout.app, "ComfyUI");
    assert_eq!(layout.checkpoints, [comfy.join("models/checkpoints")]);
    assert_eq!(layout.loras, [comfy.join("models/loras")]);
    assert!(layout.controlnets.is_empty(), "only folders that exist");
    assert_eq!(layout.vaes, [comfy.join("models/vae")]);

    let fooocus = dir.path().join("Fooocus");
    make_dirs(
        &fooocus,
        &["models/checkpoints", "models/loras", "models/controlnet"],
    );
    std::fs::write(fooocus.join("entry_with_update.py"), b"").unwrap();
    let layout = detect_layout(&fooocus).unwrap();
    assert_eq!(layout.app, "Fooocus");
    assert_eq!(layout.controlnets, [fooocus.join("models/controlnet")]);

    let matrix = dir.path().join("StabilityMatrix");
    make_dirs(
        &matrix,
        &["Data/Models/StableDiffusion", "Data/Models/Lora"],
    );
    let layout = detect_layout(&matrix).unwrap();
    assert_eq!(layout.app, "Stability Matrix");
    assert_eq!(layout.loras, [matrix.join("Data/Models/Lora")]);

    assert_eq!(detect_layout(dir.path()), None);
    assert_eq!(detect_layout(&dir.path().join("missing")), None);
}

#[test]
fn finds_installs_in_usual_places() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    make_dirs(home, &["stable-diffusion-webui/models/Stable-diffusion"]);
    make_dirs(
        home,
        &["AI/ComfyUI_windows_portable/ComfyUI/models/checkpoints"],
    );
    make_dirs(home, &["Documents/Fooocus/models/checkpoints"]);
    std::fs::write(home.join("Documents/Fooocus/fooocus_version.py"), b"").unwrap();
    // Not found: a name that says nothing, and a folder too deep to look at.
    make_dirs(home, &["Documents/my-project/models/checkpoints"]);
    make_dirs(
        home,
        &["Downloads/old/stable-diffusion-webui/models/Stable-diffusion"],
    );

    let found = find_external_installs_in(home);
    let summary: Vec<(&str, PathBuf)> = found
        .iter()
        .map(|l| (l.app, l.root.strip_prefix(home).unwrap().to_path_buf()))
        .collect();
    assert_eq!(
        summary,
        [
            ("A1111/Forge", PathBuf::from("stable-diffusion-webui")),
            ("Fooocus", PathBuf::from("Documents/Fooocus")),
            (
                "ComfyUI",
                PathBuf::from("AI/ComfyUI_windows_portable/ComfyUI")
            ),
        ]
    );
    assert!(find_external_installs_in(&home.join("nobody")).is_empty());
}

/// Collects `n` results, waiting on the wake channel (at most 60 s).
fn collect(jobs: &HashJobs, woken: &crossbeam_channel::Receiver<()>, n: usize) -> Vec<HashResult> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut results = jobs.try_results();
    while results.len() < n && Instant::now() < deadline {
        woken.recv_timeout(Duration::from_millis(200)).ok();
        results.extend(jobs.try_results());
    }
    assert_eq!(results.len(), n, "{results:?}");
    results
}

fn spawn(cache: &Path) -> (HashJobs, crossbeam_channel::Receiver<()>) {
    let (tx, rx) = crossbeam_channel::bounded(64);
    let jobs = HashJobs::spawn_with_cache(Some(cache.to_path_buf()), move || {
        tx.try_send(()).ok();
    });
    (jobs, rx)
}

#[test]
fn hashes_in_the_background_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("data").join("model-hashes.json");
    let file = dir.path().join("small.safetensors");
    std::fs::write(&file, b"kiln hash test").unwrap();
    let sha = sha256_file(&file).unwrap();
    let missing = dir.path().join("missing.safetensors");
    let folder = fixtures().join("tiny-sd15");
    let folder_hash = kiln_inference::io::model::ModelFiles::open(&folder)
        .unwrap()
        .autov2_hash()
        .unwrap();

    let (jobs, woken) = spawn(&cache);
    jobs.request(&file);
    jobs.request(&missing);
    jobs.request(&folder);
    let mut results = collect(&jobs, &woken, 3);
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let by_path = |p: &Path| {
        results
            .iter()
            .find(|(path, _)| path == p)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(by_path(&file), Ok(sha[..10].to_string()));
    assert_eq!(by_path(&folder), Ok(folder_hash));
    let error = by_path(&missing).unwrap_err();
    assert!(error.contains("missing.safetensors"), "{error}");
    drop(jobs);

    // The cache answers for unchanged files: prove it by planting a different hash.
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(text.contains(&sha), "{text}");
    std::fs::write(&cache, text.replace(&sha, &"ab".repeat(32))).unwrap();
    let (jobs, woken) = spawn(&cache);
    jobs.request(&file);
    assert_eq!(collect(&jobs, &woken, 1)[0].1, Ok("ababababab".to_string()));

    // A changed file is hashed again.
    std::fs::write(&file, b"kiln hash test, changed").unwrap();
    let changed = sha256_file(&file).unwrap();
    jobs.request(&file);
    assert_eq!(
        collect(&jobs, &woken, 1)[0].1,
        Ok(changed[..10].to_string())
    );
    assert!(jobs.try_results().is_empty());
}

#[test]
fn hash_jobs_without_cache_and_dropped_while_busy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.bin");
    std::fs::write(&file, vec![7u8; 3 << 20]).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(64);
    let jobs = HashJobs::spawn_with_cache(None, move || {
        tx.try_send(()).ok();
    });
    jobs.request(&file);
    jobs.request(&file); // Queued once, or answered twice: both are fine; no hang.
    let first = collect(&jobs, &rx, 1);
    assert_eq!(
        first[0].1,
        Ok(sha256_file(&file).unwrap()[..10].to_string())
    );
    for _ in 0..20 {
        jobs.request(&file);
    }
    drop(jobs); // Must not hang or panic.
}
