#!/usr/bin/env bash
# Fuzz ferry's untrusted-input parsers for SECONDS each (default 60).
#
# With nightly and cargo-fuzz: libFuzzer on each target in fuzz/, seeded
# from fuzz/corpus/<target> (both layout readers from layout_archive's, plus
# fixtures/hostile); new inputs go to target/fuzz-corpus/, crashes to
# fuzz/artifacts/. Without them: the same properties through proptest,
# many cases (crates/oci/tests/layout_props.rs), which also replays the
# corpus. Set FUZZ_ENGINE=proptest to force the fallback.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
targets=(layout_archive layout_stream manifest_parse deploy_yaml)

if [[ "${FUZZ_ENGINE:-}" != proptest ]] \
    && cargo +nightly fuzz --version >/dev/null 2>&1; then
    for t in "${targets[@]}"; do
        work="target/fuzz-corpus/$t"
        mkdir -p "$work"
        echo "fuzz: libFuzzer on $t for ${seconds}s"
        # The two layout readers share one corpus, plus the committed
        # hostile archives.
        case "$t" in
            layout_*) seeds=(fuzz/corpus/layout_archive fixtures/hostile) ;;
            *) seeds=("fuzz/corpus/$t") ;;
        esac
        cargo +nightly fuzz run --fuzz-dir fuzz "$t" "$work" "${seeds[@]}" -- \
            -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
    done
else
    echo "fuzz: nightly cargo-fuzz not available; running the proptest smoke loop"
    cases=$(( seconds * 200 ))
    PROPTEST_CASES="$cases" cargo test -p ferry-oci --test layout_props
    PROPTEST_CASES="$cases" cargo test -p ferry-deploy --test props
fi
