//! `--existing-tag`: what to do with a tag of the target that the unpack
//! would point somewhere new.
//!
//! Decided before anything is pushed, from the target's tag lists and a
//! `HEAD` per tag they name ([`tag_moves`](crate::tag_moves)). A tag that already points at the
//! digest the unpack would give it is not a move.

use std::fmt;

use serde::Serialize;

use ferry_registry::Client;

use crate::check::{moves_of, TagMove};
use crate::{Error, Plan, Result};

/// The policy for tags that would move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingTag {
    /// Move them (the summary lists each, old digest -> new).
    #[default]
    Overwrite,
    /// Leave them where they are: the image is pushed, by digest only; the
    /// summary and the mapping say so.
    Skip,
    /// Refuse the whole unpack before anything is pushed.
    Fail,
}

impl fmt::Display for ExistingTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExistingTag::Overwrite => "overwrite",
            ExistingTag::Skip => "skip",
            ExistingTag::Fail => "fail",
        })
    }
}

/// Find the tags `plan` would move and apply `policy`: `Fail` refuses
/// ([`Error::TagsWouldMove`]), `Skip` marks their images to be left
/// untagged. The moves found, for the summary.
pub(crate) async fn settle(
    client: &Client,
    plan: &mut Plan,
    policy: ExistingTag,
    jobs: usize,
) -> Result<Vec<TagMove>> {
    let tags = crate::target_tags::look_up(client, plan, jobs).await?;
    let moves = moves_of(plan, &tags.current);
    for (i, current) in tags.current {
        plan.images[i].tag_seen = Some(current);
    }
    plan.untagged_repositories = tags.untagged;
    match policy {
        ExistingTag::Overwrite => {}
        ExistingTag::Fail if !moves.is_empty() => {
            return Err(Error::TagsWouldMove {
                moves: moves
                    .iter()
                    .map(|m| format!("{} {} -> {}", m.reference, m.from, m.to))
                    .collect(),
            })
        }
        ExistingTag::Fail => {}
        ExistingTag::Skip => {
            let moving: std::collections::BTreeSet<&String> =
                moves.iter().map(|m| &m.reference).collect();
            for image in &mut plan.images {
                if image.tag_reference().is_some_and(|r| moving.contains(&r)) {
                    image.leave_tag = true;
                }
            }
        }
    }
    Ok(moves)
}
