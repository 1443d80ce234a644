//! CLIP byte-level BPE tokenizer (FORMATS §2.1), as transformers 5 `CLIPTokenizer` (backed by
//! `tokenizers`) gives it to diffusers: the reference ids are `tests/fixtures/refs/tokens.json`.
//!
//! Special tokens (`<|startoftext|>`, `<|endoftext|>` and a non-eos padding token such as
//! SDXL `tokenizer_2`'s `!`) are split off the raw text first, case-sensitively. Each remaining
//! segment is lowercased (no HTML unescaping: transformers 5 has no ftfy step), split with CLIP's
//! pre-tokenizer regex (digits one per piece), mapped byte by byte through GPT-2's
//! `bytes_to_unicode` and merged with BPE, the last symbol of a piece carrying `</w>`.
//!
//! Not done: transformers' NFC normalization (no Unicode tables in the dependencies), so text in
//! decomposed form (`e` + U+0301) tokenizes differently from its composed form.

use crate::{Error, Result};
use regex::Regex;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// Sequence length of every CLIP text encoder (`model_max_length`).
pub const MAX_LENGTH: usize = 77;

/// Tokens between `bos` and `eos` in one sequence.
pub const CHUNK_TOKENS: usize = MAX_LENGTH - 2;

/// `<|startoftext|>`.
const BOS_TOKEN: &str = "<|startoftext|>";
/// `<|endoftext|>` (also the unknown token).
const EOS_TOKEN: &str = "<|endoftext|>";

/// CLIP's pre-tokenizer (transformers 5 `CLIPTokenizer`, a `Split` with `invert=True`).
const PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// Cached pieces beyond this count clear the cache (prompts repeat words, not millions of them).
const CACHE_LIMIT: usize = 50_000;

