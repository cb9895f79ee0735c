//! `plan` against small layout tarballs built here.

use std::collections::BTreeMap;

use ferry_oci::manifest::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{media_type, Descriptor, Digest, LayoutArchive, Naming, RelocationTarget};
use serde_json::json;

use super::*;

/// A layout tarball under construction: blobs and index entries.
#[derive(Default)]
struct Layout {
    blobs: BTreeMap<Digest, Vec<u8>>,
    index: Vec<serde_json::Value>,
}

impl Layout {
    fn blob(&mut self, media_type: &str, bytes: &[u8]) -> Descriptor {
        let digest = Digest::sha256_of(bytes);
        self.blobs.insert(digest.clone(), bytes.to_vec());
        Descriptor::new(media_type, digest, bytes.len() as u64)
    }

    /// An OCI image with one layer (and a subject, for a referrer).
    fn image(&mut self, label: &str, subject: Option<&Descriptor>) -> Descriptor {
        let config = self.blob(
            media_type::OCI_CONFIG,
            format!("{{\"l\":\"{label}\"}}").as_bytes(),
        );
        let layer = self.blob("application/vnd.oci.image.layer.v1.tar", label.as_bytes());
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        });
        if let Some(s) = subject {
            m["subject"] = json!(s);
        }
        self.blob(media_type::OCI_MANIFEST, &serde_json::to_vec(&m).unwrap())
    }

    fn index_of(&mut self, children: &[(Descriptor, &str)]) -> Descriptor {
        let manifests: Vec<_> = children
            .iter()
            .map(|(d, arch)| {
                let mut d = json!(d);
                d["platform"] = json!({"architecture": arch, "os": "linux"});
                d
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": manifests,
            "annotations": {"keep": "me"},
        });
        self.blob(media_type::OCI_INDEX, &serde_json::to_vec(&index).unwrap())
    }

    fn name(&mut self, d: &Descriptor, key: &str, name: &str) {
        let mut entry = json!(d);
        entry["annotations"] = json!({ key: name });
        self.index.push(entry);
    }

    fn unnamed(&mut self, d: &Descriptor) {
        self.index.push(json!(d));
    }

    fn write(&self, leave_out: &[&Digest]) -> (tempfile::TempDir, LayoutArchive) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layout.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
        let mut add = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes).unwrap();
        };
        add("./oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        let index = json!({"schemaVersion": 2, "manifests": self.index});
        add("./index.json", &serde_json::to_vec(&index).unwrap());
        for (digest, bytes) in &self.blobs {
            if !leave_out.contains(&digest) {
                add(&format!("./{}", digest.blob_path()), bytes);
            }
        }
        tar.into_inner().unwrap();
        let archive = LayoutArchive::open(&path).unwrap();
        (dir, archive)
    }
}

fn target() -> RelocationTarget {
    RelocationTarget::parse("reg.internal:5000/team").unwrap()
}

#[test]
fn names_relocates_and_sends_referrers_beside_their_subject() {
    let mut l = Layout::default();
    let app = l.image("app", None);
    let sbom = l.image("sbom", Some(&app));
    l.name(&app, ANNOTATION_CONTAINERD_NAME, "ghcr.io/org/app:1");
    l.unnamed(&sbom);
    let (_dir, archive) = l.write(&[]);
    let plan = plan(&archive, &target(), Naming::Flatten, SparseMode::Keep).unwrap();
    assert_eq!(plan.images.len(), 1);
    let image = &plan.images[0];
    assert_eq!(image.repository, "reg.internal:5000/team/org-app");
    assert_eq!(
        plan.mapping(),
        BTreeMap::from([(
            "ghcr.io/org/app:1".to_string(),
            format!("reg.internal:5000/team/org-app:1@{}", app.digest)
        )])
    );
    assert_eq!(plan.referrers.len(), 1);
    assert_eq!(plan.referrers[0].repositories, ["team/org-app"]);
    assert_eq!(plan.referrers[0].subject, app.digest);
    assert_eq!(plan.manifest_count, 2);
    assert_eq!(plan.blob_count, 4);
}

