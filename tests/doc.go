// Package tests holds skiff's end-to-end suite (build tag e2e): it builds
// the real binaries once and drives the skiff CLI as a user would, against
// real pods on every stage1 (the stub, stage1-ns and stage1-kvm). Run it as
// root with `make test`; a plain `go test ./...` runs only the guardrails
// (guardrails_test.go), which hold the source tree to DESIGN.md's rules.
package tests
