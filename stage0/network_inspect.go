package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newNetworkInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME",
		Short: "Print a network's CNI configuration list",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nets, dir, err := networks(g)
			if err != nil {
				return err
			}
			n := nets[args[0]]
			if n == nil {
				return fmt.Errorf("network inspect: unknown network %q (no %s/*.conflist defines it)", args[0], dir)
			}
			_, err = fmt.Fprintf(g.stdout, "%s\n", strings.TrimSpace(string(n.Bytes())))
			return err
		},
	}
}
