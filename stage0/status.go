package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

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
		Long: `Show a pod's state, pid, addresses and its apps' exit statuses, as lines
state=running, pid=1234, private-users=UID:COUNT, network-NAME=IP/PREFIX, publish=HOSTPORT:PORT/PROTO,
app-NAME=STATUS. With --wait, wait for the pod to end first.`,
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
			fmt.Fprintf(g.stdout, "state=%s\n", st.State)
			fmt.Fprintf(g.stdout, "created=%s\n", st.Created.Format(time.RFC3339))
			if st.Pid > 0 {
				fmt.Fprintf(g.stdout, "pid=%d\n", st.Pid)
			}
			if st.PrivateUsers != "" {
				fmt.Fprintf(g.stdout, "private-users=%s\n", st.PrivateUsers)
			}
			for _, n := range st.Networks {
				for _, ip := range n.IPs {
					fmt.Fprintf(g.stdout, "network-%s=%s\n", n.Network, ip)
				}
			}
			for _, m := range st.Ports {
				fmt.Fprintf(g.stdout, "publish=%s\n", m)
			}
			for _, a := range pod.SortedApps(st.Apps) {
				fmt.Fprintf(g.stdout, "app-%s=%d\n", a, st.Apps[a])
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	uf.register(cmd.Flags())
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the pod to exit")
	cmd.Flags().StringVar(&waitReady, "wait-ready", "", "wait up to this long (e.g. 10s) for every app to have started")
	return cmd
}
