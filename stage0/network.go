package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/cni"
)

func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage pod networks: the built-in default and <local-config>/net.d/*.conflist",
	}
	cmd.AddCommand(newNetworkListCmd(g), newNetworkInspectCmd(g), newNetworkCreateCmd(g), newNetworkRmCmd(g))
	return cmd
}

// networks loads every network; bad files are reported on stderr.
func networks(g *globals) (map[string]*cni.Network, string, error) {
	nets, bad, err := g.podNet().Networks()
	if err != nil {
		return nil, "", err
	}
	if bad != nil {
		fmt.Fprintf(g.stderr, "skiff: warning: %s\n", strings.ReplaceAll(bad.Error(), "\n", "\nskiff: warning: "))
	}
	return nets, g.podNet().NetDir(), nil
}
