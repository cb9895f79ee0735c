//! The benchmark workload behind `make bench`: about 1 GB of images, pushed
//! streaming into a running registry.
//!
//! The shape is what a real transfer looks like, scaled down: a base layer
//! shared by every application image, a runtime layer shared by several, a
//! handful of small layers per image (per-blob overhead matters), an OCI
//! index with four platforms that share an assets layer, and one model image
//! whose layer is 512 MiB. Every layer is an uncompressed tar of
//! pseudo-random bytes ([`BigLayerReader`]) seeded from its name, so the
//! same scale always gives the same digests; no layer is ever held in
//! memory.
//!
//! [`push_many_small_workload`] is the other shape: a platform release of
//! many small images sharing a base, where per-image and per-request costs
//! dominate rather than bytes.

use std::collections::BTreeMap;

use ferry_oci::media_type;
use serde_json::{json, Value};

use crate::content::{self, BigLayerReader, XorShift, CREATED};
use crate::push::Pusher;

const MIB: u64 = 1024 * 1024;
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// One blob of the workload, as the raw-transfer floor needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchBlob {
    /// A repository that holds it (the first one it was pushed to).
    pub repository: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What [`push_bench_workload`] pushed.
#[derive(Debug, Clone, Default)]
pub struct BenchWorkload {
    /// The tagged references, `host/bench/...:1`, sorted.
    pub references: Vec<String>,
    /// Every unique config and layer (manifests and indexes not included),
    /// sorted by digest.
    pub blobs: Vec<BenchBlob>,
    /// Manifests and indexes pushed.
    pub manifests: usize,
}

impl BenchWorkload {
    /// The sum of the unique blobs' sizes.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

/// A layer to generate: its name seeds its bytes.
#[derive(Debug, Clone)]
struct LayerSpec {
    name: String,
    bytes: u64,
}

impl LayerSpec {
    fn new(name: impl Into<String>, bytes: u64, scale: f64) -> LayerSpec {
        // Truncation is intended: sizes only need to be roughly scaled.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let scaled = ((bytes as f64) * scale) as u64;
        LayerSpec {
            name: name.into(),
            bytes: scaled.max(1024),
        }
    }

    fn seed(&self) -> u64 {
        XorShift::from_label(&format!("ferry-bench/{}", self.name)).next_u64()
    }
}

/// Pushes the workload, remembering where each blob already is so shared
/// blobs are mounted rather than generated again.
struct Workload<'a> {
    pusher: &'a Pusher,
    host: String,
    /// digest -> (first repository, size).
    blobs: BTreeMap<String, (String, u64)>,
    /// layer name -> digest and tar length.
    layers: BTreeMap<String, (String, u64)>,
    out: BenchWorkload,
}

