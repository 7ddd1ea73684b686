//! The examples, read once: labels turned into agent names, queries cut into words and indexed by
//! the 1- to 3-word n-grams they contain.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use crate::routing::{is_word_char, normalize_into};
use crate::tune::{Example, TuneError, agent_name_for_label};

/// The stop-word list (`src/tune/stopwords.txt`), sorted.
static STOP_WORDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    include_str!("../stopwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// English function words that are never a keyword on their own (phrases made only of them may
/// be): a general list, not derived from any data set, kept in `src/tune/stopwords.txt`.
pub fn stop_words() -> &'static [&'static str] {
    &STOP_WORDS
}

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// Word ids of an n-gram, padded with [`NO_WORD`].
pub(super) type GramKey = [u32; 3];
pub(super) const NO_WORD: u32 = u32::MAX;

/// One n-gram seen in at least `min_support` examples.
pub(super) struct Gram {
    pub words: usize,
    /// Its words' ids.
    pub key: GramKey,
    /// The words joined by single spaces: the keyword as the routes file will hold it.
    pub text: String,
    /// Made only of stop words (never a keyword when it is one word).
    pub stop_only: bool,
    /// Starts and ends with a word that is not a stop word (fit for a description).
    pub clean_edges: bool,
    /// Examples containing it, ascending.
    pub postings: Vec<u32>,
}

/// The examples, tokenised once and indexed by n-gram.
pub(super) struct Corpus {
    /// Agent names, sorted; class `labels.len()` is out of scope.
    pub labels: Vec<String>,
    /// Class of each example.
    pub example_label: Vec<usize>,
    /// N-grams with enough support to ever be kept, sorted by length, then text.
    pub grams: Vec<Gram>,
    /// Name of the route-only default agent (`general`, or `general_default` if taken).
    pub default_name: String,
    /// Every word seen, by id.
    pub vocab: HashMap<String, u32>,
    /// Each example's distinct word ids, ascending.
    pub example_words: Vec<Vec<u32>>,
}

impl Corpus {
    /// Number of agents (classes other than out of scope).
    pub fn agents(&self) -> usize {
        self.labels.len()
    }

