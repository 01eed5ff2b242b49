#!/bin/sh
# build.sh OUTDIR — build the KVM guest: OUTDIR/vmlinux (uncompressed PVH
# kernel from Debian's linux-image-6.1.*-amd64-unsigned) and
# OUTDIR/initramfs.cpio (the Go init plus the virtio/9p modules it loads).
# Needs Debian 12 with apt sources, dpkg, xz-utils and Go. The kernel .deb
# is cached in OUTDIR/cache; delete it to pick up a newer kernel.
set -eu
out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out/cache"
out=$(cd "$out" && pwd)

deb=$(ls "$out"/cache/linux-image-6.1.*-amd64-unsigned_*.deb 2>/dev/null | tail -n 1 || true)
if [ -z "$deb" ]; then
	# Newest 6.1 ABI in the archive; the -unsigned package is the plain kernel.
	pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' |
		cut -d' ' -f1 | sort -V | tail -n 1)
	[ -n "$pkg" ] || { echo "build.sh: no linux-image-6.1.*-amd64-unsigned in apt (run apt-get update)" >&2; exit 1; }
	# _apt cannot write into root-owned dirs; download from a world-writable one.
	tmp=$(mktemp -d) && chmod 777 "$tmp"
	(cd "$tmp" && apt-get download -q "$pkg")
	mv "$tmp"/*.deb "$out/cache/" && rmdir "$tmp"
	deb=$(ls "$out"/cache/linux-image-6.1.*-amd64-unsigned_*.deb | tail -n 1)
fi

x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
dpkg -x "$deb" "$x/pkg"
cd "$here/../.."  # module root
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$x/init" ./stage1-kvm/guest/init
CGO_ENABLED=0 go run ./stage1-kvm/guest/mkguest \
	-kernel "$(ls "$x"/pkg/boot/vmlinuz-*)" \
	-modules "$(ls -d "$x"/pkg/lib/modules/*)" \
	-init "$x/init" -out "$out"
ls -l "$out/vmlinux" "$out/initramfs.cpio"
