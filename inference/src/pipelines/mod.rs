//! Pipelines: each a function of a Recipe.
