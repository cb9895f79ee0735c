//! The registry client ferry needs, and nothing more.
//!
//! Manifests come and go as the exact bytes served (digests never change);
//! blobs stream in both directions and are never held whole in memory
//! (but for uploads of at most [`SINGLE_REQUEST_UPLOAD_MAX`], read once so
//! they can be sent again).
//! Credentials come from docker's config file and credential helpers; hosts
//! are reached over verified TLS unless named as plain-HTTP or insecure; a
//! transient failure is retried under the one [`RetryPolicy`], anything
//! else is a typed [`Error`] that says what to do. A registry's credentials
//! go to that registry's origin only, never to the other origins it names
//! (upload locations, links, redirects).

#![deny(missing_docs)]

mod auth;
mod client;
mod config;
pub mod credentials;
mod error;
mod http;
mod origin;
mod request;
mod response;
mod retry;
mod tls;
mod transport;
mod upload;

pub use client::{
    BlobStream, Client, FetchedManifest, ManifestHead, MountOutcome, Repository, MAX_MANIFEST_BYTES,
};
pub use config::ClientConfig;
pub use error::{Error, Result};
pub use retry::{Failure, RetryPolicy};
pub use upload::SINGLE_REQUEST_UPLOAD_MAX;