    pub fn build(
        examples: &[Example],
        max_words: usize,
        min_support: usize,
        source: &str,
    ) -> Result<Corpus, TuneError> {
        let (labels, example_label) = label_classes(examples, source)?;
        let mut default_name = "general".to_owned();
        while labels.binary_search(&default_name).is_ok() {
            default_name.push_str("_default");
        }

        // Tokenise and count n-grams (once per example).
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut words: Vec<String> = Vec::new();
        let mut stop: Vec<bool> = Vec::new();
        let mut postings: HashMap<GramKey, Vec<u32>> = HashMap::new();
        let mut norm = String::new();
        let mut toks: Vec<(u32, bool)> = Vec::new(); // (word id, preceded by exactly one space)
        let mut keys: Vec<GramKey> = Vec::new();
        let mut example_words: Vec<Vec<u32>> = Vec::with_capacity(examples.len());
        for (i, ex) in examples.iter().enumerate() {
            normalize_into(&ex.query, &mut norm);
            toks.clear();
            let mut start: Option<usize> = None;
            let mut gap_start = 0;
            for (pos, c) in norm
                .char_indices()
                .chain(std::iter::once((norm.len(), ' ')))
            {
                let word_char = pos < norm.len() && is_word_char(c);
                match (word_char, start) {
                    (true, None) => start = Some(pos),
                    (false, Some(s)) => {
                        let w = &norm[s..pos];
                        let id = match vocab.get(w) {
                            Some(&id) => id,
                            None => {
                                let id = words.len() as u32;
                                vocab.insert(w.to_owned(), id);
                                words.push(w.to_owned());
                                stop.push(is_stop_word(w));
                                id
                            }
                        };
                        let spaced = !toks.is_empty() && &norm[gap_start..s] == " ";
                        toks.push((id, spaced));
                        start = None;
                        gap_start = pos;
                    }
                    _ => {}
                }
            }
            let mut distinct: Vec<u32> = toks.iter().map(|t| t.0).collect();
            distinct.sort_unstable();
            distinct.dedup();
            example_words.push(distinct);
            // N-grams of words separated by exactly one space, so that the phrase matches the
            // query exactly as the fast path will see it.
            keys.clear();
            for s in 0..toks.len() {
                let mut key = [NO_WORD; 3];
                for n in 0..max_words.min(toks.len() - s) {
                    let (id, spaced) = toks[s + n];
                    if n > 0 && !spaced {
                        break;
                    }
                    key[n] = id;
                    keys.push(key);
                }
            }
            keys.sort_unstable();
            keys.dedup();
            for k in &keys {
                postings.entry(*k).or_default().push(i as u32);
            }
        }
        let mut grams: Vec<Gram> = postings
            .into_iter()
            .filter(|(_, p)| p.len() >= min_support)
            .map(|(key, postings)| {
                let n = key.iter().take_while(|&&w| w != NO_WORD).count();
                let text = key[..n]
                    .iter()
                    .map(|&w| words[w as usize].as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                Gram {
                    words: n,
                    key,
                    text,
                    stop_only: key[..n].iter().all(|&w| stop[w as usize]),
                    clean_edges: !stop[key[0] as usize] && !stop[key[n - 1] as usize],
                    postings,
                }
            })
            .collect();
        grams.sort_by(|a, b| a.words.cmp(&b.words).then_with(|| a.text.cmp(&b.text)));
        Ok(Corpus {
            labels,
            example_label,
            grams,
            default_name,
            vocab,
            example_words,
        })
    }

    /// Whether any example is out of scope.
    pub fn has_out_of_scope(&self) -> bool {
        self.example_label.contains(&self.agents())
    }

    /// For each example, how many of its distinct words are not in `known` (indexed by word id).
    pub fn unknown_words(&self, known: &[bool]) -> Vec<f64> {
        self.example_words
            .iter()
            .map(|ws| ws.iter().filter(|&&w| !known[w as usize]).count() as f64)
            .collect()
    }

    /// Examples of each class (`agents()` for out of scope) that contain n-gram `gram`, among
    /// those `use_example` accepts.
    pub fn class_counts(
        &self,
        gram: usize,
        use_example: &dyn Fn(usize) -> bool,
        out: &mut [usize],
    ) {
        out.iter_mut().for_each(|c| *c = 0);
        for &e in &self.grams[gram].postings {
            if use_example(e as usize) {
                out[self.example_label[e as usize]] += 1;
            }
        }
    }
}

/// Labels -> agent names (sorted, checked for clashes) and each example's class, out of scope
/// being class `names.len()`.
fn label_classes(
    examples: &[Example],
    source: &str,
) -> Result<(Vec<String>, Vec<usize>), TuneError> {
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for ex in examples {
        if let Some(label) = &ex.agent {
            let name = agent_name_for_label(label);
            match by_name.get(&name) {
                Some(first) if first != label => {
                    let (first, second) = if first < label {
                        (first.clone(), label.clone())
                    } else {
                        (label.clone(), first.clone())
                    };
                    return Err(TuneError::LabelClash {
                        path: source.to_owned(),
                        first,
                        second,
                        name,
                    });
                }
                Some(_) => {}
                None => {
                    by_name.insert(name, label.clone());
                }
            }
        }
    }
    if by_name.is_empty() {
        return Err(TuneError::NoInScope {
            path: source.to_owned(),
        });
    }
    let labels: Vec<String> = by_name.keys().cloned().collect();
    let class_of: HashMap<&str, usize> = by_name
        .values()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let example_label = examples
        .iter()
        .map(|ex| match &ex.agent {
            Some(l) => class_of[l.as_str()],
            None => labels.len(),
        })
        .collect();
    Ok((labels, example_label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_and_unique() {
        assert!(stop_words().len() > 100);
        for w in stop_words().windows(2) {
            assert!(w[0] < w[1], "{:?} must come before {:?}", w[0], w[1]);
        }
    }
}
