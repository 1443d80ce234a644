//! Renders the example story's page layout with placeholder pictures (gradients and simple
//! shapes, not model outputs), to show templates, captions and speech bubbles:
//!
//! `cargo run --release -p kiln --example comic_page [OUTPUT.png] [LAYOUT]`
//!
//! Defaults: `docs/screenshots/comic-page-example.png` and the script's layout. Reads
//! `docs/examples/story.txt`; writes a PDF next to the PNG when OUTPUT ends in `.pdf`.

use anyhow::Context;
use image::RgbImage;
use kiln::comic::layout::{PageStyle, PanelArt, Template, compose};
use kiln::comic::{export, script};
use std::path::PathBuf;

/// A placeholder picture: a two-colour sky gradient, a ground band and a sun.
fn placeholder(index: usize, width: u32, height: u32) -> RgbImage {
    const SKIES: [([f32; 3], [f32; 3]); 6] = [
        ([250.0, 200.0, 140.0], [120.0, 170.0, 230.0]),
        ([150.0, 200.0, 240.0], [230.0, 240.0, 250.0]),
        ([60.0, 50.0, 110.0], [230.0, 120.0, 90.0]),
        ([110.0, 180.0, 150.0], [240.0, 230.0, 170.0]),
        ([40.0, 60.0, 90.0], [120.0, 150.0, 190.0]),
        ([230.0, 170.0, 200.0], [250.0, 230.0, 210.0]),
    ];
    let (top, bottom) = SKIES[index % SKIES.len()];
    let (w, h) = (width as f32, height as f32);
    let (sun_x, sun_y, sun_r) = (w * (0.25 + 0.15 * index as f32 % 0.5), h * 0.35, h * 0.12);
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let t = fy / h;
        let mut c = [0.0; 3];
        for (i, channel) in c.iter_mut().enumerate() {
            *channel = top[i] + (bottom[i] - top[i]) * t;
        }
        let sun = ((fx - sun_x).hypot(fy - sun_y) - sun_r).clamp(-0.5, 0.5) + 0.5;
        for channel in &mut c {
            *channel = *channel * sun + 255.0 * (1.0 - sun);
        }
        let ground_line = h * (0.72 + 0.05 * ((fx / w) * 6.0 + index as f32).sin());
        if fy > ground_line {
            c = [70.0 + 20.0 * index as f32 % 60.0, 110.0, 70.0];
        }
        image::Rgb(c.map(|v| v.clamp(0.0, 255.0) as u8))
    })
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let output = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "docs/screenshots/comic-page-example.png".into()),
    );
    let layout_override = args.next();
    let script_path = "docs/examples/story.txt";
    let text = std::fs::read_to_string(script_path)
        .with_context(|| format!("cannot read {script_path}"))?;
    let story = script::parse(&text).with_context(|| format!("in {script_path}"))?;

    let template = match layout_override {
        Some(name) => {
            Template::by_name(&name).with_context(|| format!("unknown layout '{name}'"))?
        }
        None => story.template().context("no layout for that many panels")?,
    };
    let (width, height) = story.size.unwrap_or((512, 512));
    let panels: Vec<PanelArt> = story
        .panels
        .iter()
        .enumerate()
        .map(|(i, panel)| PanelArt::new(placeholder(i, width, height), panel))
        .collect();
    let page = PageStyle::fitted(&template, (width, height), 1200);
    let image = compose(&panels, &template, &page)?;
    if output.extension().is_some_and(|e| e == "pdf") {
        export::write_pdf(&image, &output)?;
    } else {
        export::write_png(&image, &output)?;
    }
    println!(
        "{} ({}x{}, layout {})",
        output.display(),
        image.width(),
        image.height(),
        template.name()
    );
    Ok(())
}