impl<'a> Workload<'a> {
    /// Nothing pushed yet, through `pusher` to `host`.
    fn new(pusher: &'a Pusher, host: &str) -> Workload<'a> {
        Workload {
            pusher,
            host: host.to_string(),
            blobs: BTreeMap::new(),
            layers: BTreeMap::new(),
            out: BenchWorkload::default(),
        }
    }

    /// Make sure `repo` holds `layer`: stream it the first time, mount it
    /// from where it already is afterwards. Returns its descriptor.
    fn layer(&mut self, repo: &str, layer: &LayerSpec) -> Value {
        let (digest, size) = match self.layers.get(&layer.name) {
            Some((digest, size)) => {
                let (from, _) = &self.blobs[digest];
                if from != repo
                    && !self.pusher.blob_exists(repo, digest)
                    && !self.pusher.mount_blob(repo, from, digest)
                {
                    let (pushed, _) = self
                        .pusher
                        .push_blob_streaming(repo, BigLayerReader::new(layer.bytes, layer.seed()));
                    assert_eq!(&pushed, digest, "layer {} is deterministic", layer.name);
                }
                (digest.clone(), *size)
            }
            None => {
                let (digest, size) = self
                    .pusher
                    .push_blob_streaming(repo, BigLayerReader::new(layer.bytes, layer.seed()));
                assert_eq!(size, BigLayerReader::tar_len(layer.bytes));
                self.layers
                    .insert(layer.name.clone(), (digest.clone(), size));
                self.blobs.insert(digest.clone(), (repo.to_string(), size));
                (digest, size)
            }
        };
        json!({"mediaType": OCI_LAYER_TAR, "digest": digest, "size": size})
    }

    /// Push an image manifest of `layers` for `platform`; returns its bytes
    /// and digest (not tagged).
    fn image(
        &mut self,
        repo: &str,
        title: &str,
        platform: (&str, Option<&str>),
        layers: &[&LayerSpec],
    ) -> (Vec<u8>, String) {
        let descriptors: Vec<Value> = layers.iter().map(|l| self.layer(repo, l)).collect();
        let diff_ids: Vec<Value> = descriptors.iter().map(|d| d["digest"].clone()).collect();
        let history: Vec<Value> = (0..layers.len())
            .map(|i| json!({"created": CREATED, "created_by": format!("ferry-bench: {title} layer {}", i + 1)}))
            .collect();
        let (arch, variant) = platform;
        let mut config = json!({"created": CREATED, "architecture": arch});
        if let Some(v) = variant {
            config["variant"] = json!(v);
        }
        config["os"] = json!("linux");
        config["config"] = json!({
            "Cmd": ["/bin/sh"],
            "Labels": {"org.opencontainers.image.title": title},
        });
        config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        config["history"] = json!(history);
        let config = content::compact(&config);
        let config_digest = self.pusher.push_blob(repo, &config);
        self.blobs
            .entry(config_digest.clone())
            .or_insert_with(|| (repo.to_string(), config.len() as u64));
        let manifest = content::compact(&json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": {
                "mediaType": media_type::OCI_CONFIG,
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": descriptors,
        }));
        let digest = content::sha256(&manifest);
        self.pusher
            .push_manifest(repo, &digest, media_type::OCI_MANIFEST, &manifest);
        self.out.manifests += 1;
        (manifest, digest)
    }

    /// Tag `bytes` (already pushed by digest) as `repo:1`.
    fn tag(&mut self, repo: &str, media_type: &str, bytes: &[u8]) {
        self.tag_as(repo, "1", media_type, bytes);
    }

    /// Tag `bytes` (already pushed by digest) as `repo:tag`.
    fn tag_as(&mut self, repo: &str, tag: &str, media_type: &str, bytes: &[u8]) {
        self.pusher.push_manifest(repo, tag, media_type, bytes);
        self.out
            .references
            .push(format!("{}/{repo}:{tag}", self.host));
    }

    /// Push a two-platform index (amd64, arm64) of images of `base` plus a
    /// small layer of their own; returns its bytes (not tagged).
    fn small_index(&mut self, repo: &str, title: &str, base: &LayerSpec) -> Vec<u8> {
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            let own = LayerSpec::new(format!("{title}-{arch}"), 4 * 1024, 1.0);
            let (m, digest) = self.image(
                repo,
                &format!("{title}-{arch}"),
                (arch, None),
                &[base, &own],
            );
            children.push(json!({
                "mediaType": media_type::OCI_MANIFEST,
                "digest": digest,
                "size": m.len(),
                "platform": {"architecture": arch, "os": "linux"},
            }));
        }
        let index = content::compact(&json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": children,
        }));
        self.out.manifests += 1;
        index
    }

    fn finish(self) -> BenchWorkload {
        let mut out = self.out;
        out.references.sort();
        out.blobs = self
            .blobs
            .into_iter()
            .map(|(digest, (repository, size))| BenchBlob {
                repository,
                digest,
                size,
            })
            .collect();
        out
    }
}

