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
