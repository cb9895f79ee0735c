#!/usr/bin/env bash
# `make bench`: ferry against the scripted skopeo round trip and against the
# raw HTTP transfer floor, on this machine, in one run. See docs/benchmarks.md.
#
#   scripts/bench.sh [--bin DIR] [--scale F] [--jobs N] [--runs N] [--json FILE] [--no-build]
#                    [--pack-runs N]   (runs of the full, split and resumed packs, the serve copies and the delta packs, default 3)
#                    [--small-repos N]   (many-small workload: N repositories x 4 tags, default 60)
#                    [--small-rss-images N]  (peak RSS of unpack at N small images, default 5000; 0 skips)
#                    [--small-registry-storage memory|disk]  (where its registries store, default memory)
#
# Starts four fresh docker-registry processes on loopback (source, ferry
# target, skopeo target, floor target) with storage in one temporary
# directory, pushes the workload (about F GB, default 1) into the source
# once, then times, one after the other:
#   ferry pack, ferry unpack (fresh target), ferry unpack again (everything
#   already there), ferry verify without and with --require-signature (every
#   workload image carries a cosign signature made with a throwaway key);
#   skopeo: per image `skopeo copy --all docker://... oci:DIR:...`, `tar -cf`;
#   then `tar -xf` and per image `skopeo copy --all oci:DIR:... docker://...`;
#   ferry serve: per image `skopeo copy --all` out of `ferry serve BUNDLE`
#   into a local oci: directory, against the same copies out of the source
#   docker-registry holding the same content; then 16 such clients at once,
#   with ferry serve's own peak RSS;
#   the floor: every unique blob fetched once (curl, N at a time) and pushed
#   once (curl POST + monolithic PUT, N at a time); and the fetch again with
#   one sha256 pass per blob (openssl), the least a verifying tool must do;
#   a pack killed (SIGKILL) at about half its bytes, then resumed;
#   then the delta case: the next release (about a tenth of the bytes new)
#   packed full and --since the first bundle, and ferry merge of the two
#   (checked byte-identical to the full pack).
# With --runs N every step runs N times (targets emptied before each run)
# and the best wall time is reported: other processes on the machine only
# ever make a run slower. The full, split and resumed packs run at least
# --pack-runs times, in turn: the media ratios compare them with each
# other, and one run each swings them by a tenth; so do the two skopeo
# copies out of ferry serve and out of docker-registry, alternated too, the
# delta case's full and --since packs, in turn, and the many-small-images
# workload's ferry steps (bench-small.sh --ferry-runs). Each step's CPU
# seconds (its own, and the source registry's while it ran) are reported
# with its best run. Prints a table and the ratios, and one
# machine-readable `BENCH {...}` line.
# Everything it started or wrote is removed on exit.
set -euo pipefail

bin=target/release
scale=1
jobs=8
runs=1
pack_runs=3
json_out=
build=yes
small_repos=60
small_rss_images=5000
small_registry_storage=memory
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --pack-runs) pack_runs=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    --no-build) build=no; shift ;;
    --small-repos) small_repos=$2; shift 2 ;;
    --small-rss-images) small_rss_images=$2; shift 2 ;;
    --small-registry-storage) small_registry_storage=$2; shift 2 ;;
    -h|--help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in docker-registry skopeo curl tar python3 openssl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is missing (run scripts/install-deps.sh)" >&2; exit 1; }
done

if [[ $build == yes ]]; then
  echo "building release binaries..." >&2
  cargo build --release -p ferry-cli -p ferry-testkit >&2
  cargo build --release -p ferry-lanes --example lanes_speed >&2
