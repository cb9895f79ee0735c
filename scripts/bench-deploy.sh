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

best() { # CMD... -> "wall cpu": the best wall seconds of $runs runs, and that run's user+sys CPU
  local best= cpu=
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    local w c
    read -r w c < <(awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "$work/time")
    if [[ -z $best ]] || awk -v a="$w" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$w; cpu=$c; fi
  done
  echo "$best $cpu"
}
read -r scan scan_cpu < <(best "$ferry" images "$work/m")
images=$("$ferry" images "$work/m" 2>/dev/null | wc -l)
read -r rewrite rewrite_cpu < <(best "$ferry" rewrite --dry-run --mapping "$work/mapping.json" "$work/m")

python3 - "$files" "$bytes" "$images" "$scan" "$rewrite" "$scan_cpu" "$rewrite_cpu" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
files, size, images = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
scan, rewrite = float(sys.argv[4]), float(sys.argv[5])
scan_cpu, rewrite_cpu = max(float(sys.argv[6]), 0.001), max(float(sys.argv[7]), 0.001)
r = {"files": files, "bytes": size, "images": images, "loadavg": sys.argv[8],
     "images_s": scan, "images_cpu_s": scan_cpu, "images_files_per_s": round(files / scan),
     "images_files_per_cpu_s": round(files / scan_cpu),
     "rewrite_dry_run_s": rewrite, "rewrite_cpu_s": rewrite_cpu,
     "rewrite_files_per_s": round(files / rewrite),
     "rewrite_files_per_cpu_s": round(files / rewrite_cpu)}
print()
print(f"deployment files: {files} manifests, {size / 1e6:.1f} MB, {images} distinct images")
print(f"{'':<31}{'wall s':>8}{'files/s':>10}{'CPU s':>8}{'files/CPU s':>13}   (load average {r['loadavg']})")
print(f"{'ferry images':<31}{scan:>8.2f}{r['images_files_per_s']:>10}{scan_cpu:>8.2f}{r['images_files_per_cpu_s']:>13}   target: seconds")
print(f"{'ferry rewrite --dry-run':<31}{rewrite:>8.2f}{r['rewrite_files_per_s']:>10}{rewrite_cpu:>8.2f}{r['rewrite_files_per_cpu_s']:>13}")
print()
print("BENCH_DEPLOY " + json.dumps(r, sort_keys=True))
PY
