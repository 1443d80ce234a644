//! InstantID's keypoint image: the five face keypoints drawn as coloured sticks and dots on
//! black, the picture IdentityNet was trained on (InstantID's `draw_kps`).
//!
//! The drawing reproduces OpenCV's 8-connected rasterisation pixel for pixel
//! (`ellipse2Poly` with its 1° sine table, `fillConvexPoly` with its edge lines and 16.16 fixed
//! point scanlines, the midpoint filled `circle`), because the ControlNet sees the exact pixels.
//! Reference: `tests/fixtures/make_instantid.py` draws the same keypoints with `cv2`.

use image::{Rgb, RgbImage};

/// Stick colours by the keypoint they start from (RGB), as InstantID draws them.
const COLORS: [[u8; 3]; 5] = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 0],
    [255, 0, 255],
];
/// Sticks from each eye and mouth corner to the nose.
const LIMBS: [(usize, usize); 4] = [(0, 2), (1, 2), (3, 2), (4, 2)];
/// Half-thickness of a stick (the ellipse's minor semi-axis).
const STICK_WIDTH: i64 = 4;
/// Radius of the keypoint dots.
const DOT_RADIUS: i64 = 10;

/// The keypoint image of a face at `width`×`height`, keypoints in its pixel coordinates.
pub fn draw_keypoints(width: u32, height: u32, kps: &[[f32; 2]; 5]) -> RgbImage {
    let mut canvas = Canvas::new(width, height);
    for &(a, b) in &LIMBS {
        let [x0, y0] = kps[a];
        let [x1, y1] = kps[b];
        // numpy float32 arithmetic, then Python's int() (truncation toward zero).
        let mean_x = ((x0 + x1) / 2.0) as i64;
        let mean_y = ((y0 + y1) / 2.0) as i64;
        let length = ((x0 - x1).powi(2) + (y0 - y1).powi(2)).sqrt();
        let angle = f64::from(y0 - y1).atan2(f64::from(x0 - x1)).to_degrees() as i64;
        let polygon = ellipse_polygon(
            (mean_x, mean_y),
            ((length / 2.0) as i64, STICK_WIDTH),
            angle,
        );
        canvas.fill_convex_poly(&polygon, COLORS[a]);
    }
    // The sticks are dimmed to 60 % (float image × 0.6, truncated to u8).
    for v in canvas.pixels.iter_mut() {
        *v = (f64::from(*v) * 0.6) as u8;
    }
    for (kp, color) in kps.iter().zip(COLORS) {
        canvas.fill_circle((kp[0] as i64, kp[1] as i64), DOT_RADIUS, color);
    }
    RgbImage::from_fn(width, height, |x, y| {
        let i = (y as usize * width as usize + x as usize) * 3;
        Rgb([canvas.pixels[i], canvas.pixels[i + 1], canvas.pixels[i + 2]])
    })
}

/// The first quadrant of OpenCV's sine table (`drawing.cpp`: sines at whole degrees to 7
/// decimals, stored as float); the rest follows by symmetry, as in the table.
#[rustfmt::skip]
#[allow(clippy::excessive_precision, clippy::approx_constant)] // OpenCV's values as written.
const SIN_QUADRANT: [f32; 91] = [
    0.0000000, 0.0174524, 0.0348995, 0.0523360, 0.0697565, 0.0871557, 0.1045285, 0.1218693,
    0.1391731, 0.1564345, 0.1736482, 0.1908090, 0.2079117, 0.2249511, 0.2419219, 0.2588190,
    0.2756374, 0.2923717, 0.3090170, 0.3255682, 0.3420201, 0.3583679, 0.3746066, 0.3907311,
    0.4067366, 0.4226183, 0.4383711, 0.4539905, 0.4694716, 0.4848096, 0.5000000, 0.5150381,
    0.5299193, 0.5446390, 0.5591929, 0.5735764, 0.5877853, 0.6018150, 0.6156615, 0.6293204,
    0.6427876, 0.6560590, 0.6691306, 0.6819984, 0.6946584, 0.7071068, 0.7193398, 0.7313537,
    0.7431448, 0.7547096, 0.7660444, 0.7771460, 0.7880108, 0.7986355, 0.8090170, 0.8191520,
    0.8290376, 0.8386706, 0.8480481, 0.8571673, 0.8660254, 0.8746197, 0.8829476, 0.8910065,
    0.8987940, 0.9063078, 0.9135455, 0.9205049, 0.9271839, 0.9335804, 0.9396926, 0.9455186,
    0.9510565, 0.9563048, 0.9612617, 0.9659258, 0.9702957, 0.9743701, 0.9781476, 0.9816272,
    0.9848078, 0.9876883, 0.9902681, 0.9925462, 0.9945219, 0.9961947, 0.9975641, 0.9986295,
    0.9993908, 0.9998477, 1.0000000,
];

