package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newAppStatusCmd(g *globals) *cobra.Command {
	var f format
	var app string
	cmd := &cobra.Command{
		Use:   "status UUID --app=NAME",
		Short: "Show the state and exit status of an app of a running app sandbox",
		Long: `Show an app's state (created, running or exited) and, once it exited, its exit
status, as lines state=STATE and exit=STATUS.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			apps, err := g.pods().Apps(args[0], app)
			if err != nil {
				return err
			}
			a := apps[0]
			if f == "json" {
				return writeJSON(g.stdout, a)
			}
			fmt.Fprintf(g.stdout, "name=%s\nstate=%s\n", a.Name, a.State)
			if a.Exit != nil {
				fmt.Fprintf(g.stdout, "exit=%d\n", *a.Exit)
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	appFlag(cmd, &app)
	return cmd
}
