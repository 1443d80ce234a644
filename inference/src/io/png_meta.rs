//! PNG metadata: A1111 `parameters` text and the Kiln recipe chunk.
