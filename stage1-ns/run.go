package main

import (
	"flag"
	"os"

	"github.com/appc/spec/schema"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/nspawn"
	"github.com/skiffpod/skiff/pkg/podunit"
)

func runMain(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o nspawn.RunOptions
	fs.BoolVar(&o.Debug, "debug", false, "")
	fs.StringVar(&o.Net, "net", "default", "")
	fs.StringVar(&o.Hostname, "hostname", "", "")
	fs.BoolVar(&o.Interactive, "interactive", false, "")
	uuid, _, err := parse(fs, args, false)
	if err != nil {
		return fail(nil, err)
	}
	o.UUID = uuid
	o.Bundle = func(dir string, pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, root *os.Root) error {
		s, err := appspec.Build(pm, ra, img, root, appspec.Options{Hostname: o.Hostname, Interactive: o.Interactive})
		if err != nil {
			return err
		}
		if podunit.SupportsNotify(img) {
			// The app's unit waits for its READY=1 (stage2 passes
			// NOTIFY_SOCKET on): bind the pod systemd's socket, which the
			// app's own root does not have, at the same path.
			s.Mounts = append(s.Mounts, specs.Mount{Destination: podunit.NotifySocket, Type: "bind", Source: podunit.NotifySocket, Options: []string{"bind"}})
		}
		return appspec.Write(dir, s)
	}
	return nspawn.Run(logger(o.Debug, uuid, "run"), o)
}
