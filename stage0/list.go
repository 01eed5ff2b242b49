package main

import (
	"errors"
	"runtime"
	"runtime/debug"
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
		Long: `List pods as rkt does: one line per app (APP, IMAGE NAME) under the pod's
UUID (its first 8 characters), STATE, CREATED (when it was created),
STARTED (when it started running) and NETWORKS (NAME:ip4=ADDRESS); with
--full, whole UUIDs and an IMAGE ID column.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			// Short-lived, and little of what it allocates lives: a
			// thousand pods cost a GC cycle every few hundred at the
			// default (11 of 64 ms of CPU here).
			debug.SetGCPercent(400)
			pods, err := pod.List(g.dir)
			if err != nil {
				return err
			}
			// The table shows less than the JSON: read only that.
			status := (*pod.Pod).Brief
			if f.isJSON() {
				status = (*pod.Pod).Status
			}
			sts, err := statuses(pods, status)
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
			return table(g.stdout, listHeader(full), listRows(sts, full), noLegend)
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
func statuses(pods []*pod.Pod, status func(*pod.Pod) (pod.Status, error)) ([]podStatus, error) {
	sts := make([]podStatus, len(pods))
	errs := make([]error, len(pods))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(pods), runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(pods); i = int(next.Add(1) - 1) {
				st, err := status(pods[i])
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

// listHeader returns rkt's columns, with IMAGE ID for --full.
func listHeader(full bool) []string {
	if full {
		return []string{"UUID", "APP", "IMAGE NAME", "IMAGE ID", "STATE", "CREATED", "STARTED", "NETWORKS"}
	}
	return []string{"UUID", "APP", "IMAGE NAME", "STATE", "CREATED", "STARTED", "NETWORKS"}
}

// listRows prints a pod as rkt's list: its first app on the pod's line,
// each further app on a line of its own with the pod's columns empty; a
// pod without apps (not prepared yet) with "-" for them.
func listRows(sts []podStatus, full bool) [][]string {
	var rows [][]string
	for _, st := range sts {
		id := st.UUID
		if !full {
			id = id[:8]
		}
		pod := []string{id, string(st.State), stamp(st.Created), stamp(st.Started), strings.Join(st.netNames(), ",")}
		apps := st.AppList
		if len(apps) == 0 {
			apps = []string{"-"}
		}
		for i, app := range apps {
			name, img := "-", "-"
			if i < len(st.Names) && st.Names[i] != "" {
				name = st.Names[i]
			}
			if i < len(st.Images) && st.Images[i] != "" {
				img = st.Images[i]
			}
			row := []string{pod[0], app, name}
			if full {
				row = append(row, img)
			}
			rows = append(rows, append(row, pod[1:]...))
			pod = make([]string, len(pod)) // the pod's columns on its first line only
		}
	}
	return rows
}

// stamp prints a time for list; the zero time (never started) as nothing.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.DateTime)
}
