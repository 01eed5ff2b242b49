package main

import (
	"time"

	"github.com/spf13/cobra"
)

func newStopCmd(g *globals) *cobra.Command {
	var force bool
	var wait string
	var uf uuidFile
	cmd := &cobra.Command{
		Use:   "stop UUID... | --uuid-file=FILE",
		Short: "Stop running pods cleanly (--force kills them)",
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := uf.pods(args)
			if err != nil {
				return err
			}
			d, err := time.ParseDuration(wait)
			if err != nil {
				return usagef("--wait=%s: %v", wait, err)
			}
			return eachPod(g, ids, func(id string) error { return g.pods().Stop(id, force, d) })
		},
	}
	uf.register(cmd.Flags())
	cmd.Flags().BoolVar(&force, "force", false, "kill the pod at once instead of a clean shutdown")
	cmd.Flags().StringVar(&wait, "wait", "30s", "how long to wait for the pod to end (0 to return at once)")
	return cmd
}
