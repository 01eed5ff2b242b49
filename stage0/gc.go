package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/podctl"
)

func newGCCmd(g *globals) *cobra.Command {
	var grace, expirePrepared time.Duration
	var markOnly bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Collect exited and abandoned pods",
		Long: `Collect garbage: exited pods are marked (moved to exited-garbage) and removed
once marked for longer than --grace-period; aborted and abandoned pods are
removed; prepared pods older than --expire-prepared are removed. Running and
preparing pods are never touched. With --mark-only, gc only marks exited
pods (and moves abandoned ones to garbage) and removes nothing: run it when a
pod exits to start its grace period then.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.pods().GC(podctl.GCOptions{Grace: grace, ExpirePrepared: expirePrepared, MarkOnly: markOnly})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace-period", 30*time.Minute, "how long exited pods stay before removal")
	cmd.Flags().DurationVar(&expirePrepared, "expire-prepared", 24*time.Hour, "remove prepared pods older than this")
	cmd.Flags().BoolVar(&markOnly, "mark-only", false, "only mark exited and abandoned pods as garbage; remove nothing")
	return cmd
}
