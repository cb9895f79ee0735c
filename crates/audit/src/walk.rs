//! Walking an archive's manifest graph from `index.json`: the report, and
//! every structural problem (missing blobs, wrong sizes, unparseable
//! manifests) found on the way. Layers are not read here; manifests and
//! image configs are, and are hashed as they are.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use ferry_oci::graph::{cosign_subject, may_be_left_out, real_platform};
use ferry_oci::layout::{Compression, MAX_MANIFEST_SIZE};
use ferry_oci::manifest::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{
    media_type, Descriptor, Digest, LayoutArchive, Manifest, Platform, Step, Walk, MAX_DEPTH,
};
use serde::Deserialize;

use crate::problem::error_chain;
use crate::problem::{content_mismatch, layout_problem, Problem, Problems};
use crate::report::{
    BundleReport, DeltaReport, ImageReport, Inspection, ManifestKind, ReferenceReport,
    ReferrerReport, ReferrerSource, Totals, UnreferencedBlob,
};
use crate::{Error, Result};

/// The entry every top-level descriptor lives in.
const INDEX_JSON: &str = "index.json";

/// List what the archive at `path` holds, without hashing layers.
///
/// Fails only when the archive cannot be opened at all (see
/// [`LayoutArchive::open`]); everything odd inside it is listed in
/// [`Inspection::problems`]. Children left out of a sparse index are
/// reported as platforms not carried, not as problems.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let archive = LayoutArchive::open(path).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut problems = Problems::default();
    let walked = walk(&archive, path, &mut problems);
    Ok(Inspection {
        report: walked.report,
        problems: problems.list,
    })
}

/// What a walk produces besides problems.
pub(crate) struct Walked {
    pub report: BundleReport,
    /// Blobs the walk read whole and hashed (manifests, configs).
    pub checked: HashSet<Digest>,
    /// Each `index.json` entry (its reference, or its digest when unnamed)
    /// and every blob it reaches, to say what a damaged byte range affects.
    pub uses: Vec<(String, BTreeSet<Digest>)>,
}

