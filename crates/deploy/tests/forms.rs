//! Every form of `ferry mapping`, checked by an independent implementation
//! of its consumer's matching rule: each original reference of the mapping
//! must resolve to its relocated reference, under every naming rule.

use std::collections::BTreeMap;

use ferry_deploy::{render, Form, FormOptions, Mapping};
use ferry_oci::{Naming, Reference, RelocationTarget};
use saphyr_parser::{Event, Parser};
use serde_json::Value;

const ORIGINALS: [&str; 8] = [
    "docker.io/library/nginx:1.25",
    "docker.io/library/nginx:1.26",
    "docker.io/bitnami/redis:7.2",
    "quay.io/jetstack/cert-manager-controller:v1.14.0",
    "ghcr.io/org/app@sha256:5555555555555555555555555555555555555555555555555555555555555555",
    "localhost:5000/team/app:2",
    "registry.k8s.io/pause:3.9",
    "registry.k8s.io/a.b/c_d:1",
];

/// A mapping as `ferry unpack --naming NAMING --to TARGET` writes it, each
/// original pinned to a digest of its own.
fn mapping(target: &str, naming: Naming) -> (Mapping, Vec<(Reference, Reference)>) {
    let target = RelocationTarget::parse(target).unwrap();
    let mut json = BTreeMap::new();
    let mut pairs = Vec::new();
    for (i, original) in ORIGINALS.iter().enumerate() {
        let o = Reference::parse(original).unwrap();
        let digest = match o.digest() {
            Some(d) => d.clone(),
            None => format!("sha256:{}", &format!("{i:x}").repeat(64)[..64])
                .parse()
                .unwrap(),
        };
        let r = target.relocate(&o, naming).unwrap().pinned(digest);
        json.insert(original.to_string(), r.to_string());
        pairs.push((o, r));
    }
    let m = Mapping::from_json(serde_json::to_string(&json).unwrap().as_bytes()).unwrap();
    (m, pairs)
}

fn one_text(m: &Mapping, form: Form) -> String {
    let files = render(m, form, &FormOptions::default()).unwrap();
    assert_eq!(files.len(), 1);
    files[0].text.clone()
}

/// YAML to JSON values, straight from the parser's events (no ferry code).
fn yaml_value(text: &str) -> Value {
    enum F {
        S(Vec<Value>),
        M(serde_json::Map<String, Value>, Option<String>),
    }
    let mut stack: Vec<F> = Vec::new();
    let mut root = None;
    for ev in Parser::new_from_str(text) {
        let (ev, _) = ev.unwrap();
        let done = match ev {
            Event::Scalar(v, ..) => Some(Value::String(v.into_owned())),
            Event::SequenceStart(..) => {
                stack.push(F::S(Vec::new()));
                None
            }
            Event::MappingStart(..) => {
                stack.push(F::M(serde_json::Map::new(), None));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(F::S(v)) => Some(Value::Array(v)),
                _ => unreachable!(),
            },
            Event::MappingEnd => match stack.pop() {
                Some(F::M(m, _)) => Some(Value::Object(m)),
                _ => unreachable!(),
            },
            _ => None,
        };
        if let Some(v) = done {
            match stack.last_mut() {
                Some(F::S(items)) => items.push(v),
                Some(F::M(m, key)) => match key.take() {
                    Some(k) => {
                        m.insert(k, v);
                    }
                    None => *key = Some(v.as_str().unwrap().to_string()),
                },
                None => root = Some(v),
            }
        }
    }
    root.unwrap()
}

const NAMINGS: [Naming; 3] = [Naming::Hash, Naming::Preserve, Naming::Flatten];
const TARGET: &str = "reg.internal:5000/team/mirror";

#[test]
fn text_lines_are_the_mapping() {
    let (m, pairs) = mapping(TARGET, Naming::Hash);
    let text = one_text(&m, Form::Text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), pairs.len());
    for (o, r) in &pairs {
        let key = ORIGINALS
            .iter()
            .find(|k| Reference::parse(k).unwrap() == *o)
            .unwrap();
        assert!(lines.contains(&format!("{key}={r}").as_str()), "{key}");
    }
}

