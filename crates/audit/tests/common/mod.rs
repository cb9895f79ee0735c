//! Building small OCI layout tarballs byte by byte, so tests can damage
//! them in ways no well-behaved tar writer allows.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ferry_oci::Digest;

/// One tar entry.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub data: Vec<u8>,
    /// `b'0'` file, `b'2'` symlink, `b'5'` directory.
    pub kind: u8,
    pub link: String,
}

impl Entry {
    pub fn file(name: &str, data: &[u8]) -> Entry {
        Entry {
            name: name.into(),
            data: data.to_vec(),
            kind: b'0',
            link: String::new(),
        }
    }

    pub fn symlink(name: &str, target: &str) -> Entry {
        Entry {
            name: name.into(),
            data: Vec::new(),
            kind: b'2',
            link: target.into(),
        }
    }

    pub fn blob(data: &[u8]) -> Entry {
        Entry::file(&Digest::sha256_of(data).blob_path(), data)
    }
}

fn octal(field: &mut [u8], value: u64) {
    let s = format!("{value:0width$o}", width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
}

/// A plain ustar archive of `entries`.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = [0u8; 512];
        h[..e.name.len()].copy_from_slice(e.name.as_bytes());
        octal(&mut h[100..108], if e.kind == b'5' { 0o755 } else { 0o644 });
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], e.data.len() as u64);
        octal(&mut h[136..148], 1_153_704_088);
        h[156] = e.kind;
        h[157..157 + e.link.len()].copy_from_slice(e.link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| b as u64).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&e.data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn descriptor(media_type: &str, data: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{media_type}","digest":"{}","size":{}}}"#,
        Digest::sha256_of(data),
        data.len()
    )
}

/// An image: config, two layers, its manifest.
pub struct Image {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
}

impl Image {
    pub fn new(label: &str, arch: &str) -> Image {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{"Labels":{{"l":"{label}"}}}}}}"#
        )
        .into_bytes();
        let layers = vec![
            format!("layer one of {label} ").repeat(40).into_bytes(),
            format!("layer two of {label} ").repeat(60).into_bytes(),
        ];
        let manifest = Image::manifest_for(&config, &layers, |d| d);
        Image {
            config,
            layers,
            manifest,
        }
    }

    /// The manifest, with each layer descriptor passed through `edit`.
    pub fn manifest_for(
        config: &[u8],
        layers: &[Vec<u8>],
        edit: impl Fn(String) -> String,
    ) -> Vec<u8> {
        let layers: Vec<String> = layers.iter().map(|l| edit(descriptor(LAYER, l))).collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{}]}}"#,
            descriptor(OCI_CONFIG, config),
            layers.join(",")
        )
        .into_bytes()
    }

    pub fn digest(&self) -> Digest {
        Digest::sha256_of(&self.manifest)
    }

    pub fn config_digest(&self) -> Digest {
        Digest::sha256_of(&self.config)
    }

    pub fn layer_path(&self, i: usize) -> String {
        Digest::sha256_of(&self.layers[i]).blob_path()
    }

    pub fn manifest_path(&self) -> String {
        self.digest().blob_path()
    }

    /// The blob entries (manifest, config, layers).
    pub fn blobs(&self) -> Vec<Entry> {
        let mut v = vec![Entry::blob(&self.manifest), Entry::blob(&self.config)];
        v.extend(self.layers.iter().map(|l| Entry::blob(l)));
        v
    }
}

/// `index.json` naming `manifests` (media type, bytes, reference name).
pub fn index_json(manifests: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
    let items: Vec<String> = manifests
        .iter()
        .map(|(mt, bytes, name)| {
            let d = descriptor(mt, bytes);
            match name {
                Some(n) => format!(
                    r#"{},"annotations":{{"io.containerd.image.name":"{n}","org.opencontainers.image.ref.name":"{n}"}}}}"#,
                    &d[..d.len() - 1]
                ),
                None => d,
            }
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        items.join(",")
    )
    .into_bytes()
}

/// The layout files and an index naming `image` as `name`.
pub fn layout_with(index: &[u8], blobs: Vec<Entry>) -> Vec<Entry> {
    let mut v = vec![
        Entry::file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        Entry::file("index.json", index),
    ];
    v.extend(blobs);
    v
}

/// The entries of a good one-image archive.
pub fn good(image: &Image) -> Vec<Entry> {
    layout_with(
        &index_json(&[(OCI_MANIFEST, &image.manifest, Some("example.com/app:1"))]),
        image.blobs(),
    )
}

/// Write `bytes` to a file in `dir`.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}
