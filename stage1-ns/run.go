package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/nspawn"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// maxHosts bounds the hosts lines stage0 writes for the pod.
const maxHosts = 1 << 20

func runMain(args []string) int {
	o := nspawn.RunOptions{}
	if err := o.Parse(args); err != nil {
		return fail(nil, err)
	}
	log := logger(o.Debug, o.UUID, "run")
	// With a pod network, stage0 wrote the lines naming the pod's address
	// (and --hosts-entry's) for every app's /etc/hosts.
	var hosts []byte
	if o.NetNS != "" {
		var err error
		if hosts, err = safefile.ReadFile(pod.NetHosts, maxHosts); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(log, fmt.Errorf("run: %w", err))
		}
	}
	o.Bundle = func(dir string, pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, root *os.Root) error {
		s, err := appspec.Build(pm, ra, img, root, appspec.Options{Hostname: o.Hostname, Interactive: o.Interactive})
		if err != nil {
			return err
		}
		podunit.NotifyBind(s, img)
		if err := appspec.Write(dir, s); err != nil {
			return err
		}
		return appendFile(filepath.Join(dir, appspec.HostsFile), hosts)
	}
	return nspawn.Run(log, o)
}

func appendFile(path string, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("write hosts: %w", err)
	}
	_, err = f.Write(b)
	return errors.Join(err, f.Close())
}
