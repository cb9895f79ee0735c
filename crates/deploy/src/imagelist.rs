//! Image list files for `--images-file`: one reference a line (blank lines
//! and `#` comments ignored), or the YAML shape mindthegap users keep:
//!
//! ```yaml
//! docker.io:
//!   images:
//!     library/nginx:
//!       - 1.25
//!       - sha256:…        # a digest pins instead of a tag
//!   tlsVerify: false      # read and ignored: use --insecure / --plain-http
//! quay.io:
//!   images:
//!     jetstack/cert-manager-controller: [v1.5.4]
//! ```

use ferry_oci::{Digest, Reference};

use crate::yaml::{self, Node, Tree};

/// Keys mindthegap allows beside `images` in a registry's entry.
const MINDTHEGAP_KEYS: [&str; 4] = ["images", "tlsVerify", "credentials", "imageLabels"];

/// The references of an image list file's `text`, each with its 1-based
/// line; an error names the line and what is wrong.
pub fn parse_image_list(text: &str) -> Result<Vec<(usize, Reference)>, (usize, String)> {
    if let Some(tree) = mindthegap_tree(text) {
        return mindthegap(&tree);
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        // mindthegap's line format allows `ref labels:a,b` after the name.
        let name = line.split_whitespace().next().unwrap_or(line);
        let r = Reference::parse(name).map_err(|e| (n + 1, e.to_string()))?;
        out.push((n + 1, r));
    }
    Ok(out)
}

/// The tree of `text` when it is a mindthegap images file: one mapping of
/// registries to mappings of the allowed keys.
fn mindthegap_tree(text: &str) -> Option<Tree> {
    let tree = yaml::parse(text).ok()?;
    let [root] = tree.docs[..] else { return None };
    let Node::Map(pairs) = &tree.nodes[root] else {
        return None;
    };
    let ok = !pairs.is_empty()
        && pairs.iter().all(|&(_, v)| match &tree.nodes[v] {
            Node::Map(inner) => inner.iter().all(|&(k, _)| {
                tree.scalar(k)
                    .is_some_and(|s| MINDTHEGAP_KEYS.contains(&s.value.as_str()))
            }),
            Node::Scalar(s) => s.value.is_empty(),
            Node::Seq(_) => false,
        });
    ok.then_some(tree)
}

fn mindthegap(tree: &Tree) -> Result<Vec<(usize, Reference)>, (usize, String)> {
    let mut out = Vec::new();
    let Node::Map(registries) = &tree.nodes[tree.docs[0]] else {
        return Ok(out);
    };
    for &(reg, entry) in registries {
        let Some(reg) = tree.scalar(reg) else {
            continue;
        };
        let Some(images) = tree.get(entry, "images") else {
            continue;
        };
        let Node::Map(images) = &tree.nodes[images] else {
            return Err((
                reg.line,
                format!("{}: `images` must map names to tag lists", reg.value),
            ));
        };
        for &(name, tags) in images {
            let Some(name) = tree.scalar(name) else {
                continue;
            };
            let tags: Vec<&yaml::Scalar> = match &tree.nodes[tags] {
                Node::Seq(items) => items.iter().filter_map(|&i| tree.scalar(i)).collect(),
                Node::Scalar(s) if !s.value.is_empty() => vec![s],
                _ => Vec::new(),
            };
            if tags.is_empty() {
                return Err((
                    name.line,
                    format!(
                        "{}/{} lists no tags: name at least one tag or digest",
                        reg.value, name.value
                    ),
                ));
            }
            for tag in tags {
                let at = |e: ferry_oci::Error| (tag.line, e.to_string());
                let r = if tag.value.contains(':') {
                    let digest: Digest = tag.value.parse().map_err(at)?;
                    Reference::in_repository(&reg.value, &name.value, None, Some(digest))
                } else {
                    Reference::in_repository(&reg.value, &name.value, Some(&tag.value), None)
                }
                .map_err(at)?;
                out.push((tag.line, r));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_comments_and_labels() {
        let got = parse_image_list("# list\nnginx:1.25\n\nquay.io/a/b:1 labels:x,y # c\n").unwrap();
        let got: Vec<_> = got.iter().map(|(l, r)| format!("{l} {r}")).collect();
        assert_eq!(got, ["2 docker.io/library/nginx:1.25", "4 quay.io/a/b:1"]);
    }

    #[test]
    fn mindthegap_yaml() {
        let text = "---\ndocker.io:\n  images:\n    library/nginx:\n      - 1.18\n      - \"1.25\"\n    bitnami/kubectl: [1.21.3]\nquay.io:\n  tlsVerify: false\n  images:\n    jetstack/cert-manager-controller:\n      - v1.5.4\n      - sha256:3333333333333333333333333333333333333333333333333333333333333333\n";
        let got = parse_image_list(text).unwrap();
        let got: Vec<_> = got.iter().map(|(l, r)| format!("{l} {r}")).collect();
        assert_eq!(
            got,
            [
                "5 docker.io/library/nginx:1.18",
                "6 docker.io/library/nginx:1.25",
                "7 docker.io/bitnami/kubectl:1.21.3",
                "12 quay.io/jetstack/cert-manager-controller:v1.5.4",
                "13 quay.io/jetstack/cert-manager-controller@sha256:3333333333333333333333333333333333333333333333333333333333333333",
            ]
        );
    }

    #[test]
    fn mindthegap_image_without_tags_is_an_error_with_its_line() {
        let err = parse_image_list("test.registry.io:\n  images:\n    test-image:\n").unwrap_err();
        assert_eq!(err.0, 3);
        assert!(err.1.contains("lists no tags"), "{}", err.1);
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = parse_image_list("nginx:1.25\nNot A Ref!\n").unwrap_err();
        assert_eq!(err.0, 2);
    }
}
