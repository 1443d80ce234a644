//! Where the InstantID files are in the model folders (shared by `kiln generate --face` and
//! the Portrait section), and whether the adapter still needs its one-time conversion.

use kiln_inference::adapters::instantid::{ADAPTER_FILE, ADAPTER_PICKLE, CONTROLNET_DIR};
use std::path::{Path, PathBuf};

/// Whether `dir` is an InstantID folder (converted or not).
pub fn is_instantid_dir(dir: &Path) -> bool {
    dir.join(CONTROLNET_DIR).is_dir()
        && (dir.join(ADAPTER_FILE).is_file() || dir.join(ADAPTER_PICKLE).is_file())
}

/// An InstantID folder in the model folders: the folder itself, `InstantID`/`instantid` in it,
/// or a sub-folder of it or of its `instantid/` (where the model manager installs the catalog's
/// `instantid`). Call off the UI thread.
pub fn find_instantid(model_dirs: &[PathBuf]) -> Option<PathBuf> {
    let children = |dir: &Path| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        found.sort();
        found
    };
    model_dirs.iter().find_map(|dir| {
        [dir.clone(), dir.join("InstantID"), dir.join("instantid")]
            .into_iter()
            .chain(children(dir))
            .chain(children(&dir.join("instantid")))
            .find(|d| is_instantid_dir(d))
    })
}

/// The pickle of an InstantID folder that has not been converted yet (`ip-adapter.bin` without
/// `ip-adapter.safetensors`).
pub fn unconverted_adapter(dir: &Path) -> Option<PathBuf> {
    let pickle = dir.join(ADAPTER_PICKLE);
    (pickle.is_file() && !dir.join(ADAPTER_FILE).is_file()).then_some(pickle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
    use super::*;

    #[test]
    fn finds_the_folder_and_its_unconverted_adapter() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().to_path_buf()];
        assert_eq!(find_instantid(&dirs), None);
        let folder = root.path().join("my-instantid");
        std::fs::create_dir_all(folder.join(CONTROLNET_DIR)).unwrap();
        assert_eq!(find_instantid(&dirs), None);
        std::fs::write(folder.join(ADAPTER_PICKLE), b"x").unwrap();
        assert_eq!(find_instantid(&dirs), Some(folder.clone()));
        assert_eq!(
            unconverted_adapter(&folder),
            Some(folder.join(ADAPTER_PICKLE))
        );
        std::fs::write(folder.join(ADAPTER_FILE), b"x").unwrap();
        assert_eq!(unconverted_adapter(&folder), None);
    }
}
