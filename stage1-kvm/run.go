package main

import (
	"os"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

func runMain(args []string) int {
	o := kvm.RunOptions{}
	if err := o.Parse(args); err != nil {
		return fail(nil, err)
	}
	log := stage1kit.Logger(stage, "run", o.UUID, o.Debug)
	hosts, err := podunit.PodHosts()
	if err != nil {
		return fail(log, err)
	}
	o.Bundle = func(dir string, pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, root *os.Root) error {
		// Without a pod network the guest has no resolver configuration.
		resolv := "-"
		if o.NetNS != "" {
			resolv = ""
		}
		s, err := appspec.Build(pm, ra, img, root, appspec.Options{Hostname: o.Hostname, ResolvConf: resolv})
		if err != nil {
			return err
		}
		podunit.NotifyBind(s, img)
		if err := appspec.Write(dir, s); err != nil {
			return err
		}
		return podunit.AppendHosts(dir, hosts)
	}
	return kvm.Run(log, o)
}
