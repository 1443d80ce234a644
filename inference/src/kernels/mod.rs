//! Numerical kernels candle lacks or does slowly, each with a test against the plain version.

pub mod attention;
pub mod bf16;
pub mod conv;
pub mod elementwise;
pub mod linear;
pub mod norm;

use std::cell::Cell;

/// How Linear and Conv2d layers store and multiply their weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights, f32 matmul (the parity path).
    #[default]
    F32,
    /// Weights packed once as bf16, bf16 products summed in f32 (AVX512-BF16 when present);
    /// activations stay f32.
    Bf16,
    /// Weights stored as int8 with one scale per output channel (half of bf16), dequantized to
    /// bf16 for each product; compute as [`Precision::Bf16`].
    Int8,
}

impl Precision {
    /// Whether Linear and Conv2d weights are packed for the bf16 kernels (bf16 or int8).
    pub fn packs(self) -> bool {
        self != Precision::F32
    }

    /// The name the CLI and recipes use: `fp32`, `bf16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

thread_local! {
    static WEIGHTS: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// Runs `build` with layers constructed in it storing their weights in `precision` (the
/// setting is per thread and restored afterwards, also on error).
pub fn with_precision<T>(precision: Precision, build: impl FnOnce() -> T) -> T {
    struct Restore(Precision);
    impl Drop for Restore {
        fn drop(&mut self) {
            WEIGHTS.with(|w| w.set(self.0));
        }
    }
    let _restore = Restore(WEIGHTS.with(|w| w.replace(precision)));
    build()
}

/// Builds rayon's global pool (which candle's kernels and Kiln's share) with worker `i` pinned
/// to the `i`-th CPU this process may run on, so a worker keeps its caches and its half of a
/// product's panels (Linux; elsewhere, or with `KILN_PIN_THREADS=0`, the pool is rayon's
/// default). The worker count is `RAYON_NUM_THREADS` or every allowed CPU. Call once, before
/// any parallel work; returns whether the workers were pinned.
pub fn pin_threads() -> bool {
    if std::env::var("KILN_PIN_THREADS").is_ok_and(|v| v == "0") {
        return false;
    }
    let cpus = allowed_cpus();
    if cpus.is_empty() {
        return false;
    }
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(cpus.len());
    let pinned = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(move |i| pin_current_thread(cpus[i % cpus.len()]))
        .build_global();
    pinned.is_ok()
}

/// The CPUs this process may run on (empty where unknown).
#[cfg(target_os = "linux")]
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bit set written by the kernel; its size is passed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

#[cfg(target_os = "linux")]
fn pin_current_thread(cpu: usize) {
    // SAFETY: a zeroed set with one bit set, its size passed; 0 = the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        // Best effort: an unpinned worker still computes correctly.
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_current_thread(_cpu: usize) {}

/// The weight precision layers built now should use.
pub fn weight_precision() -> Precision {
    WEIGHTS.with(Cell::get)
}

/// Runs `f` on the values of an f32 CPU tensor: its storage when contiguous (no copy), a
/// contiguous copy otherwise.
pub(crate) fn with_f32<T>(
    x: &candle_core::Tensor,
    f: impl FnOnce(&[f32]) -> T,
) -> candle_core::Result<T> {
    {
        let (storage, layout) = x.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
            && let Ok(all) = cpu.as_slice::<f32>()
            && let Some(values) = all.get(start..end)
        {
            return Ok(f(values));
        }
    }
    let values: Vec<f32> = x.flatten_all()?.to_vec1()?;
    Ok(f(&values))
}
