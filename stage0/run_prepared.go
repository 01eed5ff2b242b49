package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
)

func newRunPreparedCmd(g *globals) *cobra.Command {
	var f podFlags
	cmd := &cobra.Command{
		Use:   "run-prepared UUID",
		Short: "Run a pod made by prepare",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			p, err := pod.Load(g.dir, args[0])
			if err != nil {
				return err
			}
			if err := p.TryLock(); err != nil {
				return err
			}
			if p.State != pod.Prepared {
				p.Unlock()
				return fmt.Errorf("run-prepared %s: %w: it is %s, not prepared", p.UUID, pod.ErrState, p.State)
			}
			return execPod(g, p, &f)
		},
	}
	fs := cmd.Flags()
	f.registerNet(fs)
	fs.StringVar(&f.hostname, "hostname", "", "the pod's hostname (default skiff-<uuid>)")
	fs.BoolVar(&f.interactive, "interactive", false, "attach the terminal to the pod's only app")
	f.pullPolicy = "new"
	return cmd
}
