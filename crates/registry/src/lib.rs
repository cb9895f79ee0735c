//! The registry client ferry needs, and nothing more.
//!
//! Manifests come and go as the exact bytes served (digests never change);
//! blobs stream in both directions and are never held whole in memory.
//! Credentials come from docker's config file and credential helpers; hosts
//! are reached over verified TLS unless named as plain-HTTP or insecure; a
//! transient failure is retried with bounded backoff, anything else is a
//! typed [`Error`] that says what to do.

#![deny(missing_docs)]

mod auth;
mod client;
mod config;
pub mod credentials;
mod error;
mod tls;
mod transport;

pub use client::{
    BlobStream, Client, FetchedManifest, ManifestHead, MountOutcome, Repository, MAX_MANIFEST_BYTES,
};
pub use config::{ClientConfig, RetryPolicy};
pub use error::{Error, Result};
