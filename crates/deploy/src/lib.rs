//! Deployment files on both sides of the gap.
//!
//! - [`scan`]: find the image references in Kubernetes YAML (every pod
//!   template), rendered Helm output, Helm values, kustomizations and
//!   compose files, fully qualified, each with its file and line.
//! - [`parse_image_list`]: `--images-file` lists, one reference a line or
//!   mindthegap's YAML shape.
//! - [`render`]: a relocation [`Mapping`] in the forms clusters read
//!   (OpenShift IDMS/ITMS, containerd `hosts.toml`, k3s/RKE2
//!   `registries.yaml`, kustomize `images:`).
//! - [`rewrite_text`]: the relocated, digest-pinned references written into
//!   a file as text edits, every other byte untouched.
//!
//! YAML is read with bounded depth, node count and alias expansion, and
//! files with a bounded size, so hostile input costs bounded time and
//! memory. No networking.

#![deny(missing_docs)]

mod error;
mod find;
mod forms;
mod imagelist;
mod mapping;
mod rewrite;
mod scan;
mod yaml;

pub use error::{Error, Result};
pub use forms::{render, Form, FormFile, FormOptions};
pub use imagelist::parse_image_list;
pub use mapping::{Entry, Mapping};
pub use rewrite::{rewrite_text, unified_diff, Change, Left, Rewritten};
pub use scan::{
    inputs, read_input, scan, Found, Input, Problem, ProblemKind, Scan, MAX_FILE_BYTES,
};
pub use yaml::{MAX_DEPTH, MAX_NODES, MAX_VISITS};
