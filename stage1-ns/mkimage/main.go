// Command mkimage builds the stage1-ns image from the stage1-ns and stage2
// binaries and the build host's systemd.
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
	flag.StringVar(&o.Stage1, "stage1", "", "the static stage1-ns binary")
	flag.StringVar(&o.Stage2, "stage2", "", "the static stage2 binary")
	flag.StringVar(&o.Version, "version", "0.0.0", "the image's version label")
	flag.StringVar(&o.HostRoot, "host-root", "/", "the tree systemd is taken from")
	out := flag.String("o", "stage1-ns.aci", "output file")
	flag.Parse()
	f, err := os.CreateTemp(filepath.Dir(*out), ".stage1-ns-*.aci") // beside the output: same filesystem, nothing in the checkout
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
