#!/usr/bin/env bash
# The main job end to end on one machine: a source registry with test
# images, `ferry pack` into one bundle, `ferry inspect` of the bundle, and
# the bundle served as a registry (`ferry serve`), and the relocation into a
# second registry with its mapping; image signatures required at pack and
# unpack, a signed bundle, and what changed between two bundles; parts and
# parity for media, a pack resumed after the link dropped, next month's
# delta and its merge.
set -euo pipefail
bin=${1:-target/release}
bin=$(cd "$bin" && pwd)
work=$(mktemp -d -t ferry-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_registry() { # name [port] -> sets $host; the registry's pid joins $pids
  local name=$1 port=${2:-}
  [ -n "$port" ] || port=$(free_port)
  mkdir -p "$work/$name"
  cat > "$work/$name/config.yml" <<YAML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $work/$name/data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port}
YAML
  docker-registry serve "$work/$name/config.yml" >"$work/$name/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  host="127.0.0.1:$port"
}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "start a source registry and load test images into it"
start_registry source; src=$host
"$bin/ferry-fixtures" push "$src" > "$work/images.txt"
cat "$work/images.txt"

step "the vendor signs its images (cosign format); our build side has its own key"
for who in vendor build; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$who.key" 2>/dev/null
  openssl pkey -in "$work/$who.key" -pubout -out "$work/$who.pub"
done
"$bin/ferry-fixtures" sign "$src" "$work/vendor.key" < "$work/images.txt"

step "ferry pack: signed images only, every platform and referrer, one signed tarball"
"$bin/ferry" pack --images-file "$work/images.txt" --plain-http "$src" -o "$work/bundle.tar" \
  --require-signature "$work/vendor.pub" --sign "$work/build.key"
(cd "$work" && sha256sum -c bundle.tar.sha256)

step "pack again in another order: the bundle is byte-identical"
sort -r "$work/images.txt" > "$work/images-reversed.txt"
"$bin/ferry" pack --images-file "$work/images-reversed.txt" --plain-http "$src" -o "$work/again.tar" --quiet
cmp "$work/bundle.tar" "$work/again.tar" && echo "identical: $(sha256sum < "$work/again.tar" | cut -c1-64)"

step "for media with size limits: the same pack in 10 KB parts with 2 parity parts"
"$bin/ferry" pack --images-file "$work/images.txt" --plain-http "$src" -o "$work/media.tar" \
  --split 10K --parity 2 --quiet
(cd "$work" && sha256sum -c --ignore-missing media.tar.sha256 | tail -3)
cmp <(cat "$work"/media.tar.[0-9]*) "$work/bundle.tar" && echo "the parts, concatenated, are bundle.tar"
rm "$work/media.tar.001"; printf 'x' | dd of="$work/media.tar.002" bs=1 seek=100 conv=notrunc 2>/dev/null
"$bin/ferry" verify "$work/media.tar.000" | grep -E '^(parts|verify)' || true
"$bin/ferry" repair "$work/media.tar.000"
"$bin/ferry" verify "$work/media.tar.000" | tail -2

step "ferry inspect: what the bundle holds, offline"
"$bin/ferry" inspect "$work/bundle.tar"

step "ferry diff: what changed since a smaller bundle"
head -n 2 "$work/images.txt" > "$work/images-last-time.txt"
"$bin/ferry" pack --images-file "$work/images-last-time.txt" --plain-http "$src" -o "$work/last-time.tar" --quiet
"$bin/ferry" diff "$work/last-time.tar" "$work/bundle.tar" | tail -n 1

step "stop the source registry: from here on, we are offline"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true

