package main

import (
	"github.com/spf13/cobra"
)

func newAppRmCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "rm UUID --app=NAME",
		Short: "Remove an app that is not running from a running app sandbox, with its rootfs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.pods().AppRm(args[0], app)
		},
	}
	appFlag(cmd, &app)
	return cmd
}