fi
bin=$(cd "$bin" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench.XXXXXX")
declare -A reg_pid reg_port
cleanup() {
  for p in "${reg_pid[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_registry() { # name [port] -> sets $registry to host:port
  local name=$1 port=${2:-$(free_port)}
  mkdir -p "$work/$name"
  cat > "$work/$name/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $work/$name/data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port}
YAML
  docker-registry serve "$work/$name/config.yml" >"$work/$name/log" 2>&1 &
  reg_pid[$name]=$!
  reg_port[$name]=$port
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$port/v2/" >/dev/null || { echo "bench.sh: registry $name did not start" >&2; cat "$work/$name/log" >&2; exit 1; }
  registry=127.0.0.1:$port
}

# reset_registry NAME: stop it, drop its storage, start it again empty on
# the same port.
reset_registry() {
  local name=$1
  kill "${reg_pid[$name]}" 2>/dev/null || true
  wait "${reg_pid[$name]}" 2>/dev/null || true
  rm -rf "$work/$name/data"
  start_registry "$name" "${reg_port[$name]}"
}

note() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# CPU seconds (user + system) the registries have used so far, together.
clock_ticks=$(getconf CLK_TCK)
registries_cpu() {
  local p total=0
  for p in "${reg_pid[@]}"; do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  awk -v t="$total" -v hz="$clock_ticks" 'BEGIN { printf "%.2f", t / hz }'
}

# measure NAME BEFORE CMD...: $runs times (or $step_runs, when set), run
# BEFORE (untimed: a reset), then CMD under /usr/bin/time -v. Records the
# best wall seconds in wall[NAME], every run's in walls[NAME], the highest
# peak RSS (KiB, largest process of the tree) in rss[NAME], and for the
# best run the CPU seconds of CMD (user + system, its children included) in
# cpu[NAME] and of the registries meanwhile in reg_cpu[NAME].
declare -A wall walls rss cpu reg_cpu
measure() {
  local name=$1 before=$2; shift 2
  local run t0 t1 w r c c0 c1 rc n=${step_runs:-$runs}
  for ((run = 1; run <= n; run++)); do
    $before
    sync # earlier steps' dirty pages and deletions are not this step's cost
    c0=$(registries_cpu)
    t0=$(date +%s.%N)
    if ! /usr/bin/time -v -o "$work/time.$name" "$@" >"$work/out.$name" 2>"$work/err.$name"; then
      echo "bench.sh: step $name failed:" >&2
      tail -n 30 "$work/err.$name" >&2
      exit 1
    fi
    t1=$(date +%s.%N)
    c1=$(registries_cpu)
    w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    r=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.$name")
    c=$(awk -F': ' '/User time|System time/ { t += $2 } END { printf "%.2f", t }' "$work/time.$name")
    rc=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
    walls[$name]="${walls[$name]:-}${walls[$name]:+ }$w"
    if [[ -z ${wall[$name]:-} ]] || awk -v a="$w" -v b="${wall[$name]}" 'BEGIN { exit !(a < b) }'; then
      wall[$name]=$w
      cpu[$name]=$c
      reg_cpu[$name]=$rc
    fi
    if [[ -z ${rss[$name]:-} ]] || ((r > rss[$name])); then rss[$name]=$r; fi
    note "$name run $run/$n: $w s, peak RSS $((r / 1024)) MiB, CPU $c s + registries $rc s"
  done
}

# The skopeo steps and the floor steps, run as `bash -c` children so one
# /usr/bin/time covers each whole step.
skopeo_pack() { # src images-file oci-dir tarball
  local src=$1 images=$2 dir=$3 tarball=$4 ref name
  while read -r ref; do
    name=${ref#"$src/"}
    skopeo copy --quiet --all --src-tls-verify=false "docker://$ref" "oci:$dir:$name"
  done <"$images"
  tar -cf "$tarball" -C "$dir" .
}
skopeo_unpack() { # tarball dir src images-file dst
  local tarball=$1 dir=$2 src=$3 images=$4 dst=$5 ref name
  mkdir -p "$dir"
  tar -xf "$tarball" -C "$dir"
  while read -r ref; do
    name=${ref#"$src/"}
    skopeo copy --quiet --all --dest-tls-verify=false "oci:$dir:$name" "docker://$dst/mirror/$name"
  done <"$images"
}
floor_fetch() { # src blobs-file dir jobs
  local src=$1 blobs=$2 dir=$3 jobs=$4
  mkdir -p "$dir"
  # shellcheck disable=SC2016
  xargs -P "$jobs" -L 1 sh -c 'curl -fsS -o "$0/$3" "http://$1/v2/$2/blobs/$3"' "$dir" "$src" <"$blobs"
}
floor_fetch_verified() { # src blobs-file dir jobs: the floor plus one sha256 pass
  local src=$1 blobs=$2 dir=$3 jobs=$4
  mkdir -p "$dir"
  # shellcheck disable=SC2016
  xargs -P "$jobs" -L 1 sh -c '
    sum=$(curl -fsS "http://$1/v2/$2/blobs/$3" | tee "$0/$3" | openssl dgst -sha256 -r | cut -c1-64)
    [ "sha256:$sum" = "$3" ] || { echo "digest mismatch for $3" >&2; exit 1; }' "$dir" "$src" <"$blobs"
}
floor_push() { # dst blobs-file dir jobs
  local dst=$1 blobs=$2 dir=$3 jobs=$4
  # shellcheck disable=SC2016
  xargs -P "$jobs" -L 1 sh -c '
    loc=$(curl -fsS -X POST -o /dev/null -D - "http://$1/v2/floor/blobs/uploads/" | tr -d "\r" | sed -n "s/^[Ll]ocation: //p")
    case $loc in http*) ;; *) loc="http://$1$loc" ;; esac
    case $loc in *\?*) sep="&" ;; *) sep="?" ;; esac
    curl -fsS -o /dev/null -X PUT -H "Expect:" -H "Content-Type: application/octet-stream" \
      -T "$0/$3" "$loc${sep}digest=$3"' "$dir" "$dst" <"$blobs"
}
copy_out() { # registry images-file dir: every image out of a registry, one at a time
  local reg=$1 list=$2 dir=$3 ref path
  rm -rf "$dir"; mkdir -p "$dir"
  while read -r ref; do
    path=${ref#*/}
    skopeo copy --quiet --all --src-tls-verify=false "docker://$reg/$path" "oci:$dir/$(echo "$path" | tr '/:@' '___'):x"
  done <"$list"
}
copy_out_parallel() { # registry images-file dir clients
  local i
  for ((i = 0; i < $4; i++)); do copy_out "$1" "$2" "$3/$i" & done
  wait
}
export -f skopeo_pack skopeo_unpack floor_fetch floor_fetch_verified floor_push copy_out copy_out_parallel

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

note "starting registries"
start_registry source; src=$registry
start_registry ferry-target; ferry_dst=$registry
start_registry skopeo-target; skopeo_dst=$registry
start_registry floor-target; floor_dst=$registry

note "pushing the workload (scale $scale) into $src"
"$bin/ferry-fixtures" bench-workload "$src" --scale "$scale" --blobs "$work/blobs.txt" >"$work/images.txt"
cat "$work/images.txt" >&2
blob_count=$(wc -l <"$work/blobs.txt")
blob_bytes=$(awk '{ s += $3 } END { print s }' "$work/blobs.txt")
image_count=$(wc -l <"$work/images.txt")
note "signing every workload image (cosign format, throwaway P-256 key)"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/sign.key" 2>/dev/null
openssl pkey -in "$work/sign.key" -pubout -out "$work/sign.pub"
"$bin/ferry-fixtures" sign "$src" "$work/sign.key" <"$work/images.txt"

# The SHA-256 lanes every pack hashes through (crates/lanes): one, two and
# three streams over the same bytes, on this CPU, measured here while the
# machine is quiet. What a stream costs decides where the media ratios
# can go: a split pack hashes a third stream (each part's), and a resumed
# pack hashes the whole bundle again (see the summary).
lanes_out=$work/lanes.txt
: >"$lanes_out"
if [[ -x $bin/examples/lanes_speed ]]; then
  "$bin/examples/lanes_speed" 512 >"$lanes_out"
  note "sha256 lanes on this CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
  cat "$lanes_out" >&2
fi

have_unpack=yes
probe=$("$bin/ferry" unpack "$work/none.tar" --to 127.0.0.1:1/x --dry-run 2>&1 || true)
if [[ $probe == *"not available"* ]]; then
  have_unpack=no
  note "this ferry build has no unpack yet: its steps are skipped"
fi

mkdir -p "$work/ferry" "$work/skopeo" "$work/floor"
note "ferry pack"
pack_step_runs=$((pack_runs > runs ? pack_runs : runs))
# Each run starts with no bundle at its name, as the split and resumed
# packs do: replacing one means unlinking 1 GB inside the timed run.
pack_full() {
  step_runs=1 measure ferry_pack "rm -f $work/ferry/bundle.tar $work/ferry/bundle.tar.sha256" \
    "$bin/ferry" pack --images-file "$work/images.txt" --plain-http "$src" \
    -o "$work/ferry/bundle.tar" --jobs "$jobs" --quiet
}
pack_full
bundle_bytes=$(stat -c %s "$work/ferry/bundle.tar")
# Media (issue 11): the same pack cut into parts, then with two parity
# parts; one sha256 pass over the bundle is the yardstick for parity. The
# parts are a tenth of the bundle in whole megabytes, as media sizes are
# (4.7G, 25G, 650M; `fat32` is 4 GiB - 64): a multiple of 64 bytes, so each
# part's sha256 runs in step with the whole's (docs/benchmarks.md). The same
# pack at exactly a tenth, an odd byte count, is measured beside it: there
# the part's hash needs its own message schedule.
part_size=$(( (bundle_bytes + 9999999) / 10000000 * 1000000 ))
part_size_odd=$(( (bundle_bytes + 9) / 10 ))
measure sha256_pass : sha256sum "$work/ferry/bundle.tar"
# Resume (issue 11): a pack killed (SIGKILL) once about half of the bundle's
# bytes are on disk (blocks allocated to its partial file), then the same
# command again, timed; byte-identical to the full pack. Optional: the
# source and the image list to use (default: the source registry itself).
half_killed_pack() {
  local from=${1:-$src} images=${2:-$work/images.txt}
  local partial=$work/ferry/resume.tar.partial half=$((bundle_bytes / 2)) used=0 pid
  rm -f "$work/ferry/resume.tar" "$work/ferry/resume.tar".*
  "$bin/ferry" pack --images-file "$images" --plain-http "$from" \
    -o "$work/ferry/resume.tar" --jobs "$jobs" --quiet &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    used=$(($(stat -c '%b * %B' "$partial" 2>/dev/null || echo 0)))
    ((used >= half)) && break
    sleep 0.02
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [[ -f $partial ]] || { echo "bench.sh: the pack to kill finished first" >&2; exit 1; }
  note "killed the pack with $((used / 1000000)) MB of $((bundle_bytes / 1000000)) MB on disk"
}
# The full, split and resumed packs the media ratios compare run in turn,
# --pack-runs rounds (the full pack's first run above is round one's):
# run as three blocks, a slow minute of the VM fell on one block and made
# both ratios (0.79 and 0.47 once, against 1.03-1.15 and 0.60-0.78 in
# alternating pairs).
note "ferry pack --split, and a pack killed at about half its bytes then resumed, in turn with the full pack"
for ((pack_round = 1; pack_round <= pack_step_runs; pack_round++)); do
  ((pack_round == 1)) || pack_full
  step_runs=1 measure ferry_pack_split "rm -f $work/ferry/split.tar.*" "$bin/ferry" pack --images-file "$work/images.txt" \
    --plain-http "$src" -o "$work/ferry/split.tar" --split "$part_size" --jobs "$jobs" --quiet
  step_runs=1 measure ferry_pack_split_odd "rm -f $work/ferry/split.tar.*" "$bin/ferry" pack --images-file "$work/images.txt" \
    --plain-http "$src" -o "$work/ferry/split.tar" --split "$part_size_odd" --jobs "$jobs" --quiet
  step_runs=1 measure ferry_pack_resumed half_killed_pack "$bin/ferry" pack --images-file "$work/images.txt" \
    --plain-http "$src" -o "$work/ferry/resume.tar" --jobs "$jobs" --quiet
done
resume_identical=false
cmp -s "$work/ferry/resume.tar" "$work/ferry/bundle.tar" && resume_identical=true
rm -f "$work/ferry/resume.tar" "$work/ferry/resume.tar".*
# The same two packs from a registry across a 1 Gbit/s link: a FaultProxy
# passing 125 MB/s in front of the source. Over loopback, fetching a byte
# costs about the CPU of hashing it (ferry's and the registry's, on the
# same cores), and a resumed pack must still hash every byte of the bundle
# (the reused half to check it, all of it for the bundle's sha256): there
# the ratio is bound by CPU, not by what was left to fetch.
note "ferry pack, full and resumed after a kill at half, over a 1 Gbit/s link (a proxy passing 125 MB/s), in turn"
"$bin/ferry-fixtures" proxy "$src" "$work/link.log" --rate 125000000 >"$work/link.host" 2>"$work/link.err" &
reg_pid[link]=$!
for _ in $(seq 100); do [[ -s $work/link.host ]] && break; sleep 0.05; done
link=$(cat "$work/link.host")
[[ -n $link ]] || { echo "bench.sh: the link proxy did not start" >&2; cat "$work/link.err" >&2; exit 1; }
sed "s|^$src/|$link/|" "$work/images.txt" >"$work/images-link.txt"
for ((pack_round = 1; pack_round <= pack_step_runs; pack_round++)); do
  step_runs=1 measure ferry_pack_link "rm -f $work/ferry/link.tar" "$bin/ferry" pack --images-file "$work/images-link.txt" \
    --plain-http "$link" -o "$work/ferry/link.tar" --jobs "$jobs" --quiet
  step_runs=1 measure ferry_pack_resumed_link "half_killed_pack $link $work/images-link.txt" "$bin/ferry" pack \
    --images-file "$work/images-link.txt" --plain-http "$link" -o "$work/ferry/resume.tar" --jobs "$jobs" --quiet
done
cmp -s "$work/ferry/resume.tar" "$work/ferry/link.tar" || resume_identical=false
rm -f "$work/ferry/resume.tar" "$work/ferry/resume.tar".* "$work/ferry/link.tar"
kill "${reg_pid[link]}" 2>/dev/null || true
wait "${reg_pid[link]}" 2>/dev/null || true
unset 'reg_pid[link]'
measure ferry_pack_parity2 "rm -f $work/ferry/split.tar.*" "$bin/ferry" pack --images-file "$work/images.txt" \
  --plain-http "$src" -o "$work/ferry/split.tar" --split "$part_size" --parity 2 --jobs "$jobs" --quiet
rm -f "$work/ferry/split.tar.001" "$work/ferry/split.tar.005"
measure ferry_repair2 : "$bin/ferry" repair "$work/ferry/split.tar.000" --quiet
note "ferry verify"
measure ferry_verify : "$bin/ferry" verify "$work/ferry/bundle.tar" --quiet
note "ferry verify --require-signature"
measure ferry_verify_signed : "$bin/ferry" verify "$work/ferry/bundle.tar" --quiet \
  --require-signature "$work/sign.pub"
if [[ $have_unpack == yes ]]; then
  note "ferry unpack into an empty registry"
  measure ferry_unpack "reset_registry ferry-target" "$bin/ferry" unpack "$work/ferry/bundle.tar" --to "$ferry_dst/mirror" \
    --plain-http "$ferry_dst" --mapping "$work/ferry/mapping.json" --jobs "$jobs" --quiet
  note "ferry unpack again (everything is already there)"
  measure ferry_unpack_again : "$bin/ferry" unpack "$work/ferry/bundle.tar" --to "$ferry_dst/mirror" \
    --plain-http "$ferry_dst" --mapping "$work/ferry/mapping-again.json" --jobs "$jobs" --quiet
fi

note "ferry serve: skopeo copy every image out of it, against out of docker-registry"
serve_port=$(free_port)
/usr/bin/time -v -o "$work/time.serve" "$bin/ferry" serve "$work/ferry/bundle.tar" \
  --listen "127.0.0.1:$serve_port" 2>"$work/serve.log" &
serve_time_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$serve_port/v2/" >/dev/null && break; sleep 0.1; done
# Alternated, --pack-runs times each (at least --runs): one run of each
# swung the ratio from 0.81 to 1.25 between two bench runs.
for ((copy_run = 0; copy_run < pack_step_runs; copy_run++)); do
  step_runs=1 measure serve_copy : bash -c 'copy_out "$@"' _ "127.0.0.1:$serve_port" "$work/images.txt" "$work/serve-out"
  step_runs=1 measure registry_copy : bash -c 'copy_out "$@"' _ "$src" "$work/images.txt" "$work/serve-out"
done
note "ferry serve: 16 clients at once"
measure serve_copy_16 : bash -c 'copy_out_parallel "$@"' _ "127.0.0.1:$serve_port" "$work/images.txt" "$work/serve-out" 16
rm -rf "$work/serve-out"
kill -TERM "$(pgrep -P "$serve_time_pid")" 2>/dev/null || true
wait "$serve_time_pid" 2>/dev/null || true
serve_rss=$(awk -F': ' '/Maximum resident set size/ { print int($2 / 1024) }' "$work/time.serve")
note "ferry serve peak RSS: ${serve_rss} MiB"

note "skopeo: copy to oci: + tar"
skopeo_fresh() { rm -rf "$work/skopeo"; mkdir -p "$work/skopeo"; }
measure skopeo_pack skopeo_fresh bash -c 'skopeo_pack "$@"' _ "$src" "$work/images.txt" "$work/skopeo/oci" "$work/skopeo/bundle.tar"
rm -rf "$work/skopeo/oci"
note "skopeo: untar + copy to the registry"
skopeo_reset() { rm -rf "$work/skopeo/extracted"; reset_registry skopeo-target; }
measure skopeo_unpack skopeo_reset bash -c 'skopeo_unpack "$@"' _ "$work/skopeo/bundle.tar" "$work/skopeo/extracted" \
  "$src" "$work/images.txt" "$skopeo_dst"
rm -rf "$work/skopeo"

note "floor: fetch every unique blob once ($jobs at a time)"
floor_fresh() { rm -rf "$work/floor/blobs"; }
measure floor_fetch floor_fresh bash -c 'floor_fetch "$@"' _ "$src" "$work/blobs.txt" "$work/floor/blobs" "$jobs"
note "floor: fetch every unique blob once, hashing it (sha256, openssl)"
measure floor_fetch_verified floor_fresh bash -c 'floor_fetch_verified "$@"' _ "$src" "$work/blobs.txt" "$work/floor/blobs" "$jobs"
note "floor: push every unique blob once ($jobs at a time)"
measure floor_push "reset_registry floor-target" bash -c 'floor_push "$@"' _ "$floor_dst" "$work/blobs.txt" "$work/floor/blobs" "$jobs"

note "delta case: the next release (about a tenth of the bytes new) under the same tags"
"$bin/ferry-fixtures" bench-workload "$src" --scale "$scale" --release 2 --blobs "$work/blobs2.txt" >"$work/images2.txt"
# Bytes of configs and layers the next release has that the first lacks.
changed_bytes=$(awk 'NR == FNR { old[$2] = 1; next } !($2 in old) { s += $3 } END { print s + 0 }' \
  "$work/blobs.txt" "$work/blobs2.txt")
# The two packs the delta ratio compares run in turn, --pack-runs rounds
# (one run each came to 0.15 and 0.19 in two bench runs), each with no
# bundle at its name.
note "ferry pack of the next release, full and --since the first bundle (a delta), in turn"
for ((pack_round = 1; pack_round <= pack_step_runs; pack_round++)); do
  step_runs=1 measure ferry_pack_next "rm -f $work/ferry/next.tar $work/ferry/next.tar.sha256" \
    "$bin/ferry" pack --images-file "$work/images2.txt" --plain-http "$src" \
    -o "$work/ferry/next.tar" --jobs "$jobs" --quiet
  step_runs=1 measure ferry_pack_delta "rm -f $work/ferry/delta.tar $work/ferry/delta.tar.sha256" \
    "$bin/ferry" pack --images-file "$work/images2.txt" --plain-http "$src" \
    --since "$work/ferry/bundle.tar" -o "$work/ferry/delta.tar" --jobs "$jobs" --quiet
done
delta_bytes=$(stat -c %s "$work/ferry/delta.tar")
note "ferry merge: first bundle + delta = the next full bundle"
measure ferry_merge : "$bin/ferry" merge "$work/ferry/bundle.tar" "$work/ferry/delta.tar" \
  -o "$work/ferry/merged.tar" --quiet
merge_identical=false
cmp -s "$work/ferry/merged.tar" "$work/ferry/next.tar" && merge_identical=true
rm -f "$work/ferry/next.tar" "$work/ferry/merged.tar"

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The report.
for name in "${!walls[@]}"; do echo "$name ${walls[$name]}"; done >"$work/walls.txt"
for name in "${!cpu[@]}"; do echo "$name ${cpu[$name]} ${reg_cpu[$name]}"; done >"$work/cpu.txt"
get() { local v=${wall[$1]:-}; echo "${v:-null}"; }
mib() { local v=${rss[$1]:-}; if [[ -n $v ]]; then echo $((v / 1024)); else echo null; fi; }
python3 - "$json_out" "$work/walls.txt" "$work/cpu.txt" "$lanes_out" <<PY
import json, re, sys
w = {k: (None if v == "null" else float(v)) for k, v in {
    "ferry_pack": "$(get ferry_pack)", "ferry_unpack": "$(get ferry_unpack)",
    "ferry_unpack_again": "$(get ferry_unpack_again)",
    "ferry_verify": "$(get ferry_verify)", "ferry_verify_signed": "$(get ferry_verify_signed)",
    "skopeo_pack": "$(get skopeo_pack)", "skopeo_unpack": "$(get skopeo_unpack)",
    "floor_fetch": "$(get floor_fetch)", "floor_fetch_verified": "$(get floor_fetch_verified)",
    "floor_push": "$(get floor_push)", "serve_copy": "$(get serve_copy)",
    "registry_copy": "$(get registry_copy)", "serve_copy_16": "$(get serve_copy_16)",
    "sha256_pass": "$(get sha256_pass)", "ferry_pack_split": "$(get ferry_pack_split)",
    "ferry_pack_split_odd": "$(get ferry_pack_split_odd)",
    "ferry_pack_parity2": "$(get ferry_pack_parity2)", "ferry_repair2": "$(get ferry_repair2)",
    "ferry_pack_next": "$(get ferry_pack_next)", "ferry_pack_delta": "$(get ferry_pack_delta)",
    "ferry_merge": "$(get ferry_merge)", "ferry_pack_resumed": "$(get ferry_pack_resumed)",
    "ferry_pack_link": "$(get ferry_pack_link)",
    "ferry_pack_resumed_link": "$(get ferry_pack_resumed_link)"}.items()}
m = {k: (None if v == "null" else int(v)) for k, v in {
    "ferry_pack": "$(mib ferry_pack)", "ferry_unpack": "$(mib ferry_unpack)",
    "ferry_unpack_again": "$(mib ferry_unpack_again)",
    "ferry_verify": "$(mib ferry_verify)", "ferry_verify_signed": "$(mib ferry_verify_signed)",
    "skopeo_pack": "$(mib skopeo_pack)", "skopeo_unpack": "$(mib skopeo_unpack)",
    "floor_fetch": "$(mib floor_fetch)", "floor_fetch_verified": "$(mib floor_fetch_verified)",
    "floor_push": "$(mib floor_push)",
    "sha256_pass": "$(mib sha256_pass)", "ferry_pack_split": "$(mib ferry_pack_split)",
    "ferry_pack_split_odd": "$(mib ferry_pack_split_odd)",
    "ferry_pack_parity2": "$(mib ferry_pack_parity2)", "ferry_repair2": "$(mib ferry_repair2)",
    "ferry_pack_next": "$(mib ferry_pack_next)", "ferry_pack_delta": "$(mib ferry_pack_delta)",
    "ferry_merge": "$(mib ferry_merge)", "ferry_pack_resumed": "$(mib ferry_pack_resumed)",
    "ferry_pack_link": "$(mib ferry_pack_link)",
    "ferry_pack_resumed_link": "$(mib ferry_pack_resumed_link)"}.items()}
m["serve_16_clients"] = int("${serve_rss:-0}") or None
def ratio(a, b):
    return None if a is None or b is None or b == 0 else round(a / b, 2)
# Each step's best run: CPU seconds of its own, and of the registries.
cpu, reg_cpu = {}, {}
for l in open(sys.argv[3]):
    if l.strip():
        k, c, rc = l.split()
        cpu[k], reg_cpu[k] = float(c), float(rc)
def all_cpu(k):
    return None if k not in cpu else round(cpu[k] + reg_cpu[k], 2)
ferry = None if w["ferry_unpack"] is None else round(w["ferry_pack"] + w["ferry_unpack"], 2)
skopeo = round(w["skopeo_pack"] + w["skopeo_unpack"], 2)
floor = round(w["floor_fetch"] + w["floor_push"], 2)
peaks = [v for k, v in m.items() if k.startswith("ferry") and v is not None]
# Seconds per GB for n lanes together, on the same blocks (lanes_speed).
lanes = {}
for l in open(sys.argv[4]):
    found = re.match(r"(\d) lane\(s\) together, 0 off the others' blocks: ([0-9.]+) s per GB", l)
    if found:
        lanes[found.group(1)] = float(found.group(2))
gb = $bundle_bytes / 1e9
# The SHA unit's own pace: seconds per GB a stream at sha256rnds2's
# throughput (lanes_speed), below which no stream goes.
sha_unit = None
for l in open(sys.argv[4]):
    found = re.search(r"at best ([0-9.]+) s per GB a stream", l)
    if found:
        sha_unit = float(found.group(1))
sha_unit_stream = None if sha_unit is None else round(sha_unit * gb, 2)
# A split pack's least extra work: a third stream over the bundle (the
# part's hash, beside the whole's and the blob's).
third_stream = round((lanes["3"] - lanes["2"]) * gb, 2) if "2" in lanes and "3" in lanes else None
# A resumed pack's least sequential work: the bundle's hash with each
# blob's check, over every byte, as the full pack's.
two_streams = round(lanes["2"] * gb, 2) if "2" in lanes else None
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                  if l.startswith("model name")), None)
# The copy steps' RSS is skopeo's; ferry serve's own is serve_16_clients.
result = {
    "workload": {"scale": float("$scale"), "images": $image_count, "unique_blobs": $blob_count,
                 "blob_bytes": $blob_bytes, "bundle_bytes": $bundle_bytes},
    "jobs": $jobs, "runs": $runs, "pack_runs": $pack_step_runs,
    "all_runs_wall_seconds": {l.split()[0]: [float(x) for x in l.split()[1:]]
                              for l in open(sys.argv[2]) if l.strip()},
    "wall_seconds": w, "peak_rss_mib": m,
    "cpu_seconds": cpu, "registries_cpu_seconds": reg_cpu,
    "ferry_round_trip": ferry, "skopeo_round_trip": skopeo, "floor_round_trip": floor,
    "ratios": {
        "ferry_over_skopeo": ratio(ferry, skopeo),
        "pack_over_floor_fetch": ratio(w["ferry_pack"], w["floor_fetch"]),
        "pack_over_verified_fetch": ratio(w["ferry_pack"], w["floor_fetch_verified"]),
        "unpack_over_floor_push": ratio(w["ferry_unpack"], w["floor_push"]),
        "split_over_unsplit_pack": ratio(w["ferry_pack_split"], w["ferry_pack"]),
        "split_odd_over_unsplit_pack": ratio(w["ferry_pack_split_odd"], w["ferry_pack"]),
        "parity2_over_sha256_pass": ratio(
            None if w["ferry_pack_parity2"] is None or w["ferry_pack_split"] is None
            else max(w["ferry_pack_parity2"] - w["ferry_pack_split"], 0.0), w["sha256_pass"]),
        "serve_over_registry": ratio(w["serve_copy"], w["registry_copy"]),
        "delta_pack_over_full_pack": ratio(w["ferry_pack_delta"], w["ferry_pack_next"]),
        "delta_bytes_over_changed_bytes": ratio($delta_bytes, $changed_bytes),
        "verify_signed_over_verify": ratio(w["ferry_verify_signed"], w["ferry_verify"]),
        "resumed_over_full_pack": ratio(w["ferry_pack_resumed"], w["ferry_pack"]),
        "resumed_over_full_pack_1gbit": ratio(w["ferry_pack_resumed_link"], w["ferry_pack_link"]),
        "split_over_unsplit_pack_cpu": ratio(all_cpu("ferry_pack_split"), all_cpu("ferry_pack")),
        "resumed_over_full_pack_cpu": ratio(all_cpu("ferry_pack_resumed"), all_cpu("ferry_pack")),
    },
    "resume_identical_to_full_pack": "$resume_identical" == "true",
    "delta": {"changed_bytes": $changed_bytes, "delta_bytes": $delta_bytes,
              "merge_identical_to_full_pack": "$merge_identical" == "true"},
    "ferry_peak_rss_mib": max(peaks) if peaks else None,
    "loadavg_before": "$load_before", "loadavg_after": "$load_after",
    "cpu_model": cpu_model, "sha256_lanes_seconds_per_gb": lanes,
    "floors": {
        "split_over_unsplit_pack_cpu": None if third_stream is None or all_cpu("ferry_pack") is None
        else round((all_cpu("ferry_pack") + third_stream) / all_cpu("ferry_pack"), 2),
        "resumed_hash_over_full_pack": ratio(two_streams, w["ferry_pack"]),
        "sha_unit_seconds_per_gb_stream": sha_unit,
    },
}
def s(v, unit=""):
    return "n/a" if v is None else f"{v}{unit}"
