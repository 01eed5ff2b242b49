package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/skiffpod/skiff/pkg/cpio"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/stage1image"
	"github.com/skiffpod/skiff/stage1-kvm/guest"
)

// ImageName is the name of the stage1-kvm image.
const ImageName = "skiff.dev/stage1-kvm"

// ImageOptions say where the pieces of the stage1-kvm image come from.
type ImageOptions struct {
	Stage1   string // the static multi-call stage1-kvm binary
	Stage2   string // the static stage2 binary
	Guest    string // directory with vmlinux and initramfs.cpio (stage1-kvm/guest/build.sh)
	Version  string // the image's version label
	HostRoot string // the tree systemd and nsenter are taken from, "/" on a build host
}

// agentUnitText starts the control agent before the apps (it is ready
// once the metadata service's address listens in the guest); it goes
// with them at shutdown.
const agentUnitText = `[Unit]
Description=skiff control agent (enter, stop, forwarding, metadata)
DefaultDependencies=no
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=notify
ExecStart=` + guest.AgentPath + `
Restart=on-failure
RestartSec=100ms
`

// appsAfterAgent is a drop-in for every app unit (skiff-app-*.service):
// an app may ask for its metadata as it starts.
const appsAfterAgent = "[Unit]\nAfter=" + guest.AgentUnit + "\n"

// poweroffDropIn skips systemd-shutdown once systemd-poweroff.service has
// synced the journal (or given up after its timeout: a pod must end even
// when journald does not answer): by then the apps and the agent are stopped and their
// statuses written, and killing the rest and unmounting the 9p share (which
// cannot be unmounted) only delays qemu's exit under TCG.
const poweroffDropIn = "[Unit]\nSuccessAction=poweroff-immediate\nFailureAction=poweroff-immediate\n"

// BuildImage writes the stage1-kvm image, a gzip-compressed ACI, to w:
// stage1-ns's systemd plus the guest kernel and initramfs, nsenter for
// enter, and the agent's unit. The initramfs also carries the guest's
// system (see sysroot).
func BuildImage(w io.Writer, o ImageOptions) error {
	opts := stage1image.ImageOptions{
		Name: ImageName, Stage1: o.Stage1, Stage2: o.Stage2, Version: o.Version, HostRoot: o.HostRoot,
		Features:  []string{pod.FeatureMetadata, pod.FeatureDebug, pod.FeatureAppPIDNamespace, pod.FeatureTTY, pod.FeatureAppSecurity, pod.FeatureStats, pod.FeatureResources, pod.FeaturePortForward, pod.FeatureAttach},
		Apps:      true,
		Links:     []string{filepath.Base(guest.AgentPath)},
		HostFiles: []string{guest.NsenterPath},
		// systemd-shutdown runs what is there just before the guest powers
		// off, when a forced poweroff still goes through it.
		Symlinks: map[string]string{"/usr/lib/systemd/system-shutdown/hook": "/skiff/run"},
		Units: map[string]string{
			guest.AgentUnit: agentUnitText,
			podunit.UnitName("") + ".d/skiff-kvm.conf":  appsAfterAgent,
			"systemd-poweroff.service.d/skiff-kvm.conf": poweroffDropIn,
			// The guest init sets journald's flushed flag (no hook); its
			// libraries are found without a round trip to the host.
			"systemd-journald.service.d/skiff-kvm.conf": "[Service]\nExecStartPre=\nEnvironment=LD_LIBRARY_PATH=" + guest.LibDir + "\n",
		},
		Wants: []string{guest.AgentUnit},
	}
	// The guest init's binds of the sysroot and its tmpfs for the attach
	// relays stay to the end: unmounting them at shutdown only costs time
	// (systemd never unmounts /usr; the guest has no umount for the rest).
	for _, p := range append(sysrootPaths[1:], podunit.AttachDir[1:]) {
		opts.Units[strings.ReplaceAll(p, "/", "-")+".mount.d/skiff-kvm.conf"] = "[Unit]\nDefaultDependencies=no\n"
	}
	// First the image without the guest, as a plain tar, for the sysroot.
	var plain bytes.Buffer
	opts.Compress = func(w io.Writer) (io.WriteCloser, error) { return nopCloser{w}, nil }
	if err := stage1image.BuildImage(&plain, opts); err != nil {
		return err
	}
	initrd, err := os.CreateTemp("", "skiff-initramfs-*.cpio")
	if err != nil {
		return fmt.Errorf("build %s image: %w", ImageName, err)
	}
	defer os.Remove(initrd.Name())
	err = writeInitramfs(initrd, filepath.Join(o.Guest, "initramfs.cpio"), &plain)
	if err = errors.Join(err, initrd.Close()); err != nil {
		return fmt.Errorf("build %s image: %w", ImageName, err)
	}
	opts.Files = map[string]string{
		podunit.SkiffDir + "/kvm/vmlinux":        filepath.Join(o.Guest, "vmlinux"),
		podunit.SkiffDir + "/kvm/initramfs.cpio": initrd.Name(),
	}
	// The guest's /usr comes from the sysroot, and the host runs nothing
	// from it: the rootfs keeps only the directory the sysroot is bound on.
	opts.Omit = func(name string) bool { return strings.HasPrefix(name, "rootfs/usr/") && name != "rootfs/usr/" }
	// Most of the image is the kernel: spend time once, at build, to
	// halve it.
	opts.Compress = func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, gzip.BestCompression) }
	return stage1image.BuildImage(w, opts)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// sysroot is where the initramfs carries a copy of the guest's read-only