/// OpenCV's table sine of a whole number of degrees.
fn sin_table(angle: i64) -> f64 {
    let a = angle.rem_euclid(360) as usize;
    f64::from(match a {
        0..=90 => SIN_QUADRANT[a],
        91..=180 => SIN_QUADRANT[180 - a],
        181..=270 => -SIN_QUADRANT[a - 180],
        _ => -SIN_QUADRANT[360 - a],
    })
}

/// `cv::ellipse2Poly(center, axes, angle, 0, 360, 1)`: the whole ellipse at 1° steps,
/// rounded half to even, consecutive duplicates removed.
fn ellipse_polygon(center: (i64, i64), axes: (i64, i64), angle: i64) -> Vec<(i64, i64)> {
    let angle = angle.rem_euclid(360);
    let (alpha, beta) = (sin_table(450 - angle), sin_table(angle));
    let (cx, cy) = (center.0 as f64, center.1 as f64);
    let mut points: Vec<(i64, i64)> = Vec::with_capacity(361);
    for i in 0..=360 {
        let x = axes.0 as f64 * sin_table(450 - i);
        let y = axes.1 as f64 * sin_table(i);
        let px = cx + x * alpha - y * beta;
        let py = cy + x * beta + y * alpha;
        let point = (px.round_ties_even() as i64, py.round_ties_even() as i64);
        if points.last() != Some(&point) {
            points.push(point);
        }
    }
    if points.len() == 1 {
        points = vec![center, center];
    }
    points
}

const XY_SHIFT: u32 = 16;
const XY_ONE: i64 = 1 << XY_SHIFT;

/// An RGB8 raster with OpenCV's drawing primitives.
struct Canvas {
    width: i64,
    height: i64,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Self {
        Canvas {
            width: i64::from(width),
            height: i64::from(height),
            pixels: vec![0; width as usize * height as usize * 3],
        }
    }