/// CLIP BPE tokenizer (vocab 49408 for the real CLIP vocabulary).
#[derive(Debug)]
pub struct ClipTokenizer {
    /// Token string → id (`vocab.json`).
    encoder: HashMap<String, u32>,
    /// Id → token string.
    decoder: HashMap<u32, String>,
    /// `"first second"` → merge rank (line order of `merges.txt`).
    bpe_ranks: HashMap<String, u32>,
    /// GPT-2 `bytes_to_unicode`.
    byte_encoder: [char; 256],
    /// The pre-tokenizer.
    pattern: Regex,
    /// Id of `<|startoftext|>`.
    bos: u32,
    /// Id of `<|endoftext|>`, also used for unknown tokens.
    eos: u32,
    /// Piece (after normalization) → ids.
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl ClipTokenizer {
    /// Loads `vocab.json` and `merges.txt` (a transformers tokenizer folder).
    pub fn from_files(vocab_json: &Path, merges_txt: &Path) -> Result<Self> {
        let vocab = std::fs::read_to_string(vocab_json).map_err(|e| Error::io(e, vocab_json))?;
        let merges = std::fs::read_to_string(merges_txt).map_err(|e| Error::io(e, merges_txt))?;
        let encoder = parse_vocab(&vocab).map_err(|detail| Error::InvalidFile {
            format: "CLIP vocab.json",
            detail,
            path: vocab_json.to_path_buf(),
        })?;
        let bpe_ranks = parse_merges(&merges).map_err(|detail| Error::InvalidFile {
            format: "CLIP merges.txt",
            detail,
            path: merges_txt.to_path_buf(),
        })?;
        Self::build(encoder, bpe_ranks).map_err(|detail| Error::InvalidFile {
            format: "CLIP vocab.json",
            detail,
            path: vocab_json.to_path_buf(),
        })
    }

    /// Builds a tokenizer from the text of `vocab.json` and `merges.txt`.
    pub fn from_strs(vocab: &str, merges: &str) -> Result<Self> {
        let encoder = parse_vocab(vocab)
            .map_err(|e| Error::InvalidArgument(format!("CLIP vocab.json: {e}")))?;
        let bpe_ranks = parse_merges(merges)
            .map_err(|e| Error::InvalidArgument(format!("CLIP merges.txt: {e}")))?;
        Self::build(encoder, bpe_ranks)
            .map_err(|e| Error::InvalidArgument(format!("CLIP vocab.json: {e}")))
    }

    /// The CLIP ViT-L/14 vocabulary bundled with Kiln (`assets/clip/`), shared by every SD family
    /// (OpenCLIP uses the same BPE; only the padding id differs). Parses about 1.5 MB on each
    /// call: build it once and share it (the tokenizer is `Sync`).
    pub fn bundled() -> Result<Self> {
        Self::from_strs(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../assets/clip/vocab.json"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../assets/clip/merges.txt"
            )),
        )
    }

    fn build(
        encoder: HashMap<String, u32>,
        bpe_ranks: HashMap<String, u32>,
    ) -> std::result::Result<Self, String> {
        let bos = *encoder
            .get(BOS_TOKEN)
            .ok_or_else(|| format!("no {BOS_TOKEN} token"))?;
        let eos = *encoder
            .get(EOS_TOKEN)
            .ok_or_else(|| format!("no {EOS_TOKEN} token"))?;
        let pattern = Regex::new(PATTERN).map_err(|e| e.to_string())?;
        let decoder = encoder.iter().map(|(k, v)| (*v, k.clone())).collect();
        Ok(ClipTokenizer {
            encoder,
            decoder,
            bpe_ranks,
            byte_encoder: bytes_to_unicode(),
            pattern,
            bos,
            eos,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Id of `<|startoftext|>` (49406 in CLIP).
    pub fn bos(&self) -> u32 {
        self.bos
    }

    /// Id of `<|endoftext|>` (49407 in CLIP); also SD1's padding id.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// Id of a vocabulary entry, e.g. `"cat</w>"`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.encoder.get(token).copied()
    }

    /// Id of `,</w>` (267 in CLIP), used by A1111's comma backtracking.
    pub fn comma_id(&self) -> Option<u32> {
        self.token_id(",</w>")
    }

    /// Token string of an id, e.g. `"cat</w>"`.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.decoder.get(&id).map(String::as_str)
    }

    /// Number of entries in the vocabulary (49408 in CLIP).
    pub fn vocab_size(&self) -> usize {
        self.encoder.len()
    }

    /// Token ids of `text`, without `bos`/`eos` and without truncation: diffusers `tokenizer`
    /// (CLIP-L, padding with eos) `tokenizer(text, add_special_tokens=False)`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with_pad(text, self.eos)
    }

    /// As [`Self::encode`] for a tokenizer whose padding token is `pad_id`: when that is not
    /// bos/eos (SDXL `tokenizer_2` and SD2 pad with `!`, id 0), transformers makes it a special
    /// token too, so each `!` in the text becomes its own id 0 (`"!!"` → `[0, 0]`, not `!!</w>`).
    pub fn encode_with_pad(&self, text: &str, pad_id: u32) -> Vec<u32> {
        let pad_token = (pad_id != self.bos && pad_id != self.eos)
            .then(|| self.id_to_token(pad_id))
            .flatten()
            .filter(|t| !t.is_empty());
        let mut specials: Vec<(&str, u32)> = vec![(BOS_TOKEN, self.bos), (EOS_TOKEN, self.eos)];
        if let Some(pad_token) = pad_token {
            specials.push((pad_token, pad_id));
        }
        // Leftmost-longest, as tokenizers' added-vocabulary matcher.
        specials.sort_by_key(|(token, _)| std::cmp::Reverse(token.len()));
        let mut ids = Vec::new();
        let mut segment_start = 0;
        let mut at = 0;
        while at < text.len() {
            let rest = text.get(at..).unwrap_or("");
            if let Some((token, id)) = specials.iter().find(|(t, _)| rest.starts_with(t)) {
                self.encode_segment(text.get(segment_start..at).unwrap_or(""), &mut ids);
                ids.push(*id);
                at += token.len();
                segment_start = at;
            } else {
                at += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        self.encode_segment(text.get(segment_start..).unwrap_or(""), &mut ids);
        ids
    }

    /// diffusers' `tokenizer(text, padding="max_length", max_length=77, truncation=True)`:
    /// `[bos] + ≤75 tokens + [eos]`, then `pad_id` (49407 for CLIP-L, 0 for OpenCLIP); tokenized
    /// with [`Self::encode_with_pad`].
    pub fn encode_padded(&self, text: &str, pad_id: u32) -> [u32; MAX_LENGTH] {
        let ids = self.encode_with_pad(text, pad_id);
        let mut out = [pad_id; MAX_LENGTH];
        out[0] = self.bos;
        let n = ids.len().min(CHUNK_TOKENS);
        for (slot, id) in out.iter_mut().skip(1).zip(ids.iter().take(n)) {
            *slot = *id;
        }
        out[n + 1] = self.eos;
        out
    }

    /// Normalizes, pre-tokenizes and BPE-encodes text that holds no special token.
    fn encode_segment(&self, segment: &str, ids: &mut Vec<u32>) {
        if segment.is_empty() {
            return;
        }
        let text = normalize(segment);
        for piece in self.pattern.find_iter(&text) {
            self.encode_piece(piece.as_str(), ids);
        }
    }

    /// Appends the ids of one pre-tokenized piece, through the cache.
    fn encode_piece(&self, piece: &str, ids: &mut Vec<u32>) {
        if let Ok(cache) = self.cache.lock()
            && let Some(cached) = cache.get(piece)
        {
            ids.extend_from_slice(cached);
            return;
        }
        let mapped: String = piece
            .bytes()
            .map(|b| self.byte_encoder[usize::from(b)])
            .collect();
        let piece_ids: Vec<u32> = self
            .bpe(&mapped)
            .iter()
            .map(|token| self.encoder.get(token).copied().unwrap_or(self.eos))
            .collect();
        ids.extend_from_slice(&piece_ids);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(piece.to_owned(), piece_ids);
        }
    }

    /// `CLIPTokenizer.bpe`: repeatedly merges the lowest-ranked adjacent pair.
    fn bpe(&self, token: &str) -> Vec<String> {
        let mut word: Vec<String> = token.chars().map(String::from).collect();
        let Some(last) = word.last_mut() else {
            return word;
        };
        last.push_str("</w>");
        let mut key = String::new();
        while word.len() > 1 {
            let mut best: Option<(u32, usize)> = None;
            for (i, pair) in word.windows(2).enumerate() {
                let [first, second] = pair else { continue };
                key.clear();
                key.push_str(first);
                key.push(' ');
                key.push_str(second);
                if let Some(&rank) = self.bpe_ranks.get(&key)
                    && best.is_none_or(|(best_rank, _)| rank < best_rank)
                {
                    best = Some((rank, i));
                }
            }
            let Some((_, at)) = best else { break };
            let (Some(first), Some(second)) = (word.get(at).cloned(), word.get(at + 1).cloned())
            else {
                break;
            };
            let mut merged = Vec::with_capacity(word.len());
            let mut symbols = word.into_iter().peekable();
            while let Some(symbol) = symbols.next() {
                if symbol == first && symbols.peek() == Some(&second) {
                    symbols.next();
                    merged.push(format!("{first}{second}"));
                } else {
                    merged.push(symbol);
                }
            }
            word = merged;
        }
        word
    }
}

