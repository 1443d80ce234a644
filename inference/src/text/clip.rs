//! CLIP text encoders (CLIP-L, OpenCLIP-H/bigG in HF layout).
