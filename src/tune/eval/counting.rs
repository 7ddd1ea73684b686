//! Counting decisions: totals, per-agent figures, confusions and labels that name no agent.

use std::collections::BTreeMap;

use super::{AgentStats, Confusion, ConfusionExample, EXAMPLES_PER_CONFUSION, TOP_CONFUSIONS};
use crate::routing::Catalogue;
use crate::tune::thresholds::ratio;
use crate::tune::{Example, OUT_OF_SCOPE_LABEL, agent_name_for_label};

/// (count, first examples) of one confusion.
type Seen = (usize, Vec<ConfusionExample>);

/// The running counts of one evaluation.
pub(super) struct Counts<'a> {
    catalogue: &'a Catalogue,
    /// Agent names, then labels that name no agent, by index.
    names: Vec<String>,
    index: BTreeMap<String, usize>,
    pub unknown_labels: BTreeMap<String, usize>,
    support: Vec<usize>,
    decided_for: Vec<usize>,
    correct_for: Vec<usize>,
    /// (expected index or None for out of scope, got agent) -> what was seen.
    confusions: BTreeMap<(Option<usize>, usize), Seen>,
    pub in_scope: usize,
    pub out_of_scope: usize,
    pub decided: usize,
    pub correct: usize,
    pub oos_fast: usize,
    /// Characters of the queries left unrouted, and of all queries.
    pub unrouted_chars: usize,
    pub all_chars: usize,
}

impl<'a> Counts<'a> {
    pub fn new(catalogue: &'a Catalogue) -> Counts<'a> {
        let names: Vec<String> = catalogue.agents().iter().map(|a| a.name.clone()).collect();
        let n = names.len();
        Counts {
            catalogue,
            index: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            names,
            unknown_labels: BTreeMap::new(),
            support: vec![0; n],
            decided_for: vec![0; n],
            correct_for: vec![0; n],
            confusions: BTreeMap::new(),
            in_scope: 0,
            out_of_scope: 0,
            decided: 0,
            correct: 0,
            oos_fast: 0,
            unrouted_chars: 0,
            all_chars: 0,
        }
    }

    /// The index an example's label stands for (`None` for out of scope); a label that names no
    /// agent gets an index after the agents'.
    pub fn expected(&mut self, ex: &Example) -> Option<usize> {
        let label = ex.agent.as_ref()?;
        let name = match self.catalogue.index_of(label) {
            Some(_) => label.clone(),
            None => agent_name_for_label(label),
        };
        let i = match self.index.get(&name) {
            Some(&i) => i,
            None => {
                let i = self.names.len();
                self.names.push(name.clone());
                self.index.insert(name.clone(), i);
                self.support.push(0);
                self.decided_for.push(0);
                self.correct_for.push(0);
                i
            }
        };
        if i >= self.catalogue.agents().len() {
            *self.unknown_labels.entry(name).or_default() += 1;
        }
        Some(i)
    }

    /// Counts one query: labelled `expected`, given `got` with the winner's keywords `matched`.
    pub fn record(
        &mut self,
        ex: &Example,
        expected: Option<usize>,
        got: Option<usize>,
        matched: &[usize],
    ) {
        let chars = ex.query.chars().count();
        self.all_chars += chars;
        if got.is_none() {
            self.unrouted_chars += chars;
        }
        match (expected, got) {
            (None, g) => {
                self.out_of_scope += 1;
                if let Some(g) = g {
                    self.oos_fast += 1;
                    self.confused(ex, (None, g), matched);
                }
            }
            (Some(e), g) => {
                self.in_scope += 1;
                self.support[e] += 1;
                if let Some(g) = g {
                    self.decided += 1;
                    self.decided_for[g] += 1;
                    if g == e {
                        self.correct += 1;
                        self.correct_for[g] += 1;
                    } else {
                        self.confused(ex, (Some(e), g), matched);
                    }
                }
            }
        }
    }

    fn confused(&mut self, ex: &Example, key: (Option<usize>, usize), matched: &[usize]) {
        let (count, examples) = self.confusions.entry(key).or_default();
        *count += 1;
        if examples.len() < EXAMPLES_PER_CONFUSION {
            let keywords = &self.catalogue.agents()[key.1].keywords;
            examples.push(ConfusionExample {
                query: ex.query.clone(),
                matched: matched.iter().map(|&k| keywords[k].text.clone()).collect(),
            });
        }
    }

    /// Per agent of the catalogue and per unknown label, by name.
    pub fn per_agent(&self) -> BTreeMap<String, AgentStats> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                (
                    name.clone(),
                    AgentStats {
                        precision: ratio(self.correct_for[i], self.decided_for[i], f64::NAN),
                        recall: ratio(self.correct_for[i], self.support[i], f64::NAN),
                        support: self.support[i],
                        decided: self.decided_for[i],
                        correct: self.correct_for[i],
                    },
                )
            })
            .collect()
    }

    /// The [`TOP_CONFUSIONS`] most common mistakes, most frequent first.
    pub fn confusions(&self) -> Vec<Confusion> {
        let mut confusions: Vec<Confusion> = self
            .confusions
            .iter()
            .map(|(&(e, g), (count, examples))| Confusion {
                expected: e.map_or(OUT_OF_SCOPE_LABEL.to_owned(), |e| self.names[e].clone()),
                got: self.names[g].clone(),
                count: *count,
                examples: examples.clone(),
            })
            .collect();
        confusions.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.expected.cmp(&b.expected))
                .then_with(|| a.got.cmp(&b.got))
        });
        confusions.truncate(TOP_CONFUSIONS);
        confusions
    }
}
