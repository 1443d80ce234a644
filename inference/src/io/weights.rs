//! Memory-mapped safetensors weights behind a candle `VarBuilder`.
