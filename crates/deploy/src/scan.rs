//! Reading deployment files: the paths given (files, directories walked,
//! `-` for standard input), each read within limits, parsed, and searched.

use std::io::Read;
use std::path::{Path, PathBuf};

use ferry_oci::Reference;
use serde::Serialize;

use crate::find::{Finder, Site};
use crate::yaml::{self, Tree};

/// Largest file read: deployment files are kilobytes; a rendered chart of
/// a whole platform a few megabytes.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Extensions read when walking a directory (files named on the command
/// line are read whatever their name).
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// One file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-`).
    Stdin,
    /// A file, and its path relative to the directory it was found in (its
    /// file name when it was named itself): where `--out DIR` puts it.
    File {
        /// The path to read.
        path: PathBuf,
        /// The path under an output directory.
        relative: PathBuf,
    },
}

impl Input {
    /// How messages name it.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".to_string(),
            Input::File { path, .. } => path.display().to_string(),
        }
    }
}

/// What kind of trouble a file gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// It could not be read, or a directory could not be walked.
    Unreadable,
    /// A symbolic link leads back to a directory being walked.
    SymlinkLoop,
    /// Larger than [`MAX_FILE_BYTES`].
    TooLarge,
    /// Not UTF-8 text.
    NotText,
    /// Not YAML (or JSON).
    Syntax,
    /// Nesting, node count or alias expansion past the limits.
    Limit,
    /// An `image` value that is not a reference (a template, no tag).
    NotAReference,
}

/// Something wrong with a file: the file is skipped, except for
/// [`ProblemKind::NotAReference`], which only skips that value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file, as given or found.
    pub file: String,
    /// 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What kind of trouble.
    pub kind: ProblemKind,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(
        file: String,
        line: Option<usize>,
        kind: ProblemKind,
        message: String,
    ) -> Problem {
        Problem {
            file,
            line,
            kind,
            message,
        }
    }

    /// Whether the whole file was skipped.
    pub fn skips_file(&self) -> bool {
        self.kind != ProblemKind::NotAReference
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The files `paths` name: files as they are, directories walked (sorted,
/// following symbolic links, hidden entries skipped, only `.yaml`, `.yml`
/// and `.json`), `-` as standard input. Trouble walking is returned beside.
pub fn inputs(paths: &[PathBuf]) -> (Vec<Input>, Vec<Problem>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(Input::Stdin);
            continue;
        }
        if !path.is_dir() {
            let relative = path.file_name().map_or_else(|| path.clone(), PathBuf::from);
            out.push(Input::File {
                path: path.clone(),
                relative,
            });
            continue;
        }
        let walk = walkdir::WalkDir::new(path)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walk {
            match entry {
                Ok(entry) => {
                    let p = entry.path();
                    let wanted = p
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
                    if entry.file_type().is_file() && wanted {
                        let relative = p.strip_prefix(path).unwrap_or(p).to_path_buf();
                        out.push(Input::File {
                            path: p.to_path_buf(),
                            relative,
                        });
                    }
                }
                Err(e) => {
                    let file = e
                        .path()
                        .map_or_else(|| path.display().to_string(), |p| p.display().to_string());
                    let (kind, message) = match e.loop_ancestor() {
                        Some(ancestor) => (
                            ProblemKind::SymlinkLoop,
                            format!(
                                "symbolic link loop back to {}; not followed",
                                ancestor.display()
                            ),
                        ),
                        None => (ProblemKind::Unreadable, format!("cannot walk: {e}")),
                    };
                    problems.push(Problem::new(file, None, kind, message));
                }
            }
        }
    }
    (out, problems)
}

