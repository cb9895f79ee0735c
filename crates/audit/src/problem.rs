//! Findings of an audit: each names the entry (or reference), says what is
//! wrong, and what was expected and found.

use std::fmt;

use ferry_oci::{Digest, LayoutArchive, LayoutProblem, LayoutProblemKind};
use serde::Serialize;

/// How many problems an audit keeps; the rest are counted, not listed.
pub const MAX_PROBLEMS: usize = 1000;

/// Whether a finding fails the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The archive (or relocation) does not hold: verify fails.
    Error,
    /// Worth showing, but nothing is wrong with the content (an
    /// unreferenced blob, an identical duplicate entry).
    Warning,
}

/// One finding of an audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Whether it fails the audit.
    pub severity: Severity,
    /// The archive entry (`blobs/sha256/<hex>`, `index.json`, ...) or, for a
    /// relocation, the original reference the finding is about.
    pub entry: String,
    /// What is wrong, in words.
    pub message: String,
    /// What was expected, when there is one thing to expect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What was found instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

impl Problem {
    /// An error about `entry`.
    pub fn error(entry: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Error,
            entry: entry.into(),
            message: message.into(),
            expected: None,
            found: None,
        }
    }

    /// A warning about `entry`.
    pub fn warning(entry: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(entry, message)
        }
    }

    /// The same finding with what was expected and what was found.
    pub fn expected_found(
        mut self,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> Problem {
        self.expected = Some(expected.to_string());
        self.found = Some(found.to_string());
        self
    }

    /// Whether it fails the audit.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: {}: {}", self.entry, self.message)?;
        match (&self.expected, &self.found) {
            (Some(e), Some(found)) => write!(f, " (expected {e}, found {found})"),
            (Some(e), None) => write!(f, " (expected {e})"),
            (None, Some(found)) => write!(f, " (found {found})"),
            (None, None) => Ok(()),
        }
    }
}

/// Problems collected up to [`MAX_PROBLEMS`].
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub list: Vec<Problem>,
    pub omitted: u64,
    pub omitted_errors: u64,
}

impl Problems {
    pub fn push(&mut self, problem: Problem) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(problem);
        } else {
            self.omitted += 1;
            if problem.is_error() {
                self.omitted_errors += 1;
            }
        }
    }

    pub fn errors(&self) -> u64 {
        self.list.iter().filter(|p| p.is_error()).count() as u64 + self.omitted_errors
    }

    pub fn warnings(&self) -> u64 {
        self.list.len() as u64 + self.omitted - self.errors()
    }
}

/// The problem of a blob whose content hashes to `found`, not its name.
pub(crate) fn content_mismatch(
    archive: &LayoutArchive,
    digest: &Digest,
    found: &Digest,
) -> Problem {
    let mut message = "content does not match its name".to_string();
    if archive.blob(found).is_some() {
        message.push_str(&format!("; it holds the content of {}", found.blob_path()));
    }
    Problem::error(digest.blob_path(), message).expected_found(digest, found)
}

/// A scan finding as an audit problem.
pub(crate) fn layout_problem(p: &LayoutProblem) -> Problem {
    let text = p.to_string();
    let message = text
        .strip_prefix(&format!("{}: ", p.entry))
        .unwrap_or(&text)
        .to_string();
    match p.kind {
        LayoutProblemKind::Duplicate | LayoutProblemKind::Stray => {
            Problem::warning(&p.entry, message)
        }
        _ => Problem::error(&p.entry, message),
    }
}

pub(crate) use ferry_oci::error_chain;
