//! Draws the built-in preset thumbnails (`presets/<id>.png`, 256×256): simple vector-style
//! illustrations the project draws itself, one per style. They are not model outputs; users can
//! replace a thumbnail with one of their own renders from the app.
//!
//! Deterministic (no randomness beyond a fixed hash):
//! `cargo run --release -p kiln --example preset_thumbnails [OUTPUT_DIR]` (default `presets/`).
//!
//! Shapes are signed distance functions in pixel units, anti-aliased by coverage
//! `clamp(0.5 − d, 0, 1)`; textures are hashed value noise.

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, RgbImage};
use std::path::PathBuf;

const SIZE: usize = 256;

type Rgb = [f64; 3];

fn rgb(hex: u32) -> Rgb {
    [
        f64::from((hex >> 16) & 0xff) / 255.0,
        f64::from((hex >> 8) & 0xff) / 255.0,
        f64::from(hex & 0xff) / 255.0,
    ]
}

fn mix(a: Rgb, b: Rgb, t: f64) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn scale(c: Rgb, k: f64) -> Rgb {
    [c[0] * k, c[1] * k, c[2] * k]
}

fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

// --- Noise ---------------------------------------------------------------------------------

fn hash(x: i64, y: i64, seed: u64) -> f64 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ seed.wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 29;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn value_noise(x: f64, y: f64, seed: u64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let a = hash(ix, iy, seed);
    let b = hash(ix + 1, iy, seed);
    let c = hash(ix, iy + 1, seed);
    let d = hash(ix + 1, iy + 1, seed);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Fractal noise in [0, 1]; `scale` is the feature size in pixels.
fn fbm(x: f64, y: f64, scale: f64, seed: u64) -> f64 {
    let mut sum = 0.0;
    let mut amplitude = 0.5;
    let mut frequency = 1.0 / scale;
    for octave in 0..4 {
        sum += amplitude * value_noise(x * frequency, y * frequency, seed + octave);
        amplitude *= 0.5;
        frequency *= 2.0;
    }
    sum / 0.9375
}

// --- Signed distances ----------------------------------------------------------------------

fn circle(x: f64, y: f64, cx: f64, cy: f64, r: f64) -> f64 {
    ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() - r
}

fn ellipse(x: f64, y: f64, cx: f64, cy: f64, rx: f64, ry: f64) -> f64 {
    let (u, v) = ((x - cx) / rx, (y - cy) / ry);
    ((u * u + v * v).sqrt() - 1.0) * rx.min(ry)
}

fn rounded_box(x: f64, y: f64, cx: f64, cy: f64, hw: f64, hh: f64, r: f64) -> f64 {
    let qx = (x - cx).abs() - hw + r;
    let qy = (y - cy).abs() - hh + r;
    (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt() + qx.max(qy).min(0.0) - r
}

fn segment(x: f64, y: f64, a: (f64, f64), b: (f64, f64), r: f64) -> f64 {
    let (px, py) = (x - a.0, y - a.1);
    let (bx, by) = (b.0 - a.0, b.1 - a.1);
    let h = ((px * bx + py * by) / (bx * bx + by * by)).clamp(0.0, 1.0);
    ((px - bx * h).powi(2) + (py - by * h).powi(2)).sqrt() - r
}

/// Exact polygon distance (Inigo Quilez's `sdPolygon`).
fn polygon(x: f64, y: f64, points: &[(f64, f64)]) -> f64 {
    let Some(&first) = points.first() else {
        return f64::MAX;
    };
    let mut d = (x - first.0).powi(2) + (y - first.1).powi(2);
    let mut sign = 1.0;
    let n = points.len();
    for i in 0..n {
        let (vi, vj) = (points[i], points[(i + n - 1) % n]);
        let (ex, ey) = (vj.0 - vi.0, vj.1 - vi.1);
        let (wx, wy) = (x - vi.0, y - vi.1);
        let h = ((wx * ex + wy * ey) / (ex * ex + ey * ey)).clamp(0.0, 1.0);
        let (bx, by) = (wx - ex * h, wy - ey * h);
        d = d.min(bx * bx + by * by);
        let c = [y >= vi.1, y < vj.1, ex * wy > ey * wx];
        if c.iter().all(|&b| b) || c.iter().all(|&b| !b) {
            sign = -sign;
        }
    }
    sign * d.sqrt()
}

fn star(cx: f64, cy: f64, outer: f64, inner: f64, spikes: usize, turn: f64) -> Vec<(f64, f64)> {
    (0..spikes * 2)
        .map(|i| {
            let r = if i % 2 == 0 { outer } else { inner };
            let a = turn + std::f64::consts::PI * i as f64 / spikes as f64;
            (cx + r * a.cos(), cy + r * a.sin())
        })
        .collect()
}

fn coverage(d: f64) -> f64 {
    (0.5 - d).clamp(0.0, 1.0)
}

// --- Canvas --------------------------------------------------------------------------------

struct Canvas {
    pixels: Vec<Rgb>,
}

impl Canvas {
    fn new(color: impl Fn(f64, f64) -> Rgb) -> Self {
        let mut pixels = Vec::with_capacity(SIZE * SIZE);
        for y in 0..SIZE {
            for x in 0..SIZE {
                pixels.push(color(x as f64 + 0.5, y as f64 + 0.5));
            }
        }
        Canvas { pixels }
    }

    /// Paints `paint` where `sdf < 0`, anti-aliased, with `opacity`.
    fn layer(
        &mut self,
        sdf: impl Fn(f64, f64) -> f64,
        paint: impl Fn(f64, f64) -> Rgb,
        opacity: f64,
    ) {
        self.soft_layer(sdf, 0.0, paint, opacity);
    }

    /// Like [`Canvas::layer`] with an edge blurred over `blur` pixels.
    fn soft_layer(
        &mut self,
        sdf: impl Fn(f64, f64) -> f64,
        blur: f64,
        paint: impl Fn(f64, f64) -> Rgb,
        opacity: f64,
    ) {
        for y in 0..SIZE {
            for x in 0..SIZE {
                let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
                let d = sdf(fx, fy);
                let alpha = if blur > 0.0 {
                    1.0 - smoothstep(-blur, blur, d)
                } else {
                    coverage(d)
                } * opacity;
                if alpha <= 0.0 {
                    continue;
                }
                let pixel = &mut self.pixels[y * SIZE + x];
                *pixel = mix(*pixel, paint(fx, fy), alpha);
            }
        }
    }

    /// Multiplies every pixel by `f(x, y, colour)`'s result (texture passes).
    fn filter(&mut self, f: impl Fn(f64, f64, Rgb) -> Rgb) {
        for y in 0..SIZE {
            for x in 0..SIZE {
                let pixel = &mut self.pixels[y * SIZE + x];
                *pixel = f(x as f64 + 0.5, y as f64 + 0.5, *pixel);
            }
        }
    }

    fn to_png(&self) -> Vec<u8> {
        let mut image = RgbImage::new(SIZE as u32, SIZE as u32);
        for (i, pixel) in self.pixels.iter().enumerate() {
            let to_u8 = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            image.put_pixel(
                (i % SIZE) as u32,
                (i / SIZE) as u32,
                image::Rgb([to_u8(pixel[0]), to_u8(pixel[1]), to_u8(pixel[2])]),
            );
        }
        let mut bytes = Vec::new();
        PngEncoder::new_with_quality(&mut bytes, CompressionType::Best, FilterType::Adaptive)
            .write_image(
                image.as_raw(),
                SIZE as u32,
                SIZE as u32,
                image::ExtendedColorType::Rgb8,
            )
            .expect("PNG encoding into memory");
        bytes
    }
}

/// Lambert + ambient shading of a sphere-like blob from its centre and radii.
fn blob_shade(x: f64, y: f64, centre: (f64, f64), radii: (f64, f64), base: Rgb, gloss: f64) -> Rgb {
    let ((cx, cy), (rx, ry)) = (centre, radii);
    let nx = ((x - cx) / rx).clamp(-1.0, 1.0);
    let ny = ((y - cy) / ry).clamp(-1.0, 1.0);
    let nz = (1.0 - nx * nx - ny * ny).max(0.0).sqrt();
    let light = (-0.45_f64, -0.6_f64, 0.66_f64);
    let len = (light.0 * light.0 + light.1 * light.1 + light.2 * light.2).sqrt();
    let lambert = ((nx * light.0 + ny * light.1 + nz * light.2) / len).max(0.0);
    let mut color = scale(base, 0.45 + 0.65 * lambert);
    if gloss > 0.0 {
        // Blinn-Phong highlight with the viewer on +z.
        let (hx, hy, hz) = (light.0 / len, light.1 / len, light.2 / len + 1.0);
        let hl = (hx * hx + hy * hy + hz * hz).sqrt();
        let spec = ((nx * hx + ny * hy + nz * hz) / hl).max(0.0).powf(40.0) * gloss;
        color = mix(color, [1.0, 1.0, 1.0], spec.min(1.0));
        // Rim light from behind.
        let rim = (1.0 - nz).powf(3.0) * 0.35 * gloss;
        color = mix(color, rgb(0xbfe6ff), rim);
    }
    color
}

// --- The pictures --------------------------------------------------------------------------

fn clay() -> Canvas {
    let mut c = Canvas::new(|x, y| {
        let base = mix(rgb(0xf6e7d3), rgb(0xe9cdb1), y / SIZE as f64);
        scale(base, 0.97 + 0.05 * fbm(x, y, 18.0, 1))
    });
    c.soft_layer(
        |x, y| ellipse(x, y, 128.0, 222.0, 78.0, 13.0),
        8.0,
        |_, _| rgb(0x9c7a5e),
        0.45,
    );
    let body = rgb(0x4fa38f);
    let head = rgb(0xef9a5d);
    // Arms.
    for (a, b) in [
        ((76.0, 168.0), (52.0, 196.0)),
        ((180.0, 168.0), (204.0, 196.0)),
    ] {
        c.layer(
            |x, y| segment(x, y, a, b, 13.0),
            |x, y| {
                blob_shade(
                    x,
                    y,
                    ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0),
                    (30.0, 30.0),
                    body,
                    0.0,
                )
            },
            1.0,
        );
    }
    c.layer(
        |x, y| ellipse(x, y, 128.0, 176.0, 62.0, 50.0),
        |x, y| blob_shade(x, y, (128.0, 176.0), (62.0, 50.0), body, 0.0),
        1.0,
    );
    // Buttons pressed into the clay.
    for by in [160.0, 186.0] {
        c.layer(
            |x, y| circle(x, y, 128.0, by, 5.5),
            |_, _| rgb(0x2f6f60),
            1.0,
        );
    }
    for ex in [94.0, 162.0] {
        c.layer(
            |x, y| circle(x, y, ex, 58.0, 16.0),
            |x, y| blob_shade(x, y, (ex, 58.0), (16.0, 16.0), head, 0.0),
            1.0,
        );
    }
    c.layer(
        |x, y| circle(x, y, 128.0, 98.0, 48.0),
        |x, y| blob_shade(x, y, (128.0, 98.0), (48.0, 48.0), head, 0.0),
        1.0,
    );
    for ex in [110.0, 146.0] {
        c.layer(
            |x, y| circle(x, y, ex, 94.0, 6.5),
            |_, _| rgb(0x2b1d16),
            1.0,
        );
        c.layer(
            |x, y| circle(x, y, ex - 2.0, 92.0, 2.0),
            |_, _| rgb(0xfff4e8),
            1.0,
        );
        c.soft_layer(
            |x, y| ellipse(x, y, ex + (ex - 128.0) * 0.25, 110.0, 9.0, 5.5),
            2.0,
            |_, _| rgb(0xf0707a),
            0.55,
        );
    }
    // Smile: the lower part of a ring.
    c.layer(
        |x, y| {
            let ring = circle(x, y, 128.0, 104.0, 12.0).abs() - 2.2;
            ring.max(108.0 - y)
        },
        |_, _| rgb(0x5a2c1d),
        1.0,
    );
    // Fingerprint texture over the clay.
    c.filter(|x, y, p| {
        let inside =
            ellipse(x, y, 128.0, 176.0, 64.0, 52.0) < 0.0 || circle(x, y, 128.0, 98.0, 50.0) < 0.0;
        if inside {
            scale(p, 0.96 + 0.08 * fbm(x, y, 3.0, 7))
        } else {
            p
        }
    });
    c
}

fn cartoon_3d() -> Canvas {
    let mut c = Canvas::new(|_, y| mix(rgb(0x7cc4f2), rgb(0xe4f4ff), (y / 200.0).min(1.0)));
    c.layer(
        |x, y| circle(x, y, 128.0, 560.0, 350.0),
        |_, y| {
            mix(
                rgb(0x8fd16a),
                rgb(0x5fae45),
                ((y - 210.0) / 46.0).clamp(0.0, 1.0),
            )
        },
        1.0,
    );
    c.soft_layer(
        |x, y| ellipse(x, y, 128.0, 220.0, 64.0, 11.0),
        7.0,
        |_, _| rgb(0x3f7a30),
        0.5,
    );
    let yellow = rgb(0xffc928);
    // Feet.
    for fx in [104.0, 152.0] {
        c.layer(
            |x, y| ellipse(x, y, fx, 216.0, 18.0, 8.0),
            |x, y| blob_shade(x, y, (fx, 212.0), (18.0, 10.0), rgb(0xff8a1f), 0.6),
            1.0,
        );
    }
    // Head tuft.
    for (tx, ty, r) in [(120.0, 62.0, 10.0), (132.0, 56.0, 12.0), (143.0, 64.0, 9.0)] {
        c.layer(
            |x, y| circle(x, y, tx, ty, r),
            |x, y| blob_shade(x, y, (tx, ty), (r, r), yellow, 0.8),
            1.0,
        );
    }
    c.layer(
        |x, y| circle(x, y, 128.0, 142.0, 76.0),
        |x, y| blob_shade(x, y, (128.0, 142.0), (76.0, 76.0), yellow, 1.0),
        1.0,
    );
    // Wing.
    c.layer(
        |x, y| ellipse(x, y, 196.0, 156.0, 16.0, 28.0),
        |x, y| blob_shade(x, y, (196.0, 156.0), (16.0, 28.0), rgb(0xf5b31a), 0.7),
        1.0,
    );
    for ex in [102.0, 154.0] {
        c.layer(
            |x, y| ellipse(x, y, ex, 122.0, 19.0, 23.0),
            |x, y| blob_shade(x, y, (ex, 122.0), (19.0, 23.0), [1.0, 1.0, 1.0], 0.9),
            1.0,
        );
        c.layer(
            |x, y| circle(x, y, ex + 4.0, 127.0, 11.0),
            |_, _| rgb(0x1d2433),
            1.0,
        );
        c.layer(
            |x, y| circle(x, y, ex + 8.0, 122.0, 4.0),
            |_, _| [1.0, 1.0, 1.0],
            1.0,
        );
    }
    let beak = [(114.0, 150.0), (142.0, 150.0), (128.0, 170.0)];
    c.layer(
        |x, y| polygon(x, y, &beak) - 3.0,
        |x, y| blob_shade(x, y, (128.0, 155.0), (20.0, 14.0), rgb(0xff7b1c), 0.8),
        1.0,
    );
    for bx in [84.0, 172.0] {
        c.soft_layer(
            |x, y| ellipse(x, y, bx, 158.0, 12.0, 7.0),
            3.0,
            |_, _| rgb(0xff8f7a),
            0.6,
        );
    }
    c
}

fn anime() -> Canvas {
    let mut c = Canvas::new(|x, y| mix(rgb(0xffd6e8), rgb(0xc9b8f5), ((x + y) / 512.0).min(1.0)));
    for (sx, sy, r) in [
        (40.0, 46.0, 13.0),
        (214.0, 70.0, 10.0),
        (30.0, 190.0, 8.0),
        (226.0, 200.0, 12.0),
    ] {
        let points = star(sx, sy, r, r * 0.28, 4, 0.0);
        c.layer(|x, y| polygon(x, y, &points), |_, _| [1.0, 1.0, 1.0], 0.9);
    }
    let hair = rgb(0x3d3270);
    let hair_light = rgb(0x5b4aa0);
    let skin = rgb(0xffe3d3);
    let skin_shadow = rgb(0xf4bfae);
    // Back hair.
    c.layer(
        |x, y| {
            rounded_box(x, y, 128.0, 150.0, 84.0, 100.0, 70.0).min(circle(x, y, 128.0, 118.0, 86.0))
        },
        |_, _| hair,
        1.0,
    );
    // Shoulders / collar.
    c.layer(
        |x, y| rounded_box(x, y, 128.0, 262.0, 78.0, 40.0, 30.0),
        |_, _| rgb(0x2a3d66),
        1.0,
    );
    c.layer(
        |x, y| polygon(x, y, &[(104.0, 224.0), (152.0, 224.0), (128.0, 252.0)]),
        |_, _| [1.0, 1.0, 1.0],
        1.0,
    );
    c.layer(
        |x, y| rounded_box(x, y, 128.0, 214.0, 14.0, 16.0, 4.0),
        |_, _| skin_shadow,
        1.0,
    );
    // Face: a rounded chin.
    let face = |x: f64, y: f64| ellipse(x, y, 128.0, 142.0, 60.0, 66.0);
    c.layer(face, |_, _| skin, 1.0);
    // Cel shadow under the bangs.
    c.layer(
        |x, y| face(x, y).max(y - 112.0 - 6.0 * ((x - 128.0) / 20.0).sin()),
        |_, _| skin_shadow,
        1.0,
    );
    // Bangs.
    let bangs = [
        (52.0, 120.0),
        (60.0, 70.0),
        (96.0, 42.0),
        (160.0, 42.0),
        (196.0, 70.0),
        (204.0, 122.0),
        (186.0, 96.0),
        (176.0, 118.0),
        (160.0, 88.0),
        (146.0, 112.0),
        (128.0, 84.0),
        (110.0, 112.0),
        (96.0, 88.0),
        (82.0, 118.0),
        (70.0, 96.0),
    ];
    c.layer(|x, y| polygon(x, y, &bangs), |_, _| hair, 1.0);
    // Strands of shine on the hair.
    for (a, b) in [
        ((118.0, 50.0), (110.0, 100.0)),
        ((140.0, 50.0), (150.0, 98.0)),
    ] {
        c.layer(|x, y| segment(x, y, a, b, 1.2), |_, _| hair_light, 0.8);
    }
    // Eyes.
    for ex in [102.0, 154.0] {
        c.layer(
            |x, y| ellipse(x, y, ex, 150.0, 15.0, 20.0),
            |_, _| [1.0, 1.0, 1.0],
            1.0,
        );
        c.layer(
            |x, y| ellipse(x, y, ex, 152.0, 12.0, 17.0),
            |_, y| {
                mix(
                    rgb(0x2a4fb0),
                    rgb(0x46c6d8),
                    ((y - 136.0) / 32.0).clamp(0.0, 1.0),
                )
            },
            1.0,
        );
        c.layer(
            |x, y| ellipse(x, y, ex, 152.0, 5.0, 8.0),
            |_, _| rgb(0x101a3a),
            1.0,
        );
        c.layer(
            |x, y| circle(x, y, ex - 5.0, 143.0, 4.5),
            |_, _| [1.0, 1.0, 1.0],
            1.0,
        );
        c.layer(
            |x, y| circle(x, y, ex + 5.0, 160.0, 2.0),
            |_, _| [1.0, 1.0, 1.0],
            1.0,
        );
        // Upper lash line.
        c.layer(
            |x, y| {
                let ring = ellipse(x, y, ex, 152.0, 17.0, 22.0).abs() - 2.0;
                ring.max(y - 142.0)
            },
            |_, _| rgb(0x1b1430),
            1.0,
        );
        // Blush hatching.
        for k in 0..3 {
            let bx = ex + (ex - 128.0) * 0.35 - 8.0 + 7.0 * f64::from(k);
            c.layer(
                |x, y| segment(x, y, (bx, 178.0), (bx - 4.0, 184.0), 1.2),
                |_, _| rgb(0xf08a9a),
                0.9,
            );
        }
    }
    c.layer(
        |x, y| segment(x, y, (122.0, 192.0), (134.0, 192.0), 1.3),
        |_, _| rgb(0xb5525e),
        1.0,
    );
    c
}

fn watercolor() -> Canvas {
    let paper = |x: f64, y: f64| scale(rgb(0xfbf8f1), 0.97 + 0.04 * fbm(x, y, 2.0, 3));
    let mut c = Canvas::new(paper);
    // A wash: pigment with a noisy edge, darker where it pooled at the rim.
    let wash =
        |c: &mut Canvas, sdf: &dyn Fn(f64, f64) -> f64, color: Rgb, seed: u64, opacity: f64| {
            c.layer(
                |x, y| sdf(x, y) + 10.0 * (fbm(x, y, 22.0, seed) - 0.5),
                |x, y| {
                    let d = sdf(x, y) + 10.0 * (fbm(x, y, 22.0, seed) - 0.5);
                    let rim = smoothstep(-7.0, 0.0, d) * 0.35;
                    let bloom = 0.85 + 0.3 * fbm(x, y, 14.0, seed + 9);
                    scale(color, (bloom - rim).clamp(0.45, 1.15))
                },
                opacity,
            );
        };
    wash(&mut c, &|_, y| y - 172.0, rgb(0x9cc8e8), 11, 0.55);
    wash(
        &mut c,
        &|x, y| circle(x, y, 176.0, 70.0, 30.0),
        rgb(0xf6b26b),
        12,
        0.7,
    );
    wash(
        &mut c,
        &|x, y| (150.0 + 22.0 * ((x / 40.0) + 1.0).sin() + 10.0 * (x / 17.0).cos()) - y,
        rgb(0x8d86c9),
        13,
        0.6,
    );
    wash(
        &mut c,
        &|x, y| (185.0 + 18.0 * ((x / 55.0) + 2.5).sin()) - y,
        rgb(0x6fb07a),
        14,
        0.65,
    );
    wash(
        &mut c,
        &|x, y| (222.0 + 10.0 * ((x / 30.0) + 0.5).sin()) - y,
        rgb(0x3f8f6a),
        15,
        0.6,
    );
    // Splatter dots.
    for i in 0..14 {
        let (sx, sy) = (hash(i, 1, 77) * 256.0, hash(i, 2, 77) * 256.0);
        let r = 1.0 + hash(i, 3, 77) * 2.5;
        c.layer(|x, y| circle(x, y, sx, sy, r), |_, _| rgb(0x7a9fd0), 0.45);
    }
    // Paper grain shows through.
    c.filter(|x, y, p| scale(p, 0.96 + 0.05 * value_noise(x * 0.9, y * 0.9, 5)));
    c
}

fn pencil_sketch() -> Canvas {
    let mut c = Canvas::new(|x, y| scale(rgb(0xf4f1ea), 0.96 + 0.05 * fbm(x, y, 1.5, 21)));
    let graphite = rgb(0x3a3a3d);
    let apple =
        |x: f64, y: f64| circle(x, y, 112.0, 140.0, 52.0).min(circle(x, y, 146.0, 140.0, 52.0));
    // How dark the apple is at a point: 0 where the light (top left) hits, 1 in shadow.
    let shade = |x: f64, y: f64| {
        let (nx, ny) = ((x - 129.0) / 70.0, (y - 140.0) / 52.0);
        (0.55 * nx + 0.6 * ny + 0.2).clamp(0.0, 1.0)
    };
    // Pencil lines: a stripe pattern thickened where `darkness` is high (negative = on a line).
    let lines = |pattern: f64, darkness: f64| (1.0 - 1.5 * darkness - pattern) * 2.5;
    // Cast shadow: two layers of strokes.
    let shadow = |x: f64, y: f64| ellipse(x, y, 160.0, 196.0, 72.0, 14.0).max(-apple(x, y));
    c.layer(
        |x, y| shadow(x, y).max(lines(((x + y) * 0.7).sin(), 0.55)),
        |_, _| graphite,
        0.5,
    );
    c.layer(
        |x, y| shadow(x, y).max(lines(((x - y) * 0.7).sin(), 0.4)),
        |_, _| graphite,
        0.35,
    );
    // Shading inside the apple: hatching, cross-hatched in the darkest part.
    c.layer(
        |x, y| apple(x, y).max(lines(((x + y * 0.35) * 0.75).sin(), shade(x, y))),
        |_, _| graphite,
        0.5,
    );
    c.layer(
        |x, y| {
            let dark = (shade(x, y) - 0.45).max(0.0) * 1.6;
            apple(x, y).max(lines(((x - y * 0.6) * 0.75).sin(), dark))
        },
        |_, _| graphite,
        0.4,
    );
    // Sketchy outline: several loose strokes.
    for k in 0..3 {
        let (ox, oy) = (f64::from(k) * 1.3 - 1.3, f64::from(k) * 0.9 - 0.6);
        c.layer(
            |x, y| {
                let wobble = 1.6 * (fbm(x, y, 9.0, 30 + k as u64) - 0.5);
                (apple(x - ox, y - oy) + wobble).abs() - 0.8
            },
            |_, _| graphite,
            0.55,
        );
    }
    // Stem and leaf.
    c.layer(
        |x, y| segment(x, y, (129.0, 92.0), (136.0, 66.0), 2.4),
        |_, _| graphite,
        0.85,
    );
    let leaf = [(138.0, 74.0), (160.0, 58.0), (184.0, 62.0), (164.0, 78.0)];
    c.layer(
        |x, y| polygon(x, y, &leaf).abs() - 1.0,
        |_, _| graphite,
        0.7,
    );
    c.layer(
        |x, y| segment(x, y, (140.0, 72.0), (178.0, 63.0), 0.6),
        |_, _| graphite,
        0.6,
    );
    // Construction lines.
    c.layer(
        |x, y| segment(x, y, (40.0, 204.0), (236.0, 204.0), 0.5),
        |_, _| graphite,
        0.35,
    );
    c.layer(
        |x, y| segment(x, y, (129.0, 60.0), (129.0, 200.0), 0.4),
        |_, _| graphite,
        0.25,
    );
    c
}

fn product_shot() -> Canvas {
    let mut c = Canvas::new(|_, y| {
        let floor = smoothstep(170.0, 215.0, y);
        mix([1.0, 1.0, 1.0], rgb(0xeceef1), floor)
    });
    c.soft_layer(
        |x, y| ellipse(x, y, 128.0, 222.0, 58.0, 8.0),
        9.0,
        |_, _| rgb(0x9aa1ab),
        0.55,
    );
    // Glass bottle body.
    let body = |x: f64, y: f64| rounded_box(x, y, 128.0, 166.0, 50.0, 54.0, 18.0);
    c.layer(
        body,
        |x, y| {
            let edge = (-body(x, y) / 16.0).clamp(0.0, 1.0);
            let glass = mix(rgb(0x7fa6b8), rgb(0xe9f4f8), edge);
            if y > 150.0 + 2.0 * ((x - 128.0) / 12.0).sin() {
                mix(glass, rgb(0xe0a74f), 0.55 * edge + 0.15)
            } else {
                glass
            }
        },
        1.0,
    );
    // Highlights.
    c.layer(
        |x, y| rounded_box(x, y, 98.0, 162.0, 4.0, 40.0, 4.0),
        |_, _| [1.0, 1.0, 1.0],
        0.8,
    );
    c.layer(
        |x, y| rounded_box(x, y, 160.0, 176.0, 2.0, 22.0, 2.0),
        |_, _| [1.0, 1.0, 1.0],
        0.5,
    );
    // Label.
    c.layer(
        |x, y| rounded_box(x, y, 128.0, 178.0, 26.0, 14.0, 3.0),
        |_, _| rgb(0xfdfaf3),
        0.95,
    );
    c.layer(
        |x, y| segment(x, y, (112.0, 176.0), (144.0, 176.0), 1.2),
        |_, _| rgb(0x8a6d3b),
        1.0,
    );
    c.layer(
        |x, y| segment(x, y, (118.0, 183.0), (138.0, 183.0), 0.8),
        |_, _| rgb(0xb59a6a),
        1.0,
    );
    // Neck and cap.
    c.layer(
        |x, y| rounded_box(x, y, 128.0, 106.0, 12.0, 8.0, 2.0),
        |_, _| rgb(0xb9c9d1),
        1.0,
    );
    c.layer(
        |x, y| rounded_box(x, y, 128.0, 78.0, 22.0, 24.0, 6.0),
        |x, _| {
            let t = ((x - 106.0) / 44.0).clamp(0.0, 1.0);
            let shine = (-(t - 0.3).powi(2) / 0.01).exp();
            mix(
                mix(rgb(0x2b2e35), rgb(0x50545e), t),
                rgb(0xd9dde3),
                shine * 0.8,
            )
        },
        1.0,
    );
    c
}

fn comic_ink() -> Canvas {
    let paper = rgb(0xfbfaf5);
    let ink = rgb(0x111111);
    let mut c = Canvas::new(|_, _| paper);
    // Speed lines from the centre.
    c.layer(
        |x, y| {
            let a = (y - 128.0).atan2(x - 128.0);
            let stripes = (a * 24.0).sin();
            let r = ((x - 128.0).powi(2) + (y - 128.0).powi(2)).sqrt();
            // Positive outside the wedges and near the centre.
            (0.2 - stripes).max(0.0) * 20.0 + (90.0 - r).max(0.0)
        },
        |_, _| ink,
        1.0,
    );
    let burst = star(128.0, 128.0, 104.0, 70.0, 12, 0.13);
    c.layer(|x, y| polygon(x, y, &burst), |_, _| paper, 1.0);
    // Halftone dots, larger towards the lower right.
    c.layer(
        |x, y| {
            let (cx, cy) = ((x / 7.0).round() * 7.0, (y / 7.0).round() * 7.0);
            let t = ((x + y - 200.0) / 120.0).clamp(0.0, 1.0);
            circle(x, y, cx, cy, 0.6 + 2.6 * t).max(polygon(x, y, &burst) + 8.0)
        },
        |_, _| ink,
        1.0,
    );
    c.layer(|x, y| polygon(x, y, &burst).abs() - 3.5, |_, _| ink, 1.0);
    // Lightning bolt with a white highlight.
    let bolt = [
        (140.0, 54.0),
        (96.0, 138.0),
        (124.0, 138.0),
        (106.0, 204.0),
        (166.0, 110.0),
        (136.0, 110.0),
        (158.0, 54.0),
    ];
    c.layer(|x, y| polygon(x, y, &bolt), |_, _| ink, 1.0);
    c.layer(
        |x, y| segment(x, y, (142.0, 64.0), (112.0, 126.0), 2.2),
        |_, _| paper,
        1.0,
    );
    // Hatching on the lower left of the burst.
    c.layer(
        |x, y| {
            let hatch = ((x - y) * 0.7).sin() - 0.55;
            (polygon(x, y, &burst) + 4.0)
                .max(-hatch * 3.0)
                .max(x + y - 190.0)
                .max(-polygon(x, y, &bolt) + 6.0)
        },
        |_, _| ink,
        0.9,
    );
    c
}

fn picture_book() -> Canvas {
    let mut c = Canvas::new(|_, y| mix(rgb(0xffd9b3), rgb(0xfff1cf), (y / 180.0).min(1.0)));
    c.soft_layer(
        |x, y| circle(x, y, 190.0, 62.0, 26.0),
        2.0,
        |_, _| rgb(0xffe27a),
        1.0,
    );
    for (cx, cy) in [(62.0, 58.0), (84.0, 52.0), (100.0, 62.0)] {
        c.layer(
            |x, y| circle(x, y, cx, cy, 15.0),
            |_, _| rgb(0xfffaf2),
            0.95,
        );
    }
    let outline = rgb(0x6b4a3a);
    let hill = |x: f64, y: f64| circle(x, y, 110.0, 420.0, 250.0);
    c.layer(
        hill,
        |_, y| {
            mix(
                rgb(0xa8d672),
                rgb(0x77b45b),
                ((y - 170.0) / 86.0).clamp(0.0, 1.0),
            )
        },
        1.0,
    );
    c.layer(|x, y| hill(x, y).abs() - 1.2, |_, _| outline, 0.6);
    // House.
    let wall = |x: f64, y: f64| rounded_box(x, y, 92.0, 168.0, 34.0, 28.0, 3.0);
    c.layer(wall, |_, _| rgb(0xfff3dc), 1.0);
    let roof = [(50.0, 144.0), (92.0, 104.0), (134.0, 144.0)];
    c.layer(|x, y| polygon(x, y, &roof) - 2.0, |_, _| rgb(0xe0604e), 1.0);
    c.layer(
        |x, y| rounded_box(x, y, 104.0, 180.0, 8.0, 16.0, 3.0),
        |_, _| rgb(0x9b6a4c),
        1.0,
    );
    c.layer(
        |x, y| rounded_box(x, y, 76.0, 166.0, 8.0, 8.0, 2.0),
        |_, _| rgb(0x8ccbe8),
        1.0,
    );
    for sdf in [
        &(|x: f64, y: f64| wall(x, y).abs() - 1.0) as &dyn Fn(f64, f64) -> f64,
        &|x: f64, y: f64| (polygon(x, y, &roof) - 2.0).abs() - 1.0,
    ] {
        c.layer(sdf, |_, _| outline, 0.7);
    }
    // Tree.
    c.layer(
        |x, y| rounded_box(x, y, 182.0, 176.0, 6.0, 22.0, 3.0),
        |_, _| rgb(0x8b5a3c),
        1.0,
    );
    let crown = |x: f64, y: f64| {
        circle(x, y, 182.0, 132.0, 30.0)
            .min(circle(x, y, 162.0, 146.0, 20.0))
            .min(circle(x, y, 202.0, 146.0, 20.0))
    };
    c.layer(
        crown,
        |x, y| {
            mix(
                rgb(0x5fa85a),
                rgb(0x85c46a),
                ((150.0 - y + x - 170.0) / 60.0).clamp(0.0, 1.0),
            )
        },
        1.0,
    );
    c.layer(|x, y| crown(x, y).abs() - 1.0, |_, _| outline, 0.6);
    for (ax, ay) in [(176.0, 128.0), (194.0, 142.0), (166.0, 150.0)] {
        c.layer(|x, y| circle(x, y, ax, ay, 4.0), |_, _| rgb(0xe8504a), 1.0);
    }
    // Flowers.
    for i in 0..9 {
        let fx = 30.0 + 24.0 * f64::from(i) + 6.0 * hash(i64::from(i), 0, 5);
        let fy = 214.0 + 20.0 * hash(i64::from(i), 1, 5);
        let color = [rgb(0xffffff), rgb(0xffd24d), rgb(0xf59ac0)][i as usize % 3];
        c.layer(|x, y| circle(x, y, fx, fy, 3.5), |_, _| color, 1.0);
    }
    // Coloured-pencil texture: fine diagonal strokes.
    c.filter(|x, y, p| {
        let stroke = ((x * 0.8 + y * 1.6) * 0.9 + 6.0 * fbm(x, y, 12.0, 40)).sin();
        scale(p, 0.97 + 0.04 * stroke)
    });
    c
}

/// A thumbnail's preset id and drawing function.
type Picture = (&'static str, fn() -> Canvas);

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../presets")));
    let pictures: [Picture; 8] = [
        ("clay", clay),
        ("3d-cartoon", cartoon_3d),
        ("anime", anime),
        ("watercolor", watercolor),
        ("pencil-sketch", pencil_sketch),
        ("product-shot", product_shot),
        ("comic-ink", comic_ink),
        ("picture-book", picture_book),
    ];
    std::fs::create_dir_all(&out).expect("create the output folder");
    for (id, draw) in pictures {
        let path = out.join(format!("{id}.png"));
        let bytes = draw().to_png();
        std::fs::write(&path, &bytes).expect("write the thumbnail");
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
}
