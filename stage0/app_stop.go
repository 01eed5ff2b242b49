package main

import (
	"github.com/spf13/cobra"
)

func newAppStopCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "stop UUID --app=NAME",
		Short: "Stop an app of a running app sandbox; its exit status is kept (skiff app status)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.pods().AppStop(args[0], app)
		},
	}
	appFlag(cmd, &app)
	return cmd
}
