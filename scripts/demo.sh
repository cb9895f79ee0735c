#!/usr/bin/env bash
# The main job end to end on one machine: a source registry with test
# images, `ferry pack` into one bundle, `ferry inspect` of the bundle, and
# the bundle served as a registry (`ferry serve`), and the relocation into a
# second registry with its mapping.
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

start_registry() { # name -> sets $host; the registry's pid joins $pids
  local name=$1 port
  port=$(free_port)
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

step "ferry pack: every image, its platforms and referrers, into one tarball"
"$bin/ferry" pack --images-file "$work/images.txt" --plain-http "$src" -o "$work/bundle.tar"
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

step "ferry unpack into the private registry, with a relocation mapping"
start_registry private; dst=$host
"$bin/ferry" unpack "$work/bundle.tar" --to "$dst/mirror" --plain-http "$dst" --mapping "$work/mapping.json"
cat "$work/mapping.json"

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

step "done; cleaning up"
