//! The kernels the pipelines need, in WGSL (f32): matrix product, convolution, group and layer
//! normalisation, attention with an online softmax, element-wise operations, nearest upsampling
//! and transposition. Each is checked against the CPU implementation in the tests below.

use super::{Gpu, GpuTensor, groups_for};
use crate::{Error, Result};

/// Threads per workgroup of the one-dimensional kernels.
const WG: usize = 64;

const MATMUL: &str = r#"
struct P { m: u32, n: u32, k: u32, has_bias: u32, a_stride: u32, b_stride: u32, c_stride: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(6) var<uniform> p: P;
var<workgroup> ta: array<f32, 256>;
var<workgroup> tb: array<f32, 256>;

// C[z] = A[z] · B[z]ᵀ (+ bias): A [m, k], B [n, k] (a Linear weight), C [m, n].
@compute @workgroup_size(16, 16)
fn matmul(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) g: vec3<u32>) {
    let row = g.y * 16u + l.y;
    let col = g.x * 16u + l.x;
    let a0 = g.z * p.a_stride;
    let b0 = g.z * p.b_stride;
    var acc = 0.0;
    for (var t = 0u; t < p.k; t = t + 16u) {
        var va = 0.0;
        if (row < p.m && t + l.x < p.k) { va = a[a0 + row * p.k + t + l.x]; }
        ta[l.y * 16u + l.x] = va;
        let brow = g.x * 16u + l.y;
        var vb = 0.0;
        if (brow < p.n && t + l.x < p.k) { vb = b[b0 + brow * p.k + t + l.x]; }
        tb[l.y * 16u + l.x] = vb;
        workgroupBarrier();
        for (var i = 0u; i < 16u; i = i + 1u) {
            acc = acc + ta[l.y * 16u + i] * tb[l.x * 16u + i];
        }
        workgroupBarrier();
    }
    if (row < p.m && col < p.n) {
        if (p.has_bias == 1u) { acc = acc + bias[col]; }
        c[g.z * p.c_stride + row * p.n + col] = acc;
    }
}
"#;

