#!/usr/bin/env bash
# Installs the Debian packages skiff's build, tests, benchmarks and demo use.
# Idempotent and quick when everything is there. Needs root.
set -euo pipefail
pkgs=(
  systemd systemd-container       # stage1-ns systemd pieces; nspawn; journalctl
  qemu-system-x86                 # stage1-kvm
  debootstrap                     # the systemd test host
  busybox-static gnupg xz-utils bzip2 cpio
  runc crun hyperfine strace      # benchmark peers and the breakdown
  docker-registry skopeo umoci    # OCI image tests: a real registry, images built and pushed
  podman                          # docker-archive test images (podman save); the OCI benchmark peer
  iproute2 util-linux ca-certificates
  containernetworking-plugins iptables   # pod networks (pkg/cni: bridge, host-local, portmap, firewall)
  podman iperf3                   # the net benchmark: throughput against podman's bridge
  gcc libc6-dev libseccomp-dev pkg-config  # runc from the module proxy (tests/cri/tools.sh): cgo + libseccomp
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
export DEBIAN_FRONTEND=noninteractive
# The image and guest-kernel recipes use `apt-get download`: they need package
# lists even when every package here is already installed.
if ((${#missing[@]})) || ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
  apt-get update -qq
fi
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
