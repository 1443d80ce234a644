//! The worker's saver: writes each finished image as a PNG with its recipe into the output
//! folder (`kiln-YYYYMMDD-HHMMSS-<seed>.png`, UTC, never overwriting) and adds it to the
//! gallery index with its parent (the init image).

use crate::library::gallery::Gallery;
use crate::output::{OutputPlan, encode_output};
use crate::worker::Saver;
use anyhow::Context;
use kiln_inference::Output;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The output folder, shared with the settings panel (it may change between jobs).
pub type SharedOutputDir = Arc<Mutex<PathBuf>>;

/// A saver writing into `output_dir` and indexing into the gallery at `db_path`.
pub fn make_saver(output_dir: SharedOutputDir, db_path: PathBuf) -> Saver {
    let mut gallery: Option<Gallery> = None;
    Box::new(move |output: &Output| {
        let dir = output_dir.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let path = save_png(&dir, output, unix_now())?;
        if gallery.is_none() {
            gallery = Gallery::open(&db_path)
                .map_err(|e| eprintln!("kiln: the image is saved but not indexed: {e:#}"))
                .ok();
        }
        if let Some(gallery) = &gallery {
            let parent = output.recipe.init.as_ref().map(|init| init.path.as_path());
            if let Err(e) = gallery.add(&path, &output.recipe, parent) {
                // The PNG is written and carries its recipe: "rebuild index" recovers it.
                eprintln!("kiln: the image is saved but not indexed: {e:#}");
            }
        }
        Ok(path)
    })
}

/// Writes one output as `<dir>/kiln-YYYYMMDD-HHMMSS-<seed>.png` (`-1`, `-2` … when taken).
pub fn save_png(dir: &Path, output: &Output, unix_secs: i64) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
    let name = format!("kiln-{}-{}.png", timestamp(unix_secs), output.recipe.seed);
    let plan = OutputPlan::new(&dir.join(name), 1, false)?;
    let bytes = encode_output(output)?;
    let target = plan
        .targets()
        .first()
        .context("no output slot was planned")?;
    target.commit(&bytes)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `YYYYMMDD-HHMMSS` in UTC (days to civil date after Howard Hinnant's `civil_from_days`).
pub fn timestamp(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_inference::Recipe;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(951_782_400), "20000229-000000");
        assert_eq!(timestamp(1_700_000_000), "20231114-221320");
    }

    #[test]
    fn saves_never_overwrite_and_carry_the_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let output = Output {
            image: image::RgbImage::new(8, 8),
            recipe: Recipe {
                seed: 42,
                prompt: "a clay fox".into(),
                ..Recipe::default()
            },
            warnings: Vec::new(),
        };
        let a = save_png(dir.path(), &output, 0).unwrap();
        let b = save_png(dir.path(), &output, 0).unwrap();
        assert_eq!(a, dir.path().join("kiln-19700101-000000-42.png"));
        assert_ne!(a, b);
        let bytes = std::fs::read(&b).unwrap();
        let recipe = kiln_inference::io::png_meta::read_recipe(&bytes)
            .unwrap()
            .unwrap();
        assert_eq!(recipe.prompt, "a clay fox");
    }
}