rows = [
    ("ferry pack", "ferry_pack"), ("ferry unpack", "ferry_unpack"),
    ("ferry unpack again (all present)", "ferry_unpack_again"),
    ("ferry verify", "ferry_verify"),
    ("ferry verify --require-signature", "ferry_verify_signed"),
    ("skopeo copy x images + tar -c", "skopeo_pack"),
    ("tar -x + skopeo copy x images", "skopeo_unpack"),
    ("floor: curl GET every blob", "floor_fetch"),
    ("floor: curl GET | sha256 every blob", "floor_fetch_verified"),
    ("floor: curl POST+PUT every blob", "floor_push"),
    ("sha256sum of the bundle", "sha256_pass"),
    ("ferry pack --split (10 parts, whole MB)", "ferry_pack_split"),
    ("ferry pack --split (10 parts, odd size)", "ferry_pack_split_odd"),
    ("ferry pack --split --parity 2", "ferry_pack_parity2"),
    ("ferry repair (2 parts lost)", "ferry_repair2"),
    ("ferry pack resumed (killed at half)", "ferry_pack_resumed"),
    ("ferry pack over a 1 Gbit/s link", "ferry_pack_link"),
    ("ferry pack resumed, 1 Gbit/s link", "ferry_pack_resumed_link"),
    ("skopeo copy out of ferry serve", "serve_copy"),
    ("skopeo copy out of docker-registry", "registry_copy"),
    ("16 clients out of ferry serve", "serve_copy_16"),
    ("ferry pack, next release, full", "ferry_pack_next"),
    ("ferry pack, next release, --since", "ferry_pack_delta"),
    ("ferry merge (first + delta)", "ferry_merge"),
]
r = result["ratios"]
print()
print(f"workload: {$image_count} images, {$blob_count} unique blobs, {$blob_bytes / 1e9:.2f} GB; "
      f"bundle {$bundle_bytes / 1e9:.2f} GB; --jobs {$jobs}; best of {$runs} run(s), of {$pack_step_runs} for the full, split and resumed packs; load average before {result['loadavg_before']}, after {result['loadavg_after']}")
