//! AutoencoderKL (VAE) encode and decode.