/// A referrer goes to every repository holding its subject; a referrer of
/// that referrer follows it there, whatever order the index lists them in.
#[test]
fn referrers_and_their_referrers_follow_every_image_holding_the_subject() {
    let mut l = Layout::default();
    let base = l.image("base", None);
    let app = l.image("app", None);
    let sig = l.image("sig", Some(&base));
    let sig_of_sig = l.image("sig-of-sig", Some(&sig));
    let index = l.index_of(&[(base.clone(), "amd64")]);
    l.name(&base, ANNOTATION_CONTAINERD_NAME, "ghcr.io/org/base:1");
    l.name(&index, ANNOTATION_CONTAINERD_NAME, "ghcr.io/org/multi:1");
    l.name(&app, ANNOTATION_CONTAINERD_NAME, "ghcr.io/org/app:1");
    // The referrer of the referrer first: it only finds a home once the
    // referrer it is about has one.
    l.unnamed(&sig_of_sig);
    l.unnamed(&sig);
    let (_dir, archive) = l.write(&[]);
    let plan = plan(&archive, &target(), Naming::Flatten, SparseMode::Keep).unwrap();
    let repos = |digest: &Digest| {
        let r = plan.referrers.iter().find(|r| &r.digest == digest).unwrap();
        r.repositories.clone()
    };
    let both = ["team/org-base", "team/org-multi"];
    assert_eq!(repos(&sig.digest), both);
    assert_eq!(repos(&sig_of_sig.digest), both);
}

#[test]
fn ref_name_is_normalized_as_docker_does() {
    let mut l = Layout::default();
    let base = l.image("base", None);
    l.name(&base, ANNOTATION_REF_NAME, "src/base:1");
    let (_dir, archive) = l.write(&[]);
    let plan = plan(&archive, &target(), Naming::Preserve, SparseMode::Keep).unwrap();
    assert_eq!(plan.images[0].original, "src/base:1");
    assert_eq!(plan.images[0].repository, "reg.internal:5000/team/src/base");
}

#[test]
fn unnamed_non_referrers_are_listed() {
    let mut l = Layout::default();
    let a = l.image("a", None);
    let b = l.image("b", None);
    l.name(&a, ANNOTATION_REF_NAME, "x.io/a:1");
    l.unnamed(&b);
    let (_dir, archive) = l.write(&[]);
    let err = plan(&archive, &target(), Naming::Hash, SparseMode::Keep).unwrap_err();
    assert!(
        matches!(&err, Error::Unnamed { digests } if digests.as_slice() == std::slice::from_ref(&b.digest))
    );
    assert!(err.to_string().contains(&b.digest.to_string()), "{err}");
}

#[test]
fn a_tag_only_name_is_refused_clearly() {
    let mut l = Layout::default();
    let a = l.image("a", None);
    l.name(&a, ANNOTATION_REF_NAME, "1.0");
    let (_dir, archive) = l.write(&[]);
    let err = plan(&archive, &target(), Naming::Hash, SparseMode::Keep).unwrap_err();
    assert!(
        matches!(err, Error::TagOnlyName { ref name, .. } if name == "1.0"),
        "{err}"
    );
}

#[test]
fn a_missing_layer_stops_the_plan() {
    let mut l = Layout::default();
    let a = l.image("a", None);
    let layer = Digest::sha256_of(b"a");
    l.name(&a, ANNOTATION_REF_NAME, "x.io/a:1");
    let (_dir, archive) = l.write(&[&layer]);
    let err = plan(&archive, &target(), Naming::Hash, SparseMode::Keep).unwrap_err();
    assert!(
        matches!(err, Error::BlobMissing { ref digest, .. } if *digest == layer),
        "{err}"
    );
}

#[test]
fn collisions_are_refused_before_anything_is_pushed() {
    let mut l = Layout::default();
    let a = l.image("a", None);
    let b = l.image("b", None);
    l.name(&a, ANNOTATION_REF_NAME, "one.io/x/y:1");
    l.name(&b, ANNOTATION_REF_NAME, "two.io/x/y:1");
    let (_dir, archive) = l.write(&[]);
    let err = plan(&archive, &target(), Naming::Preserve, SparseMode::Keep).unwrap_err();
    assert!(matches!(err, Error::Relocation { .. }), "{err}");
    assert!(plan(&archive, &target(), Naming::Hash, SparseMode::Keep).is_ok());
}