print()
print(f"{'step':<38}{'wall s':>9}{'peak RSS MiB':>14}{'CPU s':>8}{'+ registries':>14}")
for label, key in rows:
    print(f"{label:<38}{s(w[key]):>9}{s(m.get(key)):>14}{s(cpu.get(key)):>8}{s(reg_cpu.get(key)):>14}")
print()
print(f"{'ferry pack + unpack':<38}{s(None if ferry is None else round(ferry, 2)):>9}")
print(f"{'skopeo round trip':<38}{round(skopeo, 2):>9}")
print(f"{'floor fetch + push':<38}{round(floor, 2):>9}")
print()
print(f"ferry / skopeo (round trip)    {s(r['ferry_over_skopeo'])}   target <= 0.5")
print(f"ferry pack / floor fetch       {s(r['pack_over_floor_fetch'])}   target <= 1.25")
print(f"ferry pack / verified fetch    {s(r['pack_over_verified_fetch'])}   (the floor plus one sha256 pass)")
print(f"ferry unpack / floor push      {s(r['unpack_over_floor_push'])}   target <= 1.25")
print(f"ferry pack --split / unsplit   {s(r['split_over_unsplit_pack'])}   target <= 1.05")
print(f"  the same in CPU seconds        {s(r['split_over_unsplit_pack_cpu'])}   (ferry's and the registries': "
      f"what the wall ratio comes to when both packs keep every core busy)")
