//! Properties of reading and rewriting over generated YAML-ish text (and
//! the fuzz corpus' shapes): never a panic, and a rewrite keeps the file's
//! structure: the result parses, names the same number of images, and
//! differs from the input only inside lines (no line added or removed).
//! Run with more cases by `scripts/fuzz.sh` when libFuzzer is missing.

use ferry_deploy::{rewrite_text, Mapping};
use proptest::prelude::*;

const D: &str = "sha256:8888888888888888888888888888888888888888888888888888888888888888";

fn mapping() -> Mapping {
    Mapping::from_json(
        format!(
            r#"{{"docker.io/library/nginx:1": "reg.local/m/library-nginx:1@{D}",
                "docker.io/library/redis:7": "reg.local/m/library-redis:7@{D}"}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

/// Pieces YAML is made of, weighted towards what reaches the image finder.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "image: ",
        "image:\n",
        "nginx:1",
        "redis:7",
        "'nginx:1'",
        "\"redis:7\"",
        "repository: ",
        "registry: ",
        "tag: ",
        "digest: ",
        "\"\"",
        "docker.io",
        "library/nginx",
        "1",
        "\n",
        "\n  ",
        "\n    ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        ": ",
        "&a ",
        "*a",
        "<<: ",
        "---\n",
        "# c\n",
        "'",
        "\"",
        "\\",
        "|\n  ",
        ">-\n  ",
        "\t",
        "é",
        "kind: Kustomization\n",
        "images:\n",
        "name: ",
        "newName: ",
        "newTag: ",
        "containers:\n",
        "?",
        "!tag ",
        "%YAML 1.2\n",
        "\r\n",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn rewriting_never_panics_and_keeps_the_structure(pieces in prop::collection::vec(piece(), 0..64)) {
        let text: String = pieces.concat();
        let m = mapping();
        if let Ok(r) = rewrite_text("p", None, &text, &m) {
            prop_assert_eq!(text.split('\n').count(), r.text.split('\n').count());
            let again = rewrite_text("p", None, &r.text, &m);
            prop_assert!(again.is_ok(), "the rewritten text parses: {:?}", r.text);
            let again = again.unwrap();
            let before = r.changes.len() + r.left.len();
            prop_assert_eq!(before, again.changes.len() + again.left.len(), "{:?}", r.text);
            // A rewritten reference is already relocated: nothing changes twice.
            prop_assert_eq!(&again.text, &r.text);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = rewrite_text("p", None, &text, &mapping());
    }
}
