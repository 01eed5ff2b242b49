// Package nspawn is the namespace stage1 (stage1-ns): it runs a pod as a
// systemd-nspawn container booting systemd, one systemd unit per app. Its
// Isolator implements the run, enter, stop and gc entrypoints of
// docs/stage1-abi.md, which package stage1kit dispatches and drives.
// The units, the hooks they call inside the container and the layout of
// the stage1 rootfs are shared with stage1-kvm: see package podunit.
package nspawn
