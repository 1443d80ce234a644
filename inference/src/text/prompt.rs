//! A1111 prompt syntax (FORMATS §2.3): `<lora:name:w>` tags, attention weights `(x)` `[x]`
//! `(x:w)`, `BREAK`, 75-token chunks with comma backtracking, and the "Original" emphasis.
//!
//! Follows stable-diffusion-webui: `extra_networks.parse_prompt`,
//! `prompt_parser.parse_prompt_attention`, `sd_hijack_clip.tokenize_line` and
//! `sd_emphasis.EmphasisOriginal`. Prompt editing `[a:b:when]`, alternation `[a|b]` and `AND` are
//! not supported: they stay text and [`prompt_warnings`] reports them.

use super::tokenizer::{CHUNK_TOKENS, ClipTokenizer, MAX_LENGTH};
use crate::{Error, Result};
use candle_core::{DType, Tensor};
use regex::Regex;
use std::fmt;
use std::sync::LazyLock;

/// A1111 `comma_padding_backtrack` default: a full chunk moves the words after its last comma to
/// the next chunk when that comma is at most this many tokens back.
pub const COMMA_PADDING_BACKTRACK: usize = 20;

/// `×1.1` per `( )`.
const ROUND_MULTIPLIER: f64 = 1.1;
/// `÷1.1` per `[ ]`.
const SQUARE_MULTIPLIER: f64 = 1.0 / 1.1;
/// Weight A1111 gives the `BREAK` marker entry.
const BREAK_WEIGHT: f64 = -1.0;

/// `extra_networks.re_extra_net`.
static EXTRA_NETWORK: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"<(\w+):([^>]+)>").ok());

/// `prompt_parser.re_attention`.
static ATTENTION: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
        .ok()
});

/// `prompt_parser.re_break`.
static BREAK: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\s*\bBREAK\b\s*").ok());

/// `prompt_parser.re_AND`.
static AND: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\bAND\b").ok());

/// A `<lora:name:weight>` tag taken out of a prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraTag {
    /// LoRA name (file stem, as A1111 writes it).
    pub name: String,
    /// Multiplier (A1111's text-encoder multiplier; 1.0 when not given).
    pub weight: f32,
}

/// Removes every A1111 extra-network tag `<type:args>` from `prompt` (as A1111 does) and returns
/// the `lora`/`lyco` ones. Weight: second field, or `te=w`; 1.0 when absent or not a number.
pub fn extract_loras(prompt: &str) -> (String, Vec<LoraTag>) {
    let Some(re) = EXTRA_NETWORK.as_ref() else {
        return (prompt.to_owned(), Vec::new());
    };
    let mut loras = Vec::new();
    let text = re.replace_all(prompt, |caps: &regex::Captures<'_>| {
        let kind = caps.get(1).map_or("", |m| m.as_str());
        let args = caps.get(2).map_or("", |m| m.as_str());
        if matches!(kind, "lora" | "lyco") {
            let mut positional = Vec::new();
            let mut te = None;
            for item in args.split(':') {
                match item.split_once('=') {
                    Some(("te", value)) => te = value.trim().parse::<f32>().ok(),
                    Some(_) => {}
                    None => positional.push(item),
                }
            }
            let name = positional.first().copied().unwrap_or("").to_owned();
            let weight = te
                .or_else(|| positional.get(1).and_then(|w| w.trim().parse::<f32>().ok()))
                .unwrap_or(1.0);
            loras.push(LoraTag { name, weight });
        }
        ""
    });
    (text.into_owned(), loras)
}

