// Package cri holds what the CRI end-to-end tests need around a CRI runtime:
// critest's phase-1 skip set and the reading of its JUnit report, and the
// configuration files of the reference runtime (containerd + runc), of the
// per-registry mirrors (containerd's hosts.toml, skiff's registries.conf) and
// of a standalone kubelet. tools.sh builds the tools, images.sh the images
// critest pulls; tests/critest_test.go and tests/kubelet_test.go drive them.
package cri