/// Parses `vocab.json` (`{"token": id, ...}`).
fn parse_vocab(text: &str) -> std::result::Result<HashMap<String, u32>, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Parses `merges.txt`: one `first second` pair per line, rank = line order; a first line
/// starting with `#version` is skipped, as are empty lines.
fn parse_merges(text: &str) -> std::result::Result<HashMap<String, u32>, String> {
    let mut ranks = HashMap::new();
    let mut rank = 0u32;
    for (number, line) in text.lines().enumerate() {
        if number == 0 && line.starts_with("#version") {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("line {} is not a pair: {line:?}", number + 1));
        };
        // transformers builds `dict(zip(merges, range(n)))`: a repeated pair keeps its last rank.
        ranks.insert(format!("{first} {second}"), rank);
        rank += 1;
    }
    Ok(ranks)
}

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the others to U+0100 onwards.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut next = 256u32;
    for (b, slot) in (0u32..).zip(table.iter_mut()) {
        let code = if printable(b) {
            b
        } else {
            let code = next;
            next += 1;
            code
        };
        *slot = char::from_u32(code).unwrap_or('\u{FFFD}');
    }
    table
}

/// transformers 5 CLIP normalizer: NFC, whitespace runs → one space, then lowercase char by
/// char (tokenizers' `Lowercase`, so a final `Σ` becomes `σ`, not `ς`).
pub(crate) fn normalize(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for ch in text.nfc() {
        if ch.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            in_space = false;
            out.extend(ch.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny vocabulary: the 512 byte symbols, a few merges and the two specials.
    pub(crate) fn tiny() -> ClipTokenizer {
        let bytes = bytes_to_unicode();
        let mut vocab: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
        vocab.extend(bytes.iter().map(|c| format!("{c}</w>")));
        let merges = [
            "c a", "ca t</w>", "d o", "do g</w>", "a </w>", "t h", "th e</w>", "r e", "re d</w>",
        ];
        for merge in merges {
            vocab.push(merge.replace(' ', ""));
        }
        vocab.push(BOS_TOKEN.into());
        vocab.push(EOS_TOKEN.into());
        let vocab_json: serde_json::Map<String, serde_json::Value> = vocab
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, serde_json::Value::from(i)))
            .collect();
        let merges_txt = format!("#version: 0.2\n{}\n", merges.join("\n"));
        ClipTokenizer::from_strs(
            &serde_json::Value::Object(vocab_json).to_string(),
            &merges_txt,
        )
        .unwrap()
    }

    fn tokens(tok: &ClipTokenizer, text: &str) -> Vec<String> {
        let reverse: HashMap<u32, &String> = tok.encoder.iter().map(|(k, v)| (*v, k)).collect();
        tok.encode(text)
            .into_iter()
            .map(|id| reverse[&id].clone())
            .collect()
    }

    /// Every case of `tests/fixtures/refs/tokens.json` (make_fixtures.py `make_tokens`:
    /// transformers `CLIPTokenizer` with pad `<|endoftext|>` and with pad `!`).
    #[test]
    fn bundled_matches_transformers_fixture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/refs/tokens.json"
        );
        let text = std::fs::read_to_string(path).expect("committed fixture refs/tokens.json");
        let refs: serde_json::Value = serde_json::from_str(&text).unwrap();
        let tok = ClipTokenizer::bundled().unwrap();
        assert_eq!(tok.vocab_size(), 49408);
        assert_eq!(
            (tok.bos(), tok.eos(), tok.comma_id()),
            (49406, 49407, Some(267))
        );
        let pad1 = refs["pad_tokenizer"].as_u64().unwrap() as u32;
        let pad2 = refs["pad_tokenizer_2"].as_u64().unwrap() as u32;
        let ids = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let cases = refs["prompts"].as_array().unwrap();
        assert!(cases.len() >= 15);
        for case in cases {
            let prompt = case["prompt"].as_str().unwrap();
            assert_eq!(tok.encode(prompt), ids(&case["raw_ids"]), "{prompt:?}");
            assert_eq!(
                tok.encode_with_pad(prompt, pad2),
                ids(&case["raw_ids_2"]),
                "{prompt:?}"
            );
            assert_eq!(
                tok.encode_padded(prompt, pad1).to_vec(),
                ids(&case["tokenizer_input_ids"]),
                "{prompt:?}"
            );
            assert_eq!(
                tok.encode_padded(prompt, pad2).to_vec(),
                ids(&case["tokenizer_2_input_ids"]),
                "{prompt:?}"
            );
        }
    }

    #[test]
    fn byte_table_matches_gpt2() {
        let table = bytes_to_unicode();
        assert_eq!(table[usize::from(b'a')], 'a');
        assert_eq!(table[usize::from(b' ')], 'Ġ');
        assert_eq!(table[0], 'Ā');
        assert_eq!(table[0xAD], 'Ń');
        assert_eq!(table[0xFF], 'ÿ');
        let unique: std::collections::HashSet<char> = table.iter().copied().collect();
        assert_eq!(unique.len(), 256);
    }

    #[test]
    fn bpe_merges_by_rank_with_end_of_word() {
        let tok = tiny();
        assert_eq!(tokens(&tok, "cat"), ["cat</w>"]);
        assert_eq!(
            tokens(&tok, "The  RED\tdog"),
            ["the</w>", "red</w>", "dog</w>"]
        );
        assert_eq!(tokens(&tok, "cats"), ["ca", "t", "s</w>"]);
        assert_eq!(tokens(&tok, "a"), ["a</w>"]);
        assert_eq!(tokens(&tok, "aa"), ["a", "a</w>"]);
    }

    #[test]
    fn pretokenizer_splits_digits_and_punctuation() {
        let tok = tiny();
        assert_eq!(
            tokens(&tok, "a 1024px, cat!!"),
            [
                "a</w>", "1</w>", "0</w>", "2</w>", "4</w>", "p", "x</w>", ",</w>", "cat</w>", "!",
                "!</w>"
            ]
        );
        assert_eq!(tokens(&tok, "cat's"), ["cat</w>", "'", "s</w>"]);
        assert_eq!(tokens(&tok, "é"), ["Ã", "©</w>"]);
    }

    #[test]
    fn specials_and_unknowns() {
        let tok = tiny();
        assert_eq!(
            tok.encode("<|startoftext|>cat<|endoftext|>"),
            [tok.bos(), tok.token_id("cat</w>").unwrap(), tok.eos()]
        );
        assert_eq!(tok.encode(""), Vec::<u32>::new());
        assert_eq!(tok.encode("   "), Vec::<u32>::new());
    }

    #[test]
    fn padding_and_truncation() {
        let tok = tiny();
        let cat = tok.token_id("cat</w>").unwrap();
        let ids = tok.encode_padded("cat cat", 0);
        assert_eq!(&ids[..4], &[tok.bos(), cat, cat, tok.eos()]);
        assert!(ids[4..].iter().all(|&id| id == 0));
        let long = vec!["cat"; 100].join(" ");
        let ids = tok.encode_padded(&long, tok.eos());
        assert_eq!(ids[0], tok.bos());
        assert!(ids[1..76].iter().all(|&id| id == cat));
        assert_eq!(ids[76], tok.eos());
        let empty = tok.encode_padded("", tok.eos());
        assert_eq!(empty[0], tok.bos());
        assert!(empty[1..].iter().all(|&id| id == tok.eos()));
    }

    #[test]
    fn normalization_composes_like_nfc() {
        // "e" + combining acute accent is the same token as the precomposed "é".
        assert_eq!(normalize("cafe\u{301}"), normalize("caf\u{e9}"));
    }

    #[test]
    fn normalization_like_transformers() {
        assert_eq!(normalize("  A &amp; B\n\n C  "), " a &amp; b c ");
        assert_eq!(normalize("ΟΔΟΣ"), "οδοσ");
    }

    #[test]
    fn pad_token_is_special_when_not_eos() {
        let tok = tiny();
        let bang = tok.token_id("!").unwrap();
        let ids = tok.encode_with_pad("cat!! a", bang);
        assert_eq!(
            ids,
            [
                tok.token_id("cat</w>").unwrap(),
                bang,
                bang,
                tok.token_id("a</w>").unwrap()
            ]
        );
        assert_eq!(tokens(&tok, "cat!!"), ["cat</w>", "!", "!</w>"]);
        // Specials are matched case-sensitively on the raw text.
        assert_ne!(tok.encode("<|STARTOFTEXT|>")[0], tok.bos());
    }

    #[test]
    fn merges_file_errors() {
        assert!(parse_merges("#version: 0.2\na b\n\nc\n").is_err());
        let ranks = parse_merges("#version: 0.2\na b\nab c\n").unwrap();
        assert_eq!(ranks["a b"], 0);
        assert_eq!(ranks["ab c"], 1);
        assert!(ClipTokenizer::from_strs("{}", "").is_err());
    }
}
