//! Torch-compatible CPU RNG: mt19937 and `torch.randn` float32 sampling.
//!
//! Reproduces `torch.Generator("cpu").manual_seed(seed)` followed by
//! `torch.randn(shape, generator=g)` (float32) bit for bit, as PyTorch 2.x x86-64 builds compute
//! it (FORMATS §3.5):
//!
//! * the engine is ATen's `at::mt19937` (`ATen/core/MT19937RNGEngine.h`), seeded with the low
//!   32 bits of the seed;
//! * a contiguous float32 tensor with `numel ≥ 16` takes `normal_fill`
//!   (`ATen/native/cpu/DistributionTemplates.h`): every slot gets a float uniform first, then
//!   blocks of 16 go through Box–Muller in `NormalFill16<float>`, whose `log256_ps` and
//!   `sincos256_ps` are the Cephes float polynomials of `ATen/native/cpu/avx_mathfun.h`. The AVX2
//!   kernel (also used on AVX-512 machines, which have no AVX-512 `normal_stub`) is compiled by
//!   GCC with FMA contraction; the fused multiply-adds below follow the instructions of the
//!   shipped `libtorch_cpu.so` one by one. If `numel % 16 ≠ 0` the last 16 slots are redrawn and
//!   transformed again.
//! * smaller tensors take `at::normal_distribution<double>` per element
//!   (`ATen/core/DistributionsHelper.h`): two double uniforms give `r cos θ`, and `r sin θ` is
//!   cached in the generator for the next scalar draw.

use candle_core::{Device, Tensor};

const STATE_N: usize = 624;
const STATE_M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// Standard MT19937 as ATen's `at::mt19937_engine` implements it.
#[derive(Clone, Debug)]
pub struct Mt19937 {
    state: [u32; STATE_N],
    /// Draws left before the state is regenerated (ATen's `left_`).
    left: usize,
    /// Next state word to temper (ATen's `next_`).
    next: usize,
}

impl Mt19937 {
    /// Seeds the engine like `init_genrand`; only the low 32 bits of `seed` count.
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; STATE_N];
        state[0] = (seed & 0xffff_ffff) as u32;
        for j in 1..STATE_N {
            let prev = state[j - 1];
            state[j] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(j as u32);
        }
        Self {
            state,
            left: 1,
            next: 0,
        }
    }

    /// The next tempered 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        self.left -= 1;
        if self.left == 0 {
            self.regenerate();
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    fn regenerate(&mut self) {
        let twist = |u: u32, v: u32| -> u32 {
            let mixed = (u & UPPER_MASK) | (v & LOWER_MASK);
            (mixed >> 1) ^ if v & 1 == 1 { MATRIX_A } else { 0 }
        };
        for k in 0..STATE_N {
            let next = self.state[(k + 1) % STATE_N];
            self.state[k] = self.state[(k + STATE_M) % STATE_N] ^ twist(self.state[k], next);
        }
        self.left = STATE_N;
        self.next = 0;
    }
}

/// `torch.Generator("cpu")` state: the engine plus the cached second value of the scalar
/// (double) Box–Muller.
#[derive(Clone, Debug)]
pub struct TorchRng {
    engine: Mt19937,
    next_double_normal: Option<f64>,
}

impl TorchRng {
    /// `torch.Generator("cpu").manual_seed(seed)` (resets the cached normal sample too).
    pub fn new(seed: u64) -> Self {
        Self {
            engine: Mt19937::new(seed),
            next_double_normal: None,
        }
    }

    /// One 32-bit draw (`CPUGeneratorImpl::random`).
    pub fn random_u32(&mut self) -> u32 {
        self.engine.next_u32()
    }

    /// Two draws, the first in the high half (`CPUGeneratorImpl::random64`).
    pub fn random_u64(&mut self) -> u64 {
        let high = u64::from(self.engine.next_u32());
        let low = u64::from(self.engine.next_u32());
        (high << 32) | low
    }

    /// `uniform_real_distribution<float>(0, 1)`: 24 random bits scaled by 2⁻²⁴.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.random_u32() & 0x00ff_ffff) as f32 * (1.0 / 16_777_216.0)
    }

    /// `uniform_real_distribution<double>(0, 1)`: 53 random bits scaled by 2⁻⁵³.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.random_u64() & ((1u64 << 53) - 1)) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `at::normal_distribution<double>(0, 1)`: returns the cached value if there is one,
    /// otherwise draws two uniforms, returns `r cos θ` and caches `r sin θ`.
    pub fn normal_f64(&mut self) -> f64 {
        if let Some(cached) = self.next_double_normal.take() {
            return cached;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let radius = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.next_double_normal = Some(radius * theta.sin());
        radius * theta.cos()
    }

    /// `torch.randn(numel, generator=g)` in float32, bit for bit. The algorithm depends on
    /// `numel` (see the module docs), so drawing `[a]` then `[b]` is not the same as `[a + b]`.
    pub fn randn(&mut self, numel: usize) -> Vec<f32> {
        if numel < 16 {
            return (0..numel).map(|_| self.normal_f64() as f32).collect();
        }
        let mut data: Vec<f32> = (0..numel).map(|_| self.uniform_f32()).collect();
        for block in data.chunks_exact_mut(16) {
            normal_fill_16(block);
        }
        if !numel.is_multiple_of(16) {
            let tail = &mut data[numel - 16..];
            for slot in tail.iter_mut() {
                *slot = self.uniform_f32();
            }
            normal_fill_16(tail);
        }
        data
    }

    /// `torch.randn(shape, generator=g, dtype=torch.float32)` as a CPU tensor.
    pub fn randn_tensor(&mut self, shape: &[usize]) -> crate::Result<Tensor> {
        let numel = shape.iter().product();
        let values = self.randn(numel);
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    }
}

