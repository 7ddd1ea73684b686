//! Query normalisation shared by the fast path, the keyword miner and the decision cache.
//!
//! Queries and keywords go through the same function, so matching is case-insensitive
//! (Unicode-aware lower-casing) and a phrase matches across any run of whitespace.

/// Lower-cases `text` (Unicode-aware), folds every run of whitespace into one ASCII space and
/// trims both ends.
///
/// ```
/// assert_eq!(agent_router::normalize::normalize_query("  What ARE my\t\nCOSTS? "), "what are my costs?");
/// assert_eq!(agent_router::normalize::normalize_query("ÜBER Straße"), "über straße");
/// ```
pub fn normalize_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_into(text, &mut out);
    out
}

/// Like [`normalize_query`], but writes into `out` (cleared first) so a caller can reuse a buffer.
pub fn normalize_into(text: &str, out: &mut String) {
    out.clear();
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

#[cfg(test)]
mod tests {
    use super::*;

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
