//! A1111 prompt syntax: attention weights, BREAK, LoRA tags and 75-token chunks.