const CONV2D: &str = r#"
struct P { batch: u32, cin: u32, h: u32, w: u32, cout: u32, ho: u32, wo: u32, k: u32,
           stride: u32, pad: u32, has_bias: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> wt: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: P;

// y [B, O, Ho, Wo] = conv(x [B, C, H, W], w [O, C, k, k]) + bias, zero padding.
@compute @workgroup_size(64)
fn conv2d(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.x + gid.y * 65535u * 64u;
    let total = p.batch * p.cout * p.ho * p.wo;
    if (id >= total) { return; }
    let ox = id % p.wo;
    let oy = (id / p.wo) % p.ho;
    let o = (id / (p.wo * p.ho)) % p.cout;
    let bi = id / (p.wo * p.ho * p.cout);
    var acc = 0.0;
    if (p.has_bias == 1u) { acc = bias[o]; }
    for (var c = 0u; c < p.cin; c = c + 1u) {
        let xbase = (bi * p.cin + c) * p.h * p.w;
        let wbase = (o * p.cin + c) * p.k * p.k;
        for (var ky = 0u; ky < p.k; ky = ky + 1u) {
            let iy = i32(oy * p.stride + ky) - i32(p.pad);
            if (iy < 0 || iy >= i32(p.h)) { continue; }
            for (var kx = 0u; kx < p.k; kx = kx + 1u) {
                let ix = i32(ox * p.stride + kx) - i32(p.pad);
                if (ix < 0 || ix >= i32(p.w)) { continue; }
                acc = acc + x[xbase + u32(iy) * p.w + u32(ix)] * wt[wbase + ky * p.k + kx];
            }
        }
    }
    y[id] = acc;
}
"#;

const NORM: &str = r#"
struct P { groups: u32, per_group: u32, channels_per_group: u32, plane: u32, eps: u32, silu: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: P;
var<workgroup> partial: array<f32, 256>;

fn reduce(l: u32) -> f32 {
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (l < s) { partial[l] = partial[l] + partial[l + s]; }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// One workgroup per group of `per_group` consecutive values (GroupNorm: channels_per_group
// channels of `plane` values; LayerNorm: one row, channels_per_group = per_group, plane = 1).
// Two passes (mean, then variance) as torch computes them; optional SiLU after the affine.
@compute @workgroup_size(256)
fn norm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) g: vec3<u32>) {
    let l = lid.x;
    let group = g.x + g.y * 65535u;
    if (group >= p.groups) { return; }
    let base = group * p.per_group;
    var s = 0.0;
    for (var i = l; i < p.per_group; i = i + 256u) { s = s + x[base + i]; }
    partial[l] = s;
    let mean = reduce(l) / f32(p.per_group);
    var v = 0.0;
    for (var i = l; i < p.per_group; i = i + 256u) { let d = x[base + i] - mean; v = v + d * d; }
    partial[l] = v;
    let variance = reduce(l) / f32(p.per_group);
    let inv = inverseSqrt(variance + bitcast<f32>(p.eps));
    // Channel of value i: the group's first channel + i / plane, modulo the channel count
    // (groups of every sample are numbered one after the other).
    let channels = arrayLength(&gamma);
    for (var i = l; i < p.per_group; i = i + 256u) {
        let channel = (group * p.channels_per_group + i / p.plane) % channels;
        var out = (x[base + i] - mean) * inv;
        out = out * gamma[channel] + beta[channel];
        if (p.silu == 1u) { out = out / (1.0 + exp(-out)); }
        y[base + i] = out;
    }
}
"#;

const ATTENTION: &str = r#"
struct P { heads: u32, n: u32, m: u32, d: u32, scale: u32 }
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(6) var<uniform> p: P;

// o = softmax(q kᵀ · scale) v per head: q [H, n, d], k and v [H, m, d]; one query per thread,
// an online softmax over the keys (the n × m score matrix never exists). d ≤ 256.
@compute @workgroup_size(64)
fn attention(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.x + gid.y * 65535u * 64u;
    if (id >= p.heads * p.n) { return; }
    let h = id / p.n;
    let qb = id * p.d;
    let kb = h * p.m * p.d;
    let scale = bitcast<f32>(p.scale);
    var acc: array<f32, 256>;
    for (var j = 0u; j < p.d; j = j + 1u) { acc[j] = 0.0; }
    var running_max = -3.0e38;
    var sum = 0.0;
    for (var t = 0u; t < p.m; t = t + 1u) {
        var s = 0.0;
        for (var j = 0u; j < p.d; j = j + 1u) { s = s + q[qb + j] * k[kb + t * p.d + j]; }
        s = s * scale;
        let new_max = max(running_max, s);
        let correction = exp(running_max - new_max);
        let w = exp(s - new_max);
        sum = sum * correction + w;
        for (var j = 0u; j < p.d; j = j + 1u) {
            acc[j] = acc[j] * correction + w * v[kb + t * p.d + j];
        }
        running_max = new_max;
    }
    for (var j = 0u; j < p.d; j = j + 1u) { o[qb + j] = acc[j] / sum; }
}
"#;

const ELEMENTWISE: &str = r#"
struct P { n: u32, op: u32, b_inner: u32, b_len: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: P;

// Channel concatenation: y [B, c1 + c2, plane] = [a [B, c1, plane], b [B, c2, plane]]
// (b_inner = c1, b_len = c2, op = plane).
@compute @workgroup_size(64)
fn concat(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) { return; }
    let plane = p.op;
    let c = p.b_inner + p.b_len;
    let pix = i % plane;
    let ch = (i / plane) % c;
    let bi = i / (plane * c);
    if (ch < p.b_inner) {
        y[i] = a[(bi * p.b_inner + ch) * plane + pix];
    } else {
        y[i] = b[(bi * p.b_len + ch - p.b_inner) * plane + pix];
    }
}

// y = a (op) b, b broadcast as b[(i / b_inner) % b_len]: op 0 add, 1 multiply.
@compute @workgroup_size(64)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) { return; }
    let bv = b[(i / p.b_inner) % p.b_len];
    if (p.op == 0u) { y[i] = a[i] + bv; } else { y[i] = a[i] * bv; }
}
"#;

const UNARY: &str = r#"
struct P { n: u32, op: u32, inner: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: P;

fn erf(x: f32) -> f32 {
    // Abramowitz–Stegun 7.1.26 refined by one Newton step is not needed: |error| < 1.5e-7.
    let s = sign(x);
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-a * a));
}

