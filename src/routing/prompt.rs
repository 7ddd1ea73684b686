//! Tier 3's policy: the system prompt the model sees and the allow-list its answer must pass.
//!
//! The model sees a tiny system prompt (`prompts/system.txt`, at most 60 words) plus the agent
//! list generated from the catalogue; the user's query goes only in the user message. The answer
//! is accepted only if, trimmed and case-folded, it is exactly one agent name. The model call
//! itself sits behind the [`crate::ports::Classifier`] port.

use super::catalogue::Catalogue;

/// The compiled-in system prompt template. `{agents}` becomes one `name: description` line per
/// agent and `{default}` the default agent's name.
pub const DEFAULT_SYSTEM_PROMPT: &str = include_str!("../../prompts/system.txt");

/// Most words the prompt template may have (placeholders excluded), keeping every call cheap.
pub const MAX_PROMPT_WORDS: usize = 60;

/// Confidence reported for LLM decisions. Converse exposes no token probabilities, so this is a
/// fixed prior, below any clear fast-path win and above the default agent's 0.
pub const LLM_CONFIDENCE: f32 = 0.7;

/// Problems with a system prompt template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The template has no `{agents}` placeholder, so the model would not see the agents.
    #[error("system prompt template has no {{agents}} placeholder")]
    NoAgentList,
    /// The template is over [`MAX_PROMPT_WORDS`] words.
    #[error("system prompt template has {0} words; the limit is {MAX_PROMPT_WORDS}")]
    TooLong(usize),
}

/// Renders the system prompt: the template with the catalogue's agent list filled in.
pub fn render_system_prompt(template: &str, catalogue: &Catalogue) -> Result<String, PromptError> {
    if !template.contains("{agents}") {
        return Err(PromptError::NoAgentList);
    }
    let words = template
        .replace("{agents}", " ")
        .replace("{default}", " ")
        .split_whitespace()
        .count();
    if words > MAX_PROMPT_WORDS {
        return Err(PromptError::TooLong(words));
    }
    let agents: Vec<String> = catalogue
        .agents()
        .iter()
        .map(|a| format!("{}: {}", a.name, a.description))
        .collect();
    Ok(template
        .trim()
        .replace("{default}", &catalogue.default_agent().name)
        .replace("{agents}", &agents.join("\n")))
}

/// The allow-list check: the index of the agent the answer names, if it names exactly one.
/// The answer is trimmed and case-folded; anything else (a sentence, two names, quotes) is refused.
pub fn parse_answer(answer: &str, catalogue: &Catalogue) -> Option<usize> {
    let folded = answer.trim().to_lowercase();
    catalogue.index_of(&folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_prompt_is_short_and_lists_agents() {
        let c = Catalogue::embedded_default().unwrap();
        let p = render_system_prompt(DEFAULT_SYSTEM_PROMPT, &c).unwrap();
        for a in c.agents() {
            assert!(p.contains(&format!("{}: {}", a.name, a.description)), "{p}");
        }
        assert!(!p.contains('{'), "placeholders left in {p}");
        let too_long = format!("{} {{agents}}", "word ".repeat(61));
        assert_eq!(
            render_system_prompt(&too_long, &c),
            Err(PromptError::TooLong(61))
        );
        assert_eq!(
            render_system_prompt("no list", &c),
            Err(PromptError::NoAgentList)
        );
    }

    #[test]
    fn answers_table() {
        let c = Catalogue::embedded_default().unwrap();
        let cases = [
            ("cost", Some("cost")),
            ("  Security\n", Some("security")),
            ("MONITORING", Some("monitoring")),
            ("general", Some("general")),
            ("cost.", None),
            ("\"cost\"", None),
            ("The answer is cost", None),
            ("cost security", None),
            ("admin", None),
            ("", None),
        ];
        for (answer, want) in cases {
            let got = parse_answer(answer, &c).map(|i| c.agents()[i].name.as_str());
            assert_eq!(got, want, "answer {answer:?}");
        }
    }
}
