package main

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/podctl"
)

func newAppListCmd(g *globals) *cobra.Command {
	var f format
	var noLegend bool
	cmd := &cobra.Command{
		Use:   "list UUID",
		Short: "List the apps of a running app sandbox with their states",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			apps, err := g.pods().Apps(args[0], "")
			if err != nil {
				return err
			}
			if f == "json" {
				return writeJSON(g.stdout, apps)
			}
			var rows [][]string
			for _, a := range apps {
				rows = append(rows, []string{a.Name, a.State, exitText(a)})
			}
			return table(g.stdout, []string{"NAME", "STATE", "EXIT"}, rows, noLegend)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "no header line; columns separated by tabs")
	return cmd
}

// exitText is an app's exit status, or "-" while it has none.
func exitText(a podctl.AppState) string {
	if a.Exit == nil {
		return "-"
	}
	return strconv.Itoa(*a.Exit)
}
