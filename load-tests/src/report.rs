//! How results are written: the JSON file of a benchmark, or an experiment's report
//! directory (`result.json`, `README.md` and its charts), and the Markdown tables in them.

use anyhow::Context;
use serde::Serialize;
use std::path::Path;

/// Now, in RFC 3339 UTC with microseconds: when a run started.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Writes `result` as pretty JSON to `path`, creating its parent directory.
///
/// # Errors
/// The directory or file cannot be written.
pub fn write_json<T: Serialize>(path: &Path, result: &T) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut text = serde_json::to_string_pretty(result).context("cannot serialize the result")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Where one experiment writes its report: `<dir>/result.json` (the figures),
/// `<dir>/README.md` (the summary people read, which links the charts) and one
/// `<name>.svg` per chart, e.g. under `bench/results/contention/`.
#[derive(Debug, Clone)]
pub struct ReportDir {
    dir: std::path::PathBuf,
}

impl ReportDir {
    /// Creates the directory (and its parents).
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Path of the chart called `name` (`<dir>/<name>.svg`).
    pub fn chart(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(format!("{name}.svg"))
    }

    /// Writes `result.json`.
    ///
    /// # Errors
    /// As [`write_json`].
    pub fn write_result<T: Serialize>(&self, result: &T) -> anyhow::Result<()> {
        write_json(&self.dir.join("result.json"), result)
    }

    /// Writes `README.md`.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_summary(&self, markdown: &str) -> anyhow::Result<()> {
        let path = self.dir.join("README.md");
        std::fs::write(&path, markdown).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// A Markdown table: the header (`"strategy | bids/s"`), the separator, then one line per row.
pub fn markdown_table(header: &str, rows: &[Vec<String>]) -> String {
    let header: Vec<&str> = header.split(" | ").collect();
    let line = |cells: &[&str]| format!("| {} |\n", cells.join(" | "));
    let mut text = line(&header) + &line(&vec!["---"; header.len()]);
    for row in rows {
        text.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    text
}

/// A report's `## Violations` section, one item per failed check; empty when none failed.
pub fn violations_section(violations: &[String]) -> String {
    let items: String = violations.iter().map(|v| format!("- {v}\n")).collect();
    if items.is_empty() {
        items
    } else {
        format!("\n## Violations\n\n{items}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_listed_under_their_heading_and_none_is_no_section() {
        assert_eq!(violations_section(&[]), "");
        let two = ["a".to_owned(), "b".to_owned()];
        assert_eq!(violations_section(&two), "\n## Violations\n\n- a\n- b\n");
    }

    #[test]
    fn markdown_table_has_a_header_separator_and_rows() {
        let rows = [
            vec!["lua".into(), "30000".into()],
            vec!["optimistic".into(), "900".into()],
        ];
        let table = markdown_table("strategy | bids/s", &rows);
        let expected =
            "| strategy | bids/s |\n| --- | --- |\n| lua | 30000 |\n| optimistic | 900 |\n";
        assert_eq!(table, expected);
    }

    #[test]
    fn results_are_pretty_json_and_reports_a_directory_of_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("bench/results/write.json");
        write_json(&path, &serde_json::json!({ "experiment": "x" })).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\n  \""), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["experiment"], "x");
        let contention = dir.join("bench/results/contention");
        let report = ReportDir::create(&contention).unwrap();
        report
            .write_result(&serde_json::json!({"ok": true}))
            .unwrap();
        report.write_summary("# Contention\n").unwrap();
        assert!(contention.join("result.json").is_file());
        let readme = std::fs::read_to_string(contention.join("README.md")).unwrap();
        assert_eq!(readme, "# Contention\n");
        assert_eq!(
            report.chart("throughput"),
            contention.join("throughput.svg")
        );
    }
}
