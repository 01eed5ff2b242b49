package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podctl"
)

func newStatusCmd(g *globals) *cobra.Command {
	var f format
	var wait bool
	var waitReady string
	var uf uuidFile
	cmd := &cobra.Command{
		Use:   "status UUID | --uuid-file=FILE",
		Short: "Show a pod's state, pid and its apps' exit statuses",
		Long: `Show a pod's state, pid, addresses and its apps' exit statuses: on a
terminal (or with --format=table) as tables, a line for the pod and one for
each app; otherwise as rkt's lines state=running, created=TIME, started=TIME,
pid=1234, private-users=UID:COUNT, network-NAME=IP/PREFIX, publish=HOSTPORT:PORT/PROTO, app-NAME=STATUS,
which scripts parse. With --wait, wait for the pod to end first.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			ids, err := uf.pods(args)
			if err != nil {
				return err
			}
			p, err := pod.Load(g.dir, ids[0])
			if err != nil {
				return err
			}
			if wait {
				if err := p.WaitUnlocked(); err != nil {
					return err
				}
				if p, err = pod.Load(g.dir, p.UUID); err != nil {
					return err
				}
			}
			if waitReady != "" {
				d, err := time.ParseDuration(waitReady)
				if err != nil {
					return usagef("--wait-ready=%s: %v", waitReady, err)
				}
				if p, err = podctl.WaitReady(p, d); err != nil {
					return err
				}
			}
			ps, err := p.Status()
			if err != nil {
				return err
			}
			st := withNet(p, ps)
			if f.isJSON() {
				return f.write(g.stdout, st)
			}
			if f == "table" && (cmd.Flags().Changed("format") || isTerminal(g.stdout)) {
				return statusTable(g.stdout, st)
			}
			return statusLines(g.stdout, st)
		},
	}
	f.register(cmd.Flags())
	uf.register(cmd.Flags())
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the pod to exit")
	cmd.Flags().StringVar(&waitReady, "wait-ready", "", "wait up to this long (e.g. 10s) for every app to have started")
	return cmd
}

// isTerminal reports whether w is a terminal: status prints tables for
// people there and rkt's lines for scripts elsewhere.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// statusLines prints rkt's status: key=value lines, for scripts.
func statusLines(w io.Writer, st podStatus) error {
	fmt.Fprintf(w, "state=%s\n", st.State)
	fmt.Fprintf(w, "created=%s\n", st.Created.Format(time.RFC3339))
	if !st.Started.IsZero() {
		fmt.Fprintf(w, "started=%s\n", st.Started.Format(time.RFC3339))
	}
	if st.Pid > 0 {
		fmt.Fprintf(w, "pid=%d\n", st.Pid)
	}
	if st.PrivateUsers != "" {
		fmt.Fprintf(w, "private-users=%s\n", st.PrivateUsers)
	}
	for _, n := range st.Networks {
		for _, ip := range n.IPs {
			fmt.Fprintf(w, "network-%s=%s\n", n.Network, ip)
		}
	}
	for _, m := range st.Ports {
		fmt.Fprintf(w, "publish=%s\n", m)
	}
	for _, a := range pod.SortedApps(st.Apps) {
		fmt.Fprintf(w, "app-%s=%d\n", a, st.Apps[a])
	}
	return nil
}

// statusTable prints the pod as a table, then its apps as another: each
// app's image and exit status ("-" while it runs or if it never ran).
func statusTable(w io.Writer, st podStatus) error {
	pid, ports := "-", make([]string, len(st.Ports))
	if st.Pid > 0 {
		pid = strconv.Itoa(st.Pid)
	}
	for i, m := range st.Ports {
		ports[i] = m.String()
	}
	head := []string{"UUID", "STATE", "PID", "CREATED", "STARTED", "NETWORKS", "PORTS"}
	row := []string{st.UUID, string(st.State), pid, stamp(st.Created), stamp(st.Started), strings.Join(st.netNames(), ","), strings.Join(ports, ",")}
	if st.PrivateUsers != "" {
		head, row = append(head, "PRIVATE USERS"), append(row, st.PrivateUsers)
	}
	err := table(w, head, [][]string{row}, false)
	if err != nil || len(st.AppList) == 0 {
		return err
	}
	var rows [][]string
	for i, app := range st.AppList {
		name, exit := "-", "-"
		if i < len(st.Names) && st.Names[i] != "" {
			name = st.Names[i]
		}
		if n, ok := st.Apps[app]; ok {
			exit = strconv.Itoa(n)
		}
		rows = append(rows, []string{app, name, exit})
	}
	fmt.Fprintln(w)
	return table(w, []string{"APP", "IMAGE NAME", "EXIT STATUS"}, rows, false)
}
