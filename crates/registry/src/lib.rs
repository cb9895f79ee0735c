//! ferry-registry (in progress).
