//! Pushes the fixture images (in progress).
fn main() {}
