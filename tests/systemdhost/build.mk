# The systemd test host (tests/systemdhost): a Debian bookworm root that the
# end-to-end suite boots with `systemd-nspawn -b` to check machined,
# `journalctl -M`, `systemd-run`, readiness and socket activation for real.
# Building it takes ~40 s and ~170 MB; it is cached in TESTHOST_DIR and reused
# while complete. CI builds it fresh: `make testhost FRESH=1`.

GO ?= go
TESTHOST_DIR ?= /var/tmp/skiff-testhost
TESTHOST_MIRROR ?= http://deb.debian.org/debian
TESTHOST_DEPS := debootstrap systemd-container

.PHONY: testhost-deps testhost test-testhost testhost-clean

testhost-deps: ## install what building and booting the systemd test host needs (apt, root)
	@missing=; for p in $(TESTHOST_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get install -y --no-install-recommends $$missing; fi

testhost: testhost-deps ## build the systemd test host root in TESTHOST_DIR (reused if complete; FRESH=1 rebuilds)
	FRESH=$(FRESH) tests/systemdhost/build-testhost.sh $(TESTHOST_DIR) $(TESTHOST_MIRROR)

test-testhost: testhost ## boot the test host; check nested nspawn + machined + journal, notify, socket activation (root)
	SKIFF_TESTHOST=$(TESTHOST_DIR) CGO_ENABLED=0 $(GO) test -tags e2e -count=1 -v ./tests/systemdhost/

testhost-clean: ## remove the cached systemd test host root
	rm -rf $(TESTHOST_DIR) $(TESTHOST_DIR).tmp
