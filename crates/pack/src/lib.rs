//! ferry-pack (in progress).