print(f"  parts of an odd byte count     {s(r['split_odd_over_unsplit_pack'])}   (exactly a tenth of the bundle; "
      f"not a multiple of 64 bytes)")
print(f"  its floor here, CPU seconds    {s(result['floors']['split_over_unsplit_pack_cpu'])}   (the unsplit pack's "
      f"CPU plus a third sha256 stream over the bundle, {s(third_stream, ' s')}: the parts' hashes, crates/lanes)")
print(f"  a stream at the SHA unit's pace {s(sha_unit_stream, ' s')}   (sha256rnds2 at its throughput, 32 a block: "
      f"no code hashes a stream over the bundle in less on this CPU)")
print(f"parity N=2 / one sha256 pass   {s(r['parity2_over_sha256_pass'])}   target <= 2 (pack with parity minus pack with split)")
print(f"resumed pack / full pack       {s(r['resumed_over_full_pack'])}   target <= 0.6 (killed at about half its bytes; "
      f"identical: {result['resume_identical_to_full_pack']})")
print(f"  the same in CPU seconds        {s(r['resumed_over_full_pack_cpu'])}")
print(f"  over a 1 Gbit/s link           {s(r['resumed_over_full_pack_1gbit'])}   (the source behind a proxy passing 125 MB/s)")
print(f"  the bundle's hash alone        {s(result['floors']['resumed_hash_over_full_pack'])}   ({s(two_streams, ' s')}: "
      f"the bundle's sha256 and each blob's over every byte, one thread, which a resumed pack does again; its floor)")
