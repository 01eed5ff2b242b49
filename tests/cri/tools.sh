#!/usr/bin/env bash
# tools.sh builds the Kubernetes test tools from the Go module proxy into a cache
# dir, each only when it is missing or at another version:
#
#   tools.sh          crictl, critest, containerd (+ its runc shim), runc
#   tools.sh test     crictl and critest only (what make test needs)
#   tools.sh kubelet  the kubelet alone (5.5 min, 2.3 GB RSS: make test-kubelet)
#
# Cache: $SKIFF_TEST_CACHE/bin (default /var/cache/skiff-test/bin). Each binary
# has a NAME.version file beside it; a binary whose file names another version
# is rebuilt. The CNI plugins are Debian's (/usr/lib/cni, tests/install-deps.sh).
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cache=${SKIFF_TEST_CACHE:-/var/cache/skiff-test}
bin=$cache/bin
mkdir -p "$bin"

CRI_TOOLS=v1.37.0
CONTAINERD=v2.4.2
RUNC=v1.5.3
KUBERNETES=v1.37.2

# fresh NAME VERSION: true when bin/NAME is there at VERSION.
fresh() { [ -x "$bin/$1" ] && [ "$(cat "$bin/$1.version" 2>/dev/null)" = "$2" ]; }
done_() { echo "$2" >"$bin/$1.version"; echo "tools: $1 $2 ($(( $(date +%s) - t0 ))s)"; }

# modsrc MODULE VERSION: a writable copy of the module's source, in a temp dir.
modsrc() {
	local dir
	dir=$(GOFLAGS=-mod=mod go mod download -json "$1@$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -n "$dir" ] || { echo "tools: download $1@$2 failed" >&2; return 1; }
	local tmp
	tmp=$(mktemp -d "$cache/src.XXXXXX")
	cp -r "$dir/." "$tmp"
	chmod -R u+w "$tmp"
	echo "$tmp"
}

# build_kubelet: a scratch module requiring k8s.io/kubernetes with a replace
# line for each staging module its go.mod points at ./staging (but the two
# samples, which the proxy does not serve), then go build; nice, as it takes
# minutes of both cores.
build_kubelet() {
	local mod kgomod staging m
	mod=$(mktemp -d "$cache/kubelet.XXXXXX")
	kgomod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
	staging=$(sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$kgomod" |
		grep -v -e sample-cli-plugin -e sample-controller)
	{
		echo "module skiff.test/kubelet"
		echo "go 1.26"
		echo "require k8s.io/kubernetes $KUBERNETES"
		for m in $staging; do echo "replace $m => $m v0.${KUBERNETES#v1.}"; done
	} >"$mod/go.mod"
	(cd "$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 19 go build -trimpath -o "$bin/kubelet" k8s.io/kubernetes/cmd/kubelet)
	rm -rf "$mod"
}

if [ "${1:-}" = kubelet ]; then
	if ! fresh kubelet $KUBERNETES; then
		t0=$(date +%s)
		build_kubelet
		done_ kubelet $KUBERNETES
	fi
	exit 0
fi

t0=$(date +%s)
if ! fresh crictl $CRI_TOOLS; then
	GOBIN=$bin CGO_ENABLED=0 go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS"
	done_ crictl $CRI_TOOLS
fi

t0=$(date +%s)
if ! fresh critest $CRI_TOOLS; then
	src=$(modsrc sigs.k8s.io/cri-tools $CRI_TOOLS)
	(cd "$src" && CGO_ENABLED=0 go test -c -o "$bin/critest" ./cmd/critest)
	rm -rf "$src"
	done_ critest $CRI_TOOLS
fi

# make test runs critest against skiff only: containerd is the reference of
# the bench and of SKIFF_CRI_REFERENCE=1 runs.
[ "${1:-}" = test ] && exit 0

t0=$(date +%s)
if ! fresh runc $RUNC; then
	# runc needs cgo and libseccomp (libseccomp-dev, tests/install-deps.sh).
	src=$(modsrc github.com/opencontainers/runc $RUNC)
	(cd "$src" && CGO_ENABLED=1 go build -trimpath -tags seccomp -o "$bin/runc" .)
	rm -rf "$src"
	done_ runc $RUNC
fi

t0=$(date +%s)
if ! fresh containerd $CONTAINERD || ! fresh containerd-shim-runc-v2 $CONTAINERD; then
	src=$(modsrc github.com/containerd/containerd/v2 $CONTAINERD)
	(cd "$src" && CGO_ENABLED=0 go build -trimpath -tags 'no_btrfs no_devmapper no_zfs' \
		-o "$bin/containerd" ./cmd/containerd &&
		CGO_ENABLED=0 go build -trimpath -o "$bin/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2)
	rm -rf "$src"
	done_ containerd $CONTAINERD
	done_ containerd-shim-runc-v2 $CONTAINERD
fi

