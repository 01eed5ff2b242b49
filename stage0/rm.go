package main

import (
	"github.com/spf13/cobra"
)

func newRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm UUID...",
		Short: "Remove exited or prepared pods",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachPod(g, args, func(id string) error { return g.pods().Remove(id) })
		},
	}
}
