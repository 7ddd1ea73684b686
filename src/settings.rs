//! Process configuration read from the environment, and loading of the catalogue it names.

use std::path::{Path, PathBuf};

use crate::catalogue::{Catalogue, CatalogueError};

/// Environment variable naming a routes file to use instead of the embedded one.
pub const CONFIG_ENV: &str = "ROUTER_CONFIG";
/// Prefix of the per-agent target overrides, e.g. `ROUTER_TARGET_COST`.
pub const TARGET_ENV_PREFIX: &str = "ROUTER_TARGET_";

/// Where the catalogue came from, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutesSource {
    /// The compiled-in `prompts/routes.toml`.
    Embedded,
    /// A file given by `--config` or `ROUTER_CONFIG`.
    File(PathBuf),
}

impl std::fmt::Display for RoutesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoutesSource::Embedded => f.write_str("embedded default"),
            RoutesSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Picks the routes file: `--config` first, then `ROUTER_CONFIG`, else the embedded default.
pub fn routes_source(flag: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> RoutesSource {
    match flag {
        Some(p) => RoutesSource::File(p.to_owned()),
        None => match env(CONFIG_ENV).filter(|v| !v.trim().is_empty()) {
            Some(p) => RoutesSource::File(PathBuf::from(p)),
            None => RoutesSource::Embedded,
        },
    }
}

/// The environment variable that overrides `agent`'s target: upper-cased, `-` becomes `_`.
pub fn target_env_name(agent: &str) -> String {
    format!(
        "{TARGET_ENV_PREFIX}{}",
        agent.to_ascii_uppercase().replace('-', "_")
    )
}

/// Loads and validates the catalogue from `source`, then applies `ROUTER_TARGET_<AGENT>` overrides
/// looked up through `env` (an empty value makes the agent route-only).
pub fn load_catalogue(
    source: &RoutesSource,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Catalogue, CatalogueError> {
    let mut catalogue = match source {
        RoutesSource::Embedded => Catalogue::embedded_default()?,
        RoutesSource::File(p) => Catalogue::from_path(p)?,
    };
    let overrides = catalogue
        .agents()
        .iter()
        .filter_map(|a| env(&target_env_name(&a.name)).map(|t| (a.name.clone(), t)))
        .collect();
    catalogue.override_targets(&overrides);
    Ok(catalogue)
}

/// Reads a variable from the process environment (the `env` argument of the functions above).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn source_precedence() {
        let env = HashMap::from([(CONFIG_ENV.to_owned(), "/env.toml".to_owned())]);
        let lookup = |k: &str| env.get(k).cloned();
        assert_eq!(
            routes_source(Some(Path::new("/flag.toml")), lookup),
            RoutesSource::File("/flag.toml".into())
        );
        assert_eq!(
            routes_source(None, lookup),
            RoutesSource::File("/env.toml".into())
        );
        assert_eq!(routes_source(None, |_| None), RoutesSource::Embedded);
        assert_eq!(
            routes_source(None, |_| Some(" ".into())),
            RoutesSource::Embedded
        );
    }

    #[test]
    fn target_overrides_apply() {
        assert_eq!(target_env_name("cost"), "ROUTER_TARGET_COST");
        assert_eq!(target_env_name("on-call_x"), "ROUTER_TARGET_ON_CALL_X");
        let env = HashMap::from([(
            "ROUTER_TARGET_COST".to_owned(),
            "arn:aws:lambda:eu-west-1:1:function:c".to_owned(),
        )]);
        let c = load_catalogue(&RoutesSource::Embedded, |k| env.get(k).cloned()).unwrap();
        assert_eq!(
            c.agent("cost").unwrap().target.as_deref(),
            Some("arn:aws:lambda:eu-west-1:1:function:c")
        );
        assert_eq!(
            c.agent("security").unwrap().target.as_deref(),
            Some("security-agent")
        );
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = load_catalogue(&RoutesSource::File("/no/such/routes.toml".into()), |_| None)
            .unwrap_err();
        assert!(err.to_string().contains("/no/such/routes.toml"), "{err}");
    }
}
