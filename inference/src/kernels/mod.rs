//! Numerical kernels candle lacks or does slowly.
