//! Live token counts for the prompt boxes: a thread that parses the bundled CLIP tokenizer once
//! (~1.5 MB of vocabulary, too slow for the UI thread) and answers A1111's "N / 75" counts.

use crossbeam_channel::{Receiver, Sender};
use kiln_inference::text::prompt::token_count;
use kiln_inference::text::tokenizer::ClipTokenizer;
use std::sync::Arc;

/// Which prompt box a count belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptField {
    /// The positive prompt.
    Prompt,
    /// The negative prompt.
    Negative,
}

/// A count for one text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenAnswer {
    /// The box.
    pub field: PromptField,
    /// The text that was counted (answers for older texts are stale).
    pub text: String,
    /// Tokens in the text.
    pub tokens: usize,
    /// The chunk limit (75, 150, …).
    pub limit: usize,
}

/// The UI's handle on the counting thread.
pub struct TokenCounter {
    requests: Sender<(PromptField, String)>,
    answers: Receiver<TokenAnswer>,
}

/// Requests waiting for the thread (typing speed never fills this).
const CAPACITY: usize = 32;

impl TokenCounter {
    /// Starts the thread; `wake` asks the UI for a frame after each answer.
    pub fn spawn(wake: Arc<dyn Fn() + Send + Sync>) -> std::io::Result<TokenCounter> {
        let (requests, request_rx) = crossbeam_channel::bounded::<(PromptField, String)>(CAPACITY);
        let (answer_tx, answers) = crossbeam_channel::bounded(CAPACITY);
        std::thread::Builder::new()
            .name("kiln-tokens".into())
            .spawn(move || {
                // Without a tokenizer there is no count; the boxes simply show none.
                let Ok(tokenizer) = ClipTokenizer::bundled() else {
                    return;
                };
                while let Ok((mut field, mut text)) = request_rx.recv() {
                    // Only the newest text of a burst matters.
                    for (next_field, next_text) in request_rx.try_iter() {
                        if next_field != field {
                            answer(&tokenizer, &answer_tx, field, text);
                        }
                        (field, text) = (next_field, next_text);
                    }
                    answer(&tokenizer, &answer_tx, field, text);
                    wake();
                }
            })?;
        Ok(TokenCounter { requests, answers })
    }

    /// Asks for the count of `text`; false when the queue is full (ask again next frame).
    pub fn request(&self, field: PromptField, text: &str) -> bool {
        self.requests.try_send((field, text.to_owned())).is_ok()
    }

    /// Answers since the last call.
    pub fn try_answers(&self) -> impl Iterator<Item = TokenAnswer> + '_ {
        self.answers.try_iter()
    }
}

fn answer(
    tokenizer: &ClipTokenizer,
    answers: &Sender<TokenAnswer>,
    field: PromptField,
    text: String,
) {
    let (tokens, limit) = token_count(tokenizer, &text);
    // A full answer queue means the UI is gone or far behind; it asks again.
    answers
        .try_send(TokenAnswer {
            field,
            text,
            tokens,
            limit,
        })
        .ok();
}
