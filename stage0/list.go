package main

import (
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
)

func newListCmd(g *globals) *cobra.Command {
	var f format
	var noLegend bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pods and their states",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			pods, err := pod.List(g.dir)
			if err != nil {
				return err
			}
			var sts []podStatus
			for _, p := range pods {
				st, err := p.Status()
				if errors.Is(err, pod.ErrNotExist) {
					continue // removed while we looked
				}
				if err != nil {
					return err
				}
				sts = append(sts, withNet(p, st))
			}
			sort.Slice(sts, func(i, j int) bool { return sts[i].Created.Before(sts[j].Created) })
			if f == "json" {
				if sts == nil {
					sts = []podStatus{}
				}
				return writeJSON(g.stdout, sts)
			}
			var rows [][]string
			for _, st := range sts {
				rows = append(rows, []string{st.UUID[:8], strings.Join(st.AppList, ","), string(st.State), st.Created.Format(time.DateTime), strings.Join(st.addresses(), ",")})
			}
			return table(g.stdout, []string{"UUID", "APPS", "STATE", "CREATED", "ADDRESSES"}, rows, noLegend)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "omit the header line")
	return cmd
}
