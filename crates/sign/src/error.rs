//! The error type of `ferry-sign`.

use std::path::PathBuf;

/// What stops a signature check from starting or a bundle signature from
/// holding. Image signatures that do not hold are findings
/// ([`Outcome`](crate::Outcome)), not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key file could not be read.
    #[error("cannot read key {path}")]
    ReadKey {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A key file holds no key ferry can use.
    #[error("key {path}: {problem}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// The bundle's detached signature file is missing.
    #[error(
        "bundle signature {path} is missing; `ferry pack --sign KEY` writes it beside the bundle"
    )]
    SignatureMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The bundle's detached signature file could not be read.
    #[error("cannot read bundle signature {path}")]
    ReadSignature {
        /// The signature file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bundle's detached signature file is not in the documented format.
    #[error("bundle signature {path} is malformed (line {line}): {reason}; expected the ferry-bundle-signature v1 format (docs/signatures.md)")]
    SignatureFormat {
        /// The signature file.
        path: PathBuf,
        /// The line at fault (1-based; 0 for the whole file).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The bundle's sha256 is not the one its signature names.
    #[error("bundle {bundle} has sha256 {found}, but its signature {signature} was made over {expected}: the bundle changed after it was signed")]
    BundleChanged {
        /// The bundle.
        bundle: PathBuf,
        /// The signature file.
        signature: PathBuf,
        /// The sha256 the signature names.
        expected: String,
        /// The bundle's sha256.
        found: String,
    },
    /// No given key verifies the bundle's signature.
    #[error("bundle signature {signature} does not hold for {bundle}: made by key {signer}, which verifies with none of the keys given ({keys})")]
    BundleSignatureRefused {
        /// The bundle.
        bundle: PathBuf,
        /// The signature file.
        signature: PathBuf,
        /// The key fingerprint the signature file names.
        signer: String,
        /// The fingerprints of the keys given.
        keys: String,
    },
    /// Reading a file to hash it failed.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A bundle could not be read for its signatures.
    #[error("reading manifest {entry} of the bundle")]
    Bundle {
        /// The entry (a manifest digest) being read.
        entry: String,
        /// What the layout reader said.
        #[source]
        source: ferry_oci::Error,
    },
}

/// What is wrong with a key file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// Not PEM at all.
    #[error("not a PEM key file ({detail}); give a PEM public key (-----BEGIN PUBLIC KEY-----)")]
    NotPem {
        /// What the PEM decoder said.
        detail: String,
    },
    /// PEM whose body is not a valid key structure.
    #[error("malformed {label} ({detail})")]
    Malformed {
        /// The PEM label.
        label: String,
        /// What the decoder said.
        detail: String,
    },
    /// A key type ferry does not verify with.
    #[error("{kind} keys are not supported; ferry checks ECDSA P-256 keys (cosign's default: `cosign generate-key-pair`, or `openssl ecparam -name prime256v1`)")]
    Unsupported {
        /// The key type found.
        kind: String,
    },
    /// A private key where a public key was expected.
    #[error("holds a private key where a public key belongs; give its public half (`openssl pkey -in KEY -pubout`)")]
    PrivateGiven,
    /// A public key where a private key was expected.
    #[error("holds a public key; signing needs the private key")]
    PublicGiven,
    /// An encrypted private key.
    #[error("is an encrypted private key ({label}); decrypt it to an unencrypted PKCS#8 or SEC1 PEM first, e.g. `openssl pkcs8 -in KEY -out PLAIN.pem`")]
    Encrypted {
        /// The PEM label.
        label: String,
    },
    /// A certificate (keyless signing) where a key was expected.
    #[error("holds a certificate; keyless (certificate) verification is not supported yet, give a PEM public key")]
    Certificate,
    /// A PEM label ferry does not know.
    #[error("holds a {label:?} PEM block, not a key")]
    UnknownLabel {
        /// The PEM label.
        label: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
