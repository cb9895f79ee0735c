//! Rewriting image references in place, as text edits.
//!
//! Only the bytes of each reference's scalar content change: comments, key
//! order, quoting, indentation and every other byte stay as they were.
//!
//! - A whole reference (`image: nginx:1.25`) becomes the relocated
//!   reference, digest-pinned (`reg.internal/t/library-nginx-…:1.25@sha256:…`).
//! - Helm values' split shape (`{registry, repository, tag, digest}`):
//!   `registry` becomes the target host and `repository` the relocated
//!   path (with no `registry` key, `repository` gets `host/path`); `tag`
//!   stays (unpack keeps tags); `digest`, when the key is there, becomes
//!   the relocated digest. Without a `digest` key the image stays pinned by
//!   tag only, and the result says so: a key is never added, since charts
//!   differ in how they build the reference from these fields.
//! - A kustomize `images:` entry: `newName` and `digest` the same way; an
//!   entry without `newName` is reported, not changed (its `name` is what
//!   kustomize matches on).

use std::ops::Range;
use std::path::Path;

use ferry_oci::Reference;
use serde::Serialize;

use crate::find::{Shape, Site};
use crate::mapping::Mapping;
use crate::scan::{analyze, Problem};
use crate::yaml::{NodeId, Style, Tree};

/// One reference replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// 1-based line.
    pub line: usize,
    /// The reference found.
    pub from: Reference,
    /// What it refers to now.
    pub to: Reference,
    /// Whether the file now pins the digest (false for split values
    /// without a `digest` key, which stay pinned by tag).
    pub pinned: bool,
}

/// A reference left as it was, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Left {
    /// 1-based line.
    pub line: usize,
    /// The reference found.
    pub reference: Reference,
    /// Why it was not rewritten.
    pub reason: String,
}

/// The result of rewriting one file's text.
#[derive(Debug, Clone, Default)]
pub struct Rewritten {
    /// The new text (equal to the old when nothing changed).
    pub text: String,
    /// References replaced, in file order.
    pub changes: Vec<Change>,
    /// References not in the mapping, or not rewritable in place.
    pub left: Vec<Left>,
    /// Values under `image` keys that are not references.
    pub odd: Vec<Problem>,
}

/// Rewrite the references in `text` (the file `name`, at `path` when a
/// file) with `mapping`. A text that does not parse is an error and
/// nothing is rewritten.
pub fn rewrite_text(
    name: &str,
    path: Option<&Path>,
    text: &str,
    mapping: &Mapping,
) -> Result<Rewritten, Problem> {
    let analysis = analyze(name, path, text)?;
    let mut edits: Vec<Edit> = Vec::new();
    let mut out = Rewritten {
        odd: analysis.odd,
        ..Rewritten::default()
    };
    for site in &analysis.sites {
        let Some(to) = mapping.lookup(&site.reference) else {
            out.left.push(Left {
                line: site.line,
                reference: site.reference.clone(),
                reason: "not in the mapping".into(),
            });
            continue;
        };
        match plan_site(&analysis.tree, text, site, &to) {
            Ok((site_edits, pinned)) => {
                edits.extend(site_edits);
                out.changes.push(Change {
                    line: site.line,
                    from: site.reference.clone(),
                    to,
                    pinned,
                });
            }
            Err(reason) => out.left.push(Left {
                line: site.line,
                reference: site.reference.clone(),
                reason,
            }),
        }
    }
    // Aliases make one scalar reachable twice: edit it once.
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    edits.dedup_by(|a, b| a.0 == b.0);
    let mut new = String::with_capacity(text.len() + edits.len() * 80);
    let mut at = 0;
    for (range, replacement) in edits {
        if range.start < at {
            continue; // overlapping: cannot happen for distinct scalars
        }
        new.push_str(&text[at..range.start]);
        new.push_str(&replacement);
        at = range.end;
    }
    new.push_str(&text[at..]);
    out.text = new;
    Ok(out)
}

/// Replace these bytes with this text.
type Edit = (Range<usize>, String);