// op 0 SiLU, 1 GELU (erf), 2 quick GELU (x·σ(1.702x)); op 3 GEGLU: rows of 2·inner values
// become inner values, first half · GELU(second half).
@compute @workgroup_size(64)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) { return; }
    if (p.op == 3u) {
        let row = i / p.inner;
        let col = i % p.inner;
        let h = a[row * 2u * p.inner + col];
        let g = a[row * 2u * p.inner + p.inner + col];
        y[i] = h * 0.5 * g * (1.0 + erf(g * 0.70710678118654752));
        return;
    }
    let x = a[i];
    if (p.op == 0u) { y[i] = x / (1.0 + exp(-x)); }
    else if (p.op == 1u) { y[i] = 0.5 * x * (1.0 + erf(x * 0.70710678118654752)); }
    else { y[i] = x / (1.0 + exp(-1.702 * x)); }
}
"#;

const LAYOUT: &str = r#"
struct P { n: u32, op: u32, d0: u32, d1: u32, d2: u32, d3: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: P;

// op 0: nearest 2× upsampling of planes d1 × d2 (n = output values);
// op 1: transpose of [d0, d1, d2] to [d0, d2, d1];
// op 2: [d0, d1, d2, d3] to [d0, d2, d1, d3] (attention heads split or merged).
@compute @workgroup_size(64)
fn relayout(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) { return; }
    if (p.op == 0u) {
        let ow = 2u * p.d2;
        let ox = i % ow;
        let oy = (i / ow) % (2u * p.d1);
        let plane = i / (ow * 2u * p.d1);
        y[i] = a[(plane * p.d1 + oy / 2u) * p.d2 + ox / 2u];
    } else if (p.op == 1u) {
        let r = i % p.d1;
        let c = (i / p.d1) % p.d2;
        let b = i / (p.d1 * p.d2);
        y[i] = a[(b * p.d1 + r) * p.d2 + c];
    } else {
        // Output index over [d0, d2, d1, d3].
        let e = i % p.d3;
        let j1 = (i / p.d3) % p.d1;
        let j2 = (i / (p.d3 * p.d1)) % p.d2;
        let b = i / (p.d3 * p.d1 * p.d2);
        y[i] = a[((b * p.d1 + j1) * p.d2 + j2) * p.d3 + e];
    }
}
"#;

fn dims<const N: usize>(t: &GpuTensor, what: &str) -> Result<[usize; N]> {
    t.shape().try_into().map_err(|_| {
        Error::InvalidArgument(format!(
            "{what}: expected {N} dimensions, got {:?}",
            t.shape()
        ))
    })
}

fn u(x: usize) -> u32 {
    x as u32
}

impl Gpu {
    /// `x [.., K] · Wᵀ + bias` with `w [N, K]` (a Linear layer).
    pub fn linear(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
    ) -> Result<GpuTensor> {
        let [n, k] = dims::<2>(w, "linear weight")?;
        let in_k = x.shape().last().copied().unwrap_or(0);
        if in_k != k || bias.is_some_and(|b| b.len() != n) {
            return Err(Error::InvalidArgument(format!(
                "linear: input {:?}, weight {:?}",
                x.shape(),
                w.shape()
            )));
        }
        let m = x.len() / k.max(1);
        let mut shape = x.shape().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        let out = self.empty(&shape)?;
        let bias_buf = bias.unwrap_or(w);
        self.dispatch(
            (MATMUL, "matmul"),
            &[x, w, bias_buf],
            &out,
            &[u(m), u(n), u(k), u32::from(bias.is_some()), 0, 0, 0],
            (u(n.div_ceil(16)), u(m.div_ceil(16)), 1),
        )?;
        Ok(out)
    }

    /// 2-D convolution of `x [B, C, H, W]` with `w [O, C, k, k]`, zero padding.
    pub fn conv2d(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        stride: usize,
        pad: usize,
    ) -> Result<GpuTensor> {
        let [b, c, h, wd] = dims::<4>(x, "conv2d input")?;
        let [o, wc, k, k2] = dims::<4>(w, "conv2d weight")?;
        if wc != c || k != k2 || stride == 0 || bias.is_some_and(|t| t.len() != o) {
            return Err(Error::InvalidArgument(format!(
                "conv2d: input {:?}, weight {:?}",
                x.shape(),
                w.shape()
            )));
        }
        let (ho, wo) = (
            (h + 2 * pad - k) / stride + 1,
            (wd + 2 * pad - k) / stride + 1,
        );
        let out = self.empty(&[b, o, ho, wo])?;
        self.dispatch(
            (CONV2D, "conv2d"),
            &[x, w, bias.unwrap_or(w)],
            &out,
            &[
                u(b),
                u(c),
                u(h),
                u(wd),
                u(o),
                u(ho),
                u(wo),
                u(k),
                u(stride),
                u(pad),
                u32::from(bias.is_some()),
            ],
            groups_for(out.len(), WG),
        )?;
        Ok(out)
    }

