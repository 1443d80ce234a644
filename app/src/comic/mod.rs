//! Comic pages (issue 10): story scripts, page layout with lettering, and page export.

pub mod edit;
pub mod export;
pub mod layout;
mod paint;
pub mod script;
pub mod story;
pub mod text;
