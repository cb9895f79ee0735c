//! The relocation mapping in the forms clusters read.
//!
//! Each form is written so that its consumer's own matching rule sends
//! every original reference of the mapping to its relocated reference; the
//! tests check that with independent implementations of those rules.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;

use ferry_oci::Reference;

use crate::mapping::{Entry, Mapping};
use crate::{Error, Result};

/// An output form of `ferry mapping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Form {
    /// `original=relocated` lines.
    Text,
    /// OpenShift `ImageDigestMirrorSet`: one mirror per source repository,
    /// used for pulls by digest.
    Idms,
    /// OpenShift `ImageTagMirrorSet`: the same, for pulls by tag.
    Itms,
    /// containerd `hosts.toml`, one per original registry. Exact only when
    /// every repository keeps its path (`--naming preserve`).
    Containerd,
    /// RKE2 / k3s `registries.yaml` with one `rewrite` rule per repository:
    /// exact for every naming rule.
    RegistriesYaml,
    /// A kustomize `images:` stanza.
    Kustomize,
}

impl Form {
    /// Every form, with its name on the command line.
    pub const ALL: [(Form, &'static str); 6] = [
        (Form::Text, "text"),
        (Form::Idms, "idms"),
        (Form::Itms, "itms"),
        (Form::Containerd, "containerd"),
        (Form::RegistriesYaml, "registries-yaml"),
        (Form::Kustomize, "kustomize"),
    ];
}

impl FromStr for Form {
    type Err = Error;

    fn from_str(s: &str) -> Result<Form> {
        Form::ALL
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(f, _)| *f)
            .ok_or_else(|| Error::UnknownForm {
                input: s.to_string(),
            })
    }
}

/// Settings of the forms that name the target registry's endpoint.
#[derive(Debug, Clone, Default)]
pub struct FormOptions {
    /// Reach the target over plain HTTP (`http://` endpoints).
    pub plain_http: bool,
    /// `metadata.name` of IDMS / ITMS objects [default: `ferry`].
    pub name: Option<String>,
}

/// One file of a form: where it goes under `-o DIR`, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormFile {
    /// Path under the output directory.
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
}

/// Render `mapping` as `form`.
pub fn render(mapping: &Mapping, form: Form, options: &FormOptions) -> Result<Vec<FormFile>> {
    let file = |path: &str, text: String| FormFile {
        path: PathBuf::from(path),
        text,
    };
    Ok(match form {
        Form::Text => vec![file("mapping.txt", text(mapping))],
        Form::Idms => vec![file(
            "imagedigestmirrorset.yaml",
            mirror_set(
                mapping,
                "ImageDigestMirrorSet",
                "imageDigestMirrors",
                options,
            ),
        )],
        Form::Itms => vec![file(
            "imagetagmirrorset.yaml",
            mirror_set(mapping, "ImageTagMirrorSet", "imageTagMirrors", options),
        )],
        Form::Containerd => containerd(mapping, options)?,
        Form::RegistriesYaml => vec![file("registries.yaml", registries_yaml(mapping, options)?)],
        Form::Kustomize => vec![file("images.kustomize.yaml", kustomize(mapping))],
    })
}

fn text(mapping: &Mapping) -> String {
    let mut out = String::new();
    for e in mapping.entries() {
        let _ = writeln!(out, "{}={}", e.key, e.relocated);
    }
    out
}

/// Original repository -> relocated repositories (one, unless mappings
/// were merged).
fn repositories(mapping: &Mapping) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in mapping.entries() {
        out.entry(e.original.name())
            .or_default()
            .insert(e.relocated.name());
    }
    out
}

fn mirror_set(mapping: &Mapping, kind: &str, field: &str, options: &FormOptions) -> String {
    let name = options.name.as_deref().unwrap_or("ferry");
    let mut out = format!(
        "apiVersion: config.openshift.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  {field}:\n"
    );
    for (source, mirrors) in repositories(mapping) {
        let _ = writeln!(out, "  - source: {source}\n    mirrors:");
        for m in mirrors {
            let _ = writeln!(out, "    - {m}");
        }
    }
    out
}

fn scheme(options: &FormOptions) -> &'static str {
    if options.plain_http {
        "http"
    } else {
        "https"
    }
}

