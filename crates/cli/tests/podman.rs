//! What a container engine sees: podman (vfs storage in a temp dir) pulls
//! from the bundle (`oci-archive:`) and from the relocated registry, and
//! reports the same manifest digest and image ID (config digest) as the
//! source.

mod util;

use ferry_testkit::{require_tool, RegistryProcess};
use util::{podman, Scratch};

#[test]
fn podman_pulls_the_same_image_from_the_bundle_and_the_relocated_registry() {
    require_tool("podman", "apt-get install podman");
    let mut source = RegistryProcess::start();
    let fixtures = source.push_fixtures();
    let scratch = Scratch::new();
    let base = fixtures.image("fixtures/base:1");
    let multi = fixtures.image("fixtures/multi:1");
    scratch
        .ferry([
            "pack",
            &base.reference,
            &multi.reference,
            "--plain-http",
            &source.host(),
            "-o",
            "bundle.tar",
        ])
        .ok();
    source.stop();

    // From the archive.
    let engine = scratch.path("podman-archive");
    let archive_ref = format!(
        "oci-archive:{}:{}",
        scratch.path("bundle.tar").display(),
        base.reference
    );
    podman(&engine, &["pull", "-q", &archive_ref]);
    let seen = podman(
        &engine,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Digest}}",
            &base.reference,
        ],
    );
    let config_hex = base.config_digests[0].trim_start_matches("sha256:");
    assert_eq!(seen, format!("{config_hex} {}", base.digest));

    // From the relocated registry.
    let target = RegistryProcess::start();
    let to = format!("{}/mirror", target.host());
    scratch
        .ferry([
            "unpack",
            "bundle.tar",
            "--to",
            &to,
            "--plain-http",
            &target.host(),
            "--mapping",
            "mapping.json",
        ])
        .ok();
    let mapping: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch.path("mapping.json")).unwrap()).unwrap();
    let engine = scratch.path("podman-registry");
    for image in [base, multi] {
        let relocated = mapping[&image.reference].as_str().unwrap();
        let by_tag = relocated.split('@').next().unwrap();
        podman(
            &engine,
            &[
                "pull",
                "-q",
                "--tls-verify=false",
                "--arch",
                "amd64",
                "--os",
                "linux",
                by_tag,
            ],
        );
        let seen = podman(
            &engine,
            &[
                "image",
                "inspect",
                "--format",
                "{{.Id}} {{.Digest}}",
                by_tag,
            ],
        );
        let amd64 = image
            .platforms
            .iter()
            .position(|p| p == "linux/amd64")
            .unwrap_or(0);
        let config_hex = image.config_digests[amd64].trim_start_matches("sha256:");
        assert_eq!(
            seen,
            format!("{config_hex} {}", image.digest),
            "{}",
            image.reference
        );
        // The relocated reference pinned by digest resolves too.
        podman(
            &engine,
            &[
                "pull",
                "-q",
                "--tls-verify=false",
                "--arch",
                "amd64",
                relocated,
            ],
        );
    }
}