    fn put(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            let i = ((y * self.width + x) * 3) as usize;
            self.pixels[i..i + 3].copy_from_slice(&color);
        }
    }

    /// Pixels `x1..=x2` of row `y` (callers clip).
    fn hline(&mut self, y: i64, x1: i64, x2: i64, color: [u8; 3]) {
        for x in x1..=x2 {
            self.put(x, y, color);
        }
    }

    /// `Line` with an 8-connected `LineIterator` (left to right), clipped to the image.
    fn line(&mut self, p1: (i64, i64), p2: (i64, i64), color: [u8; 3]) {
        let Some(((mut x1, mut y1), (x2, y2))) = clip_line(self.width, self.height, p1, p2) else {
            return;
        };
        let (mut dx, mut dy) = (x2 - x1, y2 - y1);
        if dx < 0 {
            // Start from the left end.
            dx = -dx;
            dy = -dy;
            x1 = x2;
            y1 = y2;
        }
        let step_y = if dy < 0 { -1 } else { 1 };
        dy = dy.abs();
        // Major axis step and minor axis step.
        let (major, minor, dmaj, dmin) = if dy > dx {
            ((0, step_y), (1, 0), dy, dx)
        } else {
            ((1, 0), (0, step_y), dx, dy)
        };
        let mut err = dmaj - 2 * dmin;
        let (plus_delta, minus_delta) = (2 * dmaj, -2 * dmin);
        let (mut x, mut y) = (x1, y1);
        for _ in 0..=dmaj {
            self.put(x, y, color);
            let diagonal = err < 0;
            err += minus_delta + if diagonal { plus_delta } else { 0 };
            x += major.0 + if diagonal { minor.0 } else { 0 };
            y += major.1 + if diagonal { minor.1 } else { 0 };
        }
    }

    /// `FillConvexPoly` with `shift = 0` and 8-connected edges.
    fn fill_convex_poly(&mut self, v: &[(i64, i64)], color: [u8; 3]) {
        let npts = v.len();
        if npts == 0 {
            return;
        }
        let delta1 = XY_ONE >> 1;
        let delta2 = delta1;
        let (mut xmin, mut xmax, mut ymin, mut ymax) = (v[0].0, v[0].0, v[0].1, v[0].1);
        let mut imin = 0;
        let mut p0 = v[npts - 1];
        for (i, &p) in v.iter().enumerate() {
            if p.1 < ymin {
                ymin = p.1;
                imin = i;
            }
            ymax = ymax.max(p.1);
            xmax = xmax.max(p.0);
            xmin = xmin.min(p.0);
            self.line(p0, p, color);
            p0 = p;
        }
        if npts < 3 || xmax < 0 || ymax < 0 || xmin >= self.width || ymin >= self.height {
            return;
        }
        let ymax = ymax.min(self.height - 1);
        #[derive(Clone, Copy)]
        struct Edge {
            idx: usize,
            di: usize,
            x: i64,
            dx: i64,
            ye: i64,
        }
        let mut edge = [
            Edge {
                idx: imin,
                di: 1,
                x: -XY_ONE,
                dx: 0,
                ye: ymin,
            },
            Edge {
                idx: imin,
                di: npts - 1,
                x: -XY_ONE,
                dx: 0,
                ye: ymin,
            },
        ];
        let mut edges = npts as i64;
        let mut y = ymin;
        loop {
            for e in edge.iter_mut() {
                if y >= e.ye {
                    let mut idx0 = e.idx;
                    let mut idx = (idx0 + e.di) % npts;
                    loop {
                        edges -= 1;
                        if edges < 0 {
                            break;
                        }
                        let ty = v[idx].1;
                        if ty > y {
                            let xs = v[idx0].0 << XY_SHIFT;
                            let xe = v[idx].0 << XY_SHIFT;
                            e.ye = ty;
                            e.dx = ((xe - xs) * 2 + (ty - y)) / (2 * (ty - y));
                            e.x = xs;
                            e.idx = idx;
                            break;
                        }
                        idx0 = idx;
                        idx = (idx + e.di) % npts;
                    }
                }
            }
            if edges < 0 {
                break;
            }
            if y >= 0 {
                let (left, right) = if edge[0].x > edge[1].x {
                    (1, 0)
                } else {
                    (0, 1)
                };
                let mut xx1 = (edge[left].x + delta1) >> XY_SHIFT;
                let mut xx2 = (edge[right].x + delta2) >> XY_SHIFT;
                if xx2 >= 0 && xx1 < self.width {
                    xx1 = xx1.max(0);
                    xx2 = xx2.min(self.width - 1);
                    self.hline(y, xx1, xx2, color);
                }
            }
            edge[0].x += edge[0].dx;
            edge[1].x += edge[1].dx;
            y += 1;
            if y > ymax {
                break;
            }
        }
    }

    /// The midpoint filled `Circle` of OpenCV (`thickness = -1`, 8-connected, no shift).
    fn fill_circle(&mut self, center: (i64, i64), radius: i64, color: [u8; 3]) {
        let (mut dx, mut dy, mut err, mut plus, mut minus) =
            (radius, 0i64, 0i64, 1i64, 2 * radius - 1);
        let (w, h) = (self.width, self.height);
        while dx >= dy {
            let (y11, y12, y21, y22) = (center.1 - dy, center.1 + dy, center.1 - dx, center.1 + dx);
            let (x11, x12, x21, x22) = (center.0 - dx, center.0 + dx, center.0 - dy, center.0 + dy);
            if x11 < w && x12 >= 0 && y21 < h && y22 >= 0 {
                let (a, b) = (x11.max(0), x12.min(w - 1));
                for row in [y11, y12] {
                    if (0..h).contains(&row) {
                        self.hline(row, a, b, color);
                    }
                }
                if x21 < w && x22 >= 0 {
                    let (a, b) = (x21.max(0), x22.min(w - 1));
                    for row in [y21, y22] {
                        if (0..h).contains(&row) {
                            self.hline(row, a, b, color);
                        }
                    }
                }
            }
            dy += 1;
            err += plus;
            plus += 2;
            let mask = if err <= 0 { 0 } else { -1 };
            err -= minus & mask;
            dx += mask;
            minus -= mask & 2;
        }
    }
}