/// Push the many-small-images workload (issue 15: a platform release) into
/// the plain-HTTP registry at `host`: `repos` repositories `small/r-N`, each
/// with `tags` tags `t1`..; every image has one shared base layer (256 KiB)
/// and a small layer of its own (4 KiB); every fourth repository's tags are
/// two-platform indexes. 60 × 4 makes 240 images, as in the issue.
pub fn push_many_small_workload(host: &str, repos: usize, tags: usize) -> BenchWorkload {
    let pusher = Pusher::new(&format!("http://{host}"));
    let mut w = Workload::new(&pusher, host);
    let base = LayerSpec::new("small-base", 256 * 1024, 1.0);
    for r in 1..=repos {
        let repo = format!("small/r-{r}");
        for t in 1..=tags {
            let title = format!("r-{r}-t{t}");
            let tag = format!("t{t}");
            if r % 4 == 0 {
                let index = w.small_index(&repo, &title, &base);
                w.tag_as(&repo, &tag, media_type::OCI_INDEX, &index);
            } else {
                let own = LayerSpec::new(title.clone(), 4 * 1024, 1.0);
                let (m, _) = w.image(&repo, &title, ("amd64", None), &[&base, &own]);
                w.tag_as(&repo, &tag, media_type::OCI_MANIFEST, &m);
            }
        }
    }
    w.finish()
}

/// Push the benchmark workload into the plain-HTTP registry at `host`
/// (`127.0.0.1:5000`). `scale` multiplies every layer size (1.0 is about
/// 1 GB of unique blobs, with one layer of 512 MiB); layers never go below
/// 1 KiB.
pub fn push_bench_workload(host: &str, scale: f64) -> BenchWorkload {
    push_bench_release(host, scale, 1)
}

/// Push release `release` of the benchmark workload (see
/// [`push_bench_workload`]), tagged `:1` like the first. From release 2 on,
/// each app image's own layers and the amd64 platform layer of the index
/// are new (about a tenth of the bytes, the delta bundle's case); the rest
/// is unchanged.
pub fn push_bench_release(host: &str, scale: f64, release: u32) -> BenchWorkload {
    let changed = |name: String| {
        if release > 1 {
            format!("{name}-r{release}")
        } else {
            name
        }
    };
    let pusher = Pusher::new(&format!("http://{host}"));
    let mut w = Workload::new(&pusher, host);
    let amd64 = ("amd64", None);
    let base = LayerSpec::new("base", 64 * MIB, scale);
    let runtime = LayerSpec::new("runtime", 128 * MIB, scale);

    // bench/base:1 — the base layer alone.
    let (m, _) = w.image("bench/base", "base", amd64, &[&base]);
    w.tag("bench/base", media_type::OCI_MANIFEST, &m);

    // bench/app-N:1 — base + runtime + an app layer + a few small layers.
    for n in 1..=4 {
        let repo = format!("bench/app-{n}");
        let mut own = vec![LayerSpec::new(changed(format!("app-{n}")), 8 * MIB, scale)];
        own.extend(
            (1..=5)
                .map(|k| LayerSpec::new(changed(format!("app-{n}-small-{k}")), 32 * 1024, scale)),
        );
        let mut layers = vec![&base, &runtime];
        layers.extend(own.iter());
        let (m, _) = w.image(&repo, &format!("app-{n}"), amd64, &layers);
        w.tag(&repo, media_type::OCI_MANIFEST, &m);
    }

    // bench/multi:1 — an OCI index of four platforms sharing an assets layer.
    let assets = LayerSpec::new("multi-assets", 8 * MIB, scale);
    let mut children = Vec::new();
    for (arch, variant) in [
        ("amd64", None),
        ("arm64", None),
        ("arm", Some("v7")),
        ("s390x", None),
    ] {
        let label = match variant {
            Some(v) => format!("{arch}-{v}"),
            None => arch.to_string(),
        };
        let name = format!("multi-{label}");
        let name = if arch == "amd64" { changed(name) } else { name };
        let own = LayerSpec::new(name, 48 * MIB, scale);
        let (m, digest) = w.image("bench/multi", &label, (arch, variant), &[&own, &assets]);
        let mut platform = json!({"architecture": arch, "os": "linux"});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        children.push(json!({
            "mediaType": media_type::OCI_MANIFEST,
            "digest": digest,
            "size": m.len(),
            "platform": platform,
        }));
    }
    let index = content::compact(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": children,
    }));
    w.out.manifests += 1;
    w.tag("bench/multi", media_type::OCI_INDEX, &index);

    // bench/model:1 — base + one layer of 512 MiB.
    let model = LayerSpec::new("model", 512 * MIB, scale);
    let (m, _) = w.image("bench/model", "model", amd64, &[&base, &model]);
    w.tag("bench/model", media_type::OCI_MANIFEST, &m);
    w.finish()
}
