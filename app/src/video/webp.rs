//! Animated WebP: each frame encoded lossless (VP8L) by the `image` crate, muxed into the
//! extended WebP container (`VP8X` with the animation flag, `ANIM`, one `ANMF` per frame), as
//! Google's container specification describes.

use anyhow::{Context, bail};
use image::RgbImage;

/// Appends a RIFF chunk (payload padded to an even length).
fn chunk(out: &mut Vec<u8>, tag: &[u8; 4], payload: &[u8]) -> anyhow::Result<()> {
    let len = u32::try_from(payload.len()).context("WebP chunk too large")?;
    out.extend_from_slice(tag);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        out.push(0);
    }
    Ok(())
}

/// The low 24 bits, little-endian.
fn u24(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes()[..3]);
}

/// The `VP8L` chunk (header included) of a still lossless WebP of `frame`.
fn vp8l_chunk(frame: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut still = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut still)
        .encode(
            frame.as_raw(),
            frame.width(),
            frame.height(),
            image::ExtendedColorType::Rgb8,
        )
        .context("cannot encode a WebP frame")?;
    // A simple-format file: "RIFF", size, "WEBP", then the one VP8L chunk.
    match still.get(12..) {
        Some(rest) if rest.starts_with(b"VP8L") => Ok(rest.to_vec()),
        _ => bail!("unexpected WebP frame layout from the encoder"),
    }
}

/// An animated WebP of `frames` at `fps`, looping forever.
pub fn animated_webp(frames: &[&RgbImage], fps: u32) -> anyhow::Result<Vec<u8>> {
    let Some(first) = frames.first() else {
        bail!("no frames to write");
    };
    let (width, height) = first.dimensions();
    if width == 0 || height == 0 || width > 1 << 24 || height > 1 << 24 {
        bail!("frame size {width}×{height} does not fit a WebP");
    }
    let duration = (1000 + fps.max(1) / 2) / fps.max(1);
    let mut body = Vec::new();
    body.extend_from_slice(b"WEBP");
    let mut vp8x = vec![1 << 1, 0, 0, 0]; // animation flag, reserved
    u24(&mut vp8x, width - 1);
    u24(&mut vp8x, height - 1);
    chunk(&mut body, b"VP8X", &vp8x)?;
    // Background colour (BGRA) and loop count 0 = forever.
    chunk(&mut body, b"ANIM", &[0, 0, 0, 255, 0, 0])?;
    for frame in frames {
        if frame.dimensions() != (width, height) {
            bail!("all frames of a WebP must have one size");
        }
        let mut anmf = Vec::new();
        u24(&mut anmf, 0); // x / 2
        u24(&mut anmf, 0); // y / 2
        u24(&mut anmf, width - 1);
        u24(&mut anmf, height - 1);
        u24(&mut anmf, duration);
        anmf.push(0b10); // do not blend, no disposal
        anmf.extend_from_slice(&vp8l_chunk(frame)?);
        chunk(&mut body, b"ANMF", &anmf)?;
    }
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(
        &u32::try_from(body.len())
            .context("WebP too large")?
            .to_le_bytes(),
    );
    out.extend_from_slice(&body);
    Ok(out)
}

/// Canvas size, frame durations (ms) and frames of an animated WebP.
#[cfg(test)]
pub type DecodedWebp = ((u32, u32), Vec<u32>, Vec<RgbImage>);

/// Test helper: the canvas size, frame durations and decoded frames of an animated WebP
/// written by [`animated_webp`] (each `ANMF` frame re-wrapped as a still and decoded).
#[cfg(test)]
pub fn read_animated_webp(bytes: &[u8]) -> anyhow::Result<DecodedWebp> {
    let le24 = |b: &[u8]| u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
    if bytes.get(..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WEBP") {
        bail!("not a WebP");
    }
    let mut at = 12;
    let mut canvas = (0, 0);
    let mut durations = Vec::new();
    let mut frames = Vec::new();
    while at + 8 <= bytes.len() {
        let tag = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into()?) as usize;
        let payload = &bytes[at + 8..at + 8 + len];
        match tag {
            b"VP8X" => {
                if payload[0] & 0b10 == 0 {
                    bail!("no animation flag");
                }
                canvas = (le24(&payload[4..7]) + 1, le24(&payload[7..10]) + 1);
            }
            b"ANMF" => {
                durations.push(le24(&payload[12..15]));
                let frame = &payload[16..];
                let mut still = b"RIFF".to_vec();
                still.extend_from_slice(&(u32::try_from(frame.len())? + 4).to_le_bytes());
                still.extend_from_slice(b"WEBP");
                still.extend_from_slice(frame);
                frames.push(image::load_from_memory(&still)?.to_rgb8());
            }
            _ => {}
        }
        at += 8 + len + len % 2;
    }
    Ok((canvas, durations, frames))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_round_trip_losslessly() {
        let frames: Vec<RgbImage> = (0..3u8)
            .map(|i| RgbImage::from_fn(7, 5, |x, y| image::Rgb([i * 50, x as u8 * 30, y as u8])))
            .collect();
        let bytes = animated_webp(&frames.iter().collect::<Vec<_>>(), 8).unwrap();
        let (canvas, durations, decoded) = read_animated_webp(&bytes).unwrap();
        assert_eq!(canvas, (7, 5));
        assert_eq!(durations, vec![125; 3]);
        assert_eq!(decoded, frames);
    }
}
