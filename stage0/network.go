package main

import (
	"fmt"
	"path/filepath"
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
	def, err := cni.DefaultNetwork(cni.DefaultBridge, cni.DefaultSubnet, ipamDir)
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(g.localConfig, netDirName)
	nets, lerr := cni.Load(dir, []string{cni.PluginDir}, def)
	if lerr != nil {
		fmt.Fprintf(g.stderr, "skiff: warning: %s\n", strings.ReplaceAll(lerr.Error(), "\n", "\nskiff: warning: "))
	}
	return nets, dir, nil
}