/// containers-image's rule for registries.conf mirrors, which IDMS and ITMS
/// become on the node: the longest source that is the reference's name or
/// a prefix of it at a `/` boundary; the mirror replaces that prefix.
fn mirror_set_resolves(doc: &Value, list: &str, original: &Reference) -> Option<String> {
    let name = original.name();
    let entries = doc["spec"][list].as_array()?;
    let best = entries
        .iter()
        .filter(|e| {
            let s = e["source"].as_str().unwrap();
            name == s || name.starts_with(&format!("{s}/"))
        })
        .max_by_key(|e| e["source"].as_str().unwrap().len())?;
    let rest = &name[best["source"].as_str().unwrap().len()..];
    Some(format!("{}{rest}", best["mirrors"][0].as_str().unwrap()))
}

#[test]
fn idms_and_itms_resolve_every_original_under_every_naming() {
    for naming in NAMINGS {
        let (m, pairs) = mapping(TARGET, naming);
        let idms = yaml_value(&one_text(&m, Form::Idms));
        let itms = yaml_value(&one_text(&m, Form::Itms));
        assert_eq!(idms["kind"], "ImageDigestMirrorSet");
        assert_eq!(itms["kind"], "ImageTagMirrorSet");
        assert_eq!(idms["apiVersion"], "config.openshift.io/v1");
        for (o, r) in &pairs {
            let digest = r.digest().unwrap();
            let by_digest = mirror_set_resolves(&idms, "imageDigestMirrors", o).unwrap();
            assert_eq!(
                format!("{by_digest}@{digest}"),
                r.with_digest(digest.clone()).to_string()
            );
            if let Some(tag) = o.tag() {
                let by_tag = mirror_set_resolves(&itms, "imageTagMirrors", o).unwrap();
                assert_eq!(
                    format!("{by_tag}:{tag}"),
                    r.with_tag(tag).unwrap().to_string()
                );
            }
        }
    }
}

/// containerd's rule (`core/remotes/docker/config/hosts.go`): the hosts
/// file of the reference's registry; each host URL's path gets `/v2`
/// appended unless `override_path`; the request is
/// `<scheme>://<host><path>/<repository>/manifests/<tag or digest>`.
fn containerd_url(files: &[ferry_deploy::FormFile], original: &Reference) -> String {
    let file = files
        .iter()
        .find(|f| f.path == std::path::Path::new(original.registry()).join("hosts.toml"))
        .unwrap_or_else(|| panic!("no hosts.toml for {}", original.registry()));
    let doc: toml::Table = file.text.parse().unwrap();
    let hosts = doc["host"].as_table().unwrap();
    let (url, config) = hosts.iter().next().unwrap();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, String::new()), |(h, p)| (h, format!("/{p}")));
    let override_path = config
        .get("override_path")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let path = if override_path || path.ends_with("/v2") {
        path
    } else {
        format!("{path}/v2")
    };
    let caps: Vec<&str> = config["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(caps.contains(&"pull") && caps.contains(&"resolve"));
    format!(
        "{scheme}://{host}{path}/{}/manifests/{}",
        original.repository(),
        original.tag_or_digest()
    )
}

#[test]
fn containerd_hosts_resolve_every_original_under_preserve() {
    for target in [TARGET, "reg.internal:5000"] {
        let (m, pairs) = mapping(target, Naming::Preserve);
        let files = render(&m, Form::Containerd, &FormOptions::default()).unwrap();
        for (o, r) in &pairs {
            assert_eq!(
                containerd_url(&files, o),
                format!(
                    "https://{}/v2/{}/manifests/{}",
                    r.registry(),
                    r.repository(),
                    o.tag_or_digest()
                ),
                "{o} under {target}"
            );
        }
    }
}

