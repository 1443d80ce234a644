//! End-to-end parity: every render in `tests/fixtures/refs/cases.json` (made by
//! `make_fixtures.py` with diffusers, CPU, float32) reproduced by Kiln within 3/255.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_tests::{check_reference_cases, reference_cases};

#[test]
fn every_reference_render_matches_diffusers() {
    let cases = reference_cases("refs/cases.json");
    assert!(cases.len() >= 20, "expected the full case list");
    let failures = check_reference_cases(&cases);
    assert!(
        failures.is_empty(),
        "renders differ from diffusers:\n{}",
        failures.join("\n")
    );
}