/// Walk `archive`: scan problems, then everything reachable from
/// `index.json`, then blobs nothing reaches.
pub(crate) fn walk(archive: &LayoutArchive, path: &Path, problems: &mut Problems) -> Walked {
    for p in archive.problems() {
        problems.push(layout_problem(p));
    }
    let record = match ferry_oci::bases::delta_record(archive) {
        Ok(record) => record,
        Err(e) => {
            problems.push(Problem::error(
                INDEX_JSON,
                format!(
                    "names a delta record that cannot be used: {}",
                    error_chain(&e)
                ),
            ));
            None
        }
    };
    let mut w = Walker {
        archive,
        left_out: record
            .as_ref()
            .map(|r| r.left_out_sizes())
            .unwrap_or_default(),
        problems,
        manifests: HashMap::new(),
        reached: HashSet::new(),
        checked: HashSet::new(),
        referrers: BTreeMap::new(),
        uses: Vec::new(),
    };
    let mut references = Vec::new();
    for desc in archive.index() {
        let name = desc
            .annotation(ANNOTATION_CONTAINERD_NAME)
            .or_else(|| desc.annotation(ANNOTATION_REF_NAME))
            .map(str::to_string);
        if let Some(r) = w.root(desc, name) {
            references.push(r);
        }
    }
    for r in &references {
        let name = r.reference.as_deref();
        if let Some((subject, name)) = name.and_then(|n| Some((cosign_subject(n)?, n))) {
            let source = ReferrerSource::Tag;
            w.referrers
                .entry(r.digest.clone())
                .or_insert(ReferrerReport {
                    digest: r.digest.clone(),
                    media_type: r.media_type.clone(),
                    artifact_type: r.images.first().and_then(|i| i.artifact_type.clone()),
                    subject,
                    source,
                    reference: Some(name.to_string()),
                });
        }
    }
    for r in &mut references {
        r.referrers = w
            .referrers
            .values()
            .filter(|x| r.manifests.contains(&x.subject) && x.digest != r.digest)
            .cloned()
            .collect();
    }
    if let Ok(Some(digest)) = ferry_oci::delta::delta_record_digest(archive.index_json()) {
        w.reached.insert(digest);
    }
    let mut unreferenced = Vec::new();
    for blob in archive.blobs() {
        if !w.reached.contains(&blob.digest) {
            w.problems.push(
                Problem::warning(
                    blob.digest.blob_path(),
                    "not referenced by anything reachable from index.json",
                )
                .expected_found("a descriptor pointing at it", "none"),
            );
            unreferenced.push(UnreferencedBlob {
                digest: blob.digest.clone(),
                size: blob.size,
            });
        }
    }
    let totals = Totals {
        references: references.iter().filter(|r| r.reference.is_some()).count() as u64,
        manifests: w.manifests.values().filter(|m| m.is_some()).count() as u64,
        blobs: archive.blobs().count() as u64,
        bytes: archive.blobs().map(|b| b.size).sum(),
    };
    let report = BundleReport {
        archive: path.display().to_string(),
        compression: match archive.compression() {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
        .to_string(),
        layout_version: archive.oci_layout_version().to_string(),
        references,
        totals,
        unreferenced_blobs: unreferenced,
        delta: record.map(|r| DeltaReport {
            blobs_expected: r.left_out.len(),
            bytes_expected: r.left_out_bytes(),
            bases: r.bases,
        }),
    };
    Walked {
        report,
        checked: w.checked,
        uses: w.uses,
    }
}

/// What one reference's walk gathers.
#[derive(Default)]
struct Acc {
    images: Vec<ImageReport>,
    carried: Vec<String>,
    not_carried: Vec<String>,
    manifests: BTreeSet<Digest>,
    blobs: BTreeMap<Digest, u64>,
}

struct Walker<'a> {
    archive: &'a LayoutArchive,
    /// A delta's left-out blobs, with their recorded sizes.
    left_out: BTreeMap<Digest, u64>,
    problems: &'a mut Problems,
    /// Every manifest read, `None` when it could not be read or parsed.
    manifests: HashMap<Digest, Option<Manifest>>,
    /// Every digest some descriptor points at.
    reached: HashSet<Digest>,
    /// Blobs read whole and hashed.
    checked: HashSet<Digest>,
    /// Referrers, by digest.
    referrers: BTreeMap<Digest, ReferrerReport>,
    /// What each root reaches.
    uses: Vec<(String, BTreeSet<Digest>)>,
}

