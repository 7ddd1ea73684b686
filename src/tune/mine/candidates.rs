//! Candidate keywords and the examples' features: which candidates each example contains.

use super::corpus::Corpus;

/// Candidate n-grams: every n-gram that some agent has in at least `min_support` of the examples
/// `use_example` accepts, lone stop words aside. Indices into [`Corpus::grams`], ascending.
pub(super) fn candidates(
    corpus: &Corpus,
    min_support: usize,
    use_example: &dyn Fn(usize) -> bool,
) -> Vec<usize> {
    let k = corpus.agents();
    let mut counts = vec![0usize; k + 1];
    (0..corpus.grams.len())
        .filter(|&g| {
            if corpus.grams[g].words == 1 && corpus.grams[g].stop_only {
                return false;
            }
            corpus.class_counts(g, use_example, &mut counts);
            counts[..k].iter().any(|&c| c >= min_support)
        })
        .collect()
}

/// For every example, the candidates it contains (indices into the candidate list), ascending:
/// what the linear fast path, which counts every keyword found, will see in it.
pub(super) struct Rows {
    start: Vec<usize>,
    features: Vec<u32>,
}

impl Rows {
    pub fn build(corpus: &Corpus, candidates: &[usize], examples: usize) -> Rows {
        let mut len = vec![0usize; examples + 1];
        for &g in candidates {
            for &e in &corpus.grams[g].postings {
                len[e as usize + 1] += 1;
            }
        }
        for i in 1..len.len() {
            len[i] += len[i - 1];
        }
        let start = len.clone();
        let mut next = len;
        let mut features = vec![0u32; start[examples]];
        for (c, &g) in candidates.iter().enumerate() {
            for &e in &corpus.grams[g].postings {
                features[next[e as usize]] = c as u32;
                next[e as usize] += 1;
            }
        }
        Rows { start, features }
    }

    /// The candidates example `i` contains.
    pub fn of(&self, i: usize) -> &[u32] {
        &self.features[self.start[i]..self.start[i + 1]]
    }
}
