//! Non-fatal findings of an archive scan, reported by `ferry verify`.

use std::fmt;

/// Something odd in a layout archive that does not stop ferry from reading
/// it, but that an audit should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutProblem {
    /// The entry's name as stored in the archive.
    pub entry: String,
    /// What is wrong with it.
    pub kind: LayoutProblemKind,
}

/// The kinds of [`LayoutProblem`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutProblemKind {
    /// A symbolic or hard link; ferry never follows links.
    Link {
        /// Whether it is a hard link.
        hard: bool,
        /// Where it points.
        target: String,
    },
    /// A device, fifo, sparse file or unknown entry type.
    SpecialFile {
        /// The tar type flag.
        type_flag: char,
    },
    /// A file under `blobs/` whose name is not `blobs/<algorithm>/<hex>`
    /// of a supported digest.
    BadBlobName {
        /// Why the name does not parse.
        reason: String,
    },
    /// A file or directory an OCI image layout does not hold.
    Stray,
    /// An entry name that is not UTF-8.
    NonUtf8Name,
    /// The same name appears again with the same size; the later entry
    /// counts, as when the archive is extracted.
    Duplicate,
    /// More problems were found than are kept.
    MoreProblems {
        /// How many were left out.
        omitted: u64,
    },
}

impl fmt::Display for LayoutProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.entry)?;
        match &self.kind {
            LayoutProblemKind::Link { hard: true, target } => {
                write!(f, "hard link to {target:?} (not followed)")
            }
            LayoutProblemKind::Link {
                hard: false,
                target,
            } => {
                write!(f, "symbolic link to {target:?} (not followed)")
            }
            LayoutProblemKind::SpecialFile { type_flag } => {
                write!(f, "unsupported entry type {type_flag:?} (ignored)")
            }
            LayoutProblemKind::BadBlobName { reason } => {
                write!(f, "not a blob name ({reason}); ignored")
            }
            LayoutProblemKind::Stray => f.write_str("not part of an OCI image layout; ignored"),
            LayoutProblemKind::NonUtf8Name => f.write_str("name is not UTF-8; ignored"),
            LayoutProblemKind::Duplicate => {
                f.write_str("appears more than once; the last copy is used")
            }
            LayoutProblemKind::MoreProblems { omitted } => {
                write!(f, "{omitted} more problems not listed")
            }
        }
    }
}