impl Walker<'_> {
    /// One `index.json` descriptor: its report, or `None` for an unnamed
    /// referrer (which is recorded among the referrers instead).
    fn root(&mut self, desc: &Descriptor, name: Option<String>) -> Option<ReferenceReport> {
        let mut acc = Acc::default();
        let present = self.visit(desc, &mut acc);
        let label = name.clone().unwrap_or_else(|| desc.digest.to_string());
        self.uses.push((label, acc.blobs.keys().cloned().collect()));
        if !present {
            let label = name.as_deref().unwrap_or("an unnamed entry");
            self.problems.push(
                Problem::error(
                    INDEX_JSON,
                    format!(
                        "{label} names manifest {}, which is not in the archive",
                        desc.digest
                    ),
                )
                .expected_found(desc.digest.blob_path(), "no such entry"),
            );
        }
        let manifest = self.manifests.get(&desc.digest).cloned().flatten();
        if name.is_none() && manifest.as_ref().is_some_and(|m| m.subject().is_some()) {
            return None;
        }
        let kind = match &manifest {
            None => ManifestKind::Unknown,
            Some(m) if m.is_index() => ManifestKind::Index,
            Some(m) if m.artifact_type().is_some() => ManifestKind::Artifact,
            Some(_) => ManifestKind::Image,
        };
        Some(ReferenceReport {
            reference: name,
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
            size: desc.size,
            kind,
            platforms_carried: acc.carried,
            platforms_not_carried: acc.not_carried,
            images: acc.images,
            referrers: Vec::new(),
            total_size: acc.blobs.values().sum(),
            manifests: acc.manifests,
        })
    }

    /// Walk the graph below `root` (through the one graph walk, bounded by
    /// [`MAX_DEPTH`]); false when `root` itself is not in the archive (the
    /// caller decides whether that is a problem).
    fn visit(&mut self, root: &Descriptor, acc: &mut Acc) -> bool {
        let mut present = true;
        let mut walk = Walk::new(root.clone());
        while let Some(step) = walk.next() {
            match step {
                Step::Fetch {
                    descriptor, parent, ..
                } => {
                    let parent_entry = parent.as_ref().map(Digest::blob_path);
                    let from = parent_entry.as_deref().unwrap_or(INDEX_JSON);
                    let Some(size) = self.check_descriptor(&descriptor, from) else {
                        match &parent {
                            None => present = false,
                            Some(parent) => self.absent_child(parent, &descriptor, acc),
                        }
                        continue;
                    };
                    if parent.is_some() {
                        if let Some(p) = real_platform(&descriptor) {
                            acc.carried.push(p.to_string());
                        }
                    }
                    acc.blobs.insert(descriptor.digest.clone(), size);
                    acc.manifests.insert(descriptor.digest.clone());
                    let Some(m) = self.manifest(&descriptor) else {
                        continue;
                    };
                    if let Some(subject) = m.subject() {
                        self.referrers
                            .entry(descriptor.digest.clone())
                            .or_insert_with(|| ReferrerReport {
                                digest: descriptor.digest.clone(),
                                media_type: m.media_type().to_string(),
                                artifact_type: m.artifact_type().map(str::to_string),
                                subject: subject.digest.clone(),
                                source: ReferrerSource::Subject,
                                reference: None,
                            });
                    }
                    walk.enter(m);
                }
                Step::Leave {
                    descriptor,
                    manifest,
                    ..
                } => {
                    if !manifest.is_index() {
                        self.image(&manifest, &descriptor, descriptor.platform.as_ref(), acc);
                    }
                }
                Step::TooDeep { descriptor, parent } => self.problems.push(Problem::error(
                    parent.blob_path(),
                    format!(
                        "lists manifest {}, deeper than {MAX_DEPTH} levels of indexes; not followed",
                        descriptor.digest
                    ),
                )),
                Step::Cycle { descriptor, parent } => self.problems.push(Problem::error(
                    parent.blob_path(),
                    format!(
                        "lists manifest {}, which lists it in turn (a cycle); not followed",
                        descriptor.digest
                    ),
                )),
            }
        }
        present
    }

    /// An entry of index `parent` that is not in the archive: a platform
    /// left out of a sparse index, or a problem.
    fn absent_child(&mut self, parent: &Digest, child: &Descriptor, acc: &mut Acc) {
        let shown = child
            .platform
            .as_ref()
            .map(Platform::to_string)
            .unwrap_or_else(|| "no platform".into());
        let siblings = self
            .manifests
            .get(parent)
            .cloned()
            .flatten()
            .map(|m| m.children().to_vec())
            .unwrap_or_default();
        let archive = self.archive;
        if may_be_left_out(&siblings, child, |d| archive.blob(d).is_some()) {
            if real_platform(child).is_some() {
                acc.not_carried.push(shown);
            }
            return;
        }
        self.problems.push(
            Problem::error(
                parent.blob_path(),
                format!(
                    "lists manifest {} ({shown}), which is not in the archive",
                    child.digest
                ),
            )
            .expected_found(child.digest.blob_path(), "no such entry"),
        );
    }

    /// An image or artifact manifest: its config and layers.
    fn image(
        &mut self,
        m: &Manifest,
        desc: &Descriptor,
        platform: Option<&Platform>,
        acc: &mut Acc,
    ) {
        let entry = desc.digest.blob_path();
        let mut size = desc.size;
        for (i, blob) in m.blobs().enumerate() {
            size += blob.size;
            let what = if i == 0 && m.config().is_some() {
                "config"
            } else {
                "layer"
            };
            if let Some(found) = self.check_descriptor(blob, &entry) {
                acc.blobs.insert(blob.digest.clone(), found);
            } else if let Some(&recorded) = self.left_out.get(&blob.digest) {
                if recorded != blob.size {
                    self.problems.push(
                        Problem::error(
                            &entry,
                            format!(
                                "{what} {} is left to the base with another size",
                                blob.digest
                            ),
                        )
                        .expected_found(
                            format!("{} bytes (descriptor)", blob.size),
                            format!("{recorded} bytes (delta record)"),
                        ),
                    );
                }
            } else if blob.urls.as_ref().is_some_and(|u| !u.is_empty()) {
                self.problems.push(Problem::warning(
                    &entry,
                    format!(
                        "foreign {what} {} is not carried (it is fetched from its URLs)",
                        blob.digest
                    ),
                ));
            } else {
                self.problems.push(
                    Problem::error(
                        &entry,
                        format!("{what} {} is not in the archive", blob.digest),
                    )
                    .expected_found(blob.digest.blob_path(), "no such entry"),
                );
            }
        }
        let platform = platform
            .map(Platform::to_string)
            .or_else(|| m.config().and_then(|c| self.config_platform(c)));
        acc.images.push(ImageReport {
            platform,
            manifest_digest: desc.digest.clone(),
            media_type: m.media_type().to_string(),
            config_digest: m.config().map(|c| c.digest.clone()),
            config_media_type: m.config().map(|c| c.media_type.clone()),
            artifact_type: m.artifact_type().map(str::to_string),
            layer_count: m.layers().len(),
            size,
        });
    }

    /// The platform an image config declares.
    fn config_platform(&mut self, config: &Descriptor) -> Option<String> {
        #[derive(Deserialize)]
        struct Config {
            os: String,
            architecture: String,
            #[serde(default)]
            variant: Option<String>,
        }
        if config.media_type != media_type::OCI_CONFIG
            && config.media_type != media_type::DOCKER_CONFIG
        {
            return None;
        }
        let bytes = self.read_checked(&config.digest, MAX_MANIFEST_SIZE)?;
        let c: Config = serde_json::from_slice(&bytes).ok()?;
        if c.os.is_empty() || c.architecture.is_empty() {
            return None;
        }
        let p = Platform {
            os: c.os,
            architecture: c.architecture,
            os_version: None,
            variant: c.variant,
        };
        Some(p.to_string())
    }

    /// Whether the blob `desc` points at is present; a size that disagrees
    /// is a problem of `parent`. Returns the blob's stored size.
    fn check_descriptor(&mut self, desc: &Descriptor, parent: &str) -> Option<u64> {
        self.reached.insert(desc.digest.clone());
        let blob = self.archive.blob(&desc.digest)?;
        if blob.size != desc.size {
            self.problems.push(
                Problem::error(
                    parent,
                    format!(
                        "descriptor of {} gives a size the blob does not have",
                        desc.digest.blob_path()
                    ),
                )
                .expected_found(
                    format!("{} bytes (descriptor)", desc.size),
                    format!("{} bytes (blob)", blob.size),
                ),
            );
        }
        Some(blob.size)
    }

    /// Read and parse the manifest `desc` points at, once.
    fn manifest(&mut self, desc: &Descriptor) -> Option<Manifest> {
        if let Some(m) = self.manifests.get(&desc.digest) {
            return m.clone();
        }
        let m = self
            .read_checked(&desc.digest, MAX_MANIFEST_SIZE)
            .and_then(|bytes| {
                match Manifest::parse_as(bytes, Some(&desc.media_type), desc.digest.algorithm()) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        self.problems.push(
                            Problem::error(
                                desc.digest.blob_path(),
                                "not a valid manifest or index",
                            )
                            .expected_found(
                                format!("JSON of a manifest or index ({})", desc.media_type),
                                error_chain(&e),
                            ),
                        );
                        None
                    }
                }
            });
        self.manifests.insert(desc.digest.clone(), m.clone());
        m
    }

    /// Read a small blob whole and hash it; a mismatch is a problem (the
    /// bytes are still returned, so the walk can show what they claim).
    fn read_checked(&mut self, digest: &Digest, max: u64) -> Option<Vec<u8>> {
        let entry = self.archive.blob(digest)?;
        let path = digest.blob_path();
        if entry.size > max {
            self.problems.push(
                Problem::error(path, "too large for a manifest or config")
                    .expected_found(format!("at most {max} bytes"), entry.size),
            );
            return None;
        }
        self.checked.insert(digest.clone());
        let (bytes, found) = match self.archive.read_blob_hashed(digest, max) {
            Ok(read) => read,
            Err(e) => {
                self.problems.push(Problem::error(
                    path,
                    format!("cannot be read: {}", error_chain(&e)),
                ));
                return None;
            }
        };
        if &found != digest {
            self.problems
                .push(content_mismatch(self.archive, digest, &found));
        }
        Some(bytes)
    }
}
