package main

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// networkInfo is one line of network list.
type networkInfo struct {
	Name    string         `json:"name"`
	File    string         `json:"file,omitempty"` // "" for the built-in network
	Bridge  string         `json:"bridge,omitempty"`
	Subnets []netip.Prefix `json:"subnets"`
}

func newNetworkListCmd(g *globals) *cobra.Command {
	var f format
	var noLegend bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the networks pods can ask for with --net",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			nets, _, err := networks(g)
			if err != nil {
				return err
			}
			infos := []networkInfo{}
			for _, name := range slices.Sorted(maps.Keys(nets)) {
				n := nets[name]
				infos = append(infos, networkInfo{Name: n.Name, File: n.File, Bridge: n.Bridge(), Subnets: n.Subnets})
			}
			if f.isJSON() {
				return f.write(g.stdout, infos)
			}
			var rows [][]string
			for _, n := range infos {
				var subnets []string
				for _, s := range n.Subnets {
					subnets = append(subnets, s.String())
				}
				rows = append(rows, []string{n.Name, n.Bridge, strings.Join(subnets, ","), cmp.Or(n.File, "(built-in)")})
			}
			return table(g.stdout, []string{"NAME", "BRIDGE", "SUBNETS", "FILE"}, rows, noLegend)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "omit the header line")
	return cmd
}
