//! The fixture images: what they are, how they are generated, and pushing
//! them.
//!
//! Content is generated, never random: the same [`FixtureOptions`] always give
//! the same bytes and digests, whatever the registry host (references carry
//! the host, content does not).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use ferry_oci::media_type;
use serde_json::{json, Value};

use crate::content::{self, BigLayerReader, Entry, Layer, XorShift, CREATED};
use crate::push::Pusher;

/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Helm chart config.
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// Helm chart content layer.
pub const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// Cosign simple-signing payload layer.
pub const COSIGN_PAYLOAD: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation carrying a cosign signature on the payload layer.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The artifact type of the SBOM referrer.
pub const SBOM_ARTIFACT_TYPE: &str = "application/vnd.example.sbom.v1+json";
/// The media type of the SBOM referrer's layer.
pub const SBOM_LAYER: &str = "application/spdx+json";
/// The OCI empty JSON blob, `{}`.
pub const EMPTY_JSON: &[u8] = b"{}";
/// The digest of [`EMPTY_JSON`].
pub const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// What kind of top-level object a fixture is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FixtureKind {
    /// OCI image manifest of a runnable-ish image.
    OciImage,
    /// Docker schema 2 image manifest.
    DockerSchema2,
    /// OCI image index.
    OciIndex,
    /// Docker manifest list.
    DockerList,
    /// OCI manifest of a non-image artifact (Helm chart).
    Artifact,
}

/// One fixture pushed under a tag.
#[derive(Debug, Clone)]
pub struct FixtureImage {
    /// `<host>/<repo>:<tag>` as pushed.
    pub reference: String,
    /// Repository, `fixtures/...`.
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// `sha256:` of [`FixtureImage::manifest`].
    pub digest: String,
    /// The Content-Type it was pushed with.
    pub media_type: String,
    /// What it is.
    pub kind: FixtureKind,
    /// The exact manifest or index bytes pushed.
    pub manifest: Vec<u8>,
    /// `os/arch[/variant]` of each child for indexes (in index order), of the
    /// image itself for images, empty for artifacts.
    pub platforms: Vec<String>,
    /// Child manifest digests, in index order (indexes only).
    pub children: Vec<String>,
    /// Every config and layer digest reachable, all platforms, deduplicated,
    /// in first-seen order.
    pub blobs: Vec<String>,
    /// Config digests (image IDs), one per image.
    pub config_digests: Vec<String>,
}

impl FixtureImage {
    /// `<repo>:<tag>`, without the host.
    pub fn repo_tag(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }

    /// `<host>/<repo>@<digest>`.
    pub fn pinned_reference(&self) -> String {
        let host = self.reference.split('/').next().unwrap_or_default();
        format!("{host}/{}@{}", self.repository, self.digest)
    }

    /// The size of the top-level manifest.
    pub fn size(&self) -> u64 {
        self.manifest.len() as u64
    }
}

/// An OCI referrer (a manifest with `subject`), pushed by digest, plus the
/// referrers tag-schema index listing it (distribution 2.8 has no referrers
/// API).
#[derive(Debug, Clone)]
pub struct FixtureReferrer {
    /// The subject as `<host>/<repo>:<tag>`.
    pub subject_reference: String,
    /// The subject's digest.
    pub subject_digest: String,
    /// Repository holding subject and referrer.
    pub repository: String,
    /// The referrer manifest's digest.
    pub digest: String,
    /// Its media type (OCI image manifest).
    pub media_type: String,
    /// Its `artifactType`.
    pub artifact_type: String,
    /// Its exact bytes.
    pub manifest: Vec<u8>,
    /// Its config and layer digests.
    pub blobs: Vec<String>,
    /// The tag-schema tag, `sha256-<hex of subject digest>`, if pushed.
    pub tag: Option<String>,
    /// The digest of the tag-schema index.
    pub tag_index_digest: Option<String>,
    /// The exact bytes of the tag-schema index (an OCI index).
    pub tag_index: Option<Vec<u8>>,
}

