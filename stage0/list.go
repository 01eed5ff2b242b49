package main

import (
	"errors"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
)

func newListCmd(g *globals) *cobra.Command {
	var f format
	var noLegend, full bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pods and their states",
		Long: `List pods: UUID (its first 8 characters), apps, state, creation time and
addresses; with --full, whole UUIDs and the image ID of each app (IMAGE IDS,
in the order of APPS), as rkt's list --full.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			pods, err := pod.List(g.dir)
			if err != nil {
				return err
			}
			sts, err := statuses(pods)
			if err != nil {
				return err
			}
			sort.Slice(sts, func(i, j int) bool { return sts[i].Created.Before(sts[j].Created) })
			if f.isJSON() {
				if sts == nil {
					sts = []podStatus{}
				}
				return f.write(g.stdout, sts)
			}
			header := []string{"UUID", "APPS", "STATE", "CREATED", "ADDRESSES"}
			if full {
				header = []string{"UUID", "APPS", "IMAGE IDS", "STATE", "CREATED", "ADDRESSES"}
			}
			var rows [][]string
			for _, st := range sts {
				row := []string{st.UUID[:8], strings.Join(st.AppList, ",")}
				if full {
					row = []string{st.UUID, strings.Join(st.AppList, ","), strings.Join(st.Images, ",")}
				}
				rows = append(rows, append(row, string(st.State), st.Created.Format(time.DateTime), strings.Join(st.addresses(), ",")))
			}
			return table(g.stdout, header, rows, noLegend)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "omit the header line")
	cmd.Flags().BoolVar(&full, "full", false, "print whole UUIDs and the apps' image IDs")
	return cmd
}

// statuses reads the status of every pod, a few pods at a time: each is a
// handful of small reads, so a thousand pods take several milliseconds
// one after the other. Pods removed meanwhile are left out.
func statuses(pods []*pod.Pod) ([]podStatus, error) {
	sts := make([]podStatus, len(pods))
	errs := make([]error, len(pods))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(pods), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(pods); i = int(next.Add(1) - 1) {
				st, err := pods[i].Status()
				if err == nil {
					sts[i] = withNet(pods[i], st)
				}
				errs[i] = err
			}
		})
	}
	wg.Wait()
	var out []podStatus
	for i, err := range errs {
		if errors.Is(err, pod.ErrNotExist) {
			continue // removed while we looked
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sts[i])
	}
	return out, nil
}
