# Test images (tests/images/build.sh): ACIs built locally from Debian packages,
# each with a detached signature by a throwaway key. Included from the Makefile;
# also usable alone: make -f tests/images/build.mk images

IMAGES_DIR ?= bin/images
GO ?= $(or $(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
IMAGES_SH := tests/images/build.sh
IMAGE_NAMES := busybox probe probe-layered redis
IMAGE_FILES := $(IMAGE_NAMES:%=$(IMAGES_DIR)/%.aci)
PROBE_SRC := $(filter-out %_test.go,$(wildcard tests/probe/*.go)) go.mod go.sum

.PHONY: images images-tools images-clean

images: $(IMAGE_FILES) $(IMAGE_FILES:%=%.asc) $(IMAGES_DIR)/test-key.asc ## build the test ACIs (busybox, probe, probe-layered, redis), signatures and test-key.asc into bin/images/

# Installs only what is missing, so it does not make the images stale.
images-tools:
	@command -v gpg >/dev/null || apt-get install -y --no-install-recommends gnupg

$(IMAGES_DIR)/probe: $(PROBE_SRC) ## build the static probe app
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-s -o $@ ./tests/probe

$(IMAGES_DIR)/busybox.aci: $(IMAGES_SH) tests/images/busybox/manifest.json tests/images/busybox/etc/passwd tests/images/busybox/etc/group ## skiff.local/busybox
	$(IMAGES_SH) busybox $@

$(IMAGES_DIR)/probe.aci: $(IMAGES_SH) tests/images/probe/manifest.json $(IMAGES_DIR)/probe $(IMAGES_DIR)/busybox.aci ## skiff.local/probe: busybox + /probe
	$(IMAGES_SH) probe $@ $(IMAGES_DIR)/probe $(IMAGES_DIR)/busybox.aci

$(IMAGES_DIR)/probe-layered.aci: $(IMAGES_SH) tests/images/probe-layered/manifest.json $(IMAGES_DIR)/probe $(IMAGES_DIR)/busybox.aci ## skiff.local/probe-layered: /probe on top of a busybox dependency
	$(IMAGES_SH) probe-layered $@ $(IMAGES_DIR)/probe $(IMAGES_DIR)/busybox.aci

$(IMAGES_DIR)/redis.aci: $(IMAGES_SH) tests/images/redis/manifest.json tests/images/redis/etc/passwd tests/images/redis/etc/group ## skiff.local/redis: redis-server + its library closure
	$(IMAGES_SH) redis $@

$(IMAGES_DIR)/test-key.asc: | images-tools ## the throwaway public key that signed the images
	$(IMAGES_SH) key $@

$(IMAGES_DIR)/%.aci.asc: $(IMAGES_DIR)/%.aci $(IMAGES_DIR)/test-key.asc | images-tools
	$(IMAGES_SH) sign $<

images-clean: ## remove bin/images/ (images, key, package cache)
	rm -rf $(IMAGES_DIR)