#[test]
fn sparse_index_kept_or_rewritten() {
    let mut l = Layout::default();
    let amd = l.image("amd64", None);
    let arm = l.image("arm64", None);
    let index = l.index_of(&[(amd.clone(), "amd64"), (arm.clone(), "arm64")]);
    l.name(&index, ANNOTATION_REF_NAME, "x.io/multi:1");
    let (_dir, archive) = l.write(&[&arm.digest]);

    let keep = plan(&archive, &target(), Naming::Hash, SparseMode::Keep).unwrap();
    let image = &keep.images[0];
    assert_eq!(image.digest, index.digest);
    assert_eq!(image.bundle_digest, None);
    assert_eq!(image.platforms_missing, ["linux/arm64"]);

    let rewrite = plan(&archive, &target(), Naming::Hash, SparseMode::Rewrite).unwrap();
    let image = &rewrite.images[0];
    assert_eq!(image.bundle_digest.as_ref(), Some(&index.digest));
    assert_ne!(image.digest, index.digest);
    assert_eq!(image.manifests.last(), Some(&image.digest));
    let planned = rewrite.manifest(&image.digest);
    assert_eq!(Digest::sha256_of(&planned.bytes), image.digest);
    let new = Manifest::parse(planned.bytes.to_vec(), Some(&planned.media_type)).unwrap();
    assert_eq!(new.children().len(), 1);
    assert_eq!(new.children()[0].digest, amd.digest);
    let doc: serde_json::Value = serde_json::from_slice(new.bytes()).unwrap();
    assert_eq!(doc["annotations"]["keep"], "me");
    assert!(rewrite.mapping()["x.io/multi:1"].ends_with(&image.digest.to_string()));
}

#[test]
fn standard_input_is_refused_with_advice() {
    let err = crate::open_bundle(std::path::Path::new("-")).unwrap_err();
    assert!(matches!(err, Error::Stdin));
    assert!(err.to_string().contains("save the stream"), "{err}");
}

/// The plan of the same layout read from a stream.
fn plan_from_stream(dir: &tempfile::TempDir, sparse: SparseMode) -> Result<Plan> {
    let file = std::fs::File::open(dir.path().join("layout.tar")).unwrap();
    crate::plan_stream(file, &target(), Naming::Hash, sparse)
}

#[test]
fn a_stream_plans_as_a_file_does_sparse_indexes_included() {
    let mut l = Layout::default();
    let amd = l.image("amd64", None);
    let arm = l.image("arm64", None);
    let index = l.index_of(&[(amd.clone(), "amd64"), (arm.clone(), "arm64")]);
    let app = l.image("app", None);
    let sbom = l.image("sbom", Some(&app));
    l.name(&index, ANNOTATION_REF_NAME, "x.io/multi:1");
    l.name(&app, ANNOTATION_CONTAINERD_NAME, "ghcr.io/org/app:1");
    l.unnamed(&sbom);
    let (dir, archive) = l.write(&[&arm.digest]);
    for sparse in [SparseMode::Keep, SparseMode::Rewrite] {
        let from_file = plan(&archive, &target(), Naming::Hash, sparse).unwrap();
        let from_stream = plan_from_stream(&dir, sparse).unwrap();
        assert_eq!(from_stream.mapping(), from_file.mapping());
        assert_eq!(from_stream.blob_sizes, from_file.blob_sizes);
        assert_eq!(
            from_stream.referrers[0].repositories,
            from_file.referrers[0].repositories
        );
        assert_eq!(from_stream.images[1].platforms_missing, ["linux/arm64"]);
    }
}

#[test]
fn a_stream_missing_a_layer_fails_the_dry_run_plan() {
    let mut l = Layout::default();
    let a = l.image("a", None);
    let layer = Digest::sha256_of(b"a");
    l.name(&a, ANNOTATION_REF_NAME, "x.io/a:1");
    let (dir, _archive) = l.write(&[&layer]);
    // The plan is made once the manifests are in; the layer never comes.
    let err = plan_from_stream(&dir, SparseMode::Keep).unwrap_err();
    assert!(matches!(err, Error::StreamBlobs { .. }), "{err}");
    assert!(err.to_string().contains(&layer.to_string()), "{err}");
}
