//! How a finished experiment came out, and what every experiment's result tells the command
//! line: its verdict and the summary printed for people.

use serde::Serialize;

/// How an experiment that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed.
    Passed,
    /// The run finished but a correctness check failed.
    Violated,
}

impl Verdict {
    /// `Passed` when nothing failed.
    pub fn of(violations: &[String]) -> Self {
        Self::passed_if(violations.is_empty())
    }

    /// `Passed` when `passed`.
    pub fn passed_if(passed: bool) -> Self {
        if passed { Self::Passed } else { Self::Violated }
    }
}

/// `violations`, each prefixed with `prefix: ` (the item, level or fault where it failed).
pub fn prefixed(prefix: impl std::fmt::Display, violations: &[String]) -> Vec<String> {
    violations
        .iter()
        .map(|v| format!("{prefix}: {v}"))
        .collect()
}

/// The result of an experiment that ran to the end.
pub trait Outcome: Serialize {
    /// Whether its checks passed.
    fn verdict(&self) -> Verdict;

    /// Whether its verdict is [`Verdict::Passed`].
    fn passed(&self) -> bool {
        self.verdict() == Verdict::Passed
    }

    /// What stdout shows (progress goes to stderr): the result as the JSON file has it,
    /// unless the experiment writes a README for people.
    fn summary(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
