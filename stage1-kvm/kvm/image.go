package kvm

import (
	"compress/gzip"
	"io"
	"path/filepath"

	"github.com/skiffpod/skiff/pkg/podunit"
)

// ImageOptions say where the pieces of the stage1-kvm image come from.
type ImageOptions struct {
	Stage1   string // the static multi-call stage1-kvm binary
	Stage2   string // the static stage2 binary
	Guest    string // directory with vmlinux and initramfs.cpio (stage1-kvm/guest/build.sh)
	Version  string // the image's version label
	HostRoot string // the tree systemd and nsenter are taken from, "/" on a build host
}

// agentUnitText starts the control agent with the apps; it goes with them
// at shutdown.
const agentUnitText = `[Unit]
Description=skiff control agent (enter, stop)
DefaultDependencies=no
Conflicts=shutdown.target
Before=shutdown.target

[Service]
ExecStart=` + agentPath + `
Restart=on-failure
RestartSec=100ms
`

// poweroffDropIn skips systemd-shutdown once systemd-poweroff.service has
// synced the journal: by then the apps and the agent are stopped and their
// statuses written, and killing the rest and unmounting the 9p share (which
// cannot be unmounted) only delays qemu's exit under TCG.
const poweroffDropIn = "[Unit]\nSuccessAction=poweroff-immediate\n"

// BuildImage writes the stage1-kvm image, a gzip-compressed ACI, to w:
// stage1-ns's systemd plus the guest kernel and initramfs, nsenter for
// enter, and the agent's unit.
func BuildImage(w io.Writer, o ImageOptions) error {
	return podunit.BuildImage(w, podunit.ImageOptions{
		Name: ImageName, Stage1: o.Stage1, Stage2: o.Stage2, Version: o.Version, HostRoot: o.HostRoot,
		Links:     []string{filepath.Base(agentPath)},
		HostFiles: []string{nsenterPath},
		Files: map[string]string{
			podunit.SkiffDir + "/kvm/vmlinux":        filepath.Join(o.Guest, "vmlinux"),
			podunit.SkiffDir + "/kvm/initramfs.cpio": filepath.Join(o.Guest, "initramfs.cpio"),
		},
		// systemd-shutdown runs what is there just before the guest powers
		// off, when a forced poweroff still goes through it.
		Symlinks: map[string]string{"/usr/lib/systemd/system-shutdown/hook": "/skiff/run"},
		Units: map[string]string{
			agentUnit: agentUnitText,
			"systemd-poweroff.service.d/skiff-kvm.conf": poweroffDropIn,
		},
		Wants: []string{agentUnit},
		// Most of the image is the kernel: spend time once, at build, to
		// halve it.
		Compress: func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, gzip.BestCompression) },
	})
}
