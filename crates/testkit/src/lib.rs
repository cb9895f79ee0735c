//! Real-parts test harness for ferry.
//!
//! ferry's integration tests run against the real thing, not mocks: a
//! [`RegistryProcess`] is CNCF distribution's `docker-registry` (Debian
//! package `docker-registry`) started on `127.0.0.1:<free port>` with its
//! storage in a temporary directory, and killed on `Drop`. [`push_fixtures`]
//! fills it with a deterministic set of images that covers what ferry must
//! carry byte for byte: OCI and Docker manifests, an OCI index and a Docker
//! manifest list, layers shared between repositories, a Helm chart artifact, a
//! cosign-style signature and an OCI referrer with its tag-schema index.
//!
//! The crate pushes with its own small blocking HTTP code ([`Pusher`]) so it
//! never depends on `ferry-registry`, the code under test. Everything is
//! synchronous and panics on failure: call it from plain `#[test]` functions,
//! not from inside an async runtime.
//!
//! ```no_run
//! let registry = ferry_testkit::RegistryProcess::start();
//! let fixtures = registry.push_fixtures();
//! let base = fixtures.image("fixtures/base:1");
//! assert_eq!(
//!     registry.manifest_digest("fixtures/base", "1").as_deref(),
//!     Some(base.digest.as_str())
//! );
//! ```
//!
//! A [`FaultProxy`] can sit in front of a registry and, on command, answer
//! errors, cut bodies short, stall or drop credentials, to test how ferry
//! survives a misbehaving registry.
//!
//! The `ferry-fixtures` binary pushes the same set into a running registry
//! (`ferry-fixtures push HOST:PORT`) or serves one (`ferry-fixtures serve DIR`).

#![deny(missing_docs)]

mod bearer;
mod bench;
mod content;
pub mod cosign;
pub mod fixtures;
mod http1;
pub mod proxy;
mod push;
mod registry;
pub mod token;
mod tools;

pub use bench::{
    push_bench_release, push_bench_workload, push_many_small_workload, BenchBlob, BenchWorkload,
};
pub use content::{BigLayerReader, XorShift};
pub use fixtures::{
    push_fixtures, push_fixtures_with, FixtureImage, FixtureKind, FixtureOptions, FixtureReferrer,
    FixtureSet, FixtureSignature,
};
pub use proxy::{Fault, FaultProxy, Match, FOREVER};
pub use push::{push_blob, push_manifest, Pusher};
pub use registry::{RegistryOptions, RegistryProcess, DEFAULT_REGISTRY_BIN};
pub use token::{TokenAuth, TokenRequest, TokenServer, TokenServerOptions};
pub use tools::{find_tool, fixture_path, require_tool};