/// The one target registry of all entries from `registry`.
fn target_host<'a>(registry: &str, entries: &[&'a Entry]) -> Result<&'a str> {
    let hosts: BTreeSet<&str> = entries.iter().map(|e| e.relocated.registry()).collect();
    if hosts.len() > 1 {
        return Err(Error::Unrepresentable {
            form: "containerd/registries-yaml",
            reason: format!(
                "images from {registry} went to several registries ({}); one mirror per registry \
                 is all this form holds: split the mapping",
                hosts.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok(hosts.into_iter().next().unwrap_or_default())
}

fn by_registry(mapping: &Mapping) -> BTreeMap<&str, Vec<&Entry>> {
    let mut out: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in mapping.entries() {
        out.entry(e.original.registry()).or_default().push(e);
    }
    out
}

/// Which naming rule wrote `e`, as far as one entry tells.
fn naming_of(e: &Entry) -> &'static str {
    let path = e.original.repository();
    let leaf = e.relocated.repository().rsplit('/').next().unwrap_or("");
    let looks_hashed = leaf.len() >= 32
        && leaf[leaf.len() - 32..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit());
    if looks_hashed {
        "hash"
    } else if e.relocated.repository().ends_with(&path.replace('/', "-")) {
        "flatten"
    } else {
        "an unknown"
    }
}

fn containerd(mapping: &Mapping, options: &FormOptions) -> Result<Vec<FormFile>> {
    let mut files = Vec::new();
    for (registry, entries) in by_registry(mapping) {
        let host = target_host(registry, &entries)?;
        let mut prefixes = BTreeSet::new();
        for e in &entries {
            let path = e.original.repository();
            let relocated = e.relocated.repository();
            let prefix = if relocated == path {
                Some("")
            } else {
                relocated
                    .strip_suffix(path)
                    .and_then(|p| p.strip_suffix('/'))
            };
            let Some(prefix) = prefix else {
                return Err(Error::Unrepresentable {
                    form: "containerd",
                    reason: format!(
                        "containerd mirrors keep the repository path, but {} was relocated to {} \
                         ({} naming, by the look of it). Unpack with --naming preserve to use \
                         hosts.toml, or use --format registries-yaml (k3s/RKE2 rewrites fit every \
                         naming) or idms/itms",
                        e.original.name(),
                        e.relocated.name(),
                        naming_of(e)
                    ),
                });
            };
            prefixes.insert(prefix);
        }
        if prefixes.len() > 1 {
            return Err(Error::Unrepresentable {
                form: "containerd",
                reason: format!(
                    "images from {registry} sit under several prefixes ({}); one hosts.toml \
                     mirror has one path: split the mapping",
                    prefixes.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        let prefix = prefixes.into_iter().next().unwrap_or_default();
        let server = if registry == "docker.io" {
            "https://registry-1.docker.io".to_string()
        } else {
            format!("https://{registry}")
        };
        let scheme = scheme(options);
        let mut text = format!(
            "# containerd: {registry} -> {host}{}{prefix}\nserver = \"{server}\"\n\n",
            if prefix.is_empty() { "" } else { "/" }
        );
        if prefix.is_empty() {
            let _ = writeln!(text, "[host.\"{scheme}://{host}\"]");
        } else {
            // override_path: the URL is the API root itself, so the
            // prefix comes before the repository path.
            let _ = writeln!(text, "[host.\"{scheme}://{host}/v2/{prefix}\"]");
        }
        text.push_str("  capabilities = [\"pull\", \"resolve\"]\n");
        if !prefix.is_empty() {
            text.push_str("  override_path = true\n");
        }
        files.push(FormFile {
            path: PathBuf::from(registry).join("hosts.toml"),
            text,
        });
    }
    Ok(files)
}

/// A Go regexp matching exactly `s`.
fn go_regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    out.push('^');
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

fn registries_yaml(mapping: &Mapping, options: &FormOptions) -> Result<String> {
    let mut out = String::from("mirrors:\n");
    for (registry, entries) in by_registry(mapping) {
        let host = target_host(registry, &entries)?;
        let rewrites: BTreeMap<&str, &str> = entries
            .iter()
            .map(|e| (e.original.repository(), e.relocated.repository()))
            .collect();
        let _ = writeln!(
            out,
            "  '{registry}':\n    endpoint:\n      - '{}://{host}'\n    rewrite:",
            scheme(options)
        );
        for (from, to) in rewrites {
            let _ = writeln!(out, "      '{}': '{to}'", go_regex_literal(from));
        }
    }
    Ok(out)
}

/// The spellings of a repository name a manifest may use (kustomize
/// matches names literally).
fn spellings(original: &Reference) -> Vec<String> {
    let (registry, path) = (original.registry(), original.repository());
    let mut names = vec![original.name()];
    if registry == "docker.io" {
        names.push(path.to_string());
        if let Some(short) = path.strip_prefix("library/") {
            names.push(short.to_string());
            names.push(format!("docker.io/{short}"));
        }
    }
    names
}

fn kustomize(mapping: &Mapping) -> String {
    // Kustomize matches by name only: one entry per repository. Pinned by
    // digest when the mapping has one reference of that repository; with
    // several tags, by name only (the tag is kept, and unpack pushed each
    // tag at its digest).
    let mut by_repo: BTreeMap<String, Vec<&Entry>> = BTreeMap::new();
    for e in mapping.entries() {
        by_repo.entry(e.original.name()).or_default().push(e);
    }
    let mut out = String::from("images:\n");
    for entries in by_repo.values() {
        let first = entries[0];
        let new_name = first.relocated.name();
        let digests: BTreeSet<_> = entries
            .iter()
            .filter_map(|e| e.relocated.digest())
            .collect();
        let same_repo = entries.iter().all(|e| e.relocated.name() == new_name);
        for name in spellings(&first.original) {
            let _ = writeln!(out, "- name: {name}\n  newName: {new_name}");
            if digests.len() == 1 && same_repo {
                if let Some(d) = digests.iter().next() {
                    let _ = writeln!(out, "  digest: {d}");
                }
            }
        }
    }
    out
}
