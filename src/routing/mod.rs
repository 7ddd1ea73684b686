//! The routing core: the catalogue, the fast path, the decision cache and the cascade that orders
//! them. Nothing here knows about HTTP, Lambda or AWS; the LLM tier is reached through the
//! [`crate::ports::Classifier`] port.
//!
//! | piece | file | what it does |
//! |---|---|---|
//! | [`Catalogue`] | `catalogue.rs` | the validated routes file: agents, keywords, thresholds |
//! | normalisation | `normalize.rs` | one text normalisation for queries, keywords and cache keys |
//! | [`FastPath`] | `fastpath.rs` | tier 1: one Aho-Corasick automaton, scores, the margin rule |
//! | decision cache | `cache.rs` | tier 2: LLM decisions reused for a TTL |
//! | prompt | `prompt.rs` | tier 3's policy: the system prompt and the answer allow-list |
//! | [`Router`] | `cascade.rs` | the cascade, tier by tier, into a [`Decision`] |
//! | [`SessionPolicy`] | `session.rs` | conversations: when a turn stays with its agent |
//! | [`Decision`] | `decision.rs` | what the router answers, and why |

mod cache;
mod cascade;
mod catalogue;
mod decision;
mod fastpath;
mod normalize;
mod prompt;
mod session;

pub use cascade::{LlmSettings, Router};
pub use catalogue::{
    Agent, Catalogue, CatalogueBuilder, CatalogueError, DEFAULT_ROUTES_TOML, FastPathSettings,
    Keyword, LinearSettings, MAX_AGENT_NAME_LEN, MAX_AGENT_WEIGHT, MAX_LINEAR_WEIGHT,
};
pub use decision::{Decision, FallbackReason, RoutingMethod, SessionInfo, SessionStatus, Timings};
pub use fastpath::{FastOutcome, FastPath, KeywordHit, Scan, Unrouted};
pub use normalize::normalize_query;
pub use prompt::{DEFAULT_SYSTEM_PROMPT, MAX_PROMPT_WORDS, PromptError, render_system_prompt};
pub use session::{Conversation, SessionPolicy};

pub(crate) use cascade::{micros, one_line};
pub(crate) use catalogue::valid_agent_name;
pub(crate) use normalize::{is_word_char, normalize_into, truncate_bytes};
pub(crate) use session::Turn;
