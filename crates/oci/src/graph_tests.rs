use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::media_type::{OCI_INDEX, OCI_MANIFEST};

fn index_bytes(children: &[Descriptor]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children,
    }))
    .unwrap()
}

fn image_bytes(seed: &str) -> Vec<u8> {
    let config = Descriptor::new(
        "application/vnd.oci.image.config.v1+json",
        Digest::sha256_of(seed.as_bytes()),
        1,
    );
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [],
    }))
    .unwrap()
}

fn put(store: &mut HashMap<Digest, Vec<u8>>, media_type: &str, bytes: Vec<u8>) -> Descriptor {
    let d = Descriptor::new(media_type, Digest::sha256_of(&bytes), bytes.len() as u64);
    store.insert(d.digest.clone(), bytes);
    d
}

fn platform(entry: Descriptor, p: &str) -> Descriptor {
    Descriptor {
        platform: Some(Platform::parse(p).unwrap()),
        ..entry
    }
}

/// Walk from `root` over `store`, returning the steps as short strings.
fn run(store: &HashMap<Digest, Vec<u8>>, root: Descriptor) -> Vec<String> {
    let mut walk = Walk::new(root);
    let mut steps = Vec::new();
    while let Some(step) = walk.next() {
        match step {
            Step::Fetch { descriptor, .. } => match store.get(&descriptor.digest) {
                Some(bytes) => walk.enter(Manifest::parse(bytes.clone(), None).unwrap()),
                None => {
                    steps.push(format!("absent {}", descriptor.digest.short()));
                    walk.skip();
                }
            },
            Step::Leave {
                descriptor, depth, ..
            } => steps.push(format!("leave {} {depth}", descriptor.digest.short())),
            Step::TooDeep { descriptor, .. } => {
                steps.push(format!("too deep {}", descriptor.digest.short()))
            }
            Step::Cycle { descriptor, .. } => {
                steps.push(format!("cycle {}", descriptor.digest.short()))
            }
        }
    }
    steps
}

#[test]
fn children_come_before_parents_each_once() {
    let mut store = HashMap::new();
    let a = put(&mut store, OCI_MANIFEST, image_bytes("a"));
    let b = put(&mut store, OCI_MANIFEST, image_bytes("b"));
    let gone = Descriptor::new(OCI_MANIFEST, Digest::sha256_of(b"gone"), 4);
    let inner = put(&mut store, OCI_INDEX, index_bytes(std::slice::from_ref(&b)));
    let root = put(
        &mut store,
        OCI_INDEX,
        index_bytes(&[a.clone(), inner.clone(), a.clone(), gone.clone()]),
    );
    let s = |d: &Descriptor| d.digest.short().to_string();
    assert_eq!(
        run(&store, root.clone()),
        vec![
            format!("leave {} 1", s(&a)),
            format!("leave {} 2", s(&b)),
            format!("leave {} 1", s(&inner)),
            format!("absent {}", s(&gone)),
            format!("leave {} 0", s(&root)),
        ]
    );
}

#[test]
fn indexes_nested_ten_thousand_deep_stop_at_the_limit() {
    let mut store = HashMap::new();
    let mut below = put(&mut store, OCI_MANIFEST, image_bytes("bottom"));
    for _ in 0..10_000 {
        below = put(&mut store, OCI_INDEX, index_bytes(&[below]));
    }
    let steps = run(&store, below);
    let deep: Vec<_> = steps.iter().filter(|s| s.starts_with("too deep")).collect();
    assert_eq!(deep.len(), 1, "{steps:?}");
    assert_eq!(steps.len(), MAX_DEPTH + 2, "{steps:?}");
}

#[test]
fn a_cycle_through_content_that_lies_about_its_digest_ends() {
    // Two indexes stored under names that are not their digests, each
    // listing the other.
    let a_name = Digest::sha256_of(b"a");
    let b_name = Digest::sha256_of(b"b");
    let a_desc = Descriptor::new(OCI_INDEX, a_name.clone(), 1);
    let b_desc = Descriptor::new(OCI_INDEX, b_name.clone(), 1);
    let store = HashMap::from([
        (a_name.clone(), index_bytes(std::slice::from_ref(&b_desc))),
        (b_name.clone(), index_bytes(std::slice::from_ref(&a_desc))),
    ]);
    let steps = run(&store, a_desc);
    assert_eq!(
        steps,
        vec![
            format!("cycle {}", a_name.short()),
            format!("leave {} 1", b_name.short()),
            format!("leave {} 0", a_name.short()),
        ]
    );
}