step "no registry yet: ferry serve the bundle, and skopeo inspect from it"
serve_port=$(free_port)
"$bin/ferry" serve "$work/bundle.tar" --listen "127.0.0.1:$serve_port" 2>"$work/serve.log" &
serve_pid=$!; pids+=($serve_pid)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$serve_port/v2/" >/dev/null && break; sleep 0.1; done
first=$(head -1 "$work/images.txt"); path=${first#*/}
skopeo inspect --tls-verify=false --format '{{.Name}} {{.Digest}}' "docker://127.0.0.1:$serve_port/$path"
kill -TERM "$serve_pid"; wait "$serve_pid" 2>/dev/null || true

step "across the gap: the bundle is ours (plain openssl can tell too) and every image is the vendor's"
(cd "$work" && sed -n 's/^signature //p' bundle.tar.sig | base64 -d > bundle.tar.sig.der &&
  openssl dgst -sha256 -verify build.pub -signature bundle.tar.sig.der bundle.tar)
"$bin/ferry" verify "$work/bundle.tar" --bundle-key "$work/build.pub" --require-signature "$work/vendor.pub" | tail -n 1

step "ferry unpack into the private registry, signatures checked first, with a relocation mapping"
start_registry private; dst=$host
"$bin/ferry" unpack "$work/bundle.tar" --to "$dst/mirror" --plain-http "$dst" --mapping "$work/mapping.json" \
  --receipt "$work/receipt.json" --bundle-key "$work/build.pub" --require-signature "$work/vendor.pub"
cat "$work/mapping.json"
echo "receipt: $(grep -c '"digest"' "$work/receipt.json") digests the site holds, sent back across the gap"

step "ferry verify the archive, and the relocation against the private registry"
"$bin/ferry" verify "$work/bundle.tar" | tail -1
"$bin/ferry" verify --mapping "$work/mapping.json" --plain-http "$dst"

step "the site's manifests: which images they name, and pointing them at the private registry"
# fixtures/deploy/site names the test images under a placeholder host.
mkdir -p "$work/site"
cp -r "$(dirname "$0")/../fixtures/deploy/site/." "$work/site/"
grep -rl registry.example:5000 "$work/site" | xargs sed -i "s/registry.example:5000/$src/g"
"$bin/ferry" images "$work/site"
"$bin/ferry" rewrite --mapping "$work/mapping.json" --dry-run "$work/site/deployment.yaml"
"$bin/ferry" rewrite --mapping "$work/mapping.json" --strict "$work/site"
"$bin/ferry" mapping "$work/mapping.json" --format registries-yaml --plain-http | head -8

step "next month: the source gains a new image; pack only what the site lacks (--since its receipt)"
start_registry source "${src##*:}"; src=$host; source_pid=${pids[-1]}
"$bin/ferry-fixtures" push "$src" --big-layer-bytes 8000000 > "$work/images-next.txt"
"$bin/ferry" pack --images-file "$work/images-next.txt" --plain-http "$src" --since "$work/receipt.json" -o "$work/delta.tar"
"$bin/ferry" pack --images-file "$work/images-next.txt" --plain-http "$src" -o "$work/full-next.tar" --quiet
ls -l "$work/delta.tar" "$work/full-next.tar" | awk '{print $5, $NF}'

step "the link drops mid-pack: the same command again resumes where it stopped"
# A proxy in front of the source lets 5 MB of blobs through, then goes
# silent (a dead link) until $work/link-up exists.
"$bin/ferry-fixtures" proxy "$src" "$work/proxy.log" --stall-after 5000000 \
  --lift-when "$work/link-up" > "$work/proxy.host" &
pids+=($!); proxy_pid=$!
for _ in $(seq 100); do [ -s "$work/proxy.host" ] && break; sleep 0.05; done
via=$(cat "$work/proxy.host")
sed "s#^$src/#$via/#" "$work/images-next.txt" > "$work/images-via.txt"
pack_via() { # output [options]
  local out=$1; shift
  "$bin/ferry" pack --images-file "$work/images-via.txt" --plain-http "$via" \
    -o "$work/$out" --timeout 2 --retries 1 "$@"
}
pack_via resumed.tar 2>&1 | tail -2 || true
ls "$work" | grep '^resumed' || true
touch "$work/link-up"; sleep 0.1
pack_via resumed.tar | grep -E '^(resumed|sha256)'
pack_via uninterrupted.tar --quiet
cmp "$work/resumed.tar" "$work/uninterrupted.tar" && echo "byte-identical to an uninterrupted pack"

step "offline again: verify the delta, then load it into the private registry"
for p in "$proxy_pid" "$source_pid"; do kill "$p"; wait "$p" 2>/dev/null || true; done
"$bin/ferry" verify "$work/delta.tar" | tail -2
"$bin/ferry" unpack "$work/delta.tar" --to "$dst/mirror" --plain-http "$dst" --mapping "$work/mapping-next.json" | tail -1

step "ferry merge: last month's bundle + the delta = this month's full bundle, byte for byte"
"$bin/ferry" merge "$work/bundle.tar" "$work/delta.tar" -o "$work/merged.tar"
cmp "$work/merged.tar" "$work/full-next.tar" && echo "identical to a full pack: $(cut -c1-64 "$work/merged.tar.sha256")"

step "done; cleaning up"
