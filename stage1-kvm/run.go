package main

import (
	"os"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

func runMain(args []string) int {
	o := kvm.RunOptions{}
	if err := o.Parse(args); err != nil {
		return fail(nil, err)
	}
	o.Bundle = func(dir string, pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, root *os.Root) error {
		// No network in the guest yet, so no resolver configuration.
		s, err := appspec.Build(pm, ra, img, root, appspec.Options{Hostname: o.Hostname, ResolvConf: "-"})
		if err != nil {
			return err
		}
		podunit.NotifyBind(s, img)
		return appspec.Write(dir, s)
	}
	return kvm.Run(podunit.Logger(stage, "run", o.UUID, o.Debug), o)
}
