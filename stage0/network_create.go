package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/podnet"
	"github.com/skiffpod/skiff/pkg/safefile"
)

func newNetworkCreateCmd(g *globals) *cobra.Command {
	var subnet, bridge string
	cmd := &cobra.Command{
		Use:   "create NAME --subnet CIDR",
		Short: "Create a bridge network like the built-in one, as <local-config>/net.d/NAME.conflist",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if subnet == "" {
				return usagef("network create %s: --subnet is required", name)
			}
			if bridge == "" {
				bridge = "skiff-" + name
			}
			n, err := cni.BridgeNetwork(name, bridge, subnet, podnet.IPAMDir)
			if err != nil {
				return usageError{fmt.Errorf("network create: %w", err)}
			}
			nets, dir, err := networks(g)
			if err != nil {
				return err
			}
			if o := nets[name]; o != nil {
				return fmt.Errorf("network create %s: it exists (%s)", name, cmp.Or(o.File, "built in"))
			}
			for _, o := range nets {
				if o.Bridge() == bridge {
					return fmt.Errorf("network create %s: bridge %s is network %s's", name, bridge, o.Name)
				}
				for _, a := range o.Subnets {
					if a.Overlaps(n.Subnets[0]) {
						return fmt.Errorf("network create %s: subnet %s overlaps network %s (%s)", name, subnet, o.Name, a)
					}
				}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("network create: %w", err)
			}
			file := filepath.Join(dir, name+".conflist")
			if err := safefile.WriteFile(file, append(n.Bytes(), '\n'), 0o644, false); err != nil {
				return fmt.Errorf("network create: %w", err)
			}
			fmt.Fprintln(g.stdout, file)
			return nil
		},
	}
	cmd.Flags().StringVar(&subnet, "subnet", "", "the network's IPv4 subnet, e.g. 172.16.40.0/24 (must not overlap another network's)")
	cmd.Flags().StringVar(&bridge, "bridge", "", "the bridge's name (default skiff-NAME)")
	return cmd
}
