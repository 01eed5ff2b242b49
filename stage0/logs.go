package main

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/journal"
	"github.com/skiffpod/skiff/pkg/pod"
)

func newLogsCmd(g *globals) *cobra.Command {
	var o journal.Options
	cmd := &cobra.Command{
		Use:   "logs UUID",
		Short: "Show what a pod's apps printed (from the pod's journal)",
		Long: `Show the pod's journal: what its apps wrote to stdout and stderr, each line
tagged with the app name. Works on any host with journalctl, with or without
systemd as PID 1, while the pod runs and after it exited (until gc removes it).
On a systemd host 'journalctl -M skiff-UUID' shows the same.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := pod.Load(g.dir, args[0])
			if err != nil {
				return err
			}
			if o.App != "" {
				st, err := p.Status()
				if err != nil {
					return err
				}
				if !slices.Contains(st.AppList, o.App) {
					return fmt.Errorf("logs: pod %s has no app %q (its apps: %s)", p.UUID, o.App, strings.Join(st.AppList, ", "))
				}
			}
			files, err := journal.Open(p)
			if err != nil {
				return err
			}
			defer func() {
				for _, f := range files {
					f.Close()
				}
			}()
			jc, err := exec.LookPath("journalctl")
			if err != nil {
				return fmt.Errorf("logs: journalctl not found: install systemd (apt-get install systemd)")
			}
			c := exec.Command(jc, journal.Args(len(files), o)...)
			c.ExtraFiles = files
			c.Stdout, c.Stderr = g.stdout, g.stderr
			err = c.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return &exitCode{code: exitFailure, err: fmt.Errorf("logs: journalctl exited %d", ee.ExitCode())}
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.App, "app", "", "only this app's lines (an app of the pod)")
	fs.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new lines")
	fs.IntVarP(&o.Lines, "lines", "n", 0, "only the last N lines")
	fs.StringVarP(&o.Output, "output", "o", "", "journalctl output mode: short, cat, json, verbose, ...")
	return cmd
}
