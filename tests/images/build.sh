#!/bin/sh
# build.sh builds the test ACIs from Debian packages; mk/images.mk drives it.
#
#   build.sh busybox OUT.aci
#   build.sh probe   OUT.aci PROBE_BINARY BUSYBOX.aci
#   build.sh probe-layered OUT.aci PROBE_BINARY BUSYBOX.aci   only /probe, depends on busybox by ID
#   build.sh redis   OUT.aci
#   build.sh key     OUT.asc          new throwaway signing key, public part armored
#   build.sh sign    FILE             FILE.asc: detached armored signature
#
# An ACI is a gzipped tar of `manifest` and `rootfs/`. Entries are sorted, with
# numeric owners as staged (root here, so image users keep their uids) and a
# fixed mtime, so the same inputs give the same image ID. Packages come from
# `apt-get download` (after `apt-get update`) into the cache OUT's dir/debs;
# nothing is installed on or started on the host.
set -eu
umask 022
here=$(cd "$(dirname "$0")" && pwd)
cmd=$1 out=$2
dir=$(dirname "$out")
debs=$dir/debs
gnupg=$dir/gnupg
keyid=images@skiff.local
mkdir -p "$dir"

# fetch PKG...: download the packages not yet in the cache, in one go.
fetch() {
	mkdir -p "$debs"
	missing=
	for p in "$@"; do
		ls "$debs/${p}"_*.deb >/dev/null 2>&1 || missing="$missing $p"
	done
	[ -z "$missing" ] || (cd "$debs" && apt-get -qq -o APT::Sandbox::User=root download $missing)
}

deb() { ls "$debs/${1}"_*.deb; }

# version DEB: upstream version, without epoch and Debian revision.
version() { dpkg-deb -f "$1" Version | sed 's/^[0-9]*://; s/-[^-]*$//'; }

# libdeps PKG...: the library packages PKG needs, transitively (first
# alternatives), asking apt-cache once per level because each call is slow.
libdeps() {
	seen=" " todo="$*"
	while [ -n "$todo" ]; do
		new=
		for d in $(apt-cache depends --no-recommends --no-suggests $todo |
			awk '($1 == "Depends:" || $1 == "PreDepends:") && $2 ~ /^lib/ { print $2 }'); do
			case $seen in *" $d "*) ;; *) seen="$seen$d " new="$new $d" ;; esac
		done
		todo=$new
	done
	echo $seen
}

# stage VERSION [BUSYBOX_ID]: a fresh work dir with the manifest.
stage() {
	work=$dir/work/$cmd
	rootfs=$work/rootfs
	rm -rf "$work"
	mkdir -p "$rootfs"
	sed -e "s/@VERSION@/$1/" -e "s/@BUSYBOX_ID@/${2:-}/" "$here/$cmd/manifest.json" >"$work/manifest"
}

# basedirs: mount points and the usual empty directories.
basedirs() {
	mkdir -p "$rootfs/dev" "$rootfs/proc" "$rootfs/sys" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
	chmod 1777 "$rootfs/tmp"
	chmod 0700 "$rootfs/root"
	cp "$here/$cmd/etc/passwd" "$here/$cmd/etc/group" "$rootfs/etc/"
}

# pack: tar + gzip the staged image into $out, atomically.
pack() {
	tar -C "$work" --sort=name --format=gnu --numeric-owner --mtime=@0 \
		--no-acls --no-xattrs --no-selinux -cf - manifest rootfs | gzip -n >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$work"
	rmdir "$dir/work" 2>/dev/null || true
}

case $cmd in
busybox)
	fetch busybox-static
	stage "$(version "$(deb busybox-static)")"
	basedirs
	dpkg-deb --fsys-tarfile "$(deb busybox-static)" | tar -x -C "$rootfs" ./bin/busybox
	for applet in $("$rootfs/bin/busybox" --list-full); do
		[ "$applet" = bin/busybox ] && continue
		mkdir -p "$rootfs/$(dirname "$applet")"
		ln -s /bin/busybox "$rootfs/$applet"
	done
	mkdir -p "$rootfs/home/user"
	chown 1000:1000 "$rootfs/home/user"
	pack
	;;
probe)
	stage 0.1.0
	tar -xzf "$4" -C "$work" --numeric-owner rootfs
	install -m 0755 "$3" "$rootfs/probe"
	pack
	;;
probe-layered)
	# The image ID of an ACI is the sha512 of its uncompressed tar.
	stage 0.1.0 "sha512-$(gzip -dc "$4" | sha512sum | cut -d' ' -f1)"
	install -m 0755 "$3" "$rootfs/probe"
	pack
	;;
redis)
	pkgs="redis-tools $(libdeps redis-tools)"
	fetch $pkgs
	stage "$(version "$(deb redis-tools)")"
	basedirs
	sysroot=$work/sysroot
	for p in $pkgs; do dpkg -x "$(deb "$p")" "$sysroot"; done
	mkdir -p "$rootfs/usr/bin" "$rootfs/lib64" "$rootfs/lib/x86_64-linux-gnu" "$rootfs/var/lib/redis"
	# Debian's redis-server is a link to redis-check-rdb; redis picks its mode by argv[0].
	cp "$sysroot/usr/bin/redis-check-rdb" "$rootfs/usr/bin/redis-server"
	cp "$sysroot/usr/bin/redis-cli" "$rootfs/usr/bin/redis-cli"
	ldso=lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
	cp "$sysroot/$ldso" "$rootfs/$ldso"
	ln -s "/$ldso" "$rootfs/lib64/ld-linux-x86-64.so.2"
	# The shared-library closure, resolved only inside the unpacked packages.
	for bin in redis-server redis-cli; do
		"$sysroot/$ldso" --library-path "$sysroot/lib/x86_64-linux-gnu:$sysroot/usr/lib/x86_64-linux-gnu" \
			--list "$rootfs/usr/bin/$bin" | awk '$2 == "=>" { print $3 }'
	done | sort -u | while read -r lib; do
		case $lib in
		"$sysroot"/*) ;;
		*) echo "build.sh: redis needs $lib, which no downloaded package provides" >&2 && exit 1 ;;
		esac
		mkdir -p "$rootfs/$(dirname "${lib#"$sysroot"/}")"
		cp -L "$lib" "$rootfs/${lib#"$sysroot"/}"
	done
	rm -rf "$sysroot"
	chown 101:101 "$rootfs/var/lib/redis"
	chmod 0750 "$rootfs/var/lib/redis"
	pack
	;;
key)
	rm -rf "$gnupg"
	mkdir -m 0700 "$gnupg"
	gpg --homedir "$gnupg" --batch --quiet --pinentry-mode loopback --passphrase '' \
		--quick-gen-key "skiff test images <$keyid>" rsa2048 sign never
	gpg --homedir "$gnupg" --batch --armor --export "$keyid" >"$out.tmp"
	gpgconf --homedir "$gnupg" --kill gpg-agent
	mv "$out.tmp" "$out"
	;;
sign)
	gpg --homedir "$gnupg" --batch --yes --quiet --armor --local-user "$keyid" \
		--detach-sign --output "$out.asc.tmp" "$out"
	gpgconf --homedir "$gnupg" --kill gpg-agent
	mv "$out.asc.tmp" "$out.asc"
	;;
*)
	echo "build.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
