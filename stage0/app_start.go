package main

import (
	"github.com/spf13/cobra"
)

func newAppStartCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "start UUID --app=NAME",
		Short: "Start an app of a running app sandbox (again, if it exited)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.pods().AppStart(args[0], app)
		},
	}
	appFlag(cmd, &app)
	return cmd
}

// appFlag registers the --app of the app commands, which they require.
func appFlag(cmd *cobra.Command, app *string) {
	cmd.Flags().StringVar(app, "app", "", "the app's name (required)")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if *app == "" {
			return usagef("%s: --app is required", cmd.CommandPath())
		}
		return nil
	}
}
