//! ferry-unpack (in progress).
