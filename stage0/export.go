package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/safefile"
)

func newExportCmd(g *globals) *cobra.Command {
	var app string
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "export UUID [APP] FILE",
		Short: "Write an app of an exited pod, with what it changed, to an ACI file",
		Long: `Write the root filesystem of an app of an exited pod, as the app left it
(its image with the app's changes), to FILE as an ACI under the image's
manifest (without dependencies: the root filesystem is flat), as rkt's
export. APP (or rkt's --app) names the app; it may be left out when the pod
has one. A running pod is refused. The ACI is unsigned: import or run it
with --insecure-options=image, or sign it.`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[len(args)-1]
			if len(args) == 3 {
				if app != "" && app != args[1] {
					return usagef("export: app %q and --app=%s disagree", args[1], app)
				}
				app = args[1]
			}
			if err := safefile.CheckOutput(file, overwrite); err != nil {
				return exportError(err)
			}
			write, done, err := g.pods().Export(args[0], app)
			if err != nil {
				return err
			}
			defer done()
			return exportError(safefile.Write(file, 0o644, overwrite, write))
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the app to export (rkt's flag; the same as APP)")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace FILE if it exists")
	return cmd
}

func exportError(err error) error {
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("export: %w (use --overwrite to replace)", err)
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}
