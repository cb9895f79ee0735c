//! The error type of `unpack`.

use std::path::PathBuf;

use ferry_oci::Digest;

/// Everything that can stop an unpack, or fail one image of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Standard input was given where a file is needed.
    #[error(
        "this needs a file: it reads blobs by offset; save the stream to a file first \
         (e.g. `cat > bundle.tar`) and use that"
    )]
    Stdin,
    /// A signature requirement with the bundle on standard input.
    #[error(
        "--bundle-key and --require-signature are checked before anything is pushed, \
         which needs the bundle as a file; save the stream to a file first"
    )]
    SignatureNeedsFile,
    /// The bundle's signature does not hold, or signatures cannot be read.
    #[error("refusing to unpack, nothing was pushed")]
    Signature {
        /// Why.
        #[source]
        source: ferry_sign::Error,
    },
    /// Images without a signature that holds (`--require-signature`).
    #[error("refusing to unpack, nothing was pushed: {} image(s) without a signature that holds for the key(s) given ({keys}):\n  {}", images.len(), images.join("\n  "))]
    Unsigned {
        /// The fingerprints of the keys given.
        keys: String,
        /// Each image and why, `reference: reason`.
        images: Vec<String>,
    },
    /// The bundle stream could not be read as an OCI image layout.
    #[error("reading the bundle from the stream")]
    Stream {
        /// Why.
        #[source]
        source: ferry_oci::Error,
    },
    /// A streamed archive has a big blob before its manifests are all in.
    #[error(
        "this archive puts layers before manifests (blob {digest}, {size} bytes, comes before \
         the manifests index.json names); unpack reads it from standard input only when \
         manifests come first (as ferry pack writes them); save it to a file and run \
         `ferry unpack FILE`"
    )]
    LayersFirst {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// A streamed archive has a manifest after the plan was made without it.
    #[error(
        "manifest {digest} comes after layers in the stream, where it was taken as not \
         carried; nothing was tagged; unpack reads an archive from standard input only when \
         manifests come first (as ferry pack writes them); save it to a file and run \
         `ferry unpack FILE`"
    )]
    ManifestLate {
        /// The manifest.
        digest: Digest,
    },
    /// Blobs a streamed bundle's images need did not arrive intact.
    #[error("the bundle stream lacks usable copies of blobs its images need: {}", .problems.join("; "))]
    StreamBlobs {
        /// One line per blob: its digest and what was wrong.
        problems: Vec<String>,
    },
    /// The bundle could not be opened or read as an OCI image layout.
    #[error("reading bundle {path}")]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// Why.
        #[source]
        source: ferry_oci::Error,
    },
    /// `index.json` lists nothing to relocate.
    #[error("the bundle's index.json lists no images")]
    Empty,
    /// Descriptors of `index.json` have no name and are not referrers.
    #[error(
        "index.json lists manifests with no name (no io.containerd.image.name or \
         org.opencontainers.image.ref.name annotation) that are not referrers either: {}; \
         ferry cannot tell where they belong",
        list(.digests)
    )]
    Unnamed {
        /// Their digests.
        digests: Vec<Digest>,
    },
    /// A descriptor is named by a tag only (as some tools write), not by an
    /// image reference.
    #[error(
        "index.json names {digest} only {name:?}, a tag without an image name; ferry needs \
         the original reference to relocate it (write the layout with a full name, e.g. \
         `skopeo copy ... oci:DIR:registry.example/repo:{name}`)"
    )]
    TagOnlyName {
        /// The manifest named.
        digest: Digest,
        /// The name recorded.
        name: String,
    },
    /// A name in `index.json` is not a valid reference.
    #[error("index.json names {digest} {name:?}, which is not an image reference")]
    InvalidName {
        /// The manifest named.
        digest: Digest,
        /// The name recorded.
        name: String,
        /// Why it is invalid.
        #[source]
        source: ferry_oci::Error,
    },
    /// An original cannot be relocated (too long, collision).
    #[error("relocating the bundle's references")]
    Relocation {
        /// Why.
        #[source]
        source: ferry_oci::Error,
    },
    /// A manifest the graph needs is not in the bundle.
    #[error("manifest {digest}, needed by {needed_by}, is not in the bundle")]
    ManifestMissing {
        /// The manifest.
        digest: Digest,
        /// The reference that needs it.
        needed_by: String,
    },
    /// Indexes in the bundle nest deeper than ferry follows.
    #[error(
        "manifest {digest}, needed by {needed_by}, lies deeper than {limit} levels of indexes \
         (listed by index {parent}); ferry follows indexes at most {limit} deep, so this bundle \
         is damaged or crafted: nothing was pushed"
    )]
    TooDeep {
        /// The manifest past the limit.
        digest: Digest,
        /// The index listing it.
        parent: Digest,
        /// The reference that needs it.
        needed_by: String,
        /// The depth limit ([`ferry_oci::MAX_DEPTH`]).
        limit: usize,
    },
    /// An index in the bundle lists one of its own ancestors.
    #[error(
        "index {parent}, needed by {needed_by}, lists {digest}, which lists it in turn: the \
         bundle's manifests form a cycle (damaged or crafted content); nothing was pushed"
    )]
    Cycle {
        /// The manifest listed again.
        digest: Digest,
        /// The index listing it.
        parent: Digest,
        /// The reference that needs it.
        needed_by: String,
    },
    /// A manifest in the bundle cannot be read or understood.
    #[error("manifest {digest}, needed by {needed_by}")]
    Manifest {
        /// The manifest.
        digest: Digest,
        /// The reference that needs it.
        needed_by: String,
        /// Why.
        #[source]
        source: ferry_oci::Error,
    },
    /// A blob the graph needs is not in the bundle.
    #[error("blob {digest}, needed by {needed_by}, is not in the bundle")]
    BlobMissing {
        /// The blob.
        digest: Digest,
        /// The reference that needs it.
        needed_by: String,
    },
    /// A blob or manifest has another size in the bundle than its descriptor says.
    #[error("{digest}, needed by {needed_by}, is {found} bytes in the bundle; its descriptor says {expected}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The reference that needs it.
        needed_by: String,
        /// The size in the descriptor.
        expected: u64,
        /// The size in the bundle.
        found: u64,
    },
    /// A referrer's subject is in no named image's graph.
    #[error("referrer {digest} refers to {subject}, which no named image in the bundle holds")]
    OrphanReferrer {
        /// The referrer.
        digest: Digest,
        /// Its subject.
        subject: Digest,
    },
    /// A sparse index could not be rewritten.
    #[error("rewriting sparse index {digest}")]
    Rewrite {
        /// The index.
        digest: Digest,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// `--existing-tag fail` and tags of the target would move.
    #[error(
        "{} tag(s) of the target would move, and --existing-tag fail was given; nothing was \
         pushed: {}",
        moves.len(),
        moves.join("; ")
    )]
    TagsWouldMove {
        /// `repo:tag old -> new` for each.
        moves: Vec<String>,
    },
    /// The registry refused a manifest named by a digest algorithm other
    /// than sha256 (distribution 2.8 takes manifests by sha256 only).
    #[error(
        "the registry refused manifest {digest} in {repository}: it does not take manifests \
         by {algorithm} digest, and pushing it under another digest would break the index \
         that names it; use a registry that supports {algorithm} manifests"
    )]
    AlgorithmRefused {
        /// The manifest.
        digest: Digest,
        /// Its algorithm.
        algorithm: &'static str,
        /// The relocated repository.
        repository: String,
        /// What the registry said.
        #[source]
        source: ferry_registry::Error,
    },
    /// The registry failed while pushing one thing.
    #[error("{what}")]
    Registry {
        /// What was being pushed (`blob sha256:... into host/repo`).
        what: String,
        /// What the registry client said.
        #[source]
        source: ferry_registry::Error,
    },
    /// A blob's bytes in the bundle do not match its digest.
    #[error(
        "blob {digest} in the bundle does not match its digest (the bundle is corrupt); \
         nothing that needs it was tagged"
    )]
    BlobCorrupt {
        /// The blob.
        digest: Digest,
    },
    /// The registry refused an index whose platforms were not all carried.
    #[error(
        "{reference}: the registry refused index {digest} because platforms {} were not \
         carried in the bundle; run again with --sparse rewrite to push an index of the \
         carried platforms only (it gets a new digest)",
        .missing.join(", ")
    )]
    SparseRefused {
        /// The relocated reference.
        reference: String,
        /// The index.
        digest: Digest,
        /// The platforms not carried.
        missing: Vec<String>,
        /// What the registry said.
        #[source]
        source: ferry_registry::Error,
    },
    /// A blob it needs failed to push, so an image was not pushed.
    #[error("{reference}: not pushed because blob {digest} failed: {reason}")]
    BlobFailed {
        /// The relocated reference.
        reference: String,
        /// The blob.
        digest: Digest,
        /// Why the blob failed.
        reason: String,
    },
    /// The mapping file could not be written.
    #[error("writing mapping {path}")]
    Mapping {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bundle's delta record cannot be read.
    #[error("reading the delta record of the bundle")]
    Delta {
        /// Why.
        #[source]
        source: ferry_oci::Error,
    },
    /// A delta was made against a receipt of another registry or prefix.
    #[error(
        "this delta was made against the receipt {base}, which describes {receipt_target}, \
         not {target}; unpack it into {receipt_target}, or pack a delta against a receipt \
         of {target}"
    )]
    ReceiptTarget {
        /// The receipt, as the delta names it.
        base: String,
        /// What the receipt describes.
        receipt_target: String,
        /// Where this unpack goes.
        target: String,
    },
    /// The target lacks blobs a delta leaves to its base; nothing was pushed.
    #[error(
        "{target} lacks {count} blob(s) ({bytes} bytes) that this delta leaves to its base, \
         e.g. {example}; nothing was pushed. Load {bases} into {target} first (or unpack the \
         full bundle, `ferry merge` rebuilds it)"
    )]
    BaseMissing {
        /// The target.
        target: String,
        /// How many blobs are missing.
        count: usize,
        /// Their total size.
        bytes: u64,
        /// One of them.
        example: Digest,
        /// The bases that provide them (name, kind, sha256).
        bases: String,
    },
    /// The receipt file could not be written.
    #[error("writing receipt {path}")]
    Receipt {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A worker task panicked or was cancelled.
    #[error("a worker task failed: {reason}")]
    Task {
        /// What happened.
        reason: String,
    },
}

fn list(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(Digest::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Result with `unpack`'s [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
