//! Torch-compatible CPU RNG: mt19937 and `torch.randn` float32 sampling.
