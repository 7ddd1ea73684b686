//! Query normalisation shared by the fast path, the keyword miner and the decision cache.
//!
//! Queries and keywords go through the same function, so matching is case-insensitive
//! (Unicode-aware lower-casing) and a phrase matches across any run of whitespace.

/// Lower-cases `text` (Unicode-aware), folds every run of whitespace into one ASCII space and
/// trims both ends.
///
/// ```
/// assert_eq!(agent_router::routing::normalize_query("  What ARE my\t\nCOSTS? "), "what are my costs?");
/// assert_eq!(agent_router::routing::normalize_query("ÜBER Straße"), "über straße");
/// ```
pub fn normalize_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_into(text, &mut out);
    out
}

/// Like [`normalize_query`], but writes into `out` (cleared first) so a caller can reuse a buffer.
pub fn normalize_into(text: &str, out: &mut String) {
    out.clear();
    if is_cleanly_spaced_ascii(text) {
        // The common case: copied whole and lower-cased, without decoding characters.
        out.push_str(text);
        out.make_ascii_lowercase();
    } else {
        fold_chars(text, out);
    }
}

/// Whether `text` is ASCII with single spaces between words and none at the ends, so
/// normalising it only lower-cases it (the ASCII characters `char::is_whitespace` accepts are
/// the ASCII whitespace and vertical tab).
fn is_cleanly_spaced_ascii(text: &str) -> bool {
    let space = |b: u8| b.is_ascii_whitespace() || b == 0x0b;
    let bytes = text.as_bytes();
    if bytes.first().is_some_and(|&b| space(b)) || bytes.last().is_some_and(|&b| space(b)) {
        return false;
    }
    let mut previous_space = false;
    bytes.iter().all(|&b| {
        let is_space = space(b);
        let ok = b.is_ascii() && (!is_space || (b == b' ' && !previous_space));
        previous_space = is_space;
        ok
    })
}

/// The general form, a character at a time: Unicode lower-casing and whitespace folding.
fn fold_chars(text: &str, out: &mut String) {
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

/// Whether `c` is part of a word for boundary checks: letters, digits (any script) and `_`.
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `c` belongs to a script written without spaces between words (Han, Hiragana, Katakana,
/// Thai, Lao, Khmer, Myanmar). Such characters never form word boundaries, so a keyword like
/// `東京` matches inside `東京へ行く`.
pub fn is_unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF // Thai, Lao
        | 0x1000..=0x109F // Myanmar
        | 0x1780..=0x17FF // Khmer
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x31F0..=0x31FF // Katakana phonetic extensions
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0xF900..=0xFAFF // CJK compatibility ideographs
        | 0xFF66..=0xFF9F // half-width Katakana
        | 0x20000..=0x3134F // CJK extensions B to G
    )
}

/// Whether `c` joins with a neighbouring word character into one word: a word character of a
/// script that separates words with spaces. Keyword matches may not be joined on either side.
pub fn joins_words(c: char) -> bool {
    is_word_char(c) && !is_unspaced_script(c)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary (slicing a
/// `str` inside a multi-byte character would panic).
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general form alone, as the ASCII shortcut must behave.
    fn by_chars(text: &str) -> String {
        let mut out = String::new();
        fold_chars(text, &mut out);
        out
    }

    #[test]
    fn ascii_shortcut_matches_the_general_form() {
        // Every ASCII character, alone and between words, including each kind of whitespace.
        for b in 0u8..128 {
            let c = char::from(b);
            for text in [
                format!("{c}"),
                format!("A{c}B"),
                format!(" {c}{c} x{c}"),
                format!("Cost{c}\t\x0b\x0cEXPLORER {c}"),
            ] {
                assert_eq!(normalize_query(&text), by_chars(&text), "{text:?}");
            }
        }
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_bytes("abc", 5), "abc");
        assert_eq!(truncate_bytes("abcdef", 3), "abc");
        assert_eq!(truncate_bytes("é€😀", 1), "");
        assert_eq!(truncate_bytes("é€😀", 4), "é");
        assert_eq!(truncate_bytes("é€😀", 5), "é€");
    }

    #[test]
    fn table() {
        let cases = [
            ("", ""),
            ("   ", ""),
            ("Cost", "cost"),
            ("a  \t b\n\nc", "a b c"),
            ("\u{00a0}nbsp\u{2003}em ", "nbsp em"),
            ("İSTANBUL", "i̇stanbul"),
            ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_query(input), want, "input {input:?}");
        }
    }
}
