// Package systemdhost boots a throwaway systemd host for end-to-end tests:
// a Debian bookworm root (built by `make testhost`) started with
// `systemd-nspawn -b`, so that tests can use machined, `machinectl`,
// `journalctl -M` and `systemd-run` on build machines whose PID 1 is not
// systemd. The code is behind the `e2e` build tag; it needs root.
package systemdhost
