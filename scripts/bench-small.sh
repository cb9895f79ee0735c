#!/usr/bin/env bash
# The many-small-images workload of `make bench` (issue 15): a platform
# release of REPOS repositories x TAGS tags, one shared 256 KiB base layer,
# a 4 KiB layer of each image's own, every fourth repository's tags
# two-platform indexes (60 x 4 = 240 images, as in the issue).
#
#   scripts/bench-small.sh [--bin DIR] [--repos N] [--tags N] [--jobs N]
#                          [--rss-images N] [--registry-storage memory|disk]
#                          [--runs N]   (every timed step N times, best kept)
#                          [--ferry-runs N]   (ferry's own steps, which the 4x
#                                              ratio compares, at least N times)
#
# Measures, against real docker-registry:
#   - ferry pack + unpack against skopeo's round trip (copy per image + tar);
#   - a repeat unpack into the same registry (time, and its requests against
#     the manifests + tags it has to confirm);
#   - requests per new blob, per new manifest and per tag of the first
#     unpack; and per new blob into a registry that takes single-request
#     uploads (the proxy's --take-single-requests, as docker-registry 2.8
#     does not);
#   - the time for REPOS repositories over that for REPOS/4 (the 4x ratio);
#   - with --rss-images N (make bench passes 5000): ferry's peak RSS (and
#     time per image) unpacking N images; pushing them takes a few minutes.
# Every registry (ferry's and skopeo's alike) keeps its storage in memory
# (a directory under /dev/shm) unless --registry-storage disk or /dev/shm is
# not a writable tmpfs with 4 GB free: on ext4, docker-registry's time for
# the ~1,600 files an unpack makes it create went mostly to the kernel's
# inode allocator (ext4's find_inode_bit/recently_deleted, under perf), and
# varied 2x with how many files the machine had deleted lately, which
# measured the disk's history, not the tools. The tools' own output (the
# bundles, skopeo's layouts) is on disk either way.
# Times are taken with ferry talking to the registry directly; requests are
# counted in separate runs (same work, a fresh target) through testkit's
# FaultProxy (`ferry-fixtures proxy`, no faults), which logs every request.
# Prints a table and one `BENCH_SMALL {...}` line.
set -euo pipefail

bin=target/release
repos=60
tags=4
jobs=8
rss_images=0
registry_storage=memory
runs=1
ferry_runs=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --repos) repos=$2; shift 2 ;;
    --tags) tags=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --rss-images) rss_images=$2; shift 2 ;;
    --registry-storage) registry_storage=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --ferry-runs) ferry_runs=$2; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-small.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ && $ferry_runs =~ ^[1-9][0-9]*$ ]] ||
  { echo "bench-small.sh: --runs and --ferry-runs are whole numbers from 1" >&2; exit 2; }
ferry_runs=$((ferry_runs > runs ? ferry_runs : runs))
((repos >= 4)) || { echo "bench-small.sh: --repos must be at least 4 (the 4x ratio runs a quarter)" >&2; exit 2; }
for tool in docker-registry skopeo curl tar python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench-small.sh: $tool is missing (run scripts/install-deps.sh)" >&2; exit 1; }
done
bin=$(cd "$bin" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-small.XXXXXX")
pids=()
stores=$work
case $registry_storage in
  memory)
    if [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]] \
      && (($(df -k --output=avail /dev/shm 2>/dev/null | tail -n1) > 4 * 1024 * 1024)) \
      && stores=$(mktemp -d /dev/shm/ferry-bench-small.XXXXXX 2>/dev/null); then
      :
    else
      echo "bench-small.sh: /dev/shm is not a writable tmpfs with 4 GB free: registries store on disk" >&2
      registry_storage=disk stores=$work
    fi ;;
  disk) ;;
  *) echo "bench-small.sh: --registry-storage is memory or disk, not $registry_storage" >&2; exit 2 ;;
esac
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
  [[ $stores == "$work" ]] || rm -rf "$stores"
}
trap cleanup EXIT

note() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_registry() { # NAME -> sets $registry to host:port
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name"
  cat > "$work/$name/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $stores/$name}
http: {addr: 127.0.0.1:$port}
YAML
  docker-registry serve "$work/$name/config.yml" >"$work/$name/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  registry=127.0.0.1:$port
}

start_proxy() { # NAME UPSTREAM [FLAGS...] -> sets $proxy to host:port; log in $work/NAME.requests
  local name=$1 upstream=$2
  shift 2
  : >"$work/$name.requests"
  "$bin/ferry-fixtures" proxy "$upstream" "$work/$name.requests" "$@" >"$work/$name.proxy" &
  pids+=($!)
  for _ in $(seq 100); do [[ -s $work/$name.proxy ]] && break; sleep 0.05; done
  proxy=$(head -n1 "$work/$name.proxy")
}

