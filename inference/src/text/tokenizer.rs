//! CLIP byte-level BPE tokenizer.
