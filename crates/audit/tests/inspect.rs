//! `inspect` on sparse and referrer-laden archives, and skopeo-style
//! layouts: it never fails on them.

mod common;

use common::*;
use ferry_audit::{inspect, verify_archive, ManifestKind, ReferrerSource, VerifyOptions};
use ferry_oci::Digest;

fn sparse_index(carried: &Image, left_out: &Image) -> Vec<u8> {
    let child = |image: &Image, arch: &str| {
        let d = descriptor(OCI_MANIFEST, &image.manifest);
        format!(
            r#"{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
            &d[..d.len() - 1]
        )
    };
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
        child(carried, "amd64"),
        child(left_out, "arm64")
    )
    .into_bytes()
}

#[test]
fn sparse_index_lists_carried_and_not_carried_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let (amd, arm) = (Image::new("amd", "amd64"), Image::new("arm", "arm64"));
    let index = sparse_index(&amd, &arm);
    let mut blobs = amd.blobs();
    blobs.push(Entry::blob(&index));
    let entries = layout_with(
        &index_json(&[(OCI_INDEX, &index, Some("example.com/multi:1"))]),
        blobs,
    );
    let path = write(dir.path(), "sparse.tar", &tar(&entries));
    let inspection = inspect(&path).unwrap();
    assert!(inspection.problems.is_empty(), "{:#?}", inspection.problems);
    let r = &inspection.report.references[0];
    assert_eq!(r.kind, ManifestKind::Index);
    assert_eq!(r.platforms_carried, ["linux/amd64"]);
    assert_eq!(r.platforms_not_carried, ["linux/arm64"]);
    assert_eq!(r.images.len(), 1);
    assert_eq!(r.images[0].config_digest, Some(amd.config_digest()));
    let report = verify_archive(&path, &VerifyOptions::default());
    assert!(report.ok, "{:#?}", report.problems);
}

#[test]
fn referrers_and_unreferenced_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let sbom = b"{\"spdx\":true}".to_vec();
    let empty = b"{}".to_vec();
    let referrer = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/spdx+json","config":{},"layers":[{}],"subject":{}}}"#,
        descriptor("application/vnd.oci.empty.v1+json", &empty),
        descriptor("application/spdx+json", &sbom),
        descriptor(OCI_MANIFEST, &image.manifest)
    )
    .into_bytes();
    let sig = Image::new("sig", "amd64");
    let sig_name = format!("example.com/app:sha256-{}.sig", image.digest().hex());
    let index = index_json(&[
        (OCI_MANIFEST, &image.manifest, Some("example.com/app:1")),
        (OCI_MANIFEST, &sig.manifest, Some(&sig_name)),
        (OCI_MANIFEST, &referrer, None),
    ]);
    let mut blobs = image.blobs();
    blobs.extend(sig.blobs());
    blobs.extend([
        Entry::blob(&referrer),
        Entry::blob(&sbom),
        Entry::blob(&empty),
    ]);
    blobs.push(Entry::blob(b"nobody points at me"));
    let path = write(dir.path(), "ref.tar", &tar(&layout_with(&index, blobs)));
    let inspection = inspect(&path).unwrap();
    let report = &inspection.report;
    assert_eq!(
        report.references.len(),
        2,
        "the unnamed referrer is not a reference"
    );
    let app = &report.references[0];
    let sources: Vec<_> = app
        .referrers
        .iter()
        .map(|r| (r.source, r.digest.clone()))
        .collect();
    let mut expected = vec![
        (ReferrerSource::Subject, Digest::sha256_of(&referrer)),
        (ReferrerSource::Tag, sig.digest()),
    ];
    expected.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(sources, expected);
    assert_eq!(
        app.referrers
            .iter()
            .find(|r| r.source == ReferrerSource::Tag)
            .unwrap()
            .reference
            .as_deref(),
        Some(sig_name.as_str())
    );
    let unreferenced: Vec<_> = report
        .unreferenced_blobs
        .iter()
        .map(|b| b.digest.clone())
        .collect();
    assert_eq!(unreferenced, [Digest::sha256_of(b"nobody points at me")]);
    let v = verify_archive(&path, &VerifyOptions::default());
    assert!(v.ok, "an unreferenced blob is a warning: {:#?}", v.problems);
    assert_eq!(v.warnings, 1);
}

#[test]
fn skopeo_style_layout_with_dot_prefixes_and_short_names() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let mut entries = vec![Entry {
        name: "./".into(),
        data: Vec::new(),
        kind: b'5',
        link: String::new(),
    }];
    for mut e in layout_with(
        &index_json(&[(OCI_MANIFEST, &image.manifest, None)]),
        image.blobs(),
    ) {
        e.name = format!("./{}", e.name);
        entries.push(e);
    }
    // skopeo names with ref.name only.
    let index = String::from_utf8(entries[2].data.clone()).unwrap().replace(
        r#""size":"#,
        r#""annotations":{"org.opencontainers.image.ref.name":"fixtures/base:1"},"size":"#,
    );
    entries[2].data = index.into_bytes();
    let path = write(dir.path(), "skopeo.tar", &tar(&entries));
    let inspection = inspect(&path).unwrap();
    assert_eq!(
        inspection.report.references[0].reference.as_deref(),
        Some("fixtures/base:1")
    );
    assert!(verify_archive(&path, &VerifyOptions::default()).ok);
}
