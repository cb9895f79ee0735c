//! Where image references sit in a parsed YAML document.
//!
//! One rule covers Kubernetes objects (every pod template of every kind,
//! `List`s, CRDs that embed pod specs: containers, initContainers and
//! ephemeralContainers all carry `image:`), rendered Helm output, Helm
//! values and compose files: a mapping key `image` whose value is
//!
//! - a string: the reference (`image: nginx:1.25`);
//! - a mapping with `repository` (and optionally `registry`, `tag`,
//!   `digest`): the split shape of Helm values.
//!
//! Kustomizations (`kind: Kustomization`, or a file named
//! `kustomization.yaml`) add their `images:` entries: the image that results
//! is `newName` (else `name`) with `newTag` and/or `digest`; an entry with
//! neither only renames what the base manifests name, and they are scanned
//! themselves.

use ferry_oci::Reference;

use crate::yaml::{Node, NodeId, Tree, MAX_VISITS};

/// How a reference is written.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    /// One string holds the whole reference.
    Whole(NodeId),
    /// Helm values' split shape, or a kustomize entry (`repository` is then
    /// `newName`, `registry` is `None`).
    Split {
        registry: Option<NodeId>,
        repository: NodeId,
        tag: Option<NodeId>,
        digest: Option<NodeId>,
        /// A kustomize entry without `newName`: `repository` is its
        /// `name`, the key kustomize matches, which a rewrite must not change.
        fixed_name: bool,
    },
}

/// One image reference found.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub shape: Shape,
    pub line: usize,
    pub reference: Reference,
}

/// Something under an `image` key that is not a reference.
#[derive(Debug, Clone)]
pub(crate) struct Odd {
    pub line: usize,
    pub message: String,
}

/// Walking one document.
pub(crate) struct Finder<'t> {
    tree: &'t Tree,
    visits: usize,
    /// Value nodes already recorded: an alias or merge key reaches a
    /// node again.
    seen: std::collections::HashSet<NodeId>,
    pub sites: Vec<Site>,
    pub odd: Vec<Odd>,
}

/// The walk visited more nodes than [`MAX_VISITS`]: aliases expand without
/// bound.
#[derive(Debug)]
pub(crate) struct TooManyVisits;

impl<'t> Finder<'t> {
    pub fn new(tree: &'t Tree) -> Finder<'t> {
        Finder {
            tree,
            visits: 0,
            seen: std::collections::HashSet::new(),
            sites: Vec::new(),
            odd: Vec::new(),
        }
    }

    /// Find the references in the document rooted at `root`.
    pub fn document(&mut self, root: NodeId, kustomization: bool) -> Result<(), TooManyVisits> {
        let is_kustomization =
            kustomization || self.tree.get_str(root, "kind") == Some("Kustomization");
        if is_kustomization {
            self.kustomize_images(root);
        }
        self.walk(root)
    }

    fn walk(&mut self, id: NodeId) -> Result<(), TooManyVisits> {
        // An explicit stack: depth is bounded by the parser, but aliases
        // can make a walk long, never deep.
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            self.visits += 1;
            if self.visits > MAX_VISITS {
                return Err(TooManyVisits);
            }
            match &self.tree.nodes[id] {
                Node::Scalar(_) => {}
                Node::Seq(items) => todo.extend(items.iter().rev()),
                Node::Map(pairs) => {
                    for &(k, v) in pairs.iter().rev() {
                        let is_image = self.tree.scalar(k).is_some_and(|s| s.value == "image");
                        if is_image && self.image_value(v) {
                            continue;
                        }
                        todo.push(v);
                    }
                }
            }
        }
        Ok(())
    }

