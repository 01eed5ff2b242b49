# The KVM stage1 image: the stage1-kvm and stage2 binaries, the guest kernel
# and initramfs (stage1-kvm/guest/build.sh: Debian's 6.1 kernel, the Go
# guest init), the build host's systemd and nsenter; see stage1-kvm/mkimage/image.go.

STAGE1_KVM_VERSION ?= 0.0.0
STAGE1_KVM_GOFLAGS := -trimpath -ldflags='-s -w'
STAGE1_KVM_OUT := bin/.stage1-kvm

.PHONY: stage1-kvm stage1-kvm-deps test-stage1-kvm

# `make build` builds it too.
build: stage1-kvm

stage1-kvm: bin/stage1-kvm.aci ## build bin/stage1-kvm.aci, the KVM stage1 image (qemu microvm + guest kernel)

stage1-kvm-deps: ## install what building and running stage1-kvm pods needs (as root)
	@test -x /usr/bin/qemu-system-x86_64 -a -x /usr/lib/systemd/systemd -a -x /usr/bin/nsenter -a -x /usr/bin/xz || \
		apt-get install -y --no-install-recommends qemu-system-x86 systemd util-linux xz-utils

# build.sh caches the kernel package in $(STAGE1_KVM_OUT)/guest/cache.
$(STAGE1_KVM_OUT)/guest/vmlinux: $(shell find stage1-kvm/guest/build.sh stage1-kvm/guest/init stage1-kvm/guest/mkguest pkg/vm/agent -type f -not -name '*_test.go') | stage1-kvm-deps
	sh stage1-kvm/guest/build.sh $(STAGE1_KVM_OUT)/guest

bin/stage1-kvm.aci: $(shell find stage1-kvm stage2 pkg -name '*.go' -not -name '*_test.go') $(STAGE1_KVM_OUT)/guest/vmlinux | stage1-kvm-deps
	@mkdir -p $(STAGE1_KVM_OUT)
	CGO_ENABLED=0 $(GO) build $(STAGE1_KVM_GOFLAGS) -o $(STAGE1_KVM_OUT)/run ./stage1-kvm
	CGO_ENABLED=0 $(GO) build $(STAGE1_KVM_GOFLAGS) -o $(STAGE1_KVM_OUT)/stage2 ./stage2
	$(GO) run ./stage1-kvm/mkimage -stage1 $(STAGE1_KVM_OUT)/run -stage2 $(STAGE1_KVM_OUT)/stage2 \
		-guest $(STAGE1_KVM_OUT)/guest -version $(STAGE1_KVM_VERSION) -o $@

test-stage1-kvm: stage1-kvm ## run stage1-kvm's unit tests, then its real-pod tests under TCG (as root)
	$(GO) test ./pkg/vm/... ./pkg/podunit/ ./stage1-kvm/...
	SKIFF_KVM_GUEST=$(CURDIR)/$(STAGE1_KVM_OUT)/guest $(GO) test -tags e2e -count=1 ./pkg/vm/
	$(GO) test -tags e2e -count=1 -run TestConformanceKVM ./tests/
	$(GO) test -tags e2e -count=1 -run '/kvm$$' ./tests/
