pub use kiln_inference;
