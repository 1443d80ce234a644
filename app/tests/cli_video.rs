//! `kiln video` on the tiny random SVD (`tests/fixtures/tiny-svd`, `make_svd.py`): PNG frames in
//! a new folder (count, size, the settings beside them, identical to the parity frames of
//! `refs/svd/photo_5f` within 1/255), an animated GIF and an animated WebP with every frame, and
//! clear errors.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;

use files::{clean_error, fixtures, fx, kiln, max_diff, ok};
use image::AnimationDecoder;

/// The fixture run's arguments, with `overrides` (flag, value) replacing or adding flags.
fn args(output: &std::path::Path, overrides: &[(&str, &str)]) -> Vec<String> {
    let model = fx("tiny-svd");
    let image = fx("photo-600x360-rgba.png");
    let out = output.display().to_string();
    let mut flags: Vec<(&str, &str)> = vec![
        ("--model", &model),
        ("--image", &image),
        ("--frames", "5"),
        ("--steps", "3"),
        ("--seed", "42"),
        ("--width", "64"),
        ("--height", "64"),
        ("--decode-chunk", "2"),
        ("--output", &out),
    ];
    for &(flag, value) in overrides {
        match flags.iter_mut().find(|(f, _)| *f == flag) {
            Some(slot) => slot.1 = value,
            None => flags.push((flag, value)),
        }
    }
    let mut a = vec!["video".to_string()];
    for (flag, value) in flags {
        a.push(flag.to_string());
        a.push(value.to_string());
    }
    a
}

#[test]
fn frames_go_to_a_new_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip");
    ok(&kiln(&args(&out, &[])));
    for i in 1..=5 {
        let frame = out.join(format!("frame-{i:04}.png"));
        let reference = fixtures().join(format!("refs/svd/photo_5f/frame-{i:04}.png"));
        assert!(max_diff(&frame, &reference) <= 1, "frame {i}");
    }
    assert!(!out.join("frame-0006.png").exists());
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("video.json")).unwrap()).unwrap();
    assert_eq!(settings["frames"], 5);
    assert_eq!(settings["seed"], 42);
    // The folder now holds frames: a second run refuses to replace them.
    clean_error(&kiln(&args(&out, &[])), "already holds frames");
}

#[test]
fn ping_pong_loop_and_motion_mask_reach_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("brush.png");
    image::GrayImage::from_fn(40, 40, |x, _| image::Luma([if x < 20 { 0 } else { 255 }]))
        .save(&mask)
        .unwrap();
    let out = dir.path().join("clip");
    let mut a = args(
        &out,
        &[
            ("--frames", "4"),
            ("--motion-mask", &mask.display().to_string()),
        ],
    );
    a.extend(["--ping-pong".to_string(), "--loop".to_string()]);
    ok(&kiln(&a));
    // 4 frames forward, then frames 3 and 2 back.
    for i in 1..=6 {
        assert!(out.join(format!("frame-{i:04}.png")).is_file(), "frame {i}");
    }
    assert!(!out.join("frame-0007.png").exists());
    let frame = |i: usize| {
        image::open(out.join(format!("frame-{i:04}.png")))
            .unwrap()
            .to_rgb8()
    };
    assert_eq!(frame(5), frame(3));
    assert_eq!(frame(6), frame(2));
    let recipe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("video.json")).unwrap()).unwrap();
    assert_eq!(recipe["frames"], 4);
    assert_eq!(recipe["ping_pong"], true);
    assert_eq!(recipe["loop"], true);
    assert_eq!(recipe["motion_mask"], true);
    assert_eq!(recipe["motion_mask_file"], mask.display().to_string());
    // The brush and the loop change the clip: frame 4 is not the plain run's frame 4.
    let plain = dir.path().join("plain");
    ok(&kiln(&args(&plain, &[("--frames", "4")])));
    let plain4 = image::open(plain.join("frame-0004.png")).unwrap().to_rgb8();
    assert_ne!(frame(4), plain4);
}

#[test]
fn gif_has_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.gif");
    ok(&kiln(&args(&out, &[("--fps", "8"), ("--frames", "3")])));
    let file = std::io::BufReader::new(std::fs::File::open(&out).unwrap());
    let frames = image::codecs::gif::GifDecoder::new(file)
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].buffer().dimensions(), (64, 64));
    // 8 fps = 125 ms, stored in whole centiseconds.
    let (numer, denom) = frames[0].delay().numer_denom_ms();
    assert!((120..=130).contains(&(numer / denom.max(1))));
    assert!(dir.path().join("clip.gif.json").is_file());
}

