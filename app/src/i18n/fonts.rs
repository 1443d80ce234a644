//! Font set-up: egui's default fonts first, then the bundled WenQuanYi Micro Hei (Apache-2.0,
//! `assets/fonts/wqy-microhei.ttc`, face 0) as the fallback for CJK characters in both the
//! proportional and the monospace family.

use egui::{FontData, FontFamily, FontInsert, FontPriority, InsertFontFamily};
use std::sync::Arc;

/// The bundled CJK font collection (also the canvas text layers' fonts).
pub static CJK_FONT: &[u8] = include_bytes!("../../../assets/fonts/wqy-microhei.ttc");

/// Face 0 of the collection is "WenQuanYi Micro Hei" (face 1 is its monospace twin).
const CJK_FACE: u32 = 0;

/// Adds the CJK fallback font to `ctx`; call once at start-up.
pub fn install_fonts(ctx: &egui::Context) {
    let data = FontData::from_blob(Arc::new(CJK_FONT), CJK_FACE);
    let families = [FontFamily::Proportional, FontFamily::Monospace]
        .into_iter()
        .map(|family| InsertFontFamily {
            family,
            priority: FontPriority::Lowest,
        })
        .collect();
    ctx.add_font(FontInsert::new("wqy-microhei", data, families));
}
