package main

import (
	"os"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/stage1-ns/nspawn"
)

func runMain(args []string) int {
	o := nspawn.RunOptions{}
	if err := o.Parse(args); err != nil {
		return fail(nil, err)
	}
	log := logger(o.Debug, o.UUID, "run")
	hosts, err := podunit.PodHosts()
	if err != nil {
		return fail(log, err)
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
		return podunit.AppendHosts(dir, hosts)
	}
	return nspawn.Run(log, o)
}
