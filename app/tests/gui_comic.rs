//! Headless tests of the Comic section (egui_kittest, the whole `KilnApp`): it opens with the
//! example story, a bad line shows its error with the line number as it is typed, and a story
//! on the tiny SD1.5 fixture (2 steps, 64 px panels, the Generate form's model) fills the panel
//! list, the drift scores and the page preview; moving a panel moves its script line and its
//! picture; regenerating one panel changes that panel only; a character's photo reaches her
//! panels through an IP-Adapter found in the model folders (a notice when there is none); a
//! cancelled story returns to idle without an error or files and the next one runs.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

mod common;

use common::{AppHarness, IdleRunner, app, app_mut, click, harness, open_section, step_until};
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use kiln::comic::script::parse;
use kiln::gui::KilnApp;
use kiln::gui::state::comic::EXAMPLE_SCRIPT;
use kiln::i18n::{Lang, tr, tr_args};
use kiln::library::settings::Settings;
use kiln_inference::io::family::Family;
use std::sync::Arc;
use std::time::Duration;

/// How long a test waits for the app to reach a state.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Five panels: Mia's first two are her reference panels, the last reads their tokens; Pip has
/// one reference panel; one panel has no characters.
const STORY: &str = "\
// A test story.
size: 64x64
layout: two-one-two
character Mia: a girl with a red scarf
character Pip: a small orange cat
---
[Mia] wakes up in an attic # Morning.
[Mia] and [Pip] walk down a street # \"Hello!\"
[NC] a bakery with a striped awning
[Pip] eats a croissant # 早上好！
[Mia] waves goodbye # The end.
";

fn settings(root: &std::path::Path) -> Settings {
    Settings {
        output_dir: root.join("out"),
        model_dirs: vec![root.join("models")],
        ..Settings::default()
    }
}

#[test]
fn opens_with_the_example_and_shows_script_errors_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let paths = common::app_paths(dir.path());
    let settings = settings(dir.path());
    let mut harness: AppHarness =
        harness(move |ctx| KilnApp::with_runner(ctx, paths, settings, IdleRunner).unwrap());
    open_section(&mut harness, tr(Lang::En, "nav.comic"));
    assert_eq!(app(&harness).state.comic.script, EXAMPLE_SCRIPT);
    let parsed = tr_args(
        Lang::En,
        "comic.parsed",
        &[("panels", &4), ("characters", &2)],
    );
    harness.get_by_label(&parsed);
    harness.get_by_label("Mia");
    assert_eq!(app(&harness).state.comic.panels.len(), 4);

    // Type a panel naming an unknown character.
    let editor = harness.get_by_role(Role::MultilineTextInput);
    editor.focus();
    harness.step();
    harness
        .get_by_role(Role::MultilineTextInput)
        .type_text("\n[Nobody] waves");
    harness.step();
    harness.step();
    let comic = &app(&harness).state.comic;
    assert!(comic.script.contains("[Nobody] waves"), "{}", comic.script);
    let error = comic.parsed.clone().expect_err("the script has a bad line");
    let line = comic
        .script
        .lines()
        .position(|l| l.contains("[Nobody]"))
        .unwrap()
        + 1;
    assert_eq!(error.line, line);
    let shown = tr_args(
        Lang::En,
        "comic.script_error",
        &[("line", &error.line), ("message", &error.message)],
    );
    assert!(shown.starts_with(&format!("Line {line}: ")));
    harness.get_by_label(&shown);
    // The panel list keeps the last good story; Generate waits for a good script.
    assert_eq!(app(&harness).state.comic.panels.len(), 4);
    let generate = harness.get_by_role_and_label(Role::Button, tr(Lang::En, "comic.generate"));
    assert!(generate.accesskit_node().is_disabled());
}