/// A cosign-style signature: a manifest tagged `sha256-<hex>.sig` next to
/// its subject.
#[derive(Debug, Clone)]
pub struct FixtureSignature {
    /// The signed image as `<host>/<repo>:<tag>`.
    pub subject_reference: String,
    /// The signed image's digest.
    pub subject_digest: String,
    /// Repository holding subject and signature.
    pub repository: String,
    /// `sha256-<hex of subject digest>.sig`.
    pub tag: String,
    /// `<host>/<repo>:<tag>`.
    pub reference: String,
    /// The signature manifest's digest.
    pub digest: String,
    /// Its media type (OCI image manifest).
    pub media_type: String,
    /// Its exact bytes.
    pub manifest: Vec<u8>,
    /// Its config and layer digests.
    pub blobs: Vec<String>,
}

/// Extra fixtures.
#[derive(Debug, Clone, Default)]
pub struct FixtureOptions {
    /// Add `fixtures/big:1`, an OCI image with one uncompressed tar layer
    /// holding a file of this many pseudo-random bytes (see
    /// [`BigLayerReader`]). It is generated and pushed streaming.
    pub big_layer_bytes: Option<u64>,
}

/// The seed of the big layer's bytes.
pub const BIG_LAYER_SEED: u64 = 0x00f3_6272_7900_0001;

/// One push, in order.
#[derive(Debug, Clone)]
enum Step {
    Blob {
        repo: String,
        digest: String,
    },
    BigBlob {
        repo: String,
        size: u64,
        digest: String,
    },
    Manifest {
        repo: String,
        reference: String,
        media_type: String,
        bytes: Vec<u8>,
    },
}

/// The generated fixtures, what was pushed, and the bytes of every small blob.
#[derive(Debug, Clone)]
pub struct FixtureSet {
    /// The registry host the references name (`127.0.0.1:PORT`).
    pub host: String,
    /// The tagged fixtures.
    pub images: Vec<FixtureImage>,
    /// OCI referrers (with their tag-schema indexes).
    pub referrers: Vec<FixtureReferrer>,
    /// Cosign-style signatures.
    pub signatures: Vec<FixtureSignature>,
    blobs: BTreeMap<String, Vec<u8>>,
    plan: Vec<Step>,
}

impl FixtureSet {
    /// Generate the fixtures for a registry at `host`, without pushing.
    pub fn generate(host: &str, options: &FixtureOptions) -> FixtureSet {
        let mut g = Gen {
            set: FixtureSet {
                host: host.to_string(),
                images: Vec::new(),
                referrers: Vec::new(),
                signatures: Vec::new(),
                blobs: BTreeMap::new(),
                plan: Vec::new(),
            },
        };
        g.generate(options);
        g.set
    }

    /// Push everything, in dependency order: blobs, children by digest, then
    /// tags. Pushing twice is harmless.
    pub fn push(&self, pusher: &Pusher) {
        for step in &self.plan {
            match step {
                Step::Blob { repo, digest } => {
                    let pushed = pusher.push_blob(repo, &self.blobs[digest]);
                    assert_eq!(&pushed, digest);
                }
                Step::BigBlob { repo, size, digest } => {
                    if !pusher.blob_exists(repo, digest) {
                        let (pushed, len) = pusher
                            .push_blob_streaming(repo, BigLayerReader::new(*size, BIG_LAYER_SEED));
                        assert_eq!((&pushed, len), (digest, BigLayerReader::tar_len(*size)));
                    }
                }
                Step::Manifest {
                    repo,
                    reference,
                    media_type,
                    bytes,
                } => {
                    pusher.push_manifest(repo, reference, media_type, bytes);
                }
            }
        }
    }

    /// The fixture tagged `repo_tag` (`"fixtures/base:1"`). Panics if none.
    pub fn image(&self, repo_tag: &str) -> &FixtureImage {
        self.images
            .iter()
            .find(|i| i.repo_tag() == repo_tag)
            .unwrap_or_else(|| {
                panic!(
                    "no fixture {repo_tag:?}; known: {:?}",
                    self.images
                        .iter()
                        .map(FixtureImage::repo_tag)
                        .collect::<Vec<_>>()
                )
            })
    }

    /// The references of the tagged fixtures, `<host>/<repo>:<tag>`.
    pub fn references(&self) -> Vec<String> {
        self.images.iter().map(|i| i.reference.clone()).collect()
    }

