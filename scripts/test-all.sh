#!/usr/bin/env bash
# The whole ferrolb test suite on a fresh Debian bookworm machine, as root:
# installs what the tests need (real BGP daemons, iproute2, the VM-lab linters), then runs
# every test of the workspace. `.ci/run` runs exactly this, plus fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: real BGP peers and routers (gobgpd, BIRD, FRR), iproute2
# for network namespaces, procps and curl, ansible + ruby + jinja2 to check the Vagrant lab,
# python3-grpcio for the BGP benchmark script's smoke test (it polls gobgpd's gRPC API),
# etcd-server and xz-utils for the real kube-apiserver the Kubernetes tests also run against
# (lab/kubeapi unpacks ../shared/k8s/kube-apiserver-*.xz; with CI=true those tests fail if
# it cannot start).
pkgs=(gobgpd bird2 frr iproute2 procps curl ansible-core ruby python3-jinja2 python3-grpcio etcd-server xz-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# BIRD's and etcd's Debian packages may start system instances; the tests start their own
# (on free ports), so the packaged services are not needed.
systemctl disable --now etcd >/dev/null 2>&1 || true
# Network tests run as root in their own namespaces; nothing else is touched.
# The end-to-end, RBAC and speaker tests run the real binaries: build them once here and
# point the tests at them (otherwise each test binary would build them itself).
cargo build --workspace --bins
export FERROLB_BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug" FERROLB_E2E_NO_BUILD=1
cargo test --workspace --no-fail-fast
