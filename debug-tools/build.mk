# The default tools image of `skiff debug` (docs/debug.md), built by
# `skiff build` from Debian packages. Rebuilt only when its spec or its
# wrappers change; the lock (the package versions) is kept in bin/.

.PHONY: debug-tools
build: debug-tools

debug-tools: bin/debug-tools.aci ## build bin/debug-tools.aci, the default tools image of skiff debug

bin/debug-tools.aci: debug-tools/spec.yaml debug-tools/bin debug-tools/bin/ss debug-tools/bin/strace | skiff
	rm -f $@
	$(BIN)/skiff build -f debug-tools/spec.yaml --path $(CURDIR)/debug-tools/bin:/usr/local/bin \
		--lock bin/debug-tools.lock -o aci:$@