// system: the stage1 root's /usr (systemd, journald, their libraries and
// units) and the skiff binaries. sysrootList names them, one path a line;
// the guest init binds each over the shared pod tree's before it starts
// systemd, so that they load from memory: over 9p every exec reads the
// whole file again (a Go binary cost ~0.1 s a time under TCG).
const (
	sysroot     = "sysroot"
	sysrootList = "sysroot.list"
)

// sysrootPaths are the image paths (relative to rootfs/) copied into the
// sysroot, /usr first; a directory brings all it holds. (Plain names: they
// are also unit names, with "/" as "-".)
var sysrootPaths = []string{"usr", "skiff/run", "skiff/stage2"}

// writeInitramfs writes the guest's initramfs to w: the base archive (the
// guest init and its modules) followed by a second archive holding the
// sysroot, taken from image, a plain tar of the stage1 image.
func writeInitramfs(w io.Writer, base string, image io.Reader) error {
	b, err := os.ReadFile(base)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	entries := []cpio.Entry{
		{Name: sysroot, Mode: cpio.ModeDir | 0o755},
		{Name: sysroot + "/skiff", Mode: cpio.ModeDir | 0o755},
		{Name: sysrootList, Mode: cpio.ModeFile | 0o644, Data: []byte(strings.Join(sysrootPaths, "\n") + "\n")},
	}
	tr := tar.NewReader(image)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "rootfs/"), "/")
		if !slices.ContainsFunc(sysrootPaths, func(p string) bool { return name == p || strings.HasPrefix(name, p+"/") }) {
			continue
		}
		e := cpio.Entry{Name: sysroot + "/" + name, Mode: uint32(h.Mode) & 0o7777}
		switch h.Typeflag {
		case tar.TypeDir:
			e.Mode |= cpio.ModeDir
		case tar.TypeSymlink:
			e.Mode, e.Data = cpio.ModeSymlink|0o777, []byte(h.Linkname)
		case tar.TypeReg:
			e.Mode |= cpio.ModeFile
			if e.Data, err = io.ReadAll(tr); err != nil {
				return err
			}
		default:
			return fmt.Errorf("sysroot: %s: unexpected tar type %q", h.Name, h.Typeflag)
		}
		entries = append(entries, e)
	}
	return cpio.Write(w, entries)
}
