#!/usr/bin/env bash
# Install what ferry's tests and demo need on a Debian machine: a real
# registry (distribution's docker-registry) and skopeo/podman/containerd for interop.
# Every tool a test runs is here: a test whose tool is missing fails and
# names it (ferry_testkit::require_tool), it never skips.
set -euo pipefail
need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v containerd >/dev/null 2>&1 || need+=(containerd)  # ferry serve: ctr pulls
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v sha256sum >/dev/null 2>&1 || need+=(coreutils)  # OUT.sha256 checks
command -v tar >/dev/null 2>&1 || need+=(tar)              # GNU tar reads bundles
command -v mount >/dev/null 2>&1 || need+=(mount)          # tmpfs for disk-full tests
command -v python3 >/dev/null 2>&1 || need+=(python3)   # demo and bench helpers
[ -x /usr/bin/time ] || need+=(time)                      # bench: peak memory
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The package may start a registry service on :5000; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry 2>/dev/null || true
fi
exit 0
