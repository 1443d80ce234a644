//! Text side: CLIP BPE tokenizer, A1111 prompt syntax, CLIP text encoders.

pub mod clip;
pub mod prompt;
pub mod tokenizer;
