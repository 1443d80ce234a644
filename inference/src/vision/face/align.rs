//! Face alignment for ArcFace: the least-squares similarity transform (Umeyama) of the five
//! keypoints onto insightface's `arcface_dst` template and OpenCV-style `warpAffine` (bilinear,
//! border 0) — insightface `face_align.norm_crop` (skimage `SimilarityTransform.estimate`,
//! `cv2.warpAffine(img, M, (112, 112), borderValue=0.0)`).

use image::RgbImage;

/// insightface's `arcface_dst`: where the five keypoints (left eye, right eye, nose, left mouth
/// corner, right mouth corner) land in the 112×112 ArcFace crop.
pub const ARCFACE_DST: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// Side of the ArcFace crop in pixels.
pub const CROP_SIZE: u32 = 112;

/// A 2×3 affine matrix `[[a, b, tx], [c, d, ty]]` mapping source to destination pixels.
pub type Affine = [[f64; 3]; 2];

/// The similarity transform (rotation, uniform scale, translation, no reflection) that maps
/// `src` onto `dst` with least squared error: Umeyama's method, which for two dimensions has
/// this closed form (it equals skimage's `_umeyama(src, dst, estimate_scale=True)` whenever the
/// points are not all equal). `None` for degenerate input (all source points equal).
pub fn similarity_transform(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Affine> {
    let n = src.len().min(dst.len());
    if n == 0 {
        return None;
    }
    let mean = |pts: &[[f32; 2]]| {
        let (mut x, mut y) = (0f64, 0f64);
        for p in pts.iter().take(n) {
            x += f64::from(p[0]);
            y += f64::from(p[1]);
        }
        (x / n as f64, y / n as f64)
    };
    let (sx, sy) = mean(src);
    let (dx, dy) = mean(dst);
    let (mut dot, mut cross, mut norm) = (0f64, 0f64, 0f64);
    for (s, d) in src.iter().zip(dst).take(n) {
        let (ax, ay) = (f64::from(s[0]) - sx, f64::from(s[1]) - sy);
        let (bx, by) = (f64::from(d[0]) - dx, f64::from(d[1]) - dy);
        dot += ax * bx + ay * by;
        cross += ax * by - ay * bx;
        norm += ax * ax + ay * ay;
    }
    if norm <= 0.0 || !norm.is_finite() {
        return None;
    }
    // Rotation by atan2(cross, dot) scaled by sqrt(dot² + cross²) / norm.
    let a = dot / norm;
    let b = cross / norm;
    Some([
        [a, -b, dx - (a * sx - b * sy)],
        [b, a, dy - (b * sx + a * sy)],
    ])
}

/// The transform insightface's `estimate_norm` gives for five keypoints (112×112 ArcFace crop).
pub fn arcface_transform(kps: &[[f32; 2]; 5]) -> Option<Affine> {
    similarity_transform(kps, &ARCFACE_DST)
}

/// Inverts an affine matrix the way OpenCV's `invertAffineTransform` does (double precision,
/// zero for a singular matrix).
pub fn invert_affine(m: &Affine) -> Affine {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    let inv = if det != 0.0 { 1.0 / det } else { 0.0 };
    let a = m[1][1] * inv;
    let b = -m[0][1] * inv;
    let c = -m[1][0] * inv;
    let d = m[0][0] * inv;
    [
        [a, b, -a * m[0][2] - b * m[1][2]],
        [c, d, -c * m[0][2] - d * m[1][2]],
    ]
}

/// `cv2.warpAffine(image, m, (width, height), INTER_LINEAR, BORDER_CONSTANT, 0)` for RGB8:
/// each output pixel samples the source at the inverse-mapped position with bilinear weights
/// in f32 (OpenCV 5's float kernel), pixels outside the source count as 0, and the result is
/// rounded half to even.
pub fn warp_affine(image: &RgbImage, m: &Affine, width: u32, height: u32) -> RgbImage {
    let inv = invert_affine(m);
    let k = inv.map(|row| row.map(|v| v as f32));
    let (src_w, src_h) = (image.width() as i64, image.height() as i64);
    let raw = image.as_raw();
    let pixel = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= src_w || y >= src_h {
            return [0.0; 3];
        }
        let i = ((y * src_w + x) * 3) as usize;
        match raw.get(i..i + 3) {
            Some(p) => [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])],
            None => [0.0; 3],
        }
    };
    let mut out = RgbImage::new(width, height);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let (xf, yf) = (x as f32, y as f32);
        let sx = (k[0][0] * xf + k[0][1] * yf) + k[0][2];
        let sy = (k[1][0] * xf + k[1][1] * yf) + k[1][2];
        if !sx.is_finite() || !sy.is_finite() {
            continue;
        }
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (p00, p01) = (pixel(x0, y0), pixel(x0 + 1, y0));
        let (p10, p11) = (pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
        for c in 0..3 {
            let top = p00[c] * (1.0 - fx) + p01[c] * fx;
            let bottom = p10[c] * (1.0 - fx) + p11[c] * fx;
            let v = top * (1.0 - fy) + bottom * fy;
            px.0[c] = v.round_ties_even().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// insightface `norm_crop`: the 112×112 ArcFace crop of a face with keypoints `kps`.
pub fn norm_crop(image: &RgbImage, kps: &[[f32; 2]; 5]) -> Option<RgbImage> {
    let m = arcface_transform(kps)?;
    Some(warp_affine(image, &m, CROP_SIZE, CROP_SIZE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_maps_onto_itself() {
        let m = arcface_transform(&ARCFACE_DST).unwrap();
        let expected = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        for (row, want) in m.iter().zip(expected) {
            for (v, w) in row.iter().zip(want) {
                assert!((v - w).abs() < 1e-9, "{m:?}");
            }
        }
    }

    #[test]
    fn a_rotated_scaled_template_is_undone() {
        let (angle, scale, shift) = (0.4f64, 2.5f64, (30.0f64, -12.0f64));
        let src = ARCFACE_DST.map(|[x, y]| {
            let (x, y) = (f64::from(x), f64::from(y));
            [
                (scale * (angle.cos() * x - angle.sin() * y) + shift.0) as f32,
                (scale * (angle.sin() * x + angle.cos() * y) + shift.1) as f32,
            ]
        });
        let m = arcface_transform(&src).unwrap();
        for (s, d) in src.iter().zip(ARCFACE_DST) {
            let x = m[0][0] * f64::from(s[0]) + m[0][1] * f64::from(s[1]) + m[0][2];
            let y = m[1][0] * f64::from(s[0]) + m[1][1] * f64::from(s[1]) + m[1][2];
            assert!((x - f64::from(d[0])).abs() < 1e-3 && (y - f64::from(d[1])).abs() < 1e-3);
        }
        let inv = invert_affine(&invert_affine(&m));
        for (a, b) in inv.iter().flatten().zip(m.iter().flatten()) {
            assert!((a - b).abs() < 1e-9);
        }
    }

    #[test]
    fn equal_points_are_degenerate() {
        assert!(similarity_transform(&[[1.0, 1.0]; 5], &ARCFACE_DST).is_none());
    }
}