/// Read one input as text, within [`MAX_FILE_BYTES`].
pub fn read_input(input: &Input, stdin: &mut dyn Read) -> Result<String, Problem> {
    let name = input.name();
    let unreadable = |e: std::io::Error| {
        Problem::new(
            name.clone(),
            None,
            ProblemKind::Unreadable,
            format!("cannot read: {e}"),
        )
    };
    let mut bytes = Vec::new();
    match input {
        Input::Stdin => stdin.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes),
        Input::File { path, .. } => std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)),
    }
    .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Problem::new(
            name,
            None,
            ProblemKind::TooLarge,
            format!(
                "larger than {} MiB; not a deployment file? (split it)",
                MAX_FILE_BYTES / 1024 / 1024
            ),
        ));
    }
    if bytes.contains(&0) {
        return Err(Problem::new(
            name,
            None,
            ProblemKind::NotText,
            "a binary file, not YAML".into(),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Problem::new(
            name,
            Some(line),
            ProblemKind::NotText,
            "not UTF-8 text".into(),
        )
    })
}

/// A file read and searched.
pub(crate) struct Analysis {
    pub tree: Tree,
    pub sites: Vec<Site>,
    pub odd: Vec<Problem>,
}

/// Parse `text` and find its image references; `path` decides whether it
/// is a kustomization by name.
pub(crate) fn analyze(name: &str, path: Option<&Path>, text: &str) -> Result<Analysis, Problem> {
    let tree = yaml::parse(text).map_err(|e| {
        let kind = if e.message.contains("nested") || e.message.contains("nodes") {
            ProblemKind::Limit
        } else {
            ProblemKind::Syntax
        };
        Problem::new(name.to_string(), Some(e.line), kind, e.message)
    })?;
    let kustomization = path.and_then(|p| p.file_name()).is_some_and(|n| {
        matches!(
            n.to_str(),
            Some("kustomization.yaml" | "kustomization.yml" | "Kustomization")
        )
    });
    let mut finder = Finder::new(&tree);
    for &root in &tree.docs {
        finder.document(root, kustomization).map_err(|_| {
            Problem::new(
                name.to_string(),
                None,
                ProblemKind::Limit,
                format!(
                    "aliases expand past {} nodes (a YAML alias bomb?)",
                    yaml::MAX_VISITS
                ),
            )
        })?;
    }
    let odd = finder
        .odd
        .iter()
        .map(|o| {
            Problem::new(
                name.to_string(),
                Some(o.line),
                ProblemKind::NotAReference,
                o.message.clone(),
            )
        })
        .collect();
    let sites = std::mem::take(&mut finder.sites);
    drop(finder);
    Ok(Analysis { tree, sites, odd })
}

/// Where a reference was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// The reference, fully qualified.
    pub reference: Reference,
    /// The file, as given or found.
    pub file: String,
    /// 1-based line.
    pub line: usize,
}

/// The result of scanning paths.
#[derive(Debug, Default, Serialize)]
pub struct Scan {
    /// Files read.
    pub files: usize,
    /// Every reference found, in file order.
    pub found: Vec<Found>,
    /// Trouble, in file order.
    pub problems: Vec<Problem>,
}

impl Scan {
    /// The distinct references found, sorted.
    pub fn references(&self) -> Vec<Reference> {
        let mut refs: Vec<Reference> = self.found.iter().map(|f| f.reference.clone()).collect();
        refs.sort_by_key(|r| r.to_string());
        refs.dedup();
        refs
    }
}

/// Find the image references in `paths` (see [`inputs`]); standard input
/// is read from `stdin` when `-` is among them.
pub fn scan(paths: &[PathBuf], stdin: &mut dyn Read) -> Scan {
    let (inputs, problems) = inputs(paths);
    let mut scan = Scan {
        problems,
        ..Scan::default()
    };
    for input in &inputs {
        let name = input.name();
        let text = match read_input(input, stdin) {
            Ok(t) => t,
            Err(p) => {
                scan.problems.push(p);
                continue;
            }
        };
        scan.files += 1;
        let path = match input {
            Input::File { path, .. } => Some(path.as_path()),
            Input::Stdin => None,
        };
        match analyze(&name, path, &text) {
            Ok(a) => {
                scan.found.extend(a.sites.into_iter().map(|s| Found {
                    reference: s.reference,
                    file: name.clone(),
                    line: s.line,
                }));
                scan.problems.extend(a.odd);
            }
            Err(p) => scan.problems.push(p),
        }
    }
    scan
}