    /// Every config and layer digest, over images, referrers and signatures.
    pub fn all_blob_digests(&self) -> BTreeSet<String> {
        let images = self.images.iter().flat_map(|i| &i.blobs);
        let referrers = self.referrers.iter().flat_map(|r| &r.blobs);
        let signatures = self.signatures.iter().flat_map(|s| &s.blobs);
        images.chain(referrers).chain(signatures).cloned().collect()
    }

    /// Every manifest and index digest: tagged fixtures, their children,
    /// referrers, tag-schema indexes and signatures.
    pub fn all_manifest_digests(&self) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for image in &self.images {
            all.insert(image.digest.clone());
            all.extend(image.children.iter().cloned());
        }
        for referrer in &self.referrers {
            all.insert(referrer.digest.clone());
            all.extend(referrer.tag_index_digest.iter().cloned());
        }
        all.extend(self.signatures.iter().map(|s| s.digest.clone()));
        all
    }

    /// The bytes of a generated blob or manifest (not the big layer).
    pub fn blob(&self, digest: &str) -> Option<&[u8]> {
        self.blobs.get(digest).map(Vec::as_slice)
    }

    /// Every repository the fixtures were pushed to.
    pub fn repositories(&self) -> BTreeSet<String> {
        self.plan
            .iter()
            .map(|step| match step {
                Step::Blob { repo, .. }
                | Step::BigBlob { repo, .. }
                | Step::Manifest { repo, .. } => repo.clone(),
            })
            .collect()
    }
}

/// Push the standard fixture set into the plain-HTTP registry at `host`.
pub fn push_fixtures(registry_host: &str) -> FixtureSet {
    push_fixtures_with(registry_host, FixtureOptions::default())
}

/// Push the fixture set with options into the plain-HTTP registry at `host`.
pub fn push_fixtures_with(registry_host: &str, options: FixtureOptions) -> FixtureSet {
    let set = FixtureSet::generate(registry_host, &options);
    set.push(&Pusher::new(&format!("http://{registry_host}")));
    set
}

/// A generated single-platform image, not yet tagged.
struct Built {
    manifest: Vec<u8>,
    digest: String,
    media_type: &'static str,
    platform: String,
    platform_json: Value,
    config: String,
    blobs: Vec<String>,
}

/// What one image is made of.
struct ImageSpec<'a> {
    repo: &'a str,
    title: &'a str,
    arch: &'a str,
    variant: Option<&'a str>,
    layers: Vec<&'a Layer>,
    docker: bool,
}

struct Gen {
    set: FixtureSet,
}

impl Gen {
    fn generate(&mut self, options: &FixtureOptions) {
        let base1 = content::layer(&[
            Entry::Dir("etc/"),
            Entry::file(
                "etc/os-release",
                "NAME=\"ferry fixture\"\nID=ferry-fixture\nVERSION_ID=1\n",
            ),
            Entry::exe("hello", content::hello_elf("hello from fixtures/base\n")),
        ]);
        let base2 = content::layer(&[
            Entry::Dir("usr/"),
            Entry::Dir("usr/share/"),
            Entry::Dir("usr/share/ferry/"),
            Entry::file("usr/share/ferry/base-2.txt", content::text("base-2", 40)),
        ]);
        let base3 = content::layer(&[
            Entry::Dir("var/"),
            Entry::Dir("var/lib/"),
            Entry::file("var/lib/ferry-base-3.txt", content::text("base-3", 20)),
        ]);
        let app1 = content::layer(&[
            Entry::Dir("app/"),
            Entry::file("app/config.txt", content::text("app-1", 10)),
            Entry::exe("hello", content::hello_elf("hello from fixtures/app\n")),
        ]);

        // fixtures/base:1 and fixtures/app:1 (sharing two layers).
        let base = self.image(ImageSpec {
            repo: "fixtures/base",
            title: "base",
            arch: "amd64",
            variant: None,
            layers: vec![&base1, &base2, &base3],
            docker: false,
        });
        let base = self.tag_image("fixtures/base", "1", FixtureKind::OciImage, base);
        let app = self.image(ImageSpec {
            repo: "fixtures/app",
            title: "app",
            arch: "amd64",
            variant: None,
            layers: vec![&base1, &base2, &app1],
            docker: false,
        });
        let app = self.tag_image("fixtures/app", "1", FixtureKind::OciImage, app);

        self.multi();
        self.docker_list();

        // fixtures/docker:1 shares base1's bytes under the Docker media type.
        let docker1 = content::layer(&[
            Entry::Dir("docker/"),
            Entry::file("docker/readme.txt", content::text("docker-1", 12)),
        ]);
        let docker = self.image(ImageSpec {
            repo: "fixtures/docker",
            title: "docker",
            arch: "amd64",
            variant: None,
            layers: vec![&base1, &docker1],
            docker: true,
        });
        self.tag_image("fixtures/docker", "1", FixtureKind::DockerSchema2, docker);

        self.chart();
        self.signature(&app);
        self.referrer(&base);
        if let Some(size) = options.big_layer_bytes {
            self.big(size);
        }
    }

