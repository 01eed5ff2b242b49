package main

import (
	"time"

	"github.com/spf13/cobra"
)

func newStopCmd(g *globals) *cobra.Command {
	var force bool
	var wait string
	cmd := &cobra.Command{
		Use:   "stop UUID...",
		Short: "Stop running pods cleanly (--force kills them)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := time.ParseDuration(wait)
			if err != nil {
				return usagef("--wait=%s: %v", wait, err)
			}
			return eachPod(g, args, func(id string) error { return g.pods().Stop(id, force, d) })
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "kill the pod at once instead of a clean shutdown")
	cmd.Flags().StringVar(&wait, "wait", "30s", "how long to wait for the pod to end (0 to return at once)")
	return cmd
}