/// `parse_prompt_attention` with A1111's float64 weights (the merge compares them exactly).
fn parse_attention_f64(text: &str) -> Vec<(String, f64)> {
    let (Some(attention), Some(break_re)) = (ATTENTION.as_ref(), BREAK.as_ref()) else {
        return vec![(text.to_owned(), 1.0)];
    };
    let mut res: Vec<(String, f64)> = Vec::new();
    let mut round_brackets: Vec<usize> = Vec::new();
    let mut square_brackets: Vec<usize> = Vec::new();
    let multiply_range = |res: &mut Vec<(String, f64)>, start: usize, multiplier: f64| {
        for entry in res.iter_mut().skip(start) {
            entry.1 *= multiplier;
        }
    };

    for caps in attention.captures_iter(text) {
        let Some(whole) = caps.get(0) else { continue };
        let piece = whole.as_str();
        let weight = caps.get(1).map(|m| m.as_str());
        if let Some(escaped) = piece.strip_prefix('\\') {
            res.push((escaped.to_owned(), 1.0));
        } else if piece == "(" {
            round_brackets.push(res.len());
        } else if piece == "[" {
            square_brackets.push(res.len());
        } else if let (Some(weight), false) = (weight, round_brackets.is_empty()) {
            // Python's float() raises on "." or "1.2.3"; Kiln keeps such a weight at 1.
            let multiplier = weight.parse::<f64>().unwrap_or(1.0);
            if let Some(start) = round_brackets.pop() {
                multiply_range(&mut res, start, multiplier);
            }
        } else if piece == ")" && !round_brackets.is_empty() {
            if let Some(start) = round_brackets.pop() {
                multiply_range(&mut res, start, ROUND_MULTIPLIER);
            }
        } else if piece == "]" && !square_brackets.is_empty() {
            if let Some(start) = square_brackets.pop() {
                multiply_range(&mut res, start, SQUARE_MULTIPLIER);
            }
        } else {
            for (i, part) in break_re.split(piece).enumerate() {
                if i > 0 {
                    res.push(("BREAK".to_owned(), BREAK_WEIGHT));
                }
                res.push((part.to_owned(), 1.0));
            }
        }
    }

    for start in round_brackets {
        multiply_range(&mut res, start, ROUND_MULTIPLIER);
    }
    for start in square_brackets {
        multiply_range(&mut res, start, SQUARE_MULTIPLIER);
    }

    if res.is_empty() {
        res.push((String::new(), 1.0));
    }

    // Merge runs of identical weights.
    let mut merged: Vec<(String, f64)> = Vec::with_capacity(res.len());
    for (text, weight) in res {
        match merged.last_mut() {
            Some(last) if last.1 == weight => last.0.push_str(&text),
            _ => merged.push((text, weight)),
        }
    }
    merged
}

/// A1111 `parse_prompt_attention`: `(text, weight)` runs. `(x)` ×1.1, `[x]` ÷1.1, `(x:w)` ×w,
/// nesting multiplies, unclosed brackets apply to the end, `\( \) \[ \] \\` are literal and a lone
/// `\` is dropped; `BREAK` becomes its own entry `("BREAK", -1.0)` (inside brackets its weight is
/// multiplied too and it no longer acts as a break, as in A1111); neighbours of equal weight merge.
/// LoRA tags are not removed here (see [`extract_loras`]).
pub fn parse_attention(prompt: &str) -> Vec<(String, f32)> {
    parse_attention_f64(prompt)
        .into_iter()
        .map(|(text, weight)| (text, weight as f32))
        .collect()
}

/// A1111 syntax that Kiln reads as plain text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptWarning {
    /// Prompt editing `[a:b:when]` or `[a:when]`: read as `[…]` (÷1.1) around the literal text.
    Scheduling(String),
    /// Alternation `[a|b]`: read as `[…]` (÷1.1) around the literal text.
    Alternation(String),
    /// Composable diffusion `a AND b`: `AND` is read as a word.
    And,
}

impl fmt::Display for PromptWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromptWarning::Scheduling(text) => {
                write!(
                    f,
                    "prompt editing {text} is not supported; it is used as text"
                )
            }
            PromptWarning::Alternation(text) => {
                write!(f, "alternation {text} is not supported; it is used as text")
            }
            PromptWarning::And => write!(f, "AND is not supported; it is used as a word"),
        }
    }
}

