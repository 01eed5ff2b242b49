# skiff — the Makefile is an index; `go build` does the work. `make help` lists targets.
SHELL := /bin/bash
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
export PATH := $(PATH):/usr/local/go/bin
export CGO_ENABLED := 0
BIN := $(CURDIR)/bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
PREFIX ?= /usr

.PHONY: help build skiff man completion deb deps cri-tools cri-test-tools test test-kubelet unit e2e bench demo install lint clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_./-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

deps: ## install what building and testing need (Debian packages; as root)
	@bash tests/install-deps.sh

build: skiff stage1-ns images ## build bin/skiff, the stage1 images and the test images

skiff: ## build bin/skiff
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/skiff ./stage0

man: skiff ## write a man page per command to bin/man/ (from the cobra commands)
	rm -rf $(BIN)/man
	$(BIN)/skiff gen-man $(BIN)/man

completion: skiff ## write the bash, zsh and fish completion scripts to bin/completion/
	@mkdir -p $(BIN)/completion
	$(BIN)/skiff completion bash >$(BIN)/completion/skiff.bash
	$(BIN)/skiff completion zsh >$(BIN)/completion/_skiff
	$(BIN)/skiff completion fish >$(BIN)/completion/skiff.fish

unit: ## run the unit tests (no root needed)
	$(GO) test ./...

e2e: build testhost deb cri-test-tools ## run the end-to-end suite against real pods (as root)
	SKIFF_KUBELET=1 $(GO) test -tags e2e -p 1 -count=1 -timeout 60m ./tests/... $(E2E_FLAGS)

cri-tools: ## build crictl, critest, containerd and runc from the module proxy into /var/cache/skiff-test/bin (each once; as root)
	@bash tests/cri/tools.sh

cri-test-tools: ## build crictl, critest and the kubelet (what make test needs; each once; as root)
	@bash tests/cri/tools.sh test
	@bash tests/cri/tools.sh kubelet

test: deps build testhost deb cri-test-tools ## everything a release needs: deps, build, the systemd test host, unit and end-to-end tests (as root)
	$(GO) vet ./...
	SKIFF_KUBELET=1 $(GO) test -tags e2e -p 1 -count=1 -timeout 70m ./... $(E2E_FLAGS)

test-kubelet: deps build cri-tools cri-test-tools ## the kubelet checks alone, on containerd (the reference) and skiff cri (as root)
	SKIFF_KUBELET=1 SKIFF_CRI_REFERENCE=1 $(GO) test -tags e2e -p 1 -count=1 -timeout 30m -run 'TestKubelet' ./tests/ $(E2E_FLAGS)

bench: deps build cri-tools ## benchmarks: skiff vs bare systemd-nspawn, crun, qemu, side by side (as root)
	$(GO) run ./tests/bench

demo: deps build ## set up and run a real multi-app pod, then show its logs (as root)
	@bash tests/demo.sh

install: build man completion ## install skiff to $(PREFIX)/bin, the stage1 and debug-tools images to $(PREFIX)/lib/skiff, man pages and completion
	install -D -m 0755 $(BIN)/skiff $(DESTDIR)$(PREFIX)/bin/skiff
	install -D -m 0644 $(BIN)/stage1-ns.aci $(DESTDIR)$(PREFIX)/lib/skiff/stage1-ns.aci
	install -D -m 0644 $(BIN)/stage1-kvm.aci $(DESTDIR)$(PREFIX)/lib/skiff/stage1-kvm.aci
	install -D -m 0644 $(BIN)/debug-tools.aci $(DESTDIR)$(PREFIX)/lib/skiff/debug-tools.aci
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 $(BIN)/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -D -m 0644 $(BIN)/completion/skiff.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/skiff
	install -D -m 0644 $(BIN)/completion/_skiff $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_skiff
	install -D -m 0644 $(BIN)/completion/skiff.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/skiff.fish

DEB_VERSION ?= 0.0~git$(shell git rev-parse --short HEAD 2>/dev/null || echo 0)
DEB := $(BIN)/skiff_$(DEB_VERSION)_amd64.deb

deb: build ## build bin/skiff_VERSION_amd64.deb: skiff, both stage1 images, man pages, completion, the gc timer, the skiff group
	rm -rf $(BIN)/deb && $(MAKE) --no-print-directory install DESTDIR=$(BIN)/deb PREFIX=/usr >/dev/null
	gzip -9n $(BIN)/deb/usr/share/man/man1/*.1
	install -D -m 0644 packaging/systemd/skiff-gc.service $(BIN)/deb/usr/lib/systemd/system/skiff-gc.service
	install -D -m 0644 packaging/systemd/skiff-gc.timer $(BIN)/deb/usr/lib/systemd/system/skiff-gc.timer
	install -D -m 0755 packaging/deb/postinst $(BIN)/deb/DEBIAN/postinst
	install -D -m 0755 packaging/deb/prerm $(BIN)/deb/DEBIAN/prerm
	sed -e 's/@VERSION@/$(DEB_VERSION)/' -e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(BIN)/deb | cut -f1)/" packaging/deb/control.in >$(BIN)/deb/DEBIAN/control
	dpkg-deb --root-owner-group -Zxz --build $(BIN)/deb $(DEB)

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean: ## remove build output
	rm -rf $(BIN)

-include stage1-ns/build.mk stage1-kvm/build.mk tests/images/build.mk tests/systemdhost/build.mk debug-tools/build.mk