/// `NormalFill16<float>` (AVX2) on one block: lanes `j` and `j + 8` form a Box–Muller pair.
fn normal_fill_16(block: &mut [f32]) {
    // `_mm256_set1_ps(2.0f * c10::pi<double>)`: 2π in double, rounded to float.
    let two_pi = (2.0 * std::f64::consts::PI) as f32;
    for j in 0..8 {
        let u1 = 1.0 - block[j];
        let u2 = block[j + 8];
        let radius = (-2.0 * log_ps(u1)).sqrt();
        let (sin, cos) = sincos_ps(two_pi * u2);
        // `_mm256_fmadd_ps(n, std = 1, mean = 0)`: exact, but turns −0 into +0.
        block[j] = (radius * cos).mul_add(1.0, 0.0);
        block[j + 8] = (radius * sin).mul_add(1.0, 0.0);
    }
}

/// One lane of `log256_ps` (avx_mathfun.h) with the contractions of the shipped AVX2 build.
// The constants are spelled exactly as in avx_mathfun.h.
#[allow(clippy::excessive_precision)]
fn log_ps(x: f32) -> f32 {
    const SQRTHF: f32 = std::f32::consts::FRAC_1_SQRT_2; // 0.707106781186547524
    const P: [f32; 9] = [
        7.0376836292E-2,
        -1.1514610310E-1,
        1.1676998740E-1,
        -1.2420140846E-1,
        1.4249322787E-1,
        -1.6668057665E-1,
        2.0000714765E-1,
        -2.4999993993E-1,
        3.3333331174E-1,
    ];
    const Q1: f32 = -2.12194440e-4;
    const Q2: f32 = 0.693359375;
    const MIN_NORM_POS: f32 = f32::MIN_POSITIVE;

    let invalid = x <= 0.0;
    let x = x.max(MIN_NORM_POS);
    let bits = x.to_bits();
    let exponent = (bits >> 23) as i32 - 0x7f;
    let mut x = f32::from_bits((bits & !0x7f80_0000) | 0.5f32.to_bits());
    let mut e = exponent as f32 + 1.0;
    // if x < SQRTHF { e -= 1; x = x + x - 1 } else { x = x - 1 }
    let below = x < SQRTHF;
    let tmp = if below { x } else { 0.0 };
    x -= 1.0;
    e -= if below { 1.0 } else { 0.0 };
    x += tmp;

    let z = x * x;
    let mut y = P[0];
    for &p in &P[1..] {
        y = y.mul_add(x, p);
    }
    y *= x;
    y = y.mul_add(z, e * Q1);
    y = (-z).mul_add(0.5, y);
    x += y;
    x = e.mul_add(Q2, x);
    if invalid { f32::NAN } else { x }
}

