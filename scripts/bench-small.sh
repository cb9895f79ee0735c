#!/usr/bin/env bash
# The many-small-images workload of `make bench` (issue 15): a platform
# release of REPOS repositories x TAGS tags, one shared 256 KiB base layer,
# a 4 KiB layer of each image's own, every fourth repository's tags
# two-platform indexes (60 x 4 = 240 images, as in the issue).
#
#   scripts/bench-small.sh [--bin DIR] [--repos N] [--tags N] [--jobs N]
#
# Measures, against real docker-registry: ferry pack + unpack vs skopeo
# (copy per image + tar), a repeat unpack into the same registry, the
# requests the target registry served (counted from its access log) per
# image, and the time of the full workload over that of a quarter of it
# (the 4x scaling ratio). Prints a table and one `BENCH_SMALL {...}` line.
set -euo pipefail

bin=target/release
repos=60
tags=4
jobs=8
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --repos) repos=$2; shift 2 ;;
    --tags) tags=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-small.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
((repos >= 4)) || { echo "bench-small.sh: --repos must be at least 4 (the 4x ratio runs a quarter)" >&2; exit 2; }
bin=$(cd "$bin" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-small.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

note() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_registry() { # name -> sets $registry to host:port; access log in $work/name/log
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name"
  cat > "$work/$name/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: false}}
storage:
  filesystem: {rootdirectory: $work/$name/data}
http: {addr: 127.0.0.1:$port}
YAML
  docker-registry serve "$work/$name/config.yml" >"$work/$name/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  registry=127.0.0.1:$port
}

# Requests the registry NAME served so far (its access log).
requests() { grep -cE '"(GET|HEAD|POST|PUT|PATCH|DELETE) /v2/[^ ]' "$work/$1/log" || true; }
seconds() { # CMD... -> wall seconds on stdout, output to $work/out
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$work/out" 2>&1 || { echo "bench-small.sh: failed: $*" >&2; tail -n 20 "$work/out" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

# run_ferry NAME REPOS: push the workload, pack it, unpack it twice; sets
# pack_s unpack_s again_s unpack_req again_req images.
run_ferry() {
  local name=$1 n=$2 src dst
  start_registry "$name-src"; src=$registry
  start_registry "$name-dst"; dst=$registry
  "$bin/ferry-fixtures" small-workload "$src" "$n" "$tags" >"$work/$name.images"
  images=$(wc -l <"$work/$name.images")
  pack_s=$(seconds "$bin/ferry" pack --images-file "$work/$name.images" --plain-http "$src" \
    -o "$work/$name.tar" --jobs "$jobs" --quiet)
  local before
  before=$(requests "$name-dst")
  unpack_s=$(seconds "$bin/ferry" unpack "$work/$name.tar" --to "$dst/mirror" --plain-http "$dst" --jobs "$jobs" --quiet)
  unpack_req=$(($(requests "$name-dst") - before))
  before=$(requests "$name-dst")
  again_s=$(seconds "$bin/ferry" unpack "$work/$name.tar" --to "$dst/mirror" --plain-http "$dst" --jobs "$jobs" --quiet)
  again_req=$(($(requests "$name-dst") - before))
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
quarter=$((repos / 4))
note "ferry: $quarter x $tags images"
run_ferry quarter "$quarter"
q_pack=$pack_s q_unpack=$unpack_s
note "ferry: $repos x $tags images"
run_ferry full "$repos"

note "skopeo: copy per image to oci: + tar, then tar -x + copy per image"
start_registry skopeo-dst; skopeo_dst=$registry
mkdir -p "$work/skopeo"
skopeo_pack_s=$(seconds bash -c '
  while read -r ref; do
    name=${ref#*/}; name=${name//\//-}; name=${name//:/-}
    skopeo copy --quiet --all --src-tls-verify=false "docker://$ref" "oci:$1/oci:$name"
  done <"$2"
  tar -cf "$1/bundle.tar" -C "$1" oci' _ "$work/skopeo" "$work/full.images")
rm -rf "$work/skopeo/oci"
skopeo_unpack_s=$(seconds bash -c '
  mkdir -p "$1/x" && tar -xf "$1/bundle.tar" -C "$1/x"
  while read -r ref; do
    name=${ref#*/}; name=${name//\//-}; name=${name//:/-}
    skopeo copy --quiet --all --dest-tls-verify=false "oci:$1/x/oci:$name" "docker://$3/mirror/$name"
  done <"$2"' _ "$work/skopeo" "$work/full.images" "$skopeo_dst")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - <<PY
import json
images, quarter_images = $images, $(wc -l <"$work/quarter.images")
ferry = round($pack_s + $unpack_s, 2)
skopeo = round($skopeo_pack_s + $skopeo_unpack_s, 2)
q = $q_pack + $q_unpack
r = {
    "workload": {"repositories": $repos, "tags": $tags, "images": images},
    "jobs": $jobs,
    "wall_seconds": {"ferry_pack": $pack_s, "ferry_unpack": $unpack_s, "ferry_unpack_again": $again_s,
                     "skopeo_pack": $skopeo_pack_s, "skopeo_unpack": $skopeo_unpack_s,
                     "quarter_ferry_pack": $q_pack, "quarter_ferry_unpack": $q_unpack},
    "requests": {"unpack": $unpack_req, "unpack_again": $again_req},
    "requests_per_image": {"unpack": round($unpack_req / images, 2), "unpack_again": round($again_req / images, 2)},
    "ferry_over_skopeo": round(ferry / skopeo, 3) if skopeo else None,
    "scaling_4x": round(ferry / q, 2) if q else None,
    "loadavg_before": "$load_before", "loadavg_after": "$load_after",
}
print()
print(f"many small images: {images} images ({$repos} repositories x {$tags} tags); --jobs {$jobs}; "
      f"load average before {r['loadavg_before']}, after {r['loadavg_after']}")
print()
for k, v in r["wall_seconds"].items():
    print(f"  {k:<28}{v:>8} s")
print()
print(f"ferry round trip / skopeo      {r['ferry_over_skopeo']}   ({ferry} s / {skopeo} s; target <= 0.15)")
print(f"repeat unpack                  {$again_s} s, {$again_req} requests   (target < 0.5 s for 240 images)")
print(f"requests per image, unpack     {r['requests_per_image']['unpack']}")
print(f"requests per image, again      {r['requests_per_image']['unpack_again']}")
print(f"4x the images (pack + unpack)  {r['scaling_4x']}x the time ({quarter_images} -> {images} images; target <= 4.2)")
print()
print("BENCH_SMALL " + json.dumps(r, sort_keys=True))
PY
