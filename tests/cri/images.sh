#!/bin/sh
# images.sh builds, offline, the images critest v1.37.0 pulls by their upstream
# names, as one OCI layout (umoci), and lists them:
#
#   images.sh OUT IMAGEBIN
#
# OUT/layout is the OCI layout; OUT/images.txt has one line per image pushed:
# "REF UPSTREAM-NAME", REF the layout's tag. tests/critest_test.go pushes each
# REF with skopeo to a local docker-registry under UPSTREAM-NAME's path, where
# a runtime with per-registry mirrors finds it. The contents are what the specs
# check (read pkg/validate of cri-tools): busybox-static with its applets (the
# default image), the uid/user/group each test-image-* sets, distinct images for
# test-image-1..3 and one for test-image-tags:1..3, a web server named nginx on
# :80 (and :12003 for hostnet-nginx) titled and with a pid file as nginx, busybox
# httpd that logs "httpd", a setuid-root nnp, ipcs, pgrep, and a pause image. IMAGEBIN
# is tests/cri/imagebin built static: it plays nginx, ipcs, pgrep, nnp and pause.
set -eu
out=$1 imagebin=$2
L=$out/layout
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
: >"$out/images.txt"
umoci init --layout "$L"
umoci new --image "$L:empty"

path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# derive FROM TO: unpack FROM into $work/TO, run the caller's edits on
# $root (set here), then repack it as TO with finish.
derive() {
	rm -rf "$work/b"
	umoci unpack --image "$L:$1" "$work/b" >/dev/null
	root=$work/b/rootfs
	to=$2
}
finish() { umoci repack --image "$L:$to" "$work/b"; rm -rf "$work/b"; }
# push REF NAME...: list REF under each upstream NAME.
push() { ref=$1; shift; for n in "$@"; do echo "$ref $n" >>"$out/images.txt"; done; }

# The base: busybox-static, every applet a symlink in /bin, a few users.
derive empty busybox
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/var/run" "$root/root" "$root/usr/bin" "$root/usr/sbin" "$root/usr/local/bin"
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
# imagebin plays ipcs and pgrep here (Debian's busybox has neither) and nginx below.
cp "$imagebin" "$root/usr/local/bin/imagebin"
ln -s ../local/bin/imagebin "$root/usr/bin/ipcs"
ln -s ../local/bin/imagebin "$root/usr/bin/pgrep"
cat >"$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$root/etc/group" <<'G'
root:x:0:
daemon:x:1:
www-data:x:33:
users:x:100:
nogroup:x:65534:
G
finish
umoci config --image "$L:busybox" --config.env "$path" --config.cmd sh
push busybox registry.k8s.io/e2e-test-images/busybox:1.29-2

# The test-image-* family: busybox with a user or a label.
conf() { ref=$1; shift; umoci config --image "$L:busybox" --tag "$ref" "$@"; }
conf user-uid --config.user 1002
push user-uid gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest
conf user-username --config.user www-data
push user-username gcr.io/k8s-staging-cri-tools/test-image-user-username:latest
conf user-uid-group --config.user 1003:users
push user-uid-group gcr.io/k8s-staging-cri-tools/test-image-user-uid-group:latest
conf user-username-group --config.user www-data:www-data
push user-username-group gcr.io/k8s-staging-cri-tools/test-image-user-username-group:latest
for i in 1 2 3; do
	conf "image-$i" --config.label "skiff.test/image=$i"
	push "image-$i" "gcr.io/k8s-staging-cri-tools/test-image-$i:latest"
done
conf image-tags --config.label skiff.test/image=tags
push image-tags gcr.io/k8s-staging-cri-tools/test-image-tags:1 \
	gcr.io/k8s-staging-cri-tools/test-image-tags:2 gcr.io/k8s-staging-cri-tools/test-image-tags:3
conf image-latest --config.label skiff.test/image=latest
push image-latest gcr.io/k8s-staging-cri-tools/test-image-latest:latest
conf image-tag --config.label skiff.test/image=tag
push image-tag gcr.io/k8s-staging-cri-tools/test-image-tag:test gcr.io/k8s-staging-cri-tools/test-image-tag:all

# test-image-predefined-group: default-user (1000) is in group 50000 in /etc/group.
derive busybox predefined-group
echo 'default-user:x:1000:1000:default-user:/home/default-user:/bin/sh' >>"$root/etc/passwd"
printf 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n' >>"$root/etc/group"
finish
umoci config --image "$L:predefined-group" --config.user 1000
push predefined-group gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest

# nginx and hostnet-nginx: the web server, on :80 and on :12003.
derive busybox nginx
ln -s ../local/bin/imagebin "$root/usr/sbin/nginx"
finish
umoci config --image "$L:nginx" --config.entrypoint /usr/sbin/nginx --clear config.cmd --config.exposedports 80/tcp
push nginx registry.k8s.io/e2e-test-images/nginx:1.14-2
umoci config --image "$L:nginx" --tag hostnet-nginx --config.cmd -p --config.cmd 12003
push hostnet-nginx gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest

# httpd: busybox httpd in the foreground, after a line naming it in the log.
derive busybox httpd
mkdir -p "$root/usr/local/apache2/htdocs"
echo '<html><body><h1>It works!</h1></body></html>' >"$root/usr/local/apache2/htdocs/index.html"
finish
umoci config --image "$L:httpd" --config.cmd sh --config.cmd -c \
	--config.cmd 'echo "httpd: serving /usr/local/apache2/htdocs on :80"; exec httpd -f -p 80 -h /usr/local/apache2/htdocs' \
	--config.exposedports 80/tcp
push httpd registry.k8s.io/e2e-test-images/httpd:2.4.39-4

# nonewprivs: a setuid-root program that prints its effective uid.
derive busybox nnp
cp "$imagebin" "$root/usr/local/bin/nnp"
chmod 4755 "$root/usr/local/bin/nnp"
finish
umoci config --image "$L:nnp" --config.entrypoint /usr/local/bin/nnp --clear config.cmd
push nnp registry.k8s.io/e2e-test-images/nonewprivs:1.3

# pause: the sandbox image of containerd and the kubelet, and the image of
# critest's "same image, different registries" spec.
derive empty pause
cp "$imagebin" "$root/pause"
finish
umoci config --image "$L:pause" --config.entrypoint /pause --config.user 65535:65535
push pause registry.k8s.io/pause:3.9 k8s.gcr.io/pause:3.9
# The sandbox image is another image: critest counts pause:3.9's tags.
umoci config --image "$L:pause" --tag pause-sandbox --config.label skiff.test/image=sandbox
push pause-sandbox registry.k8s.io/pause:3.10.2

umoci rm --image "$L:empty"
umoci gc --layout "$L"
