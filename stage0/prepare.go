package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
)

func newPrepareCmd(g *globals) *cobra.Command {
	f := podFlags{prepareOnly: true}
	cmd := &cobra.Command{
		Use:   "prepare [POD FLAGS] IMAGE [APP FLAGS] [-- ARGS... [---]] [IMAGE ...]",
		Short: "Prepare a pod to run later with run-prepared; prints its UUID",
		Long: "Prepare a pod: fetch its images and set up its directory, without starting it.\n" +
			"Start it with 'skiff run-prepared UUID'. Run options (--net, --publish, --port, --dns*,\n" +
			"--hosts-entry, --interactive) are given to run-prepared; a --hostname given here is kept\n" +
			"for run-prepared, whose own --hostname wins.\n" +
			appUsage,
		DisableFlagParsing: true,
		RunE: prepareThen(g, &f, func(p *pod.Pod) error {
			defer p.Unlock()
			if err := p.Transition(pod.Prepared); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, p.UUID)
			return nil
		}),
	}
	f.register(cmd.Flags())
	f.registerPodManifest(cmd.Flags())
	return cmd
}