/// The edits that make `site` name `to`, and whether it ends up pinned.
fn plan_site(
    tree: &Tree,
    text: &str,
    site: &Site,
    to: &Reference,
) -> Result<(Vec<Edit>, bool), String> {
    let range = |id: NodeId| {
        tree.scalar(id)
            .and_then(|s| s.content_range(text))
            .ok_or_else(|| {
                "written in a form that cannot be edited in place (block scalar, escapes, \
                 or across lines)"
                    .to_string()
            })
    };
    let digest = to.digest().ok_or("the mapping value has no digest")?;
    match &site.shape {
        Shape::Whole(id) => {
            let relocated = match site.reference.tag() {
                Some(_) => to.to_string(),
                None => to.with_digest(digest.clone()).to_string(),
            };
            Ok((vec![(range(*id)?, relocated)], true))
        }
        Shape::Split {
            registry,
            repository,
            tag: _,
            digest: digest_key,
            fixed_name,
        } => {
            if *fixed_name {
                return Err("a kustomize images entry without newName: add `newName` (its                             `name` is what kustomize matches)"
                    .into());
            }
            let mut edits = Vec::new();
            match registry {
                Some(reg)
                    if tree
                        .scalar(*reg)
                        .is_some_and(|s| !s.value.trim().is_empty()) =>
                {
                    edits.push((range(*reg)?, to.registry().to_string()));
                    edits.push((range(*repository)?, to.repository().to_string()));
                }
                _ => edits.push((range(*repository)?, to.name())),
            }
            // The digest, where there is a key to hold it: filled when
            // empty and quoted (`digest: ""`), replaced when set.
            let digest_range = digest_key.and_then(|d| {
                let s = tree.scalar(d)?;
                if s.value.trim().is_empty() {
                    empty_scalar_range(tree, text, d)
                } else {
                    s.content_range(text)
                }
            });
            let pinned = match digest_range {
                Some(r) => {
                    edits.push((r, digest.to_string()));
                    true
                }
                None => false,
            };
            Ok((edits, pinned))
        }
    }
}

/// Where to put a value into an empty quoted scalar (`digest: ""` or
/// `digest: ''`): between its quotes.
fn empty_scalar_range(tree: &Tree, text: &str, id: NodeId) -> Option<Range<usize>> {
    let s = tree.scalar(id)?;
    if !matches!(s.style, Style::SingleQuoted | Style::DoubleQuoted) {
        return None;
    }
    let rest = text.get(s.start..)?;
    let line = &rest[..rest.find('\n').unwrap_or(rest.len())];
    let at = line.find("\"\"").or_else(|| line.find("''"))?;
    // Only an anchor or tag may come before the quotes.
    let before = line[..at].trim();
    if !before.is_empty() && !before.starts_with(['&', '!']) {
        return None;
    }
    Some(s.start + at + 1..s.start + at + 1)
}

/// A unified diff of `old` and `new`, which differ only inside lines (a
/// rewrite never adds or removes a line break), with three lines of
/// context.
pub fn unified_diff(old_name: &str, new_name: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    if a == b {
        return String::new();
    }
    let changed: Vec<usize> = (0..a.len().max(b.len()))
        .filter(|&i| a.get(i) != b.get(i))
        .collect();
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    let context = 3;
    let mut i = 0;
    while i < changed.len() {
        // Group changed lines whose contexts touch.
        let mut j = i;
        while j + 1 < changed.len() && changed[j + 1] <= changed[j] + 2 * context + 1 {
            j += 1;
        }
        let start = changed[i].saturating_sub(context);
        let end = (changed[j] + context + 1).min(a.len().max(b.len()));
        let count_a = (start..end).filter(|&k| k < a.len()).count();
        let count_b = (start..end).filter(|&k| k < b.len()).count();
        out.push_str(&format!(
            "@@ -{},{count_a} +{},{count_b} @@\n",
            start + 1,
            start + 1
        ));
        for k in start..end {
            let (la, lb) = (a.get(k), b.get(k));
            if la == lb {
                push_line(&mut out, ' ', la.unwrap_or(&""));
            } else {
                if let Some(l) = la {
                    push_line(&mut out, '-', l);
                }
                if let Some(l) = lb {
                    push_line(&mut out, '+', l);
                }
            }
        }
        i = j + 1;
    }
    out
}