    /// GroupNorm of `x [B, C, H, W]` (or `[B, C, L]`) with `groups` groups, then SiLU when
    /// `silu`.
    pub fn group_norm(
        &self,
        x: &GpuTensor,
        groups: usize,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        eps: f32,
        silu: bool,
    ) -> Result<GpuTensor> {
        let shape = x.shape();
        let (b, c) = match shape {
            [b, c, ..] => (*b, *c),
            _ => return Err(Error::InvalidArgument("group_norm needs [B, C, …]".into())),
        };
        if groups == 0 || c % groups != 0 || gamma.len() != c || beta.len() != c {
            return Err(Error::InvalidArgument(format!(
                "group_norm: {c} channels in {groups} groups"
            )));
        }
        let plane = x.len() / (b * c).max(1);
        let out = self.empty(shape)?;
        self.norm(
            x,
            gamma,
            beta,
            &out,
            (b * groups, c / groups, plane),
            eps,
            silu,
        )?;
        Ok(out)
    }

    /// LayerNorm over the last dimension.
    pub fn layer_norm(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        eps: f32,
    ) -> Result<GpuTensor> {
        let d = x.shape().last().copied().unwrap_or(0);
        if gamma.len() != d || beta.len() != d || d == 0 {
            return Err(Error::InvalidArgument("layer_norm: weight size".into()));
        }
        let out = self.empty(x.shape())?;
        self.norm(x, gamma, beta, &out, (x.len() / d, d, 1), eps, false)?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn norm(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        out: &GpuTensor,
        (count, channels_per_group, plane): (usize, usize, usize),
        eps: f32,
        silu: bool,
    ) -> Result<()> {
        let (gx, gy, _) = groups_for(count, 1);
        self.dispatch(
            (NORM, "norm"),
            &[x, gamma, beta],
            out,
            &[
                u(count),
                u(channels_per_group * plane),
                u(channels_per_group),
                u(plane),
                eps.to_bits(),
                u32::from(silu),
            ],
            (gx, gy, 1),
        )
    }

    /// `softmax(q kᵀ · scale) v` for `q [H, n, d]`, `k`, `v [H, m, d]` (heads flattened into
    /// the first dimension; d ≤ 256).
    pub fn attention(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        scale: f32,
    ) -> Result<GpuTensor> {
        let [h, n, d] = dims::<3>(q, "attention q")?;
        let [hk, m, dk] = dims::<3>(k, "attention k")?;
        if hk != h || dk != d || v.shape() != k.shape() || d > 256 {
            return Err(Error::InvalidArgument(format!(
                "attention: q {:?}, k {:?}, v {:?}",
                q.shape(),
                k.shape(),
                v.shape()
            )));
        }
        let out = self.empty(&[h, n, d])?;
        self.dispatch(
            (ATTENTION, "attention"),
            &[q, k, v],
            &out,
            &[u(h), u(n), u(m), u(d), scale.to_bits()],
            groups_for(h * n, WG),
        )?;
        Ok(out)
    }

    fn binary(&self, a: &GpuTensor, b: &GpuTensor, op: u32, b_inner: usize) -> Result<GpuTensor> {
        if b.is_empty() || b_inner == 0 {
            return Err(Error::InvalidArgument("empty operand".into()));
        }
        let out = self.empty(a.shape())?;
        self.dispatch(
            (ELEMENTWISE, "binary"),
            &[a, b],
            &out,
            &[u(a.len()), op, u(b_inner), u(b.len())],
            groups_for(a.len(), WG),
        )?;
        Ok(out)
    }

    /// `a + b` (same shape).
    pub fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        if a.shape() != b.shape() {
            return Err(Error::InvalidArgument(format!(
                "add: {:?} and {:?}",
                a.shape(),
                b.shape()
            )));
        }
        self.binary(a, b, 0, 1)
    }