#[test]
fn a_story_on_the_tiny_model_fills_the_panels_and_page_and_panels_move_and_redraw() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    copy_dir(&fixtures().join("tiny-sd15"), &models.join("tiny-sd15"));
    // An IP-Adapter's image encoder in the model folder: drift scores.
    copy_dir(
        &fixtures().join("tiny-ip-adapter/image_encoder"),
        &models.join("ip-adapter/image_encoder"),
    );
    let paths = common::app_paths(dir.path());
    let settings = settings(dir.path());
    let mut harness: AppHarness = harness(move |ctx| KilnApp::new(ctx, paths, settings).unwrap());
    {
        let app = app_mut(&mut harness);
        app.set_persist(false);
        let form = &mut app.state.form;
        form.set_model(models.join("tiny-sd15"), Some(Family::Sd1), None);
        form.steps = 2;
        app.state.comic.set_script(STORY.to_owned());
    }
    open_section(&mut harness, tr(Lang::En, "nav.comic"));
    click(&mut harness, tr(Lang::En, "comic.generate"));
    assert!(
        app(&harness).state.comic.busy(),
        "the story was queued: {:?} {:?} {}",
        app(&harness).state.notices,
        app(&harness).state.comic.error,
        app(&harness).state.comic.run.is_some()
    );
    step_until(&mut harness, TIMEOUT, "the story is drawn", |app| {
        !app.state.comic.busy()
    });
    let comic = &app(&harness).state.comic;
    assert_eq!(comic.error, None);
    assert_eq!(comic.panels.len(), 5);
    for (k, view) in comic.panels.iter().enumerate() {
        let image = view.image.as_ref().unwrap_or_else(|| panic!("panel {k}"));
        assert_eq!(image.dimensions(), (64, 64));
        assert!(view.texture.is_some());
        assert_eq!(view.recipe.as_ref().unwrap().steps, 2);
    }
    // Mia's second and third panels are scored against her first; Pip has one panel.
    let scored: Vec<bool> = comic.panels.iter().map(|p| p.score.is_some()).collect();
    assert_eq!(scored, [false, true, false, false, true]);
    let seeds: Vec<u64> = comic
        .panels
        .iter()
        .map(|p| p.recipe.as_ref().unwrap().seed)
        .collect();
    assert!(seeds.windows(2).all(|w| w[1] == w[0] + 1), "{seeds:?}");
    let score = tr_args(
        Lang::En,
        "comic.score",
        &[("score", &format!("{:.3}", comic.panels[1].score.unwrap()))],
    );
    assert!(harness.query_all_by_label_contains(&score).count() >= 1);

    // The page preview follows the drawn panels.
    step_until(&mut harness, TIMEOUT, "the page preview", |app| {
        let comic = &app.state.comic;
        comic.page.is_some() && !comic.page_drawing && comic.page_requested == comic.page_generation
    });
    let page = app(&harness).state.comic.page.as_ref().unwrap().size();
    assert_eq!(page[0], kiln::gui::services::comic::PREVIEW_WIDTH as usize);

    // Move the bakery (panel 3) one place up: its line and its picture move.
    let before: Vec<_> = app(&harness)
        .state
        .comic
        .panels
        .iter()
        .map(|p| p.image.clone().unwrap())
        .collect();
    harness.get_all_by_label("▲").nth(2).unwrap().click();
    harness.step();
    harness.step();
    let comic = &app(&harness).state.comic;
    let prompts: Vec<String> = parse(&comic.script)
        .unwrap()
        .panels
        .into_iter()
        .map(|p| p.prompt)
        .collect();
    assert_eq!(
        prompts,
        [
            "[Mia] wakes up in an attic",
            "a bakery with a striped awning",
            "[Mia] and [Pip] walk down a street",
            "[Pip] eats a croissant",
            "[Mia] waves goodbye",
        ]
    );
    assert!(comic.script.starts_with("// A test story.\n"));
    let order = [0, 2, 1, 3, 4];
    for (k, &was) in order.iter().enumerate() {
        assert!(Arc::ptr_eq(
            comic.panels[k].image.as_ref().unwrap(),
            &before[was]
        ));
    }

    // Regenerate Mia's last panel: a new seed, the others untouched.
    let before: Vec<_> = comic
        .panels
        .iter()
        .map(|p| p.image.clone().unwrap())
        .collect();
    let old_seed = comic.panels[4].recipe.as_ref().unwrap().seed;
    // The fifth card is below the fold: scroll to it first.
    harness
        .get_all_by_label(tr(Lang::En, "comic.regenerate"))
        .nth(4)
        .unwrap()
        .scroll_to_me();
    for _ in 0..10 {
        harness.step();
    }
    harness
        .get_all_by_label(tr(Lang::En, "comic.regenerate"))
        .nth(4)
        .unwrap()
        .click();
    harness.step();
    harness.step();
    assert!(app(&harness).state.comic.busy(), "the panel was queued");
    step_until(&mut harness, TIMEOUT, "the panel is drawn again", |app| {
        !app.state.comic.busy()
    });
    let comic = &app(&harness).state.comic;
    assert_eq!(comic.error, None);
    for (view, image) in comic.panels.iter().zip(&before).take(4) {
        assert!(Arc::ptr_eq(view.image.as_ref().unwrap(), image));
    }
    let redrawn = comic.panels[4].image.as_ref().unwrap();
    assert!(!Arc::ptr_eq(redrawn, &before[4]));
    assert_ne!(redrawn.as_raw(), before[4].as_raw());
    assert_ne!(comic.panels[4].recipe.as_ref().unwrap().seed, old_seed);
    assert!(comic.panels[4].score.is_some());
}