/// Lists A1111 syntax in `prompt` that Kiln does not support (prompt editing, alternation, AND),
/// in order of appearance.
pub fn prompt_warnings(prompt: &str) -> Vec<PromptWarning> {
    struct Open {
        square: bool,
        start: usize,
        colon_at: Option<usize>,
        pipe: bool,
    }
    let mut warnings = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut chars = prompt.char_indices();
    while let Some((at, ch)) = chars.next() {
        match ch {
            '\\' => {
                chars.next();
            }
            '(' | '[' => stack.push(Open {
                square: ch == '[',
                start: at,
                colon_at: None,
                pipe: false,
            }),
            ':' => {
                if let Some(open) = stack.last_mut().filter(|o| o.square) {
                    open.colon_at = Some(at);
                }
            }
            '|' => {
                if let Some(open) = stack.last_mut().filter(|o| o.square) {
                    open.pipe = true;
                }
            }
            ')' | ']' => {
                let square = ch == ']';
                if stack.last().is_some_and(|o| o.square == square) {
                    let Some(open) = stack.pop() else { continue };
                    let text = prompt.get(open.start..at + 1).unwrap_or("").to_owned();
                    // The grammar wants a number after the last colon: `[a:b:0.5]`, `[a:10]`.
                    let when = open
                        .colon_at
                        .and_then(|c| prompt.get(c + 1..at))
                        .map(str::trim);
                    if !square {
                        continue;
                    }
                    if open.pipe {
                        warnings.push(PromptWarning::Alternation(text));
                    } else if when.is_some_and(|w| w.parse::<f64>().is_ok()) {
                        warnings.push(PromptWarning::Scheduling(text));
                    }
                }
            }
            _ => {}
        }
    }
    if AND.as_ref().is_some_and(|re| re.is_match(prompt)) {
        warnings.push(PromptWarning::And);
    }
    warnings
}

/// One 77-token sequence for the text encoder and the weight of each position.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    /// `[bos] + 75 + [eos]`, padded.
    pub tokens: [u32; MAX_LENGTH],
    /// Emphasis multiplier per position (1.0 on bos, eos and padding).
    pub weights: [f32; MAX_LENGTH],
}

/// A prompt cut into chunks; the encoder output is their encodings concatenated (`[B, 77k, C]`).
#[derive(Clone, Debug, PartialEq)]
pub struct PromptChunks {
    /// At least one chunk.
    pub chunks: Vec<Chunk>,
}

/// A1111 `tokenize_line` state.
struct ChunkBuilder {
    chunks: Vec<Chunk>,
    tokens: Vec<u32>,
    weights: Vec<f32>,
    token_count: usize,
    last_comma: Option<usize>,
    bos: u32,
    eos: u32,
    pad: u32,
}

impl ChunkBuilder {
    /// `next_chunk`: wraps the current tokens as `[bos] + tokens + [eos] + padding` and starts a
    /// new chunk. A1111 pads with eos and, for SD2, turns everything after the first eos into the
    /// padding id; writing the padding directly gives the same ids (and diffusers' ids even when
    /// the text itself holds `<|endoftext|>`).
    fn next_chunk(&mut self, is_last: bool) {
        self.token_count += if is_last {
            self.tokens.len()
        } else {
            CHUNK_TOKENS
        };
        let mut chunk = Chunk {
            tokens: [self.pad; MAX_LENGTH],
            weights: [1.0; MAX_LENGTH],
        };
        chunk.tokens[0] = self.bos;
        let tokens = std::mem::take(&mut self.tokens);
        let weights = std::mem::take(&mut self.weights);
        let n = tokens.len().min(CHUNK_TOKENS);
        for (slot, token) in chunk.tokens[1..=CHUNK_TOKENS].iter_mut().zip(tokens) {
            *slot = token;
        }
        for (slot, weight) in chunk.weights[1..=CHUNK_TOKENS].iter_mut().zip(weights) {
            *slot = weight;
        }
        chunk.tokens[n + 1] = self.eos;
        self.last_comma = None;
        self.chunks.push(chunk);
    }
}