    /// Record a blob to push into `repo`; returns its OCI descriptor
    /// (`mediaType`, `digest`, `size`) or Docker's order (`mediaType`,
    /// `size`, `digest`).
    fn blob(&mut self, repo: &str, media_type: &str, bytes: Vec<u8>, docker: bool) -> Value {
        let digest = content::sha256(&bytes);
        let size = bytes.len();
        self.set.plan.push(Step::Blob {
            repo: repo.to_string(),
            digest: digest.clone(),
        });
        self.set.blobs.insert(digest.clone(), bytes);
        descriptor(media_type, &digest, size as u64, docker)
    }

    /// Record a manifest push; returns its digest.
    fn manifest(
        &mut self,
        repo: &str,
        reference: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = content::sha256(bytes);
        self.set.blobs.insert(digest.clone(), bytes.to_vec());
        self.set.plan.push(Step::Manifest {
            repo: repo.to_string(),
            reference: reference.unwrap_or(&digest).to_string(),
            media_type: media_type.to_string(),
            bytes: bytes.to_vec(),
        });
        digest
    }

    /// Config, layers and manifest of one image; blobs recorded, manifest not.
    fn image(&mut self, spec: ImageSpec<'_>) -> Built {
        let (manifest_type, config_type, layer_type) = if spec.docker {
            (
                media_type::DOCKER_MANIFEST,
                media_type::DOCKER_CONFIG,
                DOCKER_LAYER_GZIP,
            )
        } else {
            (
                media_type::OCI_MANIFEST,
                media_type::OCI_CONFIG,
                OCI_LAYER_GZIP,
            )
        };
        let config = image_config(
            &spec,
            spec.layers.iter().map(|l| l.diff_id.clone()).collect(),
        );
        let config_desc = self.blob(
            spec.repo,
            config_type,
            content::compact(&config),
            spec.docker,
        );
        let layer_descs: Vec<Value> = spec
            .layers
            .iter()
            .map(|l| self.blob(spec.repo, layer_type, l.gz.clone(), spec.docker))
            .collect();
        let mut blobs = vec![digest_of(&config_desc)];
        blobs.extend(layer_descs.iter().map(digest_of));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config_desc,
            "layers": layer_descs,
        });
        // Docker writes three-space indents; OCI fixtures stay compact.
        let manifest = if spec.docker {
            content::pretty(&manifest, b"   ")
        } else {
            content::compact(&manifest)
        };
        let platform = match spec.variant {
            Some(v) => format!("linux/{}/{v}", spec.arch),
            None => format!("linux/{}", spec.arch),
        };
        let mut platform_json = json!({"architecture": spec.arch, "os": "linux"});
        if let Some(v) = spec.variant {
            platform_json["variant"] = json!(v);
        }
        Built {
            digest: content::sha256(&manifest),
            manifest,
            media_type: manifest_type,
            platform,
            platform_json,
            config: blobs[0].clone(),
            blobs,
        }
    }

    /// Push `built` under `repo:tag` and record it as a fixture.
    fn tag_image(
        &mut self,
        repo: &str,
        tag: &str,
        kind: FixtureKind,
        built: Built,
    ) -> FixtureImage {
        self.manifest(repo, Some(tag), built.media_type, &built.manifest);
        let image = FixtureImage {
            reference: format!("{}/{repo}:{tag}", self.set.host),
            repository: repo.to_string(),
            tag: tag.to_string(),
            digest: built.digest,
            media_type: built.media_type.to_string(),
            kind,
            manifest: built.manifest,
            platforms: vec![built.platform],
            children: Vec::new(),
            blobs: built.blobs,
            config_digests: vec![built.config],
        };
        self.set.images.push(image.clone());
        image
    }

    /// Children pushed by digest, then an index of them under `repo:tag`.
    fn tag_index(&mut self, repo: &str, tag: &str, kind: FixtureKind, children: Vec<Built>) {
        let docker = kind == FixtureKind::DockerList;
        let index_type = if docker {
            media_type::DOCKER_MANIFEST_LIST
        } else {
            media_type::OCI_INDEX
        };
        let mut entries = Vec::new();
        let mut blobs: Vec<String> = Vec::new();
        for child in &children {
            self.manifest(repo, None, child.media_type, &child.manifest);
            let mut entry = descriptor(
                child.media_type,
                &child.digest,
                child.manifest.len() as u64,
                docker,
            );
            entry["platform"] = child.platform_json.clone();
            entries.push(entry);
            for blob in &child.blobs {
                if !blobs.contains(blob) {
                    blobs.push(blob.clone());
                }
            }
        }
        let index = json!({"schemaVersion": 2, "mediaType": index_type, "manifests": entries});
        let index = if docker {
            content::pretty(&index, b"   ")
        } else {
            content::pretty(&index, b"  ")
        };
        let digest = self.manifest(repo, Some(tag), index_type, &index);
        self.set.images.push(FixtureImage {
            reference: format!("{}/{repo}:{tag}", self.set.host),
            repository: repo.to_string(),
            tag: tag.to_string(),
            digest,
            media_type: index_type.to_string(),
            kind,
            manifest: index,
            platforms: children.iter().map(|c| c.platform.clone()).collect(),
            children: children.iter().map(|c| c.digest.clone()).collect(),
            blobs,
            config_digests: children.iter().map(|c| c.config.clone()).collect(),
        });
    }

    /// `fixtures/multi:1`: OCI index, linux/amd64, linux/arm64/v8,
    /// linux/arm/v7, one layer shared by all three.
    fn multi(&mut self) {
        let common = content::layer(&[
            Entry::Dir("usr/"),
            Entry::Dir("usr/share/"),
            Entry::Dir("usr/share/ferry/"),
            Entry::file(
                "usr/share/ferry/multi-common.txt",
                content::text("multi-common", 30),
            ),
        ]);
        let platforms = [("amd64", None), ("arm64", Some("v8")), ("arm", Some("v7"))];
        let arch_layers: Vec<Layer> = platforms
            .iter()
            .map(|(arch, variant)| {
                let name = format!("{arch}{}", variant.unwrap_or_default());
                let mut entries = vec![
                    Entry::Dir("etc/"),
                    Entry::file("etc/ferry-arch", format!("{name}\n")),
                ];
                if *arch == "amd64" {
                    entries.push(Entry::exe(
                        "hello",
                        content::hello_elf("hello from fixtures/multi\n"),
                    ));
                }
                content::layer(&entries)
            })
            .collect();
        let children = platforms
            .iter()
            .zip(&arch_layers)
            .map(|((arch, variant), own)| {
                self.image(ImageSpec {
                    repo: "fixtures/multi",
                    title: "multi",
                    arch,
                    variant: *variant,
                    layers: vec![&common, own],
                    docker: false,
                })
            })
            .collect();
        self.tag_index("fixtures/multi", "1", FixtureKind::OciIndex, children);
    }

    /// `fixtures/dockerlist:1`: Docker manifest list of two schema 2 images.
    fn docker_list(&mut self) {
        let common = content::layer(&[
            Entry::Dir("srv/"),
            Entry::file(
                "srv/dockerlist-common.txt",
                content::text("dockerlist-common", 25),
            ),
        ]);
        let platforms = [("amd64", None), ("arm64", Some("v8"))];
        let arch_layers: Vec<Layer> = platforms
            .iter()
            .map(|(arch, _)| {
                let mut entries = vec![
                    Entry::Dir("etc/"),
                    Entry::file("etc/ferry-arch", format!("{arch}\n")),
                ];
                if *arch == "amd64" {
                    entries.push(Entry::exe(
                        "hello",
                        content::hello_elf("hello from fixtures/dockerlist\n"),
                    ));
                }
                content::layer(&entries)
            })
            .collect();
        let children = platforms
            .iter()
            .zip(&arch_layers)
            .map(|((arch, variant), own)| {
                self.image(ImageSpec {
                    repo: "fixtures/dockerlist",
                    title: "dockerlist",
                    arch,
                    variant: *variant,
                    layers: vec![&common, own],
                    docker: true,
                })
            })
            .collect();
        self.tag_index(
            "fixtures/dockerlist",
            "1",
            FixtureKind::DockerList,
            children,
        );
    }

    /// `fixtures/chart:0.1.0`: a Helm chart. Like Helm, the manifest has no
    /// top-level `mediaType`: only the Content-Type says what it is.
    fn chart(&mut self) {
        let repo = "fixtures/chart";
        let config = json!({
            "name": "ferry-demo",
            "version": "0.1.0",
            "description": "A chart carried by ferry's fixtures",
            "apiVersion": "v2",
            "appVersion": "1.0.0",
            "type": "application",
        });
        let chart_yaml =
            "apiVersion: v2\nname: ferry-demo\nversion: 0.1.0\nappVersion: \"1.0.0\"\n\
                          description: A chart carried by ferry's fixtures\ntype: application\n";
        let configmap =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-demo\n\
                         data:\n  greeting: {{ .Values.greeting | quote }}\n";
        let chart = content::layer(&[
            Entry::Dir("ferry-demo/"),
            Entry::file("ferry-demo/Chart.yaml", chart_yaml),
            Entry::file("ferry-demo/values.yaml", "greeting: hello from ferry\n"),
            Entry::Dir("ferry-demo/templates/"),
            Entry::file("ferry-demo/templates/configmap.yaml", configmap),
        ]);
        let config_desc = self.blob(repo, HELM_CONFIG, content::compact(&config), false);
        let layer_desc = self.blob(repo, HELM_CHART, chart.gz, false);
        let manifest = content::pretty(
            &json!({
                "schemaVersion": 2,
                "config": config_desc,
                "layers": [layer_desc],
                "annotations": {"org.opencontainers.image.created": CREATED},
            }),
            b"  ",
        );
        let digest = self.manifest(repo, Some("0.1.0"), media_type::OCI_MANIFEST, &manifest);
        self.set.images.push(FixtureImage {
            reference: format!("{}/{repo}:0.1.0", self.set.host),
            repository: repo.to_string(),
            tag: "0.1.0".to_string(),
            digest,
            media_type: media_type::OCI_MANIFEST.to_string(),
            kind: FixtureKind::Artifact,
            manifest,
            platforms: Vec::new(),
            children: Vec::new(),
            blobs: vec![digest_of(&config_desc), digest_of(&layer_desc)],
            config_digests: vec![digest_of(&config_desc)],
        });
    }

    /// A cosign-style signature of `subject`, tagged `sha256-<hex>.sig`.
    fn signature(&mut self, subject: &FixtureImage) {
        let repo = subject.repository.as_str();
        let payload = content::compact(&json!({
            "critical": {
                "identity": {"docker-reference": format!("ferry.test/{repo}")},
                "image": {"docker-manifest-digest": subject.digest},
                "type": "cosign container image signature",
            },
            "optional": null,
        }));
        let mut fake_signature = [0u8; 70];
        XorShift::from_label(&subject.digest).fill(&mut fake_signature);
        let fake_signature = base64::engine::general_purpose::STANDARD.encode(fake_signature);
        let config = content::compact(&json!({
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [content::sha256(&payload)]},
            "config": {},
        }));
        let config_desc = self.blob(repo, media_type::OCI_CONFIG, config, false);
        let mut layer_desc = self.blob(repo, COSIGN_PAYLOAD, payload, false);
        layer_desc["annotations"] = json!({ COSIGN_SIGNATURE_ANNOTATION: fake_signature });
        let manifest = content::compact(&json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": config_desc,
            "layers": [layer_desc],
        }));
        let tag = format!("{}.sig", tag_form(&subject.digest));
        let digest = self.manifest(repo, Some(&tag), media_type::OCI_MANIFEST, &manifest);
        self.set.signatures.push(FixtureSignature {
            subject_reference: subject.reference.clone(),
            subject_digest: subject.digest.clone(),
            repository: repo.to_string(),
            reference: format!("{}/{repo}:{tag}", self.set.host),
            tag,
            digest,
            media_type: media_type::OCI_MANIFEST.to_string(),
            manifest,
            blobs: vec![digest_of(&config_desc), digest_of(&layer_desc)],
        });
    }

    /// An SBOM referrer of `subject`, pushed by digest, plus the referrers
    /// tag-schema index tagged `sha256-<hex>`.
    fn referrer(&mut self, subject: &FixtureImage) {
        let repo = subject.repository.as_str();
        let sbom = content::pretty(
            &json!({
                "spdxVersion": "SPDX-2.3",
                "dataLicense": "CC0-1.0",
                "SPDXID": "SPDXRef-DOCUMENT",
                "name": subject.repo_tag(),
                "creationInfo": {"created": CREATED, "creators": ["Tool: ferry-fixtures"]},
                "packages": [{
                    "SPDXID": "SPDXRef-Package-hello",
                    "name": "hello",
                    "versionInfo": "1",
                    "downloadLocation": "NOASSERTION",
                }],
            }),
            b"  ",
        );
        let config_desc = self.blob(repo, media_type::OCI_EMPTY, EMPTY_JSON.to_vec(), false);
        debug_assert_eq!(digest_of(&config_desc), EMPTY_JSON_DIGEST);
        let layer_desc = self.blob(repo, SBOM_LAYER, sbom, false);
        let manifest = content::compact(&json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "artifactType": SBOM_ARTIFACT_TYPE,
            "config": config_desc,
            "layers": [layer_desc],
            "subject": descriptor(&subject.media_type, &subject.digest, subject.size(), false),
            "annotations": {"org.opencontainers.image.created": CREATED},
        }));
        let digest = self.manifest(repo, None, media_type::OCI_MANIFEST, &manifest);

        let mut entry = descriptor(
            media_type::OCI_MANIFEST,
            &digest,
            manifest.len() as u64,
            false,
        );
        entry["artifactType"] = json!(SBOM_ARTIFACT_TYPE);
        entry["annotations"] = json!({"org.opencontainers.image.created": CREATED});
        let index = content::compact(&json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [entry],
        }));
        let tag = tag_form(&subject.digest);
        let index_digest = self.manifest(repo, Some(&tag), media_type::OCI_INDEX, &index);
        self.set.referrers.push(FixtureReferrer {
            subject_reference: subject.reference.clone(),
            subject_digest: subject.digest.clone(),
            repository: repo.to_string(),
            digest,
            media_type: media_type::OCI_MANIFEST.to_string(),
            artifact_type: SBOM_ARTIFACT_TYPE.to_string(),
            manifest,
            blobs: vec![digest_of(&config_desc), digest_of(&layer_desc)],
            tag: Some(tag),
            tag_index_digest: Some(index_digest),
            tag_index: Some(index),
        });
    }

    /// `fixtures/big:1`: one uncompressed layer with a file of `size`
    /// pseudo-random bytes; hashed here in one streaming pass, pushed
    /// streaming later.
    fn big(&mut self, size: u64) {
        let repo = "fixtures/big";
        let mut hasher = ferry_oci::DigestHasher::new(ferry_oci::Algorithm::Sha256);
        let mut reader = BigLayerReader::new(size, BIG_LAYER_SEED);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf).expect("generating bytes");
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let tar_len = hasher.len();
        let layer_digest = hasher.finish().to_string();
        self.set.plan.push(Step::BigBlob {
            repo: repo.to_string(),
            size,
            digest: layer_digest.clone(),
        });
        let spec = ImageSpec {
            repo,
            title: "big",
            arch: "amd64",
            variant: None,
            layers: Vec::new(),
            docker: false,
        };
        let config = image_config(&spec, vec![layer_digest.clone()]);
        let config_desc = self.blob(
            repo,
            media_type::OCI_CONFIG,
            content::compact(&config),
            false,
        );
        let manifest = content::compact(&json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": config_desc,
            "layers": [descriptor(OCI_LAYER_TAR, &layer_digest, tar_len, false)],
        }));
        let built = Built {
            digest: content::sha256(&manifest),
            manifest,
            media_type: media_type::OCI_MANIFEST,
            platform: "linux/amd64".to_string(),
            platform_json: json!({"architecture": "amd64", "os": "linux"}),
            config: digest_of(&config_desc),
            blobs: vec![digest_of(&config_desc), layer_digest],
        };
        self.tag_image(repo, "1", FixtureKind::OciImage, built);
    }
}

