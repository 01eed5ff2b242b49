package main

import (
	"github.com/spf13/cobra"
)

func newAttachCmd(g *globals) *cobra.Command {
	var app string
	var noStdin bool
	cmd := &cobra.Command{
		Use:   "attach UUID [--app NAME] [--no-stdin]",
		Short: "Connect to the stdin and output of an app's main process",
		Long: `Connect this terminal's stdin, stdout and stderr to the main process of an
app that was created with a stdin to attach to (skiff cri's containers with
stdin: true). Output is what the app writes from now on; it also still goes
to the pod's journal. Ends when the app ends, or when stdin ends; an app
created with stdin-once then sees the end of its stdin too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, st, err := g.pods().Running("attach", args[0])
			if err != nil {
				return err
			}
			if app, err = onlyApp(p, st, app); err != nil {
				return err
			}
			in, err := g.pods().Invocation(p)
			if err != nil {
				return err
			}
			code, err := in.Attach(app, !noStdin)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitCode{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the app to attach to")
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "do not pass stdin on")
	return cmd
}
