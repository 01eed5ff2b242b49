package main

import (
	"github.com/spf13/cobra"
)

func newRmCmd(g *globals) *cobra.Command {
	var uf uuidFile
	cmd := &cobra.Command{
		Use:   "rm UUID... | --uuid-file=FILE",
		Short: "Remove exited or prepared pods",
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := uf.pods(args)
			if err != nil {
				return err
			}
			return eachPod(g, ids, func(id string) error { return g.pods().Remove(id) })
		},
	}
	uf.register(cmd.Flags())
	return cmd
}
