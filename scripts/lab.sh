#!/usr/bin/env bash
# ferrolb's netns lab: the seed topology (router rt, client, three nodes) on this machine.
#
#   sudo scripts/lab.sh demo [FLAGS]   build, start the lab and show it working (stays up)
#   sudo scripts/lab.sh up [FLAGS]     build and start the lab, print nothing else
#   sudo scripts/lab.sh status         what runs
#   sudo scripts/lab.sh down           remove everything (always safe)
#
# FLAGS go to `ferrolb-lab demo|up`: --router gobgp|bird|frr, --nodes N, --pods N,
# --policy Local|Cluster, --config FILE, --apiserver real|lab (default: real, the upstream
# kube-apiserver v1.28.7 from ../shared/k8s/ with etcd, when available). See docs/lab.md.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd="${1:-demo}"
shift || true

if [ "$(id -u)" -ne 0 ]; then
  echo "error: the netns lab needs root (network namespaces). Run: sudo $0 $cmd $*" >&2
  exit 1
fi

bin=target/release/ferrolb-lab

case "$cmd" in
  down | status)
    if [ ! -x "$bin" ]; then
      # `down` must work even without a build: remove the namespaces by hand.
      if [ "$cmd" = down ]; then
        for ns in $(ip netns list | awk '{print $1}' | grep '^ferrolb-' || true); do
          for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
          ip netns del "$ns"
        done
        rm -rf /run/ferrolb-lab
        echo "removed the ferrolb-* namespaces"
        exit 0
      fi
      echo "error: $bin is not built; run: sudo $0 up" >&2
      exit 1
    fi
    exec "$bin" "$cmd"
    ;;
  up | demo) ;;
  *)
    echo "usage: $0 demo|up|status|down [FLAGS]" >&2
    exit 2
    ;;
esac

# Debian packages: iproute2 for namespaces, gobgpd (default router), bird2, curl for
# poking at the lab by hand, etcd-server and xz-utils for the real kube-apiserver; frr only
# when asked for.
pkgs=(iproute2 gobgpd bird2 curl etcd-server xz-utils)
for a in "$@"; do
  case "$a" in frr | --router=frr) pkgs+=(frr) ;; esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The packaged daemons are not needed as system services; the lab runs its own.
  for svc in gobgpd bird frr etcd; do systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
fi

cargo build --release -q -p ferrolb-lab -p ferrolb-controller -p ferrolb-speaker
exec "$bin" "$cmd" "$@"