    /// `a + b` over the channels of `a [B, C, …]`: `b` holds one value per channel (C) or per
    /// sample and channel (`[B, C]`, as a time embedding projected per resnet).
    pub fn add_per_channel(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        let c = a.shape().get(1).copied().unwrap_or(0);
        if b.len() != c && b.len() != c * a.shape()[0] {
            return Err(Error::InvalidArgument("add_per_channel: size".into()));
        }
        let inner = a.len() / (a.shape()[0] * c).max(1);
        self.binary(a, b, 0, inner)
    }

    /// `[a, b]` along the channels of `[B, C, …]` tensors.
    pub fn concat_channels(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        let (sa, sb) = (a.shape(), b.shape());
        if sa.len() < 2 || sa.len() != sb.len() || sa[0] != sb[0] || sa[2..] != sb[2..] {
            return Err(Error::InvalidArgument(format!("concat: {sa:?} and {sb:?}")));
        }
        let plane: usize = sa[2..].iter().product();
        let mut shape = sa.to_vec();
        shape[1] = sa[1] + sb[1];
        let out = self.empty(&shape)?;
        self.dispatch(
            (ELEMENTWISE, "concat"),
            &[a, b],
            &out,
            &[u(out.len()), u(plane), u(sa[1]), u(sb[1])],
            groups_for(out.len(), WG),
        )?;
        Ok(out)
    }

    /// GEGLU: the last dimension `2·inner` becomes `inner`: first half · GELU(second half).
    pub fn geglu(&self, a: &GpuTensor) -> Result<GpuTensor> {
        let last = a.shape().last().copied().unwrap_or(0);
        if last % 2 != 0 || last == 0 {
            return Err(Error::InvalidArgument("geglu: odd width".into()));
        }
        let mut shape = a.shape().to_vec();
        if let Some(l) = shape.last_mut() {
            *l = last / 2;
        }
        let out = self.empty(&shape)?;
        self.dispatch(
            (UNARY, "unary"),
            &[a],
            &out,
            &[u(out.len()), 3, u(last / 2)],
            groups_for(out.len(), WG),
        )?;
        Ok(out)
    }

    /// `[B, N, H, d]` → `[B, H, N, d]` (and back): attention heads split or merged.
    pub fn swap_middle(&self, a: &GpuTensor) -> Result<GpuTensor> {
        let [b, n, h, d] = dims::<4>(a, "swap_middle")?;
        let out = self.empty(&[b, h, n, d])?;
        self.dispatch(
            (LAYOUT, "relayout"),
            &[a],
            &out,
            &[u(out.len()), 2, u(b), u(n), u(h), u(d)],
            groups_for(out.len(), WG),
        )?;
        Ok(out)
    }

    /// `a · b` (same shape).
    pub fn mul(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        if a.shape() != b.shape() {
            return Err(Error::InvalidArgument("mul: shapes differ".into()));
        }
        self.binary(a, b, 1, 1)
    }

    fn unary(&self, a: &GpuTensor, op: u32) -> Result<GpuTensor> {
        let out = self.empty(a.shape())?;
        self.dispatch(
            (UNARY, "unary"),
            &[a],
            &out,
            &[u(a.len()), op, 0],
            groups_for(a.len(), WG),
        )?;
        Ok(out)
    }

    /// SiLU.
    pub fn silu(&self, a: &GpuTensor) -> Result<GpuTensor> {
        self.unary(a, 0)
    }

    /// GELU (erf form).
    pub fn gelu(&self, a: &GpuTensor) -> Result<GpuTensor> {
        self.unary(a, 1)
    }

    /// Nearest-neighbour 2× upsampling of `[.., H, W]`.
    pub fn upsample2x(&self, a: &GpuTensor) -> Result<GpuTensor> {
        let s = a.shape();
        let (h, w) = match s {
            [.., h, w] => (*h, *w),
            _ => return Err(Error::InvalidArgument("upsample needs [.., H, W]".into())),
        };
        let mut shape = s.to_vec();
        let r = shape.len();
        shape[r - 2] = 2 * h;
        shape[r - 1] = 2 * w;
        let out = self.empty(&shape)?;
        self.dispatch(
            (LAYOUT, "relayout"),
            &[a],
            &out,
            &[u(out.len()), 0, 0, u(h), u(w), 0],
            groups_for(out.len(), WG),
        )?;
        Ok(out)
    }

