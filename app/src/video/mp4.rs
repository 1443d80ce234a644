//! MP4 (H.264) output: RGB frames → YUV 4:2:0 (BT.601 limited range) → OpenH264 → MP4.

use anyhow::{Context as _, bail};
use image::RgbImage;
use openh264::OpenH264API;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate};
use openh264::formats::YUVBuffer;

/// Even dimensions no larger than the frame (4:2:0 needs even width and height; odd edges are cropped).
fn even_size(frame: &RgbImage) -> (usize, usize) {
    (
        (frame.width() & !1) as usize,
        (frame.height() & !1) as usize,
    )
}

/// BT.601 limited-range YUV 4:2:0 (I420) of the top-left `w`×`h` of `frame`.
fn yuv420(frame: &RgbImage, w: usize, h: usize) -> Vec<u8> {
    let px = |x: usize, y: usize| {
        let p = frame.get_pixel(x as u32, y as u32).0;
        (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]))
    };
    let mut out = vec![0u8; w * h * 3 / 2];
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = px(x, y);
            out[y * w + x] = (16.0 + 0.256_788 * r + 0.504_129 * g + 0.097_906 * b)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    let (u_plane, v_plane) = out[w * h..].split_at_mut(cw * ch);
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0.0, 0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(2 * cx + dx, 2 * cy + dy);
                r += p.0 / 4.0;
                g += p.1 / 4.0;
                b += p.2 / 4.0;
            }
            let u = 128.0 - 0.148_223 * r - 0.290_993 * g + 0.439_216 * b;
            let v = 128.0 + 0.439_216 * r - 0.367_788 * g - 0.071_427 * b;
            u_plane[cy * cw + cx] = u.round().clamp(0.0, 255.0) as u8;
            v_plane[cy * cw + cx] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// The NAL units of an Annex B stream, start codes removed.
fn nal_units(annex_b: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= annex_b.len() {
        if annex_b[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(annex_b.len(), |&n| n - 3);
        while end > s && annex_b[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            units.push(&annex_b[s..end]);
        }
    }
    units
}

/// An H.264 MP4 of `frames` at `fps` (timescale = fps, one tick per frame).
pub fn mp4_bytes(frames: &[&RgbImage], fps: u32) -> anyhow::Result<Vec<u8>> {
    let Some(first) = frames.first() else {
        bail!("no frames to write");
    };
    if fps == 0 {
        bail!("--fps must be at least 1");
    }
    let (w, h) = even_size(first);
    if w < 2 || h < 2 || w > usize::from(u16::MAX) || h > usize::from(u16::MAX) {
        bail!(
            "frames of {}×{} cannot be written as MP4",
            first.width(),
            first.height()
        );
    }
    let config = EncoderConfig::new()
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .bitrate(BitRate::from_bps(
            ((w * h) as u32).saturating_mul(fps).saturating_mul(2),
        ))
        .skip_frames(false);
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
        .context("cannot start the H.264 encoder")?;
    let (mut sps, mut pps) = (None::<Vec<u8>>, None::<Vec<u8>>);
    let mut samples = Vec::with_capacity(frames.len());
    for frame in frames {
        if frame.dimensions() != first.dimensions() {
            bail!("all frames must have the same size");
        }
        let yuv = YUVBuffer::from_vec(yuv420(frame, w, h), w, h);
        let stream = encoder.encode(&yuv).context("H.264 encoding failed")?;
        let annex_b = stream.to_vec();
        let mut sample = Vec::new();
        let mut is_sync = false;
        for nal in nal_units(&annex_b) {
            match nal[0] & 0x1f {
                7 => {
                    sps.get_or_insert_with(|| nal.to_vec());
                }
                8 => {
                    pps.get_or_insert_with(|| nal.to_vec());
                }
                t => {
                    is_sync |= t == 5;
                    sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    sample.extend_from_slice(nal);
                }
            }
        }
        if sample.is_empty() {
            bail!("the H.264 encoder dropped a frame");
        }
        samples.push((sample, is_sync));
    }
    let (Some(sps), Some(pps)) = (sps, pps) else {
        bail!("the H.264 encoder gave no sequence header");
    };
    let brands = ["isom", "iso2", "avc1", "mp41"]
        .iter()
        .map(|b| b.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("MP4 brand: {e}"))?;
    let mp4_config = ::mp4::Mp4Config {
        major_brand: "isom"
            .parse()
            .map_err(|e| anyhow::anyhow!("MP4 brand: {e}"))?,
        minor_version: 512,
        compatible_brands: brands,
        timescale: fps,
    };
    let mut writer = ::mp4::Mp4Writer::write_start(std::io::Cursor::new(Vec::new()), &mp4_config)
        .context("cannot start the MP4")?;
    writer
        .add_track(&::mp4::TrackConfig {
            track_type: ::mp4::TrackType::Video,
            timescale: fps,
            language: "und".to_owned(),
            media_conf: ::mp4::MediaConfig::AvcConfig(::mp4::AvcConfig {
                width: w as u16,
                height: h as u16,
                seq_param_set: sps,
                pic_param_set: pps,
            }),
        })
        .context("cannot add the MP4 video track")?;
    for (i, (bytes, is_sync)) in samples.into_iter().enumerate() {
        writer
            .write_sample(
                1,
                &::mp4::Mp4Sample {
                    start_time: i as u64,
                    duration: 1,
                    rendering_offset: 0,
                    is_sync,
                    bytes: bytes.into(),
                },
            )
            .context("cannot write an MP4 sample")?;
    }
    writer.write_end().context("cannot finish the MP4")?;
    Ok(writer.into_writer().into_inner())
}
