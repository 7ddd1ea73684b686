//! The conversation policy: the session's agent is a prior; leaving it takes clear evidence.
//!
//! | fast path | conversation with S | the turn goes to |
//! |---|---|---|
//! | decides S | | S (`fast`) |
//! | decides the default agent (thanks, hello: no domain) | | S (`session`) |
//! | decides A ≠ S (it beat every agent, S included, by the margin) | | A (`fast`: the topic changed) |
//! | no decision; S has no keyword and another agent has at least `contest_evidence` of the evidence a decision needs | | contested: the stateless cascade, the LLM told S |
//! | no decision otherwise | | S (`session`) |
//! | anything | none (first turn, expired, store down) | the stateless cascade |
//!
//! Staying is easy; knowing when the user changed topic is the hard part. Measured on held-out
//! SGD dialogues (README, "Conversations"): following the session whenever the fast path abstains
//! gives 96.1 % coverage at 96.6 % precision with the LLM off; leaving a turn whose only evidence
//! points elsewhere to the LLM gives 94.8 % at 97.1 %.

use super::fastpath::{FastOutcome, FastPath, Scan};

/// What the router knows of the conversation a turn belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversation<'a> {
    /// The agent that took the conversation's last turn.
    pub agent: &'a str,
    /// Turns routed so far in the conversation.
    pub turns: u32,
    /// The previous user turn, when the operator keeps it (`ROUTER_SESSION_CONTEXT=on`); given
    /// to the LLM with the new turn.
    pub last_query: Option<&'a str>,
}

/// How strongly a conversation holds its agent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionPolicy {
    /// The fast path's confidence a decision for another agent needs to leave the conversation's
    /// agent; below it the turn is contested. Default 0: a fast decision already beats every
    /// agent, the session's included, by the margin (raising it cost switch turns dearly on SGD;
    /// it can help a catalogue whose decisions are imprecise).
    pub switch_confidence: f32,
    /// When the fast path does not decide and the session's agent has no keyword: the share of
    /// a decision's evidence (`min_score`) another agent needs for the turn to be contested
    /// rather than followed. Default 0.3 (README, "Conversations": lower keeps precision and
    /// costs coverage).
    pub contest_evidence: f32,
    /// The `confidence` reported when a turn follows its session without decisive evidence.
    pub follow_confidence: f32,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            switch_confidence: 0.0,
            contest_evidence: 0.3,
            follow_confidence: 0.6,
        }
    }
}

/// What the policy makes of one turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Turn {
    /// The fast path decides, as without a session (it agrees, or it switches clearly).
    Decided,
    /// The session's agent keeps the turn.
    Follow(Follow),
    /// The evidence points elsewhere, not decisively: the stateless cascade takes the turn, and
    /// the LLM, when asked, is told the session's agent.
    Contested,
}

/// Why a turn follows its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Follow {
    /// No decisive keyword, and none that points only elsewhere.
    NoEvidence,
}

impl SessionPolicy {
    /// The policy's verdict on a turn whose conversation is with `session_agent`, given the fast
    /// path's scan and outcome.
    /// `default_agent` is the catalogue's catch-all: a fast decision for it (a thank-you, a
    /// greeting) names no domain, so it never takes a turn from the conversation's agent.
    pub(crate) fn turn(
        &self,
        fast: &FastPath,
        scan: &Scan,
        outcome: &FastOutcome,
        session_agent: usize,
        default_agent: usize,
    ) -> Turn {
        match outcome {
            FastOutcome::Decided { agent, .. } if *agent == session_agent => Turn::Decided,
            FastOutcome::Decided { agent, .. } if *agent == default_agent => {
                Turn::Follow(Follow::NoEvidence)
            }
            FastOutcome::Decided { confidence, .. } if *confidence >= self.switch_confidence => {
                Turn::Decided
            }
            FastOutcome::Decided { .. } => Turn::Contested,
            FastOutcome::Unrouted { .. } => {
                let own = fast.strength(scan, session_agent);
                // Strength grows with the score among agents a matched keyword speaks for, so
                // the strongest other agent is the best-scored one of those: one strength to
                // compute (a softmax in the linear form), not one per agent.
                let other = scan
                    .hits
                    .iter()
                    .filter(|h| h.agent != session_agent && h.weight > 0.0)
                    .map(|h| h.agent)
                    .max_by(|&a, &b| scan.scores[a].total_cmp(&scan.scores[b]))
                    .map_or(0.0, |a| fast.strength(scan, a));
                if own <= 0.0 && other >= self.contest_evidence {
                    Turn::Contested
                } else {
                    Turn::Follow(Follow::NoEvidence)
                }
            }
        }
    }
}
