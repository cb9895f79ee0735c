#!/usr/bin/env bash
# Deployment files at scale: `ferry images` and `ferry rewrite --dry-run`
# over N generated manifest files (default 10,000: Deployments with an init
# container and two containers, a Service, CronJobs, Helm values in the
# split shape), reported in files per second. Run by scripts/bench.sh after
# its transfer benchmark; runs alone too:
#
#   scripts/bench-deploy.sh [--bin DIR] [--files N] [--runs N]
#
# No registry is involved: both commands only read files. Prints one
# `BENCH_DEPLOY {...}` line. Everything it wrote is removed on exit.
set -euo pipefail

bin=target/release
files=10000
runs=3
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-deploy.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
ferry=$(cd "$bin" && pwd)/ferry
[[ -x $ferry ]] || { echo "bench-deploy.sh: no ferry binary in $bin (cargo build --release -p ferry-cli)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-deploy.XXXXXX")
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$files" <<'PY'
import json, os, sys
work, n = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{work}/m", exist_ok=True)
mapping = {}
digest = "sha256:" + "ab" * 32
def img(i, k):
    ref = f"registry.example:5000/team{i % 50}/app{k}-{i % 200}:1.{i % 7}"
    mapping[ref] = f"reg.internal/mirror/team{i % 50}-app{k}-{i % 200}:1.{i % 7}@{digest}"
    return ref
for i in range(n):
    d = f"{work}/m/ns{i % 100}"
    os.makedirs(d, exist_ok=True)
    if i % 10 == 9:
        text = f"""# values for component {i}
replicaCount: 2
image:
  registry: registry.example:5000
  repository: team{i % 50}/app3-{i % 200}
  tag: "1.{i % 7}"
  digest: ""
resources:
  limits: {{cpu: 500m, memory: 256Mi}}
"""
        mapping[f"registry.example:5000/team{i % 50}/app3-{i % 200}:1.{i % 7}"] = f"reg.internal/mirror/x{i % 50}-{i % 200}:1.{i % 7}@{digest}"
    elif i % 10 == 8:
        text = f"""apiVersion: batch/v1
kind: CronJob
metadata:
  name: job-{i}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: job
            image: {img(i, 2)}
"""
    else:
        text = f"""# deployment {i}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  labels: {{app: app-{i}, tier: web}}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: app-{i}}}
  template:
    metadata:
      labels: {{app: app-{i}}}
    spec:
      initContainers:
      - name: init
        image: "{img(i, 0)}"
        command: ["/bin/init", "--wait"]
      containers:
      - name: main
        image: {img(i, 1)}
        ports: [{{containerPort: 8080}}]
        env:
        - {{name: MODE, value: production}}
        resources:
          requests: {{cpu: 100m, memory: 128Mi}}
      - name: sidecar
        image: '{img(i + 1, 1)}'
---
apiVersion: v1
kind: Service
metadata:
  name: app-{i}
spec:
  selector: {{app: app-{i}}}
  ports: [{{port: 80, targetPort: 8080}}]
"""
    with open(f"{d}/f{i}.yaml", "w") as f:
        f.write(text)
with open(f"{work}/mapping.json", "w") as f:
    json.dump(mapping, f, sort_keys=True)
PY
bytes=$(du -sb "$work/m" | cut -f1)

best() { # CMD... -> best wall seconds of $runs runs
  local best=
  for _ in $(seq "$runs"); do
    local t0 t1 w
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    t1=$(date +%s.%N)
    w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    if [[ -z $best ]] || awk -v a="$w" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$w; fi
  done
  echo "$best"
}
scan=$(best "$ferry" images "$work/m")
images=$("$ferry" images "$work/m" 2>/dev/null | wc -l)
rewrite=$(best "$ferry" rewrite --dry-run --mapping "$work/mapping.json" "$work/m")

python3 - "$files" "$bytes" "$images" "$scan" "$rewrite" <<'PY'
import json, sys
files, size, images = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
scan, rewrite = float(sys.argv[4]), float(sys.argv[5])
r = {"files": files, "bytes": size, "images": images,
     "images_s": scan, "images_files_per_s": round(files / scan),
     "rewrite_dry_run_s": rewrite, "rewrite_files_per_s": round(files / rewrite)}
print()
print(f"deployment files: {files} manifests, {size / 1e6:.1f} MB, {images} distinct images")
print(f"ferry images                   {scan:>7.2f} s   {r['images_files_per_s']:>7} files/s   target: seconds")
print(f"ferry rewrite --dry-run        {rewrite:>7.2f} s   {r['rewrite_files_per_s']:>7} files/s")
print()
print("BENCH_DEPLOY " + json.dumps(r, sort_keys=True))
PY
