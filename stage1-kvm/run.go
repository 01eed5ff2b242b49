package main

import (
	"flag"
	"os"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

func runMain(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o kvm.RunOptions
	fs.BoolVar(&o.Debug, "debug", false, "")
	fs.StringVar(&o.Net, "net", "default", "")
	fs.StringVar(&o.Hostname, "hostname", "", "")
	fs.BoolVar(&o.Interactive, "interactive", false, "")
	uuid, _, err := podunit.ParseArgs(fs, args, false)
	if err != nil {
		return fail(nil, err)
	}
	o.UUID = uuid
	o.Bundle = func(dir string, pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, root *os.Root) error {
		// No network in the guest yet, so no resolver configuration.
		s, err := appspec.Build(pm, ra, img, root, appspec.Options{Hostname: o.Hostname, ResolvConf: "-"})
		if err != nil {
			return err
		}
		podunit.NotifyBind(s, img)
		return appspec.Write(dir, s)
	}
	return kvm.Run(podunit.Logger(stage, "run", uuid, o.Debug), o)
}