/// OpenCV's `clipLine` (Cohen–Sutherland with integer arithmetic); `None` when the segment
/// misses the image.
fn clip_line(
    width: i64,
    height: i64,
    p1: (i64, i64),
    p2: (i64, i64),
) -> Option<((i64, i64), (i64, i64))> {
    let (right, bottom) = (width - 1, height - 1);
    if width <= 0 || height <= 0 {
        return None;
    }
    let (mut x1, mut y1) = p1;
    let (mut x2, mut y2) = p2;
    let code = |x: i64, y: i64| {
        i32::from(x < 0)
            + i32::from(x > right) * 2
            + i32::from(y < 0) * 4
            + i32::from(y > bottom) * 8
    };
    let mut c1 = code(x1, y1);
    let mut c2 = code(x2, y2);
    if (c1 & c2) == 0 && (c1 | c2) != 0 {
        if c1 & 12 != 0 {
            let a = if c1 < 8 { 0 } else { bottom };
            x1 += (a - y1) * (x2 - x1) / (y2 - y1);
            y1 = a;
            c1 = i32::from(x1 < 0) + i32::from(x1 > right) * 2;
        }
        if c2 & 12 != 0 {
            let a = if c2 < 8 { 0 } else { bottom };
            x2 += (a - y2) * (x2 - x1) / (y2 - y1);
            y2 = a;
            c2 = i32::from(x2 < 0) + i32::from(x2 > right) * 2;
        }
        if (c1 & c2) == 0 && (c1 | c2) != 0 {
            if c1 != 0 {
                let a = if c1 == 1 { 0 } else { right };
                y1 += (a - x1) * (y2 - y1) / (x2 - x1);
                x1 = a;
                c1 = 0;
            }
            if c2 != 0 {
                let a = if c2 == 1 { 0 } else { right };
                y2 += (a - x2) * (y2 - y1) / (x2 - x1);
                x2 = a;
                c2 = 0;
            }
        }
    }
    ((c1 | c2) == 0).then_some(((x1, y1), (x2, y2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_table_matches_opencv_entries() {
        // Entries of OpenCV's table.
        assert_eq!(sin_table(1) as f32, 0.017_452_4_f32);
        assert_eq!(sin_table(45) as f32, SIN_QUADRANT[45]);
        assert_eq!(sin_table(315) as f32, -SIN_QUADRANT[45]);
        assert_eq!(sin_table(90) as f32, 1.0);
        assert_eq!(sin_table(450 - 30) as f32, 0.866_025_4_f32);
        assert_eq!(sin_table(200) as f32, -0.342_020_1_f32);
    }

    #[test]
    fn dots_and_sticks_are_drawn_in_their_colours() {
        let kps = [
            [20.0, 20.0],
            [44.0, 20.0],
            [32.0, 32.0],
            [22.0, 44.0],
            [42.0, 44.0],
        ];
        let image = draw_keypoints(64, 64, &kps);
        assert_eq!(image.get_pixel(20, 20).0, [255, 0, 0]);
        assert_eq!(image.get_pixel(32, 32).0, [0, 0, 255]);
        assert_eq!(image.get_pixel(42, 44).0, [255, 0, 255]);
        // A corner far from every keypoint stays black.
        assert_eq!(image.get_pixel(63, 0).0, [0, 0, 0]);
    }

    #[test]
    fn keypoints_outside_the_image_do_not_panic() {
        let kps = [
            [-30.0, -5.0],
            [100.0, 2.0],
            [70.0, 70.0],
            [-10.0, 90.0],
            [5.0, 200.0],
        ];
        let image = draw_keypoints(48, 40, &kps);
        assert_eq!(image.dimensions(), (48, 40));
    }
}