# The proxy's log, once it has caught up (it writes every 20 ms).
settled_log() { # NAME -> its request lines so far, on stdout
  local before=-1 now
  now=$(wc -l <"$work/$1.requests")
  while ((now != before)); do sleep 0.1; before=$now; now=$(wc -l <"$work/$1.requests"); done
  cat "$work/$1.requests"
}

seconds() { # CMD... -> wall seconds on stdout, output to $work/out
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$work/out" 2>&1 || { echo "bench-small.sh: failed: $*" >&2; tail -n 20 "$work/out" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

unpack() { # BUNDLE HOST [FLAGS...]: ferry unpack into HOST/mirror
  local bundle=$1 host=$2
  shift 2
  "$bin/ferry" unpack "$bundle" --to "$host/mirror" --plain-http "$host" --jobs "$jobs" "$@"
}

best() { # A B -> the smaller, or B when A is empty
  awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'
}

# run_ferry NAME REPOS: push the workload, pack it, unpack it twice (timed,
# straight to the registry; --ferry-runs times, each unpack pair into a fresh
# registry, best kept); with COUNT=yes, unpack it twice more into a fresh
# registry behind the proxy (counted). Sets pack_s unpack_s again_s.
run_ferry() {
  local name=$1 n=$2 src dst run
  start_registry "$name-src"; src=$registry
  "$bin/ferry-fixtures" small-workload "$src" "$n" "$tags" >"$work/$name.images"
  pack_s= unpack_s= again_s=
  for ((run = 1; run <= ferry_runs; run++)); do
    rm -f "$work/$name.tar"
    pack_s=$(best "$pack_s" "$(seconds "$bin/ferry" pack --images-file "$work/$name.images" \
      --plain-http "$src" -o "$work/$name.tar" --jobs "$jobs" --quiet)")
    start_registry "$name-dst-$run"; dst=$registry
    unpack_s=$(best "$unpack_s" "$(seconds unpack "$work/$name.tar" "$dst" --quiet)")
    again_s=$(best "$again_s" "$(seconds unpack "$work/$name.tar" "$dst" --quiet)")
  done
  if [[ ${COUNT:-no} == yes ]]; then
    start_registry "$name-counted"
    start_proxy "$name" "$registry"
    unpack "$work/$name.tar" "$proxy" --json --quiet >"$work/$name.first.json"
    settled_log "$name" >"$work/$name.first.requests"
    : >"$work/$name.requests"
    unpack "$work/$name.tar" "$proxy" --json --quiet >"$work/$name.again.json"
    settled_log "$name" >"$work/$name.again.requests"
    # And into a registry that takes single-request uploads (201): the
    # proxy does them on ferry's behalf, docker-registry 2.8 does not.
    start_registry "$name-single-target"
    start_proxy "$name-single" "$registry" --take-single-requests
    unpack "$work/$name.tar" "$proxy" --json --quiet >"$work/$name.single.json"
    settled_log "$name-single" >"$work/$name.single.requests"
  fi
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
quarter=$((repos / 4))
note "ferry: $quarter x $tags images"
run_ferry quarter "$quarter"
q_pack=$pack_s q_unpack=$unpack_s
note "ferry: $repos x $tags images (timed, then counted through the proxy)"
COUNT=yes run_ferry full "$repos"

note "skopeo: copy per image to oci: + tar, then tar -x + copy per image"
skopeo_pack_s= skopeo_unpack_s=
for ((run = 1; run <= runs; run++)); do
  start_registry "skopeo-dst-$run"; skopeo_dst=$registry
  rm -rf "$work/skopeo"
  mkdir -p "$work/skopeo"
  skopeo_pack_s=$(best "$skopeo_pack_s" "$(seconds bash -c '
    while read -r ref; do
      name=${ref#*/}; name=${name//\//-}; name=${name//:/-}
      skopeo copy --quiet --all --src-tls-verify=false "docker://$ref" "oci:$1/oci:$name"
    done <"$2"
    tar -cf "$1/bundle.tar" -C "$1" oci' _ "$work/skopeo" "$work/full.images")")
  rm -rf "$work/skopeo/oci"
  skopeo_unpack_s=$(best "$skopeo_unpack_s" "$(seconds bash -c '
    mkdir -p "$1/x" && tar -xf "$1/bundle.tar" -C "$1/x"
    while read -r ref; do
      name=${ref#*/}; name=${name//\//-}; name=${name//:/-}
      skopeo copy --quiet --all --dest-tls-verify=false "oci:$1/x/oci:$name" "docker://$3/mirror/$name"
    done <"$2"' _ "$work/skopeo" "$work/full.images" "$skopeo_dst")")
done

rss_kib=0 rss_unpack_s=0 rss_pack_s=0 rss_push_s=0 rss_count=0
if ((rss_images > 0)); then
  rss_repos=$(((rss_images + tags - 1) / tags))
  note "peak RSS: $rss_repos x $tags images (pushing them first)"
  start_registry rss-src; rss_src=$registry
  start_registry rss-dst; rss_dst=$registry
  rss_push_s=$(seconds "$bin/ferry-fixtures" small-workload "$rss_src" "$rss_repos" "$tags")
  cp "$work/out" "$work/rss.images"
  rss_count=$(wc -l <"$work/rss.images")
  rss_pack_s=$(seconds "$bin/ferry" pack --images-file "$work/rss.images" --plain-http "$rss_src" \
    -o "$work/rss.tar" --jobs "$jobs" --quiet)
  rss_unpack_s=$(seconds /usr/bin/time -v -o "$work/rss.time" \
    "$bin/ferry" unpack "$work/rss.tar" --to "$rss_dst/mirror" --plain-http "$rss_dst" --jobs "$jobs" --quiet)
  rss_kib=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/rss.time")
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$work" <<PY
import json, sys
from urllib.parse import urlsplit, parse_qs

work = sys.argv[1]
images = sum(1 for _ in open(f"{work}/full.images"))
quarter_images = sum(1 for _ in open(f"{work}/quarter.images"))

def classify(path):
    """Requests of one unpack, by kind."""
    kinds = {}
    for line in open(path):
        method, target = line.rstrip("\n").split(" ", 1)
        url = urlsplit(target)
        query = parse_qs(url.query)
        p = url.path
        if "/blobs/uploads/" in p:
            kind = {"PUT": "blob_put"}.get(method)
            if method == "POST":
                kind = "blob_mount" if "mount" in query else (
                    "blob_post_whole" if "digest" in query else "blob_post")
        elif "/blobs/" in p:
            kind = f"blob_{method.lower()}"
        elif p.endswith("/_catalog"):
            kind = f"catalog_{method.lower()}"
        elif p.endswith("/tags/list"):
            kind = f"tag_list_{method.lower()}"
        elif "/manifests/" in p:
            ref = p.rsplit("/manifests/", 1)[1]
            by = "digest" if ":" in ref else "tag"
            kind = f"manifest_{by}_{method.lower()}"
        else:
            kind = "other"
        kind = kind or f"other_{method.lower()}"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds

first, again = classify(f"{work}/full.first.requests"), classify(f"{work}/full.again.requests")
single = classify(f"{work}/full.single.requests")
s1 = json.load(open(f"{work}/full.first.json"))
s2 = json.load(open(f"{work}/full.again.json"))
s3 = json.load(open(f"{work}/full.single.json"))
k = lambda d, *names: sum(d.get(n, 0) for n in names)
def per_new_blob(kinds, summary):
    """Blob requests of one first unpack, per blob it uploaded or mounted."""
    new = summary["blobs_uploaded"] + summary["blobs_mounted"]
    sent = k(kinds, "blob_head") - summary["blobs_present"] + k(kinds, "blob_post", "blob_post_whole", "blob_mount", "blob_put")
    return round(sent / new, 2) if new else None
tags_first = s1["tags_set"] + s1["tags_unchanged"]
# A top manifest put under its tag is one request for both: it counts as
# the manifest's PUT, and not again as the tag's.
put_under_tag = s1["manifests_pushed"] - k(first, "manifest_digest_put")
manifest_requests = k(first, "manifest_digest_head", "manifest_digest_put") + put_under_tag
tag_requests = k(first, "catalog_get", "tag_list_get", "manifest_tag_head", "manifest_tag_put") - put_under_tag
confirm = s2["manifests_present"] + s2["tags_unchanged"] + s2["tags_set"]

ferry = round($pack_s + $unpack_s, 2)
skopeo = round($skopeo_pack_s + $skopeo_unpack_s, 2)
q = $q_pack + $q_unpack
r = {
    "workload": {"repositories": $repos, "tags": $tags, "images": images},
    "jobs": $jobs,
    "runs": $runs, "ferry_runs": $ferry_runs,
    "registry_storage": "$registry_storage",
    "wall_seconds": {"ferry_pack": $pack_s, "ferry_unpack": $unpack_s, "ferry_unpack_again": $again_s,
                     "skopeo_pack": $skopeo_pack_s, "skopeo_unpack": $skopeo_unpack_s,
                     "quarter_ferry_pack": $q_pack, "quarter_ferry_unpack": $q_unpack},
    "requests": {"unpack": sum(first.values()), "unpack_again": sum(again.values()),
                 "unpack_by_kind": first, "unpack_again_by_kind": again,
                 "unpack_where_single_requests_are_taken_by_kind": single,
                 "again_manifests_plus_tags": confirm},
    "requests_per": {
        "image_unpack": round(sum(first.values()) / images, 2),
        "new_blob": per_new_blob(first, s1),
        "new_blob_where_single_requests_are_taken": per_new_blob(single, s3),
        "new_manifest": round(manifest_requests / s1["manifests_pushed"], 2) if s1["manifests_pushed"] else None,
        "tag": round(tag_requests / tags_first, 2) if tags_first else None,
    },
    "single_request_offers": first.get("blob_post_whole", 0),
    "ferry_over_skopeo": round(ferry / skopeo, 3) if skopeo else None,
    "scaling_4x": round(ferry / q, 2) if q else None,
    "scaling_4x_unpack": round($unpack_s / $q_unpack, 2) if $q_unpack else None,
    "rss": {"images": $rss_count, "unpack_peak_kib": $rss_kib, "push_seconds": $rss_push_s,
            "pack_seconds": $rss_pack_s, "unpack_seconds": $rss_unpack_s} if $rss_count else None,
    "loadavg_before": "$load_before", "loadavg_after": "$load_after",
}
print()
print(f"many small images: {images} images ({$repos} repositories x {$tags} tags); --jobs {$jobs}; "
      f"best of {$runs} run(s), of {$ferry_runs} for ferry's; "
      f"registries' storage in {r['registry_storage']}; "
      f"load average before {r['loadavg_before']}, after {r['loadavg_after']}")
print()
for name, v in r["wall_seconds"].items():
    print(f"  {name:<28}{v:>8} s")
print()
per = r["requests_per"]
print(f"ferry round trip / skopeo      {r['ferry_over_skopeo']}   ({ferry} s / {skopeo} s; target <= 0.15)")
print(f"repeat unpack                  {$again_s} s, {r['requests']['unpack_again']} requests for "
      f"{confirm} manifests + tags   (targets < 0.5 s for 240 images; requests = manifests + tags)")
print(f"requests per image, unpack     {per['image_unpack']}   ({r['requests']['unpack']} requests)")
print(f"requests per new blob          {per['new_blob']}   (HEAD {k(first, 'blob_head')}, POST {k(first, 'blob_post')}, "
      f"single-request POST {k(first, 'blob_post_whole')}, mount {k(first, 'blob_mount')}, PUT {k(first, 'blob_put')}; "
      f"target <= 3, 2 where the registry takes single requests)")
print(f"  where single requests are taken {per['new_blob_where_single_requests_are_taken']}   (single-request POST "
      f"{k(single, 'blob_post_whole')}, POST {k(single, 'blob_post')}, mount {k(single, 'blob_mount')}, PUT {k(single, 'blob_put')}; "
      f"target 2; uploads begun while the first asks go by POST + PUT)")
print(f"requests per new manifest      {per['new_manifest']}   (HEAD {k(first, 'manifest_digest_head')}, "
      f"PUT {k(first, 'manifest_digest_put')}, PUT under its tag {put_under_tag}; target 2)")
print(f"requests per tag               {per['tag']}   (catalog {k(first, 'catalog_get')}, tag lists {k(first, 'tag_list_get')}, HEAD "
      f"{k(first, 'manifest_tag_head')}, PUT {k(first, 'manifest_tag_put') - put_under_tag} besides those "
      f"under a new manifest; target 2)")
print(f"4x the images                  {r['scaling_4x']}x the time pack + unpack, {r['scaling_4x_unpack']}x unpack "
      f"({quarter_images} -> {images} images; target <= 4.2)")
if r["rss"]:
    x = r["rss"]
    per_image = lambda s, n: 1000 * s / n
    print(f"unpack of {x['images']} images      peak RSS {x['unpack_peak_kib'] // 1024} MiB (target <= 64 MB), "
          f"{x['unpack_seconds']} s = {per_image(x['unpack_seconds'], x['images']):.2f} ms/image "
          f"(at {images}: {per_image($unpack_s, images):.2f} ms/image); pack {x['pack_seconds']} s; pushing them took {x['push_seconds']} s")
print()
print("BENCH_SMALL " + json.dumps(r, sort_keys=True))
PY