/// A1111 `tokenize_line`: chunks plus A1111's token count.
fn chunk_prompt(tokenizer: &ClipTokenizer, prompt: &str, pad_id: u32) -> (Vec<Chunk>, usize) {
    let (text, _) = extract_loras(prompt);
    let parsed = parse_attention_f64(&text);
    let comma = tokenizer.comma_id();
    let mut b = ChunkBuilder {
        chunks: Vec::new(),
        tokens: Vec::with_capacity(CHUNK_TOKENS),
        weights: Vec::with_capacity(CHUNK_TOKENS),
        token_count: 0,
        last_comma: None,
        bos: tokenizer.bos(),
        eos: tokenizer.eos(),
        pad: pad_id,
    };
    for (text, weight) in &parsed {
        if text == "BREAK" && *weight == BREAK_WEIGHT {
            b.next_chunk(false);
            continue;
        }
        for token in tokenizer.encode_with_pad(text, pad_id) {
            if Some(token) == comma {
                b.last_comma = Some(b.tokens.len());
            } else if let Some(last_comma) = b.last_comma
                && COMMA_PADDING_BACKTRACK != 0
                && b.tokens.len() == CHUNK_TOKENS
                && b.tokens.len() - last_comma <= COMMA_PADDING_BACKTRACK
            {
                let break_location = last_comma + 1;
                let moved_tokens = b.tokens.split_off(break_location.min(b.tokens.len()));
                let moved_weights = b.weights.split_off(break_location.min(b.weights.len()));
                b.next_chunk(false);
                b.tokens = moved_tokens;
                b.weights = moved_weights;
            }
            if b.tokens.len() == CHUNK_TOKENS {
                b.next_chunk(false);
            }
            b.tokens.push(token);
            b.weights.push(*weight as f32);
        }
    }
    if !b.tokens.is_empty() || b.chunks.is_empty() {
        b.next_chunk(true);
    }
    (b.chunks, b.token_count)
}

/// Tokenizes an A1111 prompt into 77-token chunks with per-token weights.
///
/// LoRA tags are removed, attention parsed, each run tokenized, runs concatenated and cut every 75
/// tokens (moving the words after a comma up to 20 tokens back to the next chunk); `BREAK` ends a
/// chunk. Runs are tokenized with [`ClipTokenizer::encode_with_pad`], so a `!` is its own id 0
/// for `pad_id` 0 as in diffusers' `tokenizer_2`. Each chunk is `[bos] + 75 + [eos]` padded with eos; when `pad_id` is not eos (SD2,
/// SDXL `tokenizer_2`), everything after the first eos becomes `pad_id`, so a plain prompt of at
/// most 75 tokens gives exactly diffusers' ids. An empty prompt gives one chunk.
pub fn tokenize_prompt(tokenizer: &ClipTokenizer, prompt: &str, pad_id: u32) -> PromptChunks {
    let (chunks, _) = chunk_prompt(tokenizer, prompt, pad_id);
    PromptChunks { chunks }
}

/// A1111's live counter (CLIP-L tokenization): `(tokens, limit)`, the limit being the next multiple of 75 (at least 75).
/// A `BREAK` counts its chunk as full, as A1111 does.
pub fn token_count(tokenizer: &ClipTokenizer, prompt: &str) -> (usize, usize) {
    let (_, count) = chunk_prompt(tokenizer, prompt, tokenizer.eos());
    let limit = count.max(1).div_ceil(CHUNK_TOKENS) * CHUNK_TOKENS;
    (count, limit)
}

/// True when every weight is 1 (nothing for [`apply_weights`] to do).
pub fn is_plain(chunks: &PromptChunks) -> bool {
    chunks
        .chunks
        .iter()
        .all(|chunk| chunk.weights.iter().all(|&w| w == 1.0))
}

