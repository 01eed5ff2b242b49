# skiff — the Makefile is an index; `go build` does the work. `make help` lists targets.
SHELL := /bin/bash
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
export PATH := $(PATH):/usr/local/go/bin
export CGO_ENABLED := 0
BIN := $(CURDIR)/bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
PREFIX ?= /usr

.PHONY: help build skiff deps test unit e2e bench demo install lint clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_./-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

deps: ## install what building and testing need (Debian packages; as root)
	@bash tests/install-deps.sh

build: skiff stage1-ns images ## build bin/skiff, the stage1 images and the test images

skiff: ## build bin/skiff
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/skiff ./stage0

unit: ## run the unit tests (no root needed)
	$(GO) test ./...

e2e: build testhost ## run the end-to-end suite against real pods (as root)
	$(GO) test -tags e2e -p 1 -count=1 -timeout 40m ./tests/... $(E2E_FLAGS)

test: deps build testhost ## everything a release needs: deps, build, the systemd test host, unit and end-to-end tests (as root)
	$(GO) vet ./...
	$(GO) test -tags e2e -p 1 -count=1 -timeout 50m ./... $(E2E_FLAGS)

bench: deps build ## benchmarks: skiff vs bare systemd-nspawn, crun, qemu, side by side (as root)
	$(GO) run ./tests/bench

demo: deps build ## set up and run a real multi-app pod, then show its logs (as root)
	@bash tests/demo.sh

install: build ## install skiff to $(PREFIX)/bin and the stage1 and debug-tools images to $(PREFIX)/lib/skiff
	install -D -m 0755 $(BIN)/skiff $(DESTDIR)$(PREFIX)/bin/skiff
	install -D -m 0644 $(BIN)/stage1-ns.aci $(DESTDIR)$(PREFIX)/lib/skiff/stage1-ns.aci
	install -D -m 0644 $(BIN)/stage1-kvm.aci $(DESTDIR)$(PREFIX)/lib/skiff/stage1-kvm.aci
	install -D -m 0644 $(BIN)/debug-tools.aci $(DESTDIR)$(PREFIX)/lib/skiff/debug-tools.aci

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean: ## remove build output
	rm -rf $(BIN)

-include stage1-ns/build.mk stage1-kvm/build.mk tests/images/build.mk tests/systemdhost/build.mk debug-tools/build.mk