/// One lane of `sincos256_ps` (avx_mathfun.h) with the contractions of the shipped AVX2
/// build. Returns `(sin, cos)`.
#[allow(clippy::excessive_precision)]
fn sincos_ps(x: f32) -> (f32, f32) {
    const FOPI: f32 = 1.27323954473516; // 4 / π
    const MINUS_DP1: f32 = -0.785_156_25;
    const MINUS_DP2: f32 = -2.4187564849853515625e-4;
    const MINUS_DP3: f32 = -3.77489497744594108e-8;
    const SINCOF: [f32; 3] = [-1.9515295891E-4, 8.3321608736E-3, -1.6666654611E-1];
    const COSCOF: [f32; 3] = [
        2.443315711809948E-005,
        -1.388731625493765E-003,
        4.166664568298827E-002,
    ];

    let sign_bit_sin = x.to_bits() & 0x8000_0000;
    let x = x.abs();
    // Truncating conversion (`cvttps2dq`); θ ∈ [0, 2π) keeps it in range.
    let mut j = (x * FOPI) as i32;
    j = (j + 1) & !1;
    let y = j as f32;
    let swap_sign_sin = ((j & 4) as u32) << 29;
    let poly_is_sin = (j & 2) == 0;
    let sign_bit_cos = ((!(j - 2) & 4) as u32) << 29;
    let sign_bit_sin = sign_bit_sin ^ swap_sign_sin;

    // Extended precision modular arithmetic: x = ((x - y·DP1) - y·DP2) - y·DP3, fused.
    let x = y.mul_add(MINUS_DP1, x);
    let x = y.mul_add(MINUS_DP2, x);
    let x = y.mul_add(MINUS_DP3, x);

    let z = x * x;
    let half_z = z * 0.5;
    let mut cos_poly = COSCOF[0].mul_add(z, COSCOF[1]);
    cos_poly = cos_poly.mul_add(z, COSCOF[2]);
    cos_poly *= z;
    cos_poly = cos_poly.mul_add(z, -half_z);
    cos_poly += 1.0;

    let mut sin_poly = SINCOF[0].mul_add(z, SINCOF[1]);
    sin_poly = sin_poly.mul_add(z, SINCOF[2]);
    sin_poly *= z;
    sin_poly = sin_poly.mul_add(x, x);

    let (sin, cos) = if poly_is_sin {
        (sin_poly, cos_poly)
    } else {
        (cos_poly, sin_poly)
    };
    (
        f32::from_bits(sin.to_bits() ^ sign_bit_sin),
        f32::from_bits(cos.to_bits() ^ sign_bit_cos),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_seed_0() {
        let mut mt = Mt19937::new(0);
        assert_eq!(mt.next_u32(), 2_357_136_044);
        assert_eq!(mt.next_u32(), 2_546_248_239);
        assert_eq!(mt.next_u32(), 3_071_714_933);
    }

    #[test]
    fn only_low_32_bits_of_seed_count() {
        let a = TorchRng::new((1u64 << 32) + 5).randn(100);
        let b = TorchRng::new(5).randn(100);
        assert_eq!(a, b);
    }

    #[test]
    fn golden_latents_seed_0_and_42() {
        // torch.randn((1, 4, 64, 64), generator=torch.Generator("cpu").manual_seed(seed))
        let first = |seed: u64, n: usize| TorchRng::new(seed).randn(4 * 64 * 64)[..n].to_vec();
        let seed0 = [
            -1.125_839_8f32,
            -1.152_360_2,
            -0.250_578_6,
            -0.433_878_8,
            0.848_710_4,
            0.692_009_2,
            -0.316_012_8,
            -2.115_219_4,
        ];
        let seed42 = [1.926_915_3f32, 1.487_284_1, 0.900_717_2, -2.105_521];
        for (got, want) in first(0, 8).iter().zip(seed0) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        for (got, want) in first(42, 4).iter().zip(seed42) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn golden_scalar_path_randn_5() {
        let got = TorchRng::new(0).randn(5);
        let want = [
            1.540_996_1f32,
            -0.293_428_9,
            -2.178_789_4,
            0.568_431_3,
            -1.084_522_4,
        ];
        for (got, want) in got.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn scalar_cache_persists_across_calls() {
        let mut rng = TorchRng::new(0);
        let mut split = rng.randn(3);
        split.extend(rng.randn(2));
        assert_eq!(split, TorchRng::new(0).randn(5));
    }

    #[test]
    fn randn_tensor_shape() {
        let t = TorchRng::new(0)
            .randn_tensor(&[1, 4, 8, 8])
            .expect("tensor");
        assert_eq!(t.dims(), &[1, 4, 8, 8]);
        let flat: Vec<f32> = t.flatten_all().expect("flat").to_vec1().expect("vec");
        assert_eq!(flat, TorchRng::new(0).randn(256));
    }

    /// Reads `tests/fixtures/refs/rng.safetensors` (tensors `seed{seed}_shape{a}x{b}…`, each
    /// `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))`), if present.
    #[test]
    fn matches_rng_fixture() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/refs/rng.safetensors");
        assert!(
            path.exists(),
            "missing committed fixture {}",
            path.display()
        );
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).expect("load fixture");
        let mut checked = 0;
        for (name, tensor) in &tensors {
            let Some((seed, shape)) = parse_fixture_name(name) else {
                continue;
            };
            assert_eq!(tensor.dims(), shape.as_slice(), "{name}");
            let want: Vec<f32> = tensor.flatten_all().expect("flat").to_vec1().expect("f32");
            let got = TorchRng::new(seed).randn(want.len());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{name}");
            checked += 1;
        }
        assert!(checked > 0, "no seed*_shape* tensors in {}", path.display());
        // `seq7_0` … `seq7_3`: one generator seeded 7 drawing randn(3), (5), (20), (1).
        let mut rng = TorchRng::new(7);
        for (i, n) in [3usize, 5, 20, 1].into_iter().enumerate() {
            let Some(tensor) = tensors.get(&format!("seq7_{i}")) else {
                continue;
            };
            let want: Vec<f32> = tensor.flatten_all().expect("flat").to_vec1().expect("f32");
            let got = rng.randn(n);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "seq7_{i}");
        }
    }

    fn parse_fixture_name(name: &str) -> Option<(u64, Vec<usize>)> {
        let rest = name.strip_prefix("seed")?;
        let (seed, shape) = rest.split_once("_shape")?;
        let shape = shape
            .split('x')
            .map(|d| d.parse().ok())
            .collect::<Option<Vec<usize>>>()?;
        Some((seed.parse().ok()?, shape))
    }
}
