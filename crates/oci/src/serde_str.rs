//! Serde through `Display` and `FromStr`: the one way ferry's string-like
//! types (digests, references, relocation targets, naming) appear in JSON.
//!
//! Use [`serialize`] and [`deserialize`] as `#[serde(with = ...)]`-style
//! functions on a field, or implement both traits for a type at once with
//! the crate-internal `serde_via_str!` macro.

use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serializer};

/// Serialize `value` as the string its `Display` writes.
pub fn serialize<T: Display + ?Sized, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Deserialize a string and parse it with `FromStr`; a parse error is a
/// serde error carrying its message.
pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: FromStr,
    T::Err: Display,
    D: Deserializer<'de>,
{
    let s = String::deserialize(deserializer)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// `Serialize` and `Deserialize` for types with `Display` and `FromStr`.
macro_rules! serde_via_str {
    ($($ty:ty),+ $(,)?) => {$(
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::serde_str::serialize(self, s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::serde_str::deserialize(d)
            }
        }
    )+};
}
pub(crate) use serde_via_str;