#[test]
fn bad_requests_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    clean_error(
        &kiln(&args(&dir.path().join("clip.webm"), &[])),
        "not supported",
    );
    clean_error(
        &kiln(&args(
            &dir.path().join("c"),
            &[("--motion-mask", "/nonexistent/mask.png")],
        )),
        "cannot open the motion mask",
    );
    let not_png = dir.path().join("mask.png");
    std::fs::write(&not_png, b"not an image").unwrap();
    clean_error(
        &kiln(&args(
            &dir.path().join("d"),
            &[("--motion-mask", &not_png.display().to_string())],
        )),
        "motion mask",
    );
    clean_error(
        &kiln(
            &[
                args(&dir.path().join("e"), &[("--frames", "1")]),
                vec!["--ping-pong".into()],
            ]
            .concat(),
        ),
        "at least 2 frames",
    );
    assert!(!dir.path().join("c").exists() && !dir.path().join("e").exists());
    clean_error(
        &kiln(&args(&dir.path().join("a"), &[("--width", "60")])),
        "multiple of 8",
    );
    let sd15 = fx("tiny-sd15");
    clean_error(
        &kiln(&args(&dir.path().join("b"), &[("--model", &sd15)])),
        "Stable Video Diffusion",
    );
}

/// The canvas, frame count and first frame of an animated WebP (its `ANMF` frames re-wrapped
/// as stills for the `image` decoder).
fn read_webp(bytes: &[u8]) -> ((u32, u32), usize, image::RgbImage) {
    let le24 = |b: &[u8]| u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WEBP");
    let (mut at, mut canvas, mut count, mut first) = (12, (0, 0), 0, None);
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let payload = &bytes[at + 8..at + 8 + len];
        match &bytes[at..at + 4] {
            b"VP8X" => {
                assert_ne!(payload[0] & 0b10, 0, "animation flag");
                canvas = (le24(&payload[4..7]) + 1, le24(&payload[7..10]) + 1);
            }
            b"ANMF" => {
                count += 1;
                if first.is_none() {
                    let frame = &payload[16..];
                    let mut still = b"RIFF".to_vec();
                    still.extend_from_slice(&(frame.len() as u32 + 4).to_le_bytes());
                    still.extend_from_slice(b"WEBP");
                    still.extend_from_slice(frame);
                    first = Some(image::load_from_memory(&still).unwrap().to_rgb8());
                }
            }
            _ => {}
        }
        at += 8 + len + len % 2;
    }
    (canvas, count, first.unwrap())
}

#[test]
fn webp_has_every_frame_losslessly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.webp");
    ok(&kiln(&args(&out, &[])));
    let (canvas, count, first) = read_webp(&std::fs::read(&out).unwrap());
    assert_eq!((canvas, count), ((64, 64), 5));
    let reference = image::open(fixtures().join("refs/svd/photo_5f/frame-0001.png"))
        .unwrap()
        .to_rgb8();
    let diff = first
        .as_raw()
        .iter()
        .zip(reference.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(diff <= 1, "first frame differs by {diff}");
}

#[test]
fn mp4_is_h264_with_every_frame() {
    use openh264::formats::YUVSource;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    ok(&kiln(&args(&out, &[("--fps", "8")])));
    assert!(dir.path().join("clip.mp4.json").is_file());
    let bytes = std::fs::read(&out).unwrap();
    let size = bytes.len() as u64;
    let mut mp4 = mp4::Mp4Reader::read_header(std::io::Cursor::new(bytes), size).unwrap();
    let (&id, track) = mp4.tracks().iter().next().unwrap();
    assert_eq!((track.width(), track.height()), (64, 64));
    assert_eq!(track.sample_count(), 5);
    assert_eq!(
        track.duration(),
        std::time::Duration::from_millis(5 * 1000 / 8)
    );
    let annex_b = |nal: &[u8]| [&[0, 0, 0, 1][..], nal].concat();
    let mut stream = annex_b(track.sequence_parameter_set().unwrap());
    stream.extend(annex_b(track.picture_parameter_set().unwrap()));
    let mut decoder = openh264::decoder::Decoder::new().unwrap();
    let (mut decoded, mut first) = (0, None);
    for sample_id in 1..=5 {
        let sample = mp4.read_sample(id, sample_id).unwrap().unwrap();
        let mut at = 0;
        while at + 4 <= sample.bytes.len() {
            let len = u32::from_be_bytes(sample.bytes[at..at + 4].try_into().unwrap()) as usize;
            stream.extend(annex_b(&sample.bytes[at + 4..at + 4 + len]));
            at += 4 + len;
        }
        if let Some(yuv) = decoder.decode(&stream).unwrap() {
            assert_eq!(yuv.dimensions(), (64, 64));
            if first.is_none() {
                let mut rgb = vec![0; 64 * 64 * 3];
                yuv.write_rgb8(&mut rgb);
                first = Some(rgb);
            }
            decoded += 1;
        }
        stream.clear();
    }
    decoded += decoder.flush_remaining().unwrap().len();
    assert_eq!(decoded, 5);
    let reference = image::open(fixtures().join("refs/svd/photo_5f/frame-0001.png"))
        .unwrap()
        .to_rgb8();
    let first = first.unwrap();
    let mean = first
        .iter()
        .zip(reference.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / first.len() as f64;
    eprintln!("mp4 first frame: mean abs diff {mean:.2}/255");
    assert!(mean < 12.0, "first frame mean abs diff {mean}");
}
