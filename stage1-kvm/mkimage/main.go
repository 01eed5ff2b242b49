// Command mkimage builds the stage1-kvm image from the stage1-kvm and
// stage2 binaries, the guest kernel and initramfs, and the build host's
// systemd and nsenter.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run() error {
	var o ImageOptions
	flag.StringVar(&o.Stage1, "stage1", "", "the static stage1-kvm binary")
	flag.StringVar(&o.Stage2, "stage2", "", "the static stage2 binary")
	flag.StringVar(&o.Guest, "guest", "", "directory with vmlinux and initramfs.cpio")
	flag.StringVar(&o.Version, "version", "0.0.0", "the image's version label")
	flag.StringVar(&o.HostRoot, "host-root", "/", "the tree systemd and nsenter are taken from")
	out := flag.String("o", "stage1-kvm.aci", "output file")
	flag.Parse()
	f, err := os.CreateTemp(filepath.Dir(*out), ".stage1-kvm-*.aci") // beside the output: same filesystem, nothing in the checkout
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = BuildImage(f, o)
	if err = errors.Join(err, f.Chmod(0o644), f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), *out)
}