    /// Record the value of an `image` key; false when it is neither shape
    /// (the walk goes on inside it).
    fn image_value(&mut self, v: NodeId) -> bool {
        let tree = self.tree;
        if !self.seen.insert(v) {
            return true;
        }
        if let Some(s) = tree.scalar(v) {
            let value = s.value.trim();
            if value.is_empty() || value == "~" || value == "null" {
                return true;
            }
            // YAML 1.1/1.2 booleans written plain (`image: false` switches
            // a feature off in many charts): not a name for `library/false`.
            let plain = s.style == crate::yaml::Style::Plain;
            if plain
                && matches!(
                    value.to_ascii_lowercase().as_str(),
                    "true" | "false" | "yes" | "no" | "on" | "off"
                )
            {
                return true;
            }
            if value.contains("{{") || value.contains("${") {
                self.odd.push(Odd {
                    line: s.line,
                    message: format!("{value:?} is a template, not a reference (render it first)"),
                });
                return true;
            }
            match Reference::parse(value) {
                Ok(reference) => self.sites.push(Site {
                    shape: Shape::Whole(v),
                    line: s.line,
                    reference,
                }),
                Err(e) => self.odd.push(Odd {
                    line: s.line,
                    message: e.to_string(),
                }),
            }
            return true;
        }
        let Some(repository) = tree.get(v, "repository") else {
            return false;
        };
        let shape = Shape::Split {
            registry: tree.get(v, "registry"),
            repository,
            tag: tree.get(v, "tag"),
            digest: tree.get(v, "digest"),
            fixed_name: false,
        };
        self.split(shape);
        true
    }

    fn kustomize_images(&mut self, root: NodeId) {
        let tree = self.tree;
        let Some(images) = tree.get(root, "images") else {
            return;
        };
        let Node::Seq(entries) = &tree.nodes[images] else {
            return;
        };
        for &entry in entries {
            let Some(name) = tree.get(entry, "name") else {
                continue;
            };
            let (new_tag, digest) = (tree.get(entry, "newTag"), tree.get(entry, "digest"));
            if new_tag.is_none() && digest.is_none() {
                continue;
            }
            let new_name = tree.get(entry, "newName");
            self.split(Shape::Split {
                registry: None,
                repository: new_name.unwrap_or(name),
                tag: new_tag,
                digest,
                fixed_name: new_name.is_none(),
            });
        }
    }

    /// Assemble a split reference and record it, or say why not.
    fn split(&mut self, shape: Shape) {
        let tree = self.tree;
        let Shape::Split {
            registry,
            repository,
            tag,
            digest,
            ..
        } = &shape
        else {
            return;
        };
        let text = |id: &Option<NodeId>| {
            id.and_then(|i| tree.scalar(i))
                .map(|s| s.value.trim().to_string())
                .filter(|s| !s.is_empty() && s != "~" && s != "null")
        };
        let Some(repo) = tree.scalar(*repository) else {
            return;
        };
        let line = repo.line;
        let repo = repo.value.trim();
        let (registry, tag, digest) = (text(registry), text(tag), text(digest));
        if repo.is_empty() {
            return;
        }
        if [
            Some(repo),
            registry.as_deref(),
            tag.as_deref(),
            digest.as_deref(),
        ]
        .iter()
        .flatten()
        .any(|v| v.contains("{{") || v.contains("${"))
        {
            self.odd.push(Odd {
                line,
                message: format!("{repo:?} is a template, not a reference (render it first)"),
            });
            return;
        }
        if tag.is_none() && digest.is_none() {
            self.odd.push(Odd {
                line,
                message: format!(
                    "{repo:?} has no tag or digest here (the chart supplies one, often its \
                     appVersion): render the chart or set the tag"
                ),
            });
            return;
        }
        let mut input = match &registry {
            Some(r) => format!("{r}/{repo}"),
            None => repo.to_string(),
        };
        if let Some(tag) = &tag {
            input = format!("{input}:{tag}");
        }
        if let Some(digest) = &digest {
            input = format!("{input}@{digest}");
        }
        let parsed = match &registry {
            Some(r) => {
                let digest = match digest.as_deref().map(str::parse).transpose() {
                    Ok(d) => d,
                    Err(e) => {
                        self.odd.push(Odd {
                            line,
                            message: format!("{input:?}: {e}"),
                        });
                        return;
                    }
                };
                Reference::in_repository(r, repo, tag.as_deref(), digest)
            }
            None => Reference::parse(&input),
        };
        match parsed {
            Ok(reference) => self.sites.push(Site {
                shape,
                line,
                reference,
            }),
            Err(e) => self.odd.push(Odd {
                line,
                message: e.to_string(),
            }),
        }
    }
}