/// An image config with the given diff IDs, one history entry per layer.
fn image_config(spec: &ImageSpec<'_>, diff_ids: Vec<String>) -> Value {
    let history: Vec<Value> = (0..diff_ids.len())
        .map(|i| {
            json!({
                "created": CREATED,
                "created_by": format!("ferry-fixtures: {} layer {}", spec.title, i + 1),
            })
        })
        .collect();
    let mut config = json!({
        "created": CREATED,
        "architecture": spec.arch,
    });
    if let Some(v) = spec.variant {
        config["variant"] = json!(v);
    }
    config["os"] = json!("linux");
    config["config"] = json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["/hello"],
        "WorkingDir": "/",
        "Labels": {"org.opencontainers.image.title": spec.title},
    });
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    config["history"] = json!(history);
    config
}

fn descriptor(media_type: &str, digest: &str, size: u64, docker: bool) -> Value {
    if docker {
        json!({"mediaType": media_type, "size": size, "digest": digest})
    } else {
        json!({"mediaType": media_type, "digest": digest, "size": size})
    }
}

fn digest_of(descriptor: &Value) -> String {
    descriptor["digest"]
        .as_str()
        .expect("a descriptor has a digest")
        .to_string()
}

/// `sha256:<hex>` -> `sha256-<hex>`, the tag form used by cosign and the
/// referrers tag schema.
fn tag_form(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_host_independent() {
        let a = FixtureSet::generate("127.0.0.1:1", &FixtureOptions::default());
        let b = FixtureSet::generate("127.0.0.1:2", &FixtureOptions::default());
        assert_eq!(a.all_manifest_digests(), b.all_manifest_digests());
        assert_eq!(a.all_blob_digests(), b.all_blob_digests());
        assert_eq!(
            a.image("fixtures/base:1").reference,
            "127.0.0.1:1/fixtures/base:1"
        );
    }

    #[test]
    fn app_shares_two_layers_with_base() {
        let set = FixtureSet::generate("h", &FixtureOptions::default());
        let base: BTreeSet<_> = set.image("fixtures/base:1").blobs.iter().collect();
        let app: BTreeSet<_> = set.image("fixtures/app:1").blobs.iter().collect();
        assert_eq!(base.intersection(&app).count(), 2);
    }

    #[test]
    fn configs_name_the_diff_ids_of_their_layers() {
        let set = FixtureSet::generate("h", &FixtureOptions::default());
        for image in set
            .images
            .iter()
            .filter(|i| i.kind != FixtureKind::Artifact)
        {
            let manifests: Vec<&[u8]> = if image.children.is_empty() {
                vec![&image.manifest]
            } else {
                image
                    .children
                    .iter()
                    .map(|d| set.blob(d).unwrap())
                    .collect()
            };
            for manifest in manifests {
                let m: Value = serde_json::from_slice(manifest).unwrap();
                let config: Value =
                    serde_json::from_slice(set.blob(&digest_of(&m["config"])).unwrap()).unwrap();
                let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
                let layers = m["layers"].as_array().unwrap();
                assert_eq!(diff_ids.len(), layers.len());
                for (layer, diff_id) in layers.iter().zip(diff_ids) {
                    let gz = set.blob(&digest_of(layer)).unwrap();
                    let mut tar = Vec::new();
                    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut tar)
                        .unwrap();
                    assert_eq!(content::sha256(&tar), diff_id.as_str().unwrap());
                }
            }
        }
    }
}