print(f"ferry peak RSS                 {s(result['ferry_peak_rss_mib'], ' MiB')}   target < 64 MiB")
print(f"ferry unpack again             {s(w['ferry_unpack_again'], ' s')}   target < 1 s")
print(f"ferry serve / docker-registry  {s(r['serve_over_registry'])}   target <= 1.0 (skopeo copying every image out)")
print(f"ferry serve RSS, 16 clients    {s(m['serve_16_clients'], ' MiB')}   target <= 64 MiB")
print(f"delta pack / full pack         {s(r['delta_pack_over_full_pack'])}   target <= 0.15")
print(f"delta bytes / changed bytes    {s(r['delta_bytes_over_changed_bytes'])}   "
      f"({$delta_bytes / 1e6:.1f} MB delta, {$changed_bytes / 1e6:.1f} MB new; target: changed bytes plus metadata)")
print(f"merge == full pack             {result['delta']['merge_identical_to_full_pack']}")
print(f"verify signed / verify         {s(r['verify_signed_over_verify'])}   target <= 1.05")
line = json.dumps(result, sort_keys=True)
print()
print("BENCH " + line)
if sys.argv[1]:
    with open(sys.argv[1], "w") as f:
        f.write(line + "\n")
PY

if [[ -s $lanes_out ]]; then
  echo
  echo "sha256 lanes (crates/lanes, 512 MiB in memory, measured before the first pack):"
  cat "$lanes_out"
fi

# Deployment files: `ferry images` / `ferry rewrite` over 10,000 manifests.
"$(dirname "$0")/bench-deploy.sh" --bin "$bin" --files 10000

# Many small images (issue 15): N repositories x 4 tags, see bench-small.sh.
"$(dirname "$0")/bench-small.sh" --bin "$bin" --repos "$small_repos" --jobs "$jobs" \
  --rss-images "$small_rss_images" --registry-storage "$small_registry_storage" --runs "$runs" \
  --ferry-runs "$pack_step_runs"
