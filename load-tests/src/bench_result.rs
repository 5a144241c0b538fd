//! The one result every experiment returns and writes: an envelope (`experiment`,
//! `started_at`, the machine, the figures, the violations) whose verdict is "nothing
//! violated", written as one JSON file or as a report directory's `result.json` and
//! `README.md`.

use crate::host::Machine;
use crate::report::{ReportDir, now_rfc3339, write_json};
use crate::verdict::{Outcome, Verdict};
use serde::Serialize;
use std::path::Path;

/// A finished experiment: its figures (`T`, flattened into the JSON) and what failed.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult<T> {
    pub experiment: &'static str,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub machine: Machine,
    #[serde(flatten)]
    pub figures: T,
    /// What failed; empty when the run passed.
    pub violations: Vec<String>,
    /// The README of an experiment that writes a report directory: what stdout shows.
    #[serde(skip)]
    pub readme: Option<String>,
}

/// When and what a benchmark started: [`Started::finish`] turns it into its result.
#[derive(Debug)]
pub struct Started {
    experiment: &'static str,
    at: String,
}

impl Started {
    pub fn now(experiment: &'static str) -> Self {
        Self {
            experiment,
            at: now_rfc3339(),
        }
    }

    /// The result of the run.
    pub fn result<T>(self, figures: T, violations: Vec<String>) -> BenchResult<T> {
        BenchResult {
            experiment: self.experiment,
            started_at: self.at,
            machine: Machine::current(),
            figures,
            violations,
            readme: None,
        }
    }

    /// The result of the run, also written to `out` (its directory is created).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn finish<T: Serialize>(
        self,
        figures: T,
        violations: Vec<String>,
        out: &Path,
    ) -> anyhow::Result<BenchResult<T>> {
        let result = self.result(figures, violations);
        write_json(out, &result)?;
        tracing::info!(out = %out.display(), "result written");
        Ok(result)
    }
}

impl<T: Serialize> BenchResult<T> {
    /// Writes `result.json` and `markdown` as `README.md` into `dir`, and keeps the README as
    /// the summary.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write_report(mut self, dir: &ReportDir, markdown: String) -> anyhow::Result<Self> {
        dir.write_result(&self)?;
        dir.write_summary(&markdown)?;
        self.readme = Some(markdown);
        Ok(self)
    }
}

impl<T> std::ops::Deref for BenchResult<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.figures
    }
}

impl<T: Serialize> Outcome for BenchResult<T> {
    fn verdict(&self) -> Verdict {
        Verdict::of(&self.violations)
    }

    fn summary(&self) -> String {
        let json = || serde_json::to_string_pretty(self).unwrap_or_default();
        self.readme.clone().unwrap_or_else(json)
    }
}