/// A story on the tiny SD1.5 with Mia's photo on her card and IP-Adapters in the model folder.
fn photo_story_app(dir: &std::path::Path, with_adapter: bool) -> AppHarness {
    let models = dir.join("models");
    copy_dir(&fixtures().join("tiny-sd15"), &models.join("tiny-sd15"));
    if with_adapter {
        copy_dir(
            &fixtures().join("tiny-ip-adapter"),
            &models.join("ip-adapter"),
        );
        // Face models too: the identity scores run (the tiny panels hold no faces to score).
        copy_dir(
            &fixtures().join("tiny-antelopev2"),
            &models.join("insightface/models/antelopev2"),
        );
    }
    let photo = dir.join("mia.png");
    std::fs::copy(fixtures().join("photo-96x64.png"), &photo).unwrap();
    let story = format!(
        "size: 64x64\ncharacter Mia: a girl | photo: {}\n---\n[Mia] reads\n[NC] a street\n[Mia] sleeps\n[Mia] waves\n",
        photo.display()
    );
    let paths = common::app_paths(dir);
    let settings = settings(dir);
    let mut harness: AppHarness = harness(move |ctx| KilnApp::new(ctx, paths, settings).unwrap());
    {
        let app = app_mut(&mut harness);
        app.set_persist(false);
        let form = &mut app.state.form;
        form.set_model(models.join("tiny-sd15"), Some(Family::Sd1), None);
        form.steps = 2;
        app.state.comic.set_script(story);
    }
    open_section(&mut harness, tr(Lang::En, "nav.comic"));
    harness
}

/// Clicks Generate and waits for the story to be drawn without an error.
fn draw_story(harness: &mut AppHarness) {
    click(harness, tr(Lang::En, "comic.generate"));
    step_until(harness, TIMEOUT, "the story is drawn", |app| {
        !app.state.comic.busy()
    });
    assert_eq!(app(harness).state.comic.error, None);
}

#[test]
fn a_character_photo_is_drawn_through_an_ip_adapter_from_the_model_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = photo_story_app(dir.path(), true);
    draw_story(&mut harness);
    let comic = &app(&harness).state.comic;
    let adapters: Vec<usize> = comic
        .panels
        .iter()
        .map(|p| p.recipe.as_ref().unwrap().ip_adapters.len())
        .collect();
    // Mia's panels read her photo; the [NC] panel does not.
    assert_eq!(adapters, [1, 0, 1, 1]);
    let spec = &comic.panels[0].recipe.as_ref().unwrap().ip_adapters[0];
    assert_eq!(spec.image, dir.path().join("mia.png"));
    assert!(spec.model.starts_with(dir.path().join("models")));
    assert!(
        comic
            .panels
            .iter()
            .all(|p| p.identity.is_none_or(|s| (-1.0..=1.0).contains(&s)))
    );

    // Without an adapter in the model folders: drawn from the description, with a notice.
    let dir = tempfile::tempdir().unwrap();
    let mut harness = photo_story_app(dir.path(), false);
    draw_story(&mut harness);
    let comic = &app(&harness).state.comic;
    assert!(
        comic
            .warnings
            .iter()
            .any(|w| w.contains("character photos need an IP-Adapter")),
        "{:?}",
        comic.warnings
    );
    assert!(
        comic
            .panels
            .iter()
            .all(|p| p.recipe.as_ref().unwrap().ip_adapters.is_empty())
    );
}

#[test]
fn cancelling_a_story_returns_to_idle_without_an_error_or_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = photo_story_app(dir.path(), false);
    app_mut(&mut harness).state.form.steps = 40;
    click(&mut harness, tr(Lang::En, "comic.generate"));
    step_until(&mut harness, TIMEOUT, "the story is running", |app| {
        app.state
            .comic
            .run
            .as_ref()
            .is_some_and(|r| r.step.is_some())
            || !app.state.comic.busy()
    });
    assert!(
        app(&harness).state.comic.busy(),
        "the story ended before it could be cancelled"
    );
    click(&mut harness, tr(Lang::En, "comic.cancel"));
    step_until(&mut harness, TIMEOUT, "the story stops", |app| {
        !app.state.comic.busy()
    });
    let comic = &app(&harness).state.comic;
    assert_eq!(comic.error, None, "a cancel is not an error");
    assert!(
        comic.panels.iter().any(|p| p.image.is_none()),
        "the story was cut short"
    );
    let out = dir.path().join("out");
    let written = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
    assert_eq!(written, 0, "nothing is written to {}", out.display());
    // The section takes a new story afterwards.
    app_mut(&mut harness).state.form.steps = 2;
    // Draw a frame with the idle section first (the last one may show the button disabled).
    harness.step();
    harness.step();
    click(&mut harness, tr(Lang::En, "comic.generate"));
    assert!(
        app(&harness).state.comic.busy(),
        "queued again: {:?} {:?} {:?}",
        app(&harness).state.notices,
        app(&harness).state.comic.error,
        app(&harness).state.comic.run.as_ref().map(|r| r.ended)
    );
    step_until(&mut harness, TIMEOUT, "the story is drawn", |app| {
        !app.state.comic.busy()
    });
    assert!(
        app(&harness)
            .state
            .comic
            .panels
            .iter()
            .all(|p| p.image.is_some())
    );
}