#[test]
fn containerd_refuses_naming_that_changes_the_path_and_says_what_works() {
    for naming in [Naming::Hash, Naming::Flatten] {
        let (m, _) = mapping(TARGET, naming);
        let err = render(&m, Form::Containerd, &FormOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--naming preserve"), "{err}");
        assert!(err.contains("registries-yaml"), "{err}");
        assert!(err.contains(naming.as_str()), "{naming}: {err}");
    }
}

/// k3s / RKE2's rule: the mirror of the reference's registry; the first
/// rewrite whose regular expression matches the repository path replaces
/// it (Go `ReplaceAllString`); the endpoint is the host.
fn k3s_resolves(doc: &Value, original: &Reference) -> String {
    let mirror = &doc["mirrors"][original.registry()];
    let endpoint = mirror["endpoint"][0].as_str().unwrap();
    let host = endpoint.split_once("://").unwrap().1;
    let mut path = original.repository().to_string();
    for (pattern, replacement) in mirror["rewrite"].as_object().unwrap() {
        let re = regex::Regex::new(pattern).unwrap();
        if re.is_match(&path) {
            path = re
                .replace_all(&path, replacement.as_str().unwrap())
                .into_owned();
            break;
        }
    }
    format!("{host}/{path}")
}

#[test]
fn registries_yaml_resolves_every_original_under_every_naming() {
    for naming in NAMINGS {
        let (m, pairs) = mapping(TARGET, naming);
        let doc = yaml_value(&one_text(&m, Form::RegistriesYaml));
        for (o, r) in &pairs {
            assert_eq!(k3s_resolves(&doc, o), r.name(), "{o} with {naming}");
        }
        // A repository whose name a regex dot could confuse is not matched.
        let other = Reference::parse("registry.k8s.io/axb/c_d:1").unwrap();
        assert_eq!(k3s_resolves(&doc, &other), "reg.internal:5000/axb/c_d");
    }
}

/// kustomize's rule (`api/internal/image`): an entry whose `name` equals
/// the image's name (the text before `:tag` / `@digest`); the result is
/// `newName` with `@digest`, else `:newTag`, else the image's own suffix.
fn kustomize_resolves(doc: &Value, image: &str) -> Option<String> {
    let (name, suffix) = match image.rfind(['@']).or_else(|| {
        let slash = image.rfind('/').map_or(0, |i| i + 1);
        image[slash..].find(':').map(|i| slash + i)
    }) {
        Some(i) => (&image[..i], &image[i..]),
        None => (image, ""),
    };
    let entry = doc["images"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?;
    let new_name = entry["newName"].as_str().unwrap_or(name);
    Some(match (entry["digest"].as_str(), entry["newTag"].as_str()) {
        (Some(d), _) => format!("{new_name}@{d}"),
        (None, Some(t)) => format!("{new_name}:{t}"),
        _ => format!("{new_name}{suffix}"),
    })
}

#[test]
fn kustomize_images_resolve_every_spelling_under_every_naming() {
    for naming in NAMINGS {
        let (m, pairs) = mapping(TARGET, naming);
        let doc = yaml_value(&one_text(&m, Form::Kustomize));
        for (o, r) in &pairs {
            let suffix = match (o.tag(), o.digest()) {
                (Some(t), _) => format!(":{t}"),
                (None, Some(d)) => format!("@{d}"),
                _ => unreachable!(),
            };
            let mut spellings = vec![format!("{}{suffix}", o.name())];
            if o.registry() == "docker.io" {
                spellings.push(format!("{}{suffix}", o.repository()));
                if let Some(short) = o.repository().strip_prefix("library/") {
                    spellings.push(format!("{short}{suffix}"));
                }
            }
            for image in spellings {
                let got =
                    kustomize_resolves(&doc, &image).unwrap_or_else(|| panic!("{image} unmatched"));
                let got = Reference::parse(&got).unwrap();
                assert_eq!(got.name(), r.name(), "{image}");
                // Pinned to the relocated digest, or (a repository with
                // several tags) at the same tag, which unpack pushed at
                // that digest.
                match got.digest() {
                    Some(d) => assert_eq!(Some(d), r.digest(), "{image}"),
                    None => assert_eq!(got.tag(), o.tag(), "{image}"),
                }
            }
        }
    }
}

#[test]
fn plain_http_endpoints() {
    let (m, _) = mapping(TARGET, Naming::Preserve);
    let options = FormOptions {
        plain_http: true,
        name: None,
    };
    let files = render(&m, Form::RegistriesYaml, &options).unwrap();
    assert!(
        files[0].text.contains("'http://reg.internal:5000'"),
        "{}",
        files[0].text
    );
    let files = render(&m, Form::Containerd, &options).unwrap();
    assert!(files.iter().all(|f| f
        .text
        .contains("[host.\"http://reg.internal:5000/v2/team/mirror\"]")));
}
