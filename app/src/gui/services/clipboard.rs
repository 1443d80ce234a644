//! Copy to clipboard off the UI thread. One long-lived thread owns the clipboard: on X11 and
//! Wayland the copying program serves the data until another program takes it, so the
//! clipboard must outlive the copy.

use crate::gui::services::tasks::TaskDone;
use crossbeam_channel::Sender;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

/// The UI's handle on the clipboard thread.
pub struct ClipboardService {
    requests: Sender<PathBuf>,
}

const CAPACITY: usize = 8;

impl ClipboardService {
    /// Starts the thread; results arrive as [`TaskDone::Copied`] on `done`.
    pub fn spawn(
        done: Sender<TaskDone>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Self> {
        let (requests, request_rx) = crossbeam_channel::bounded::<PathBuf>(CAPACITY);
        std::thread::Builder::new()
            .name("kiln-clipboard".into())
            .spawn(move || {
                let mut clipboard: Option<arboard::Clipboard> = None;
                for path in request_rx {
                    let result = copy(&mut clipboard, &path);
                    if done.send(TaskDone::Copied(result)).is_err() {
                        return;
                    }
                    wake();
                }
            })?;
        Ok(ClipboardService { requests })
    }

    /// Copies the image file at `path`; false when too many copies are pending.
    pub fn copy(&self, path: PathBuf) -> bool {
        self.requests.try_send(path).is_ok()
    }
}

fn copy(clipboard: &mut Option<arboard::Clipboard>, path: &std::path::Path) -> Result<(), String> {
    let image = image::open(path)
        .map_err(|e| format!("{e} ({})", path.display()))?
        .to_rgba8();
    if clipboard.is_none() {
        *clipboard = Some(arboard::Clipboard::new().map_err(|e| e.to_string())?);
    }
    let Some(clipboard) = clipboard.as_mut() else {
        return Err("no clipboard".into());
    };
    let data = arboard::ImageData {
        width: image.width() as usize,
        height: image.height() as usize,
        bytes: Cow::Owned(image.into_raw()),
    };
    clipboard.set_image(data).map_err(|e| e.to_string())
}