    /// `[B, R, C]` → `[B, C, R]`.
    pub fn transpose(&self, a: &GpuTensor) -> Result<GpuTensor> {
        let [b, r, c] = dims::<3>(a, "transpose")?;
        let out = self.empty(&[b, c, r])?;
        self.dispatch(
            (LAYOUT, "relayout"),
            &[a],
            &out,
            &[u(out.len()), 1, u(b), u(r), u(c), 0],
            groups_for(out.len(), WG),
        )?;
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{Device, Tensor};

    /// The GPU of the tests: lavapipe in CI (installed by `scripts/install-ui-test-deps.sh`).
    pub(crate) fn gpu() -> Gpu {
        Gpu::new().expect("a wgpu adapter (Mesa lavapipe: apt install mesa-vulkan-drivers)")
    }

    pub(crate) fn values(len: usize, seed: u32) -> Vec<f32> {
        crate::kernels::bf16::tests::values(len, seed)
    }

    fn up(gpu: &Gpu, t: &Tensor) -> GpuTensor {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        gpu.upload(&v, t.dims()).unwrap()
    }

    fn close(gpu: &Gpu, got: &GpuTensor, want: &Tensor, tol: f32) {
        assert_eq!(got.shape(), want.dims());
        let got = gpu.download(got).unwrap();
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
            .fold(0f32, f32::max);
        assert!(worst <= tol, "differs by {worst}");
    }

    fn t(shape: &[usize], seed: u32) -> Tensor {
        Tensor::from_vec(values(shape.iter().product(), seed), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn kernels_match_the_cpu() {
        let gpu = gpu();
        eprintln!("adapter: {}", gpu.adapter_name());
        // Linear, with and without bias, odd sizes.
        let x = t(&[2, 37, 45], 1);
        let w = t(&[19, 45], 2);
        let b = t(&[19], 3);
        let want = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        close(
            &gpu,
            &gpu.linear(&up(&gpu, &x), &up(&gpu, &w), None).unwrap(),
            &want,
            1e-5,
        );
        let want = want.broadcast_add(&b).unwrap();
        let got = gpu
            .linear(&up(&gpu, &x), &up(&gpu, &w), Some(&up(&gpu, &b)))
            .unwrap();
        close(&gpu, &got, &want, 1e-5);
        // Convolutions: 3×3 pad 1, 3×3 stride 2 pad 0, 1×1.
        let x = t(&[2, 5, 9, 7], 4);
        for (k, stride, pad) in [(3, 1, 1), (3, 2, 0), (1, 1, 0)] {
            let w = t(&[6, 5, k, k], 5);
            let b = t(&[6], 6);
            let want = x
                .conv2d(&w, pad, stride, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, 6, 1, 1)).unwrap())
                .unwrap();
            let got = gpu
                .conv2d(
                    &up(&gpu, &x),
                    &up(&gpu, &w),
                    Some(&up(&gpu, &b)),
                    stride,
                    pad,
                )
                .unwrap();
            close(&gpu, &got, &want, 1e-5);
        }
        // GroupNorm (+SiLU) and LayerNorm against candle-nn.
        let x = t(&[2, 8, 5, 3], 7).affine(3.0, 1.0).unwrap();
        let gamma = t(&[8], 8);
        let beta = t(&[8], 9);
        let gn = candle_nn::GroupNorm::new(gamma.clone(), beta.clone(), 8, 4, 1e-6).unwrap();
        let want = candle_core::Module::forward(&gn, &x).unwrap();
        let got = gpu
            .group_norm(
                &up(&gpu, &x),
                4,
                &up(&gpu, &gamma),
                &up(&gpu, &beta),
                1e-6,
                false,
            )
            .unwrap();
        close(&gpu, &got, &want, 1e-5);
        let got = gpu
            .group_norm(
                &up(&gpu, &x),
                4,
                &up(&gpu, &gamma),
                &up(&gpu, &beta),
                1e-6,
                true,
            )
            .unwrap();
        close(&gpu, &got, &candle_nn::ops::silu(&want).unwrap(), 1e-5);
        let x = (t(&[3, 4, 10], 10) * 2.0).unwrap();
        let (g, b) = (t(&[10], 11), t(&[10], 12));
        let ln = candle_nn::LayerNorm::new(g.clone(), b.clone(), 1e-5);
        let want = candle_core::Module::forward(&ln, &x).unwrap();
        close(
            &gpu,
            &gpu.layer_norm(&up(&gpu, &x), &up(&gpu, &g), &up(&gpu, &b), 1e-5)
                .unwrap(),
            &want,
            1e-5,
        );
        // Attention against softmax(q kᵀ s) v.
        let (q, k, v) = (t(&[3, 11, 8], 13), t(&[3, 17, 8], 14), t(&[3, 17, 8], 15));
        let scores = (q.matmul(&k.t().unwrap()).unwrap() * 0.35).unwrap();
        let want = candle_nn::ops::softmax_last_dim(&scores)
            .unwrap()
            .matmul(&v)
            .unwrap();
        let got = gpu
            .attention(&up(&gpu, &q), &up(&gpu, &k), &up(&gpu, &v), 0.35)
            .unwrap();
        close(&gpu, &got, &want, 1e-5);
        // Element-wise, upsampling, transposition.
        let (a, b) = (t(&[2, 3, 4, 5], 16), t(&[2, 3, 4, 5], 17));
        close(
            &gpu,
            &gpu.add(&up(&gpu, &a), &up(&gpu, &b)).unwrap(),
            &(&a + &b).unwrap(),
            1e-6,
        );
        close(
            &gpu,
            &gpu.mul(&up(&gpu, &a), &up(&gpu, &b)).unwrap(),
            &(&a * &b).unwrap(),
            1e-6,
        );
        let c = t(&[3], 18);
        let want = a.broadcast_add(&c.reshape((1, 3, 1, 1)).unwrap()).unwrap();
        close(
            &gpu,
            &gpu.add_per_channel(&up(&gpu, &a), &up(&gpu, &c)).unwrap(),
            &want,
            1e-6,
        );
        let big = (&a * 6.0).unwrap();
        close(
            &gpu,
            &gpu.silu(&up(&gpu, &big)).unwrap(),
            &candle_nn::ops::silu(&big).unwrap(),
            1e-5,
        );
        close(
            &gpu,
            &gpu.gelu(&up(&gpu, &big)).unwrap(),
            &big.gelu_erf().unwrap(),
            1e-5,
        );
        close(
            &gpu,
            &gpu.upsample2x(&up(&gpu, &a)).unwrap(),
            &a.upsample_nearest2d(8, 10).unwrap(),
            0.0,
        );
        let x4 = t(&[2, 5, 3, 4], 20);
        close(
            &gpu,
            &gpu.swap_middle(&up(&gpu, &x4)).unwrap(),
            &x4.transpose(1, 2).unwrap().contiguous().unwrap(),
            0.0,
        );
        let (c1, c2) = (t(&[2, 3, 4, 5], 21), t(&[2, 2, 4, 5], 22));
        close(
            &gpu,
            &gpu.concat_channels(&up(&gpu, &c1), &up(&gpu, &c2)).unwrap(),
            &Tensor::cat(&[&c1, &c2], 1).unwrap(),
            0.0,
        );
        let g = (t(&[2, 3, 8], 23) * 4.0).unwrap();
        let want =
            (g.narrow(2, 0, 4).unwrap() * g.narrow(2, 4, 4).unwrap().gelu_erf().unwrap()).unwrap();
        close(&gpu, &gpu.geglu(&up(&gpu, &g)).unwrap(), &want, 1e-5);
        let bc = t(&[2, 3], 24);
        let want = a.broadcast_add(&bc.reshape((2, 3, 1, 1)).unwrap()).unwrap();
        close(
            &gpu,
            &gpu.add_per_channel(&up(&gpu, &a), &up(&gpu, &bc)).unwrap(),
            &want,
            1e-6,
        );
        let m = t(&[2, 6, 7], 19);
        close(
            &gpu,
            &gpu.transpose(&up(&gpu, &m)).unwrap(),
            &m.transpose(1, 2).unwrap().contiguous().unwrap(),
            0.0,
        );
    }

    #[test]
    fn bad_shapes_are_errors_not_device_losses() {
        let gpu = gpu();
        let a = gpu.upload(&values(6, 1), &[2, 3]).unwrap();
        let w = gpu.upload(&values(8, 2), &[2, 4]).unwrap();
        assert!(gpu.linear(&a, &w, None).is_err());
        assert!(gpu.upload(&values(5, 1), &[2, 3]).is_err());
        assert!(a.reshape(&[4, 2]).is_err());
        let x = gpu
            .upload(&values(2 * 3 * 4 * 4, 3), &[2, 3, 4, 4])
            .unwrap();
        let g = gpu.upload(&values(3, 4), &[3]).unwrap();
        assert!(gpu.group_norm(&x, 2, &g, &g, 1e-5, false).is_err());
    }
}
