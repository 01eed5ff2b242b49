# The namespace stage1 image: the stage1-ns and stage2 binaries plus the
# build host's systemd (Debian 12: systemd 252), see stage1-ns/mkimage/image.go.

STAGE1_NS_VERSION ?= 0.0.0
STAGE1_NS_GOFLAGS := -trimpath -ldflags='-s -w'

.PHONY: stage1-ns stage1-ns-deps test-stage1-ns

stage1-ns: bin/stage1-ns.aci ## build bin/stage1-ns.aci, the namespace stage1 image

stage1-ns-deps: ## install what building and running stage1-ns pods needs (as root)
	@test -x /usr/lib/systemd/systemd -a -x /usr/bin/systemd-nspawn -a -x /bin/busybox || \
		apt-get install -y systemd systemd-container busybox-static

bin/stage1-ns.aci: $(shell find stage1-ns stage2 pkg -name '*.go' -not -name '*_test.go') | stage1-ns-deps
	@mkdir -p bin/.stage1-ns
	CGO_ENABLED=0 $(GO) build $(STAGE1_NS_GOFLAGS) -o bin/.stage1-ns/run ./stage1-ns
	CGO_ENABLED=0 $(GO) build $(STAGE1_NS_GOFLAGS) -o bin/.stage1-ns/stage2 ./stage2
	$(GO) run ./stage1-ns/mkimage -stage1 bin/.stage1-ns/run -stage2 bin/.stage1-ns/stage2 \
		-version $(STAGE1_NS_VERSION) -o $@

test-stage1-ns: stage1-ns-deps ## run stage1-ns's unit tests, then its real-pod tests (as root)
	$(GO) test ./stage1-ns/...
	$(GO) test -tags e2e -count=1 ./stage1-ns/nspawn/
