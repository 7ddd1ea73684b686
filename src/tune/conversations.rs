//! Conversations in `eval`: labelled lines that carry a `session_id` are, in file order, the turns
//! of their conversation, routed through the router's session policy
//! ([`crate::routing::SessionPolicy`]) with an in-process store and no LLM, as the router does
//! with `ROUTER_LLM=off`.
//!
//! A turn is *decided* when the fast path or the session takes it (an undecided turn would go to
//! the LLM, or the default agent, and leaves the session as it was). The report gives per-turn
//! coverage (decided / in-scope turns) and precision (right / decided) for all turns and for three
//! kinds: **first** turns (no earlier turn in the session), **same**-topic turns (labelled like
//! the previous turn) and **switch** turns (labelled differently).

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use super::thresholds::ratio;
use super::{Example, TuneError, agent_name_for_label, pct};
use crate::routing::{Catalogue, FastOutcome, FastPath, SessionPolicy, Turn};

/// Coverage and precision over one kind of turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TurnFigures {
    /// In-scope turns of this kind.
    pub turns: usize,
    /// Of those, the ones the fast path or the session decided.
    pub decided: usize,
    /// Of those, the ones given the labelled agent.
    pub correct: usize,
    /// `decided / turns` (0 without turns).
    pub coverage: f64,
    /// `correct / decided` (undefined, `null`, without decisions).
    pub precision: f64,
}

impl TurnFigures {
    fn count(&mut self, decided: bool, correct: bool) {
        self.turns += 1;
        self.decided += usize::from(decided);
        self.correct += usize::from(decided && correct);
    }

    fn finish(mut self) -> TurnFigures {
        self.coverage = ratio(self.decided, self.turns, 0.0);
        self.precision = ratio(self.correct, self.decided, f64::NAN);
        self
    }
}

/// The conversation part of the `eval` report (`turns` in `--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnsReport {
    /// Conversations (distinct session ids).
    pub sessions: usize,
    /// Every in-scope turn.
    pub all: TurnFigures,
    /// First turns.
    pub first: TurnFigures,
    /// Turns labelled like the previous turn of their session.
    pub same: TurnFigures,
    /// Turns labelled differently from the previous turn.
    pub switch: TurnFigures,
    /// Turns the session decided (`routing_method: "session"`), and how many of them were right.
    pub by_session: TurnFigures,
    /// The fast path alone on the same turns (no session), for comparison.
    pub stateless: TurnFigures,
    /// The policy's `switch_confidence`.
    pub switch_confidence: f32,
}

/// Evaluates the conversations in `examples` (lines without a `session_id` are left out); `None`
/// when there are none.
pub fn evaluate_turns(
    catalogue: &Catalogue,
    examples: &[Example],
    policy: &SessionPolicy,
) -> Result<Option<TurnsReport>, TuneError> {
    if !examples.iter().any(|e| e.session_id.is_some()) {
        return Ok(None);
    }
    let fast = FastPath::new(catalogue).map_err(|source| TuneError::Catalogue {
        path: "(given catalogue)".to_owned(),
        source,
    })?;
    // Per session: the agent of its last decided turn (the store) and its last label.
    let mut store: HashMap<&str, usize> = HashMap::new();
    let mut last_label: HashMap<&str, Option<&str>> = HashMap::new();
    let mut r = TurnsReport {
        sessions: 0,
        all: TurnFigures::default(),
        first: TurnFigures::default(),
        same: TurnFigures::default(),
        switch: TurnFigures::default(),
        by_session: TurnFigures::default(),
        stateless: TurnFigures::default(),
        switch_confidence: policy.switch_confidence,
    };
    for ex in examples {
        let Some(session) = ex.session_id.as_deref() else {
            continue;
        };
        let label = ex.agent.as_deref();
        let previous = last_label.insert(session, label);
        let expected = label.and_then(|l| catalogue.index_of(&agent_name_for_label(l)));
        let scan = fast.scan(&ex.query);
        let outcome = fast.judge(&scan);
        let stateless = match &outcome {
            FastOutcome::Decided { agent, .. } => Some(*agent),
            FastOutcome::Unrouted { .. } => None,
        };
        let (got, by_session) = match store.get(session) {
            None => (stateless, false),
            Some(&held) => {
                match policy.turn(&fast, &scan, &outcome, held, catalogue.default_index()) {
                    Turn::Decided | Turn::Contested => (stateless, false),
                    Turn::Follow(_) => (Some(held), true),
                }
            }
        };
        if let Some(agent) = got {
            store.insert(session, agent);
        }
        if label.is_none() {
            continue; // out of scope: not a turn to cover
        }
        let correct = got.is_some() && got == expected;
        r.all.count(got.is_some(), correct);
        r.stateless.count(
            stateless.is_some(),
            stateless.is_some() && stateless == expected,
        );
        if by_session {
            r.by_session.count(true, correct);
        }
        match previous {
            None => r.first.count(got.is_some(), correct),
            Some(prev) if prev == label => r.same.count(got.is_some(), correct),
            Some(_) => r.switch.count(got.is_some(), correct),
        }
    }
    r.sessions = last_label.len();
    for f in [
        &mut r.all,
        &mut r.first,
        &mut r.same,
        &mut r.switch,
        &mut r.by_session,
        &mut r.stateless,
    ] {
        *f = f.finish();
    }
    Ok(Some(r))
}

impl TurnsReport {
    /// The conversation part of the text report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> fmt::Result {
        writeln!(
            s,
            "conversations: {} sessions, {} in-scope turns (session policy, LLM off; switch_confidence {})",
            self.sessions, self.all.turns, self.switch_confidence
        )?;
        writeln!(
            s,
            "  {:<22} {:>7} {:>9} {:>10}",
            "turns", "count", "coverage", "precision"
        )?;
        for (name, f) in [
            ("all", &self.all),
            ("first", &self.first),
            ("same topic", &self.same),
            ("switch", &self.switch),
            ("decided by the session", &self.by_session),
            ("fast path alone", &self.stateless),
        ] {
            writeln!(
                s,
                "  {:<22} {:>7} {:>9} {:>10}",
                name,
                f.turns,
                pct(f.coverage),
                pct(f.precision)
            )?;
        }
        Ok(())
    }
}