fn push_line(out: &mut String, mark: char, line: &str) {
    out.push(mark);
    out.push_str(line);
    if !line.ends_with('\n') {
        out.push_str("\n\\ No newline at end of file\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn mapping() -> Mapping {
        Mapping::from_json(
            format!(
                r#"{{"docker.io/library/nginx:1.25": "reg.local:5000/t/library-nginx-x:1.25@{D}",
                    "docker.io/bitnami/redis:7.2": "reg.local:5000/t/bitnami-redis-x:7.2@{D}"}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn only_the_reference_bytes_change() {
        let text = "# keep me\nspec:\n  containers:\n  - name: web   # trailing\n    image: \"nginx:1.25\"  # pinned later\n    args: ['a']\n  - image: unknown:1\n";
        let r = rewrite_text("f", None, text, &mapping()).unwrap();
        let want = text.replace(
            "\"nginx:1.25\"",
            &format!("\"reg.local:5000/t/library-nginx-x:1.25@{D}\""),
        );
        assert_eq!(r.text, want);
        assert_eq!(r.changes.len(), 1);
        assert_eq!(r.left.len(), 1);
        assert_eq!(
            r.left[0].reference.to_string(),
            "docker.io/library/unknown:1"
        );
    }

    #[test]
    fn split_values_keep_the_tag_and_fill_the_digest() {
        let text = "redis:\n  image:\n    registry: docker.io\n    repository: bitnami/redis\n    tag: 7.2\n    digest: \"\"\nweb:\n  image:\n    repository: nginx\n    tag: '1.25'\n";
        let r = rewrite_text("v", None, text, &mapping()).unwrap();
        assert_eq!(
            r.text,
            format!(
                "redis:\n  image:\n    registry: reg.local:5000\n    repository: t/bitnami-redis-x\n    tag: 7.2\n    digest: \"{D}\"\nweb:\n  image:\n    repository: reg.local:5000/t/library-nginx-x\n    tag: '1.25'\n"
            )
        );
        assert!(r.changes[0].pinned);
        assert!(!r.changes[1].pinned, "no digest key: pinned by tag only");
    }

    #[test]
    fn an_empty_unquoted_digest_is_left_and_the_next_line_untouched() {
        let text = "image:\n  repository: nginx\n  tag: \"1.25\"\n  digest:\n  pullSecret: \"\"\n";
        let r = rewrite_text("v", None, text, &mapping()).unwrap();
        assert_eq!(
            r.text,
            "image:\n  repository: reg.local:5000/t/library-nginx-x\n  tag: \"1.25\"\n  digest:\n  pullSecret: \"\"\n"
        );
        assert!(!r.changes[0].pinned);
    }

    #[test]
    fn plain_booleans_under_image_are_not_references() {
        let r = rewrite_text(
            "v",
            None,
            "a:\n  image: false\nb:\n  image: 'false'\n",
            &mapping(),
        )
        .unwrap();
        let found: Vec<String> = r
            .left
            .iter()
            .map(|l| format!("{}:{}", l.line, l.reference))
            .collect();
        assert_eq!(found, ["4:docker.io/library/false:latest"]);
    }

    #[test]
    fn an_unparsable_file_is_an_error() {
        assert!(rewrite_text("b", None, "a: [\n", &mapping()).is_err());
    }

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let d = unified_diff(
            "a",
            "b",
            "1\n2\n3\n4\n5\n6\n7\n8\n9\n",
            "1\n2\n3\n4\nX\n6\n7\n8\n9\n",
        );
        assert_eq!(
            d,
            "--- a\n+++ b\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+X\n 6\n 7\n 8\n"
        );
    }
}
