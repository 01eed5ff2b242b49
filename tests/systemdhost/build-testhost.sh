#!/bin/sh
# build-testhost.sh ROOT [MIRROR]
#
# Builds the systemd test host: a Debian bookworm minbase root that boots with
# `systemd-nspawn -b` and can itself run nested systemd-nspawn pods registered
# with machined. The tree is built in ROOT.tmp and renamed to ROOT only after
# the .complete marker is written, so a cut-short build is never reused.
# With FRESH=1 an existing ROOT is rebuilt (CI does this).
set -eu

root=${1:?usage: build-testhost.sh ROOT [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}

# procps for ps/pkill while debugging a pod; qemu-system-x86 for stage1-kvm
# pods (TCG: the host needs no /dev/kvm; its Depends bring microvm's qboot.rom);
# the rest is what systemd, machined and a nested nspawn need.
pkgs=systemd,systemd-sysv,dbus,systemd-container,iproute2,util-linux,procps,qemu-system-x86

# .complete holds the package list it was built with: a cached root from an
# older list is rebuilt, not reused.
if [ "$(cat "$root/.complete" 2>/dev/null)" = "$pkgs" ] && [ "${FRESH:-0}" != 1 ]; then
	echo "testhost: reusing $root"
	exit 0
fi

tmp=$root.tmp
rm -rf "$tmp"
start=$(date +%s)
debootstrap --variant=minbase --include="$pkgs" bookworm "$tmp" "$mirror"

# An empty machine-id: systemd then takes the id nspawn passes (--uuid, random
# by default) without treating the boot as a first boot. Every boot of the
# host, and every nested pod booted from this same tree, gets its own id, as a
# skiff pod does; equal host and pod ids would stop --link-journal.
: >"$tmp/etc/machine-id"
# dbus's postinst copied the build-time id; systemd would fall back to it.
ln -sf /etc/machine-id "$tmp/var/lib/dbus/machine-id"

# Units that wait for a terminal, hardware or the network: in an nspawn
# container they either fail or hold up boot.
for u in getty.target console-getty.service getty@tty1.service \
	systemd-networkd-wait-online.service systemd-timesyncd.service \
	e2scrub_all.timer e2scrub_reap.service fstrim.timer apt-daily.timer \
	apt-daily-upgrade.timer man-db.timer; do
	chroot "$tmp" systemctl mask --quiet "$u"
done

# Persistent journal, so `journalctl` inside the host behaves as on a real one.
mkdir -p "$tmp/var/log/journal" "$tmp/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=persistent\n' >"$tmp/etc/systemd/journald.conf.d/persistent.conf"

# No hostname: nspawn names each host and nested pod after its -M.
rm -f "$tmp/etc/hostname"
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*

sync -f "$tmp"
echo "$pkgs" >"$tmp/.complete"
rm -rf "$root"
mv "$tmp" "$root"
echo "testhost: built $root in $(($(date +%s) - start))s, $(du -sh "$root" | cut -f1)"