/// A1111 "Original" emphasis on one chunk's encoder output `z` (`[B, 77, C]`, any float dtype):
/// each token row is multiplied by its weight, then the whole tensor is rescaled so its mean is
/// the mean before weighting. All-ones weights return `z` unchanged. Computed in f32 with the
/// means in f64; the result has `z`'s dtype.
pub fn apply_weights(z: &Tensor, weights: &[f32]) -> Result<Tensor> {
    let dims = z.dims();
    let [_, tokens, _] = dims else {
        return Err(Error::InvalidArgument(format!(
            "emphasis: expected a [batch, tokens, channels] tensor, got {dims:?}"
        )));
    };
    if *tokens != weights.len() {
        return Err(Error::InvalidArgument(format!(
            "emphasis: {} weights for {tokens} tokens",
            weights.len()
        )));
    }
    if weights.iter().all(|&w| w == 1.0) {
        return Ok(z.clone());
    }
    let dtype = z.dtype();
    let z32 = z.to_dtype(DType::F32)?;
    let original_mean = z32.to_dtype(DType::F64)?.mean_all()?.to_scalar::<f64>()?;
    let multipliers = Tensor::from_slice(weights, (1, weights.len(), 1), z.device())?;
    let weighted = z32.broadcast_mul(&multipliers)?;
    let new_mean = weighted
        .to_dtype(DType::F64)?
        .mean_all()?
        .to_scalar::<f64>()?;
    let restored = weighted.affine(original_mean / new_mean, 0.0)?;
    Ok(restored.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Tokenizer whose vocabulary has every letter/digit/punctuation byte with and without
    /// `</w>`, plus `,</w>`, and no merges: one token per character of each word.
    fn tok() -> ClipTokenizer {
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut next = 0u32;
        for c in (b'!'..=b'~').map(char::from) {
            for t in [c.to_string(), format!("{c}</w>")] {
                vocab.insert(t, next);
                next += 1;
            }
        }
        vocab.insert("<|startoftext|>".into(), 49406);
        vocab.insert("<|endoftext|>".into(), 49407);
        let json = serde_json::to_string(&vocab).unwrap();
        ClipTokenizer::from_strs(&json, "#version: 0.2\n").unwrap()
    }

    fn approx(actual: &[(String, f32)], expected: &[(&str, f32)]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for ((text, weight), (etext, eweight)) in actual.iter().zip(expected) {
            assert_eq!(text, etext, "{actual:?}");
            assert!(
                (weight - eweight).abs() < 1e-6,
                "{actual:?} vs {expected:?}"
            );
        }
    }

    #[test]
    fn attention_rules() {
        let w = 1.0 / 1.1;
        approx(&parse_attention("a cat"), &[("a cat", 1.0)]);
        approx(
            &parse_attention("a (b:1.5) c"),
            &[("a ", 1.0), ("b", 1.5), (" c", 1.0)],
        );
        approx(&parse_attention("((x))"), &[("x", 1.21)]);
        approx(&parse_attention("[x]"), &[("x", w)]);
        approx(&parse_attention("[[x]]"), &[("x", w * w)]);
        approx(&parse_attention("(unclosed"), &[("unclosed", 1.1)]);
        approx(
            &parse_attention("a [unclosed"),
            &[("a ", 1.0), ("unclosed", w)],
        );
        approx(&parse_attention(r"\(literal\)"), &[("(literal)", 1.0)]);
        approx(&parse_attention(r"a \[b\] \\ c"), &[(r"a [b] \ c", 1.0)]);
        approx(&parse_attention(r"lone \ slash"), &[("lone  slash", 1.0)]);
        approx(
            &parse_attention("(x:1.2) [y]"),
            &[("x", 1.2), (" ", 1.0), ("y", w)],
        );
        approx(
            &parse_attention("(a (b:2) c)"),
            &[("a ", 1.1), ("b", 2.2), (" c", 1.1)],
        );
        approx(
            &parse_attention("(a:1.1) (b)"),
            &[("a", 1.1), (" ", 1.0), ("b", 1.1)],
        );
        approx(
            &parse_attention("( x : 0.5 ) y"),
            &[(" x ", 0.5), (" y", 1.0)],
        );
        approx(&parse_attention("(x:-1)"), &[("x", -1.0)]);
        approx(
            &parse_attention("unmatched) ] x"),
            &[("unmatched) ] x", 1.0)],
        );
        approx(&parse_attention("a: b"), &[("a: b", 1.0)]);
        approx(&parse_attention("x:1.5)"), &[("x:1.5)", 1.0)]);
        approx(&parse_attention(""), &[("", 1.0)]);
        approx(&parse_attention("()"), &[("", 1.0)]);
        approx(&parse_attention("(x:.)"), &[("x", 1.0)]);
        // Parity with A1111's docstring examples.
        approx(
            &parse_attention("a (very) beautiful ((painting)) of [flowers]"),
            &[
                ("a ", 1.0),
                ("very", 1.1),
                (" beautiful ", 1.0),
                ("painting", 1.21),
                (" of ", 1.0),
                ("flowers", w),
            ],
        );
        approx(&parse_attention(r"\(literal\]"), &[("(literal]", 1.0)]);
        approx(
            &parse_attention("(unnecessary)(parens)"),
            &[("unnecessaryparens", 1.1)],
        );
        approx(
            &parse_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            &[
                ("a ", 1.0),
                ("house", 1.573),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641001),
                (".", 1.1),
            ],
        );
    }

    #[test]
    fn break_entries() {
        approx(
            &parse_attention("a BREAK b"),
            &[("a", 1.0), ("BREAK", -1.0), ("b", 1.0)],
        );
        approx(
            &parse_attention("BREAK"),
            &[("", 1.0), ("BREAK", -1.0), ("", 1.0)],
        );
        // Lowercase or glued is text.
        approx(
            &parse_attention("a break b BREAKING"),
            &[("a break b BREAKING", 1.0)],
        );
        // Inside brackets A1111 multiplies the marker too, so it is no longer a break.
        approx(
            &parse_attention("(a BREAK b)"),
            &[("a", 1.1), ("BREAK", -1.1), ("b", 1.1)],
        );
    }

    #[test]
    fn loras_are_removed() {
        let (text, loras) = extract_loras("<lora:clay:0.8> a cat");
        assert_eq!(text, " a cat");
        assert_eq!(
            loras,
            [LoraTag {
                name: "clay".into(),
                weight: 0.8
            }]
        );
        let (text, loras) =
            extract_loras("a <lora:x_y-z> b <hypernet:h:1> <lyco:l:te=0.3:unet=1> <lora:bad:q>");
        assert_eq!(text, "a  b   ");
        let got: Vec<(&str, f32)> = loras.iter().map(|l| (l.name.as_str(), l.weight)).collect();
        assert_eq!(got, [("x_y-z", 1.0), ("l", 0.3), ("bad", 1.0)]);
        let (text, loras) = extract_loras("no <tags> here <a b:c>");
        assert_eq!(text, "no <tags> here <a b:c>");
        assert!(loras.is_empty());
    }

    #[test]
    fn warnings_for_unsupported_syntax() {
        assert_eq!(
            prompt_warnings("a [cat:dog:0.5] and [red|blue] AND x"),
            [
                PromptWarning::Scheduling("[cat:dog:0.5]".into()),
                PromptWarning::Alternation("[red|blue]".into()),
                PromptWarning::And,
            ]
        );
        assert_eq!(
            prompt_warnings("[hat:10]"),
            [PromptWarning::Scheduling("[hat:10]".into())]
        );
        assert!(prompt_warnings("[a:b] (x:1.2) \\[y|z\\] and").is_empty());
        approx(
            &parse_attention("[cat:dog:0.5]"),
            &[("cat:dog:0.5", 1.0 / 1.1)],
        );
    }

    fn chunk_tokens(chunks: &PromptChunks) -> Vec<Vec<u32>> {
        chunks.chunks.iter().map(|c| c.tokens.to_vec()).collect()
    }

    #[test]
    fn plain_prompt_matches_diffusers_padding() {
        let tok = tok();
        for prompt in ["a cat, b", "", "  x  ", "a: b! (c", "<lora:x:1>"] {
            let plain = !prompt.contains('(');
            for pad in [49407, 0] {
                let chunks = tokenize_prompt(&tok, prompt, pad);
                assert_eq!(chunks.chunks.len(), 1);
                if plain && !prompt.contains('<') {
                    assert_eq!(chunks.chunks[0].tokens, tok.encode_padded(prompt, pad));
                    assert!(is_plain(&chunks));
                }
            }
        }
        let chunks = tokenize_prompt(&tok, "ab", 0);
        let ids = chunks.chunks[0].tokens;
        assert_eq!(
            &ids[..4],
            &[
                49406,
                tok.token_id("a").unwrap(),
                tok.token_id("b</w>").unwrap(),
                49407
            ]
        );
        assert!(ids[4..].iter().all(|&t| t == 0));
        // 75 tokens exactly: one chunk, identical to diffusers.
        let p75 = vec!["x"; 75].join(" ");
        let chunks = tokenize_prompt(&tok, &p75, 0);
        assert_eq!(chunk_tokens(&chunks), [tok.encode_padded(&p75, 0).to_vec()]);
        assert_eq!(token_count(&tok, &p75), (75, 75));
        assert_eq!(token_count(&tok, &format!("{p75} x")), (76, 150));
        assert_eq!(token_count(&tok, ""), (0, 75));
    }

    /// Plain prompts of `tests/fixtures/refs/tokens.json` (make_fixtures.py `make_tokens`) give
    /// diffusers' `tokenizer` / `tokenizer_2` ids with all weights 1.
    #[test]
    fn plain_fixture_prompts_match_diffusers() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/refs/tokens.json"
        );
        let text = std::fs::read_to_string(path).expect("committed fixture refs/tokens.json");
        let refs: serde_json::Value = serde_json::from_str(&text).unwrap();
        let tok = ClipTokenizer::bundled().unwrap();
        let mut checked = 0;
        for case in refs["prompts"].as_array().unwrap() {
            let prompt = case["prompt"].as_str().unwrap();
            let has_syntax =
                prompt.contains(['(', ')', '[', ']', '\\']) || prompt.contains("BREAK");
            if has_syntax || tok.encode(prompt).len() > CHUNK_TOKENS {
                continue;
            }
            for (pad, key) in [(49407, "tokenizer_input_ids"), (0, "tokenizer_2_input_ids")] {
                let expected: Vec<u32> = case[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect();
                let chunks = tokenize_prompt(&tok, prompt, pad);
                assert_eq!(chunks.chunks.len(), 1, "{prompt:?}");
                assert_eq!(
                    chunks.chunks[0].tokens.to_vec(),
                    expected,
                    "{prompt:?} pad {pad}"
                );
                assert!(is_plain(&chunks));
            }
            checked += 1;
        }
        assert!(checked >= 10, "{checked}");
    }

    #[test]
    fn real_vocab_chunks() {
        let tok = ClipTokenizer::bundled().unwrap();
        let chunks = tokenize_prompt(&tok, "a (cat:1.3), dog!", 0);
        let c = &chunks.chunks[0];
        // a</w> cat</w> ,</w> dog</w> ! (id 0: tokenizer_2's pad token is special) eos 0…
        assert_eq!(&c.tokens[..7], &[49406, 320, 2368, 267, 1929, 0, 49407]);
        assert!(c.tokens[7..].iter().all(|&t| t == 0));
        assert_eq!(&c.weights[..7], &[1.0, 1.0, 1.3, 1.0, 1.0, 1.0, 1.0]);
        let chunks = tokenize_prompt(&tok, "a (cat:1.3), dog!", 49407);
        assert_eq!(
            &chunks.chunks[0].tokens[..6],
            &[49406, 320, 2368, 267, 1929, 256]
        );
        assert_eq!(token_count(&tok, "a (cat:1.3), dog!"), (5, 75));
        assert_eq!(token_count(&tok, "<lora:x:0.5> a cat"), (2, 75));
    }

    #[test]
    fn weights_follow_tokens() {
        let tok = tok();
        let chunks = tokenize_prompt(&tok, "a (bc:1.5) [d]", 49407);
        let c = &chunks.chunks[0];
        // a</w> b c</w> d</w>
        assert_eq!(c.tokens[1], tok.token_id("a</w>").unwrap());
        assert_eq!(c.tokens[2], tok.token_id("b").unwrap());
        assert_eq!(c.tokens[3], tok.token_id("c</w>").unwrap());
        assert_eq!(c.tokens[4], tok.token_id("d</w>").unwrap());
        assert_eq!(c.tokens[5], 49407);
        assert_eq!(
            &c.weights[..6],
            &[1.0, 1.0, 1.5, 1.5, (1.0f64 / 1.1) as f32, 1.0]
        );
        assert!(c.weights[6..].iter().all(|&w| w == 1.0));
        assert!(!is_plain(&chunks));
    }

    #[test]
    fn break_makes_two_chunks() {
        let tok = tok();
        let chunks = tokenize_prompt(&tok, "a BREAK b", 49407);
        assert_eq!(chunks.chunks.len(), 2);
        let a = tok.token_id("a</w>").unwrap();
        let b = tok.token_id("b</w>").unwrap();
        assert_eq!(&chunks.chunks[0].tokens[..3], &[49406, a, 49407]);
        assert_eq!(&chunks.chunks[1].tokens[..3], &[49406, b, 49407]);
        assert!(chunks.chunks[0].tokens[3..].iter().all(|&t| t == 49407));
        assert_eq!(token_count(&tok, "a BREAK b"), (76, 150));
        // SD2 padding applies per chunk.
        let chunks = tokenize_prompt(&tok, "a BREAK b", 0);
        assert_eq!(&chunks.chunks[0].tokens[..4], &[49406, a, 49407, 0]);
        assert_eq!(&chunks.chunks[1].tokens[..4], &[49406, b, 49407, 0]);
        // A leading BREAK gives an empty first chunk, as in A1111.
        assert_eq!(tokenize_prompt(&tok, "BREAK a", 49407).chunks.len(), 2);
    }

    #[test]
    fn long_prompt_backtracks_to_comma() {
        let tok = tok();
        let x = tok.token_id("x</w>").unwrap();
        let comma = tok.comma_id().unwrap();
        // 60 words, a comma (token 61), then 39 words: 100 tokens.
        let prompt = format!("{}, {}", vec!["x"; 60].join(" "), vec!["x"; 39].join(" "));
        let chunks = tokenize_prompt(&tok, &prompt, 49407);
        assert_eq!(chunks.chunks.len(), 2);
        let first = &chunks.chunks[0].tokens;
        // The comma is token 61 of chunk 1, 15 positions back when the 76th token arrives: the
        // 14 words after it move to chunk 2, which then holds 14 + 25 = 39 words.
        assert!(first[1..61].iter().all(|&t| t == x));
        assert_eq!(first[61], comma);
        assert!(first[62..].iter().all(|&t| t == 49407));
        let second = &chunks.chunks[1].tokens;
        assert!(second[1..40].iter().all(|&t| t == x));
        assert!(second[40..].iter().all(|&t| t == 49407));
        assert_eq!(token_count(&tok, &prompt), (75 + 39, 150));

        // A comma 30 tokens back is too far: a hard cut at 75.
        let prompt = format!("{}, {}", vec!["x"; 44].join(" "), vec!["x"; 55].join(" "));
        let chunks = tokenize_prompt(&tok, &prompt, 49407);
        assert_eq!(chunks.chunks.len(), 2);
        assert_eq!(chunks.chunks[0].tokens[45], comma);
        assert!(chunks.chunks[0].tokens[46..76].iter().all(|&t| t == x));
        assert!(chunks.chunks[1].tokens[1..26].iter().all(|&t| t == x));
        assert_eq!(chunks.chunks[1].tokens[26], 49407);

        // A comma landing exactly on position 76 is carried to the next chunk's start.
        let prompt = format!("{}, y", vec!["x"; 75].join(" "));
        let chunks = tokenize_prompt(&tok, &prompt, 49407);
        assert_eq!(chunks.chunks[1].tokens[1], comma);
    }

    #[test]
    fn emphasis_restores_mean() {
        use candle_core::Device;
        let n = 4;
        let data: Vec<f32> = (0..n * 3).map(|i| i as f32 + 1.0).collect();
        let z = Tensor::from_vec(data.clone(), (1, n, 3), &Device::Cpu).unwrap();
        let weights = [1.0, 2.0, 0.5, 1.0];
        let out = apply_weights(&z, &weights).unwrap();
        let out: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        let weighted: Vec<f32> = data
            .iter()
            .enumerate()
            .map(|(i, v)| v * weights[i / 3])
            .collect();
        let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let scale = mean(&data) / mean(&weighted);
        for (o, w) in out.iter().zip(&weighted) {
            assert!((f64::from(*o) - f64::from(*w) * scale).abs() < 1e-5);
        }
        assert!((mean(&out) - mean(&data)).abs() < 1e-5);
        let same = apply_weights(&z, &[1.0; 4]).unwrap();
        assert_eq!(same.to_vec3::<f32>().unwrap(), z.to_vec3::<f32>().unwrap());
        assert!(apply_weights(&z, &[1.0; 3]).is_err());
        assert!(apply_weights(&z.flatten_all().unwrap(), &[1.0; 4]).is_err());
    }
}
