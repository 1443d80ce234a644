//! Numerical kernels candle lacks or does slowly, each with a test against the plain version.

pub mod attention;
pub mod conv;
pub mod norm;