#[test]
fn attestations_are_not_platforms_and_follow_their_image() {
    let amd = platform(
        Descriptor::new(OCI_MANIFEST, Digest::sha256_of(b"amd"), 1),
        "linux/amd64",
    );
    let arm = platform(
        Descriptor::new(OCI_MANIFEST, Digest::sha256_of(b"arm"), 1),
        "linux/arm64",
    );
    let attest = |of: &Descriptor, seed: &[u8]| Descriptor {
        annotations: Some(BTreeMap::from([
            (
                ANNOTATION_REFERENCE_TYPE.to_string(),
                "attestation-manifest".to_string(),
            ),
            (
                ANNOTATION_REFERENCE_DIGEST.to_string(),
                of.digest.to_string(),
            ),
        ])),
        ..platform(
            Descriptor::new(OCI_MANIFEST, Digest::sha256_of(seed), 1),
            "unknown/unknown",
        )
    };
    let (amd_att, arm_att) = (attest(&amd, b"1"), attest(&arm, b"2"));
    let plain = Descriptor::new(OCI_MANIFEST, Digest::sha256_of(b"plain"), 1);
    let entries = vec![
        amd.clone(),
        arm.clone(),
        amd_att.clone(),
        arm_att.clone(),
        plain,
    ];
    assert!(real_platform(&amd).is_some());
    assert!(real_platform(&amd_att).is_none());
    let linux_amd64 = [Platform::parse("linux/amd64").unwrap()];
    assert_eq!(
        select_platforms(&entries, &linux_amd64),
        vec![true, false, true, false, true]
    );
    assert_eq!(select_platforms(&entries, &[]), vec![true; 5]);

    let carried = [&amd.digest, &amd_att.digest];
    let present = |d: &Digest| carried.contains(&d);
    assert!(may_be_left_out(&entries, &arm, present));
    assert!(may_be_left_out(&entries, &arm_att, present));
    assert!(!may_be_left_out(&entries, &entries[4], present));
    // An attestation whose image is there is not optional.
    assert!(!may_be_left_out(&entries, &amd_att, |d| d == &amd.digest));
    // Nothing present at all is a broken graph, not a sparse index.
    assert!(!may_be_left_out(&entries, &arm, |_| false));
}

#[test]
fn cosign_tags_name_their_subject() {
    let hex = "a".repeat(64);
    let subject: Digest = format!("sha256:{hex}").parse().unwrap();
    let tags: Vec<String> = cosign_tags(&subject).collect();
    assert_eq!(tags[0], format!("sha256-{hex}.sig"));
    for tag in &tags {
        assert_eq!(cosign_subject(tag), Some(subject.clone()));
        let reference = format!("127.0.0.1:5000/fixtures/app:{tag}");
        assert_eq!(cosign_subject(&reference), Some(subject.clone()));
    }
    assert!(cosign_subject("127.0.0.1:5000/fixtures/app:1").is_none());
    assert!(cosign_subject(&format!("r:sha256-{hex}.txt")).is_none());
    assert!(cosign_subject("r:sha256-abc.sig").is_none());
}

#[test]
fn sha512_manifests_keep_their_algorithm() {
    let bytes = image_bytes("x");
    let m = Manifest::parse_as(bytes.clone(), None, crate::Algorithm::Sha512).unwrap();
    assert_eq!(m.digest().algorithm(), crate::Algorithm::Sha512);
    assert_eq!(m.digest(), &m.digest().recompute(&bytes));
}

#[test]
fn referrers_join_every_graph_holding_their_subject_and_referrers_follow() {
    let d = |s: &str| Digest::sha256_of(s.as_bytes());
    let (image_a, image_b, child) = (d("a"), d("b"), d("child"));
    let (sbom, sig_of_sbom, orphan, loop_1, loop_2) =
        (d("sbom"), d("sig"), d("orphan"), d("loop-1"), d("loop-2"));
    let graphs = [
        vec![image_a.clone(), child.clone()],
        vec![image_b.clone(), child.clone()],
        vec![d("c")],
    ];
    let nothing = d("nothing");
    let referrers = [
        // Listed before what it refers to: joins on the second round.
        ReferrerGraph {
            digest: &sig_of_sbom,
            subject: &sbom,
            manifests: &[],
        },
        ReferrerGraph {
            digest: &sbom,
            subject: &child,
            manifests: std::slice::from_ref(&sbom),
        },
        ReferrerGraph {
            digest: &orphan,
            subject: &nothing,
            manifests: &[],
        },
        // Two referrers naming each other, neither held: no endless loop.
        ReferrerGraph {
            digest: &loop_1,
            subject: &loop_2,
            manifests: &[],
        },
        ReferrerGraph {
            digest: &loop_2,
            subject: &loop_1,
            manifests: &[],
        },
    ];
    let joined = attach_referrers(&graphs, &referrers);
    assert_eq!(joined, vec![vec![0, 1], vec![0, 1], vec![], vec![], vec![]]);
}
