package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/testhook"
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
			var sts []pod.Status
			for _, p := range pods {
				st, err := p.Status()
				if errors.Is(err, pod.ErrNotExist) {
					continue // removed while we looked
				}
				if err != nil {
					return err
				}
				sts = append(sts, st)
			}
			sort.Slice(sts, func(i, j int) bool { return sts[i].Created.Before(sts[j].Created) })
			if f == "json" {
				if sts == nil {
					sts = []pod.Status{}
				}
				return writeJSON(g.stdout, sts)
			}
			var rows [][]string
			for _, st := range sts {
				rows = append(rows, []string{st.UUID[:8], strings.Join(st.AppList, ","), string(st.State), st.Created.Format(time.DateTime)})
			}
			return table(g.stdout, []string{"UUID", "APPS", "STATE", "CREATED"}, rows, noLegend)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "omit the header line")
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	var f format
	var wait bool
	var waitReady string
	cmd := &cobra.Command{
		Use:   "status UUID",
		Short: "Show a pod's state, pid and its apps' exit statuses",
		Long: `Show a pod's state, pid and its apps' exit statuses, as lines
state=running, pid=1234, app-NAME=STATUS. With --wait, wait for the pod to end first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			p, err := pod.Load(g.dir, args[0])
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
				if p, err = waitForReady(p, d); err != nil {
					return err
				}
			}
			st, err := p.Status()
			if err != nil {
				return err
			}
			if f == "json" {
				return writeJSON(g.stdout, st)
			}
			fmt.Fprintf(g.stdout, "state=%s\n", st.State)
			fmt.Fprintf(g.stdout, "created=%s\n", st.Created.Format(time.RFC3339))
			if st.Pid > 0 {
				fmt.Fprintf(g.stdout, "pid=%d\n", st.Pid)
			}
			for _, a := range pod.SortedApps(st.Apps) {
				fmt.Fprintf(g.stdout, "app-%s=%d\n", a, st.Apps[a])
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the pod to exit")
	cmd.Flags().StringVar(&waitReady, "wait-ready", "", "wait up to this long (e.g. 10s) for every app to have started")
	return cmd
}

// waitForReady polls for the ready marker stage1 writes, and returns the
// pod as last loaded: it may have moved (prepare to run) since p was.
func waitForReady(p *pod.Pod, d time.Duration) (*pod.Pod, error) {
	deadline := time.Now().Add(d)
	for {
		p2, err := pod.Load(p.Dir(), p.UUID)
		if err != nil {
			return nil, err
		}
		st, err := p2.Status()
		if errors.Is(err, pod.ErrNotExist) && time.Now().Before(deadline) {
			continue // moved to its next state since Load: look again
		}
		if err != nil {
			return nil, err
		}
		if st.Ready {
			return p2, nil
		}
		if st.State != "running" && st.State != "prepared" && st.State != "preparing" {
			return nil, fmt.Errorf("pod %s is %s, it never became ready", p.UUID, st.State)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pod %s: not ready after %s", p.UUID, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newEnterCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "enter UUID [--app NAME] [-- CMD [ARGS...]]",
		Short: "Run a command inside a running app, with the app's own restrictions",
		Long: `Run a command inside an app of a running pod. The command gets the same
restrictions as the app: its namespaces, root, user, capabilities, cgroup,
no_new_privs and seccomp. Without CMD, runs /bin/sh. --app is needed when the
pod has more than one app.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, st, err := runningPod(g, "enter", args[0])
			if err != nil {
				return err
			}
			if app == "" {
				if len(st.AppList) != 1 {
					return usagef("pod %s has %d apps (%s): pick one with --app", p.UUID, len(st.AppList), strings.Join(st.AppList, ", "))
				}
				app = st.AppList[0]
			}
			command := args[1:]
			if len(command) == 0 {
				command = []string{"/bin/sh"}
			}
			in, err := invocation(g, p)
			if err != nil {
				return err
			}
			code, err := in.Enter(app, command)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitCode{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the app to enter")
	return cmd
}

func newStopCmd(g *globals) *cobra.Command {
	var force bool
	var wait string
	cmd := &cobra.Command{
		Use:   "stop UUID...",
		Short: "Stop running pods cleanly (--force kills them)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := time.ParseDuration(wait)
			if err != nil {
				return usagef("--wait=%s: %v", wait, err)
			}
			return eachPod(g, args, func(id string) error { return stopPod(g, id, force, d) })
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "kill the pod at once instead of a clean shutdown")
	cmd.Flags().StringVar(&wait, "wait", "30s", "how long to wait for the pod to end (0 to return at once)")
	return cmd
}

// eachPod runs fn for every pod named, printing each one done and each
// error; it fails if any did.
func eachPod(g *globals, ids []string, fn func(id string) error) error {
	failed := false
	for _, id := range ids {
		if err := fn(id); err != nil {
			fmt.Fprintf(g.stderr, "skiff: %v\n", err)
			failed = true
			continue
		}
		fmt.Fprintln(g.stdout, id)
	}
	if failed {
		return &exitCode{code: exitFailure}
	}
	return nil
}

// runningPod loads pod id and checks that it runs, for operation op.
func runningPod(g *globals, op, id string) (*pod.Pod, pod.Status, error) {
	p, err := pod.Load(g.dir, id)
	if err != nil {
		return nil, pod.Status{}, err
	}
	st, err := p.Status()
	if err != nil {
		return nil, st, err
	}
	if st.State != "running" {
		return nil, st, fmt.Errorf("%s pod %s: %w: it is %s", op, p.UUID, pod.ErrState, st.State)
	}
	return p, st, nil
}

// endingWait is how long stop --wait=0 waits, after stage1's stop failed,
// for a pod that may have been ending anyway.
const endingWait = 10 * time.Second

// stopPod stops a running pod. Stop is idempotent: a pod that has ended,
// also while this stop was on its way, is stopped; one that never ran is
// an error.
func stopPod(g *globals, id string, force bool, wait time.Duration) error {
	p, err := pod.Load(g.dir, id)
	if err != nil {
		return err
	}
	st, err := p.Status()
	if err != nil {
		return err
	}
	switch st.State {
	case "running":
	case "exited", "exited-garbage":
		return nil
	default:
		return fmt.Errorf("stop pod %s: %w: it is %s and never ran", p.UUID, pod.ErrState, st.State)
	}
	in, err := invocation(g, p)
	if err != nil {
		return err
	}
	testhook.Wait(testhook.StopPod)
	stopErr := in.Stop(force)
	if stopErr != nil && wait == 0 {
		// Stage1's stop fails when the pod ends under it (a KVM guest
		// may power off before it answers): that is a success, if the
		// pod is gone soon.
		wait = endingWait
	}
	if wait == 0 {
		return stopErr
	}
	done := make(chan error, 1)
	go func() { done <- p.WaitUnlocked() }()
	select {
	case err := <-done:
		if errors.Is(err, pod.ErrNotExist) {
			return nil // ended and collected
		}
		return err
	case <-time.After(wait):
		if stopErr != nil {
			return stopErr
		}
		return fmt.Errorf("stop pod %s: still running after %s (try --force)", p.UUID, wait)
	}
}

func newRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm UUID...",
		Short: "Remove exited or prepared pods",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachPod(g, args, func(id string) error { return removePod(g, id) })
		},
	}
}

func removePod(g *globals, id string) error {
	p, err := pod.Load(g.dir, id)
	if err != nil {
		return err
	}
	if err := p.TryLock(); err != nil {
		return fmt.Errorf("rm pod %s: %w (stop it first)", p.UUID, err)
	}
	defer p.Unlock()
	switch p.State {
	case pod.Running:
		if err := p.Transition(pod.ExitedGarbage); err != nil {
			return err
		}
	case pod.Embryo, pod.Preparing, pod.Prepared:
		if err := p.Transition(pod.Garbage); err != nil {
			return err
		}
	}
	return deletePod(g, p)
}

// deletePod releases and deletes a locked garbage pod: stage1's gc, then
// every mount below the pod dir, then the files. Deletion never starts
// while something is still mounted there.
func deletePod(g *globals, p *pod.Pod) error {
	if p.State == pod.ExitedGarbage {
		if in, err := invocation(g, p); err == nil {
			if err := in.GC(); err != nil {
				g.log.Warn("stage1 gc", "pod", p.UUID, "err", err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			g.log.Warn("stage1 gc skipped", "pod", p.UUID, "err", err)
		}
	}
	if err := mount.UnmountAll(p.Path()); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.UUID, err)
	}
	// os.RemoveAll never follows symlinks: a pod cannot point it elsewhere.
	if err := os.RemoveAll(p.Path()); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.UUID, err)
	}
	return nil
}

func newGCCmd(g *globals) *cobra.Command {
	var grace, expirePrepared time.Duration
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Collect exited and abandoned pods",
		Long: `Collect garbage: exited pods are marked (moved to exited-garbage) and removed
once marked for longer than --grace-period; aborted and abandoned pods are
removed; prepared pods older than --expire-prepared are removed. Running and
preparing pods are never touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return collect(g, grace, expirePrepared)
		},
	}
	cmd.Flags().DurationVar(&grace, "grace-period", 30*time.Minute, "how long exited pods stay before removal")
	cmd.Flags().DurationVar(&expirePrepared, "expire-prepared", 24*time.Hour, "remove prepared pods older than this")
	return cmd
}

func collect(g *globals, grace, expirePrepared time.Duration) error {
	pods, err := pod.List(g.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		// Look first, lock only a pod there is work on: gc's look must
		// never make a command fail (a run-prepared waits it out).
		done, err := p.Look()
		if err != nil {
			continue // in use, or gone
		}
		testhook.Wait(testhook.GCPod)
		due := collectDue(p, grace, expirePrepared)
		done()
		if !due {
			continue
		}
		if err := p.TryLock(); err != nil {
			continue // taken since the look
		}
		if err := collectOne(g, p, grace, expirePrepared); err != nil {
			errs = append(errs, err)
		}
		p.Unlock()
	}
	return errors.Join(errs...)
}

// collectDue reports whether gc has work on an unlocked pod in its state.
func collectDue(p *pod.Pod, grace, expirePrepared time.Duration) bool {
	switch p.State {
	case pod.Prepared:
		st, err := os.Stat(p.Path())
		return err == nil && time.Since(st.ModTime()) >= expirePrepared
	case pod.ExitedGarbage:
		at, err := p.MarkedAt()
		return err == nil && time.Since(at) >= grace
	}
	return true
}

func collectOne(g *globals, p *pod.Pod, grace, expirePrepared time.Duration) error {
	switch p.State {
	case pod.Running:
		fmt.Fprintf(g.stdout, "moving pod %s to exited-garbage\n", p.UUID)
		if err := p.Transition(pod.ExitedGarbage); err != nil {
			return err
		}
	case pod.Embryo, pod.Preparing:
		fmt.Fprintf(g.stdout, "moving abandoned pod %s to garbage\n", p.UUID)
		if err := p.Transition(pod.Garbage); err != nil {
			return err
		}
	case pod.Prepared:
		st, err := os.Stat(p.Path())
		if err != nil || time.Since(st.ModTime()) < expirePrepared {
			return nil
		}
		if err := p.Transition(pod.Garbage); err != nil {
			return err
		}
	}
	switch p.State {
	case pod.ExitedGarbage:
		at, err := p.MarkedAt()
		if err != nil || time.Since(at) < grace {
			return err
		}
	case pod.Garbage:
	default:
		return nil
	}
	fmt.Fprintf(g.stdout, "removing pod %s\n", p.UUID)
	return deletePod(g, p)
}

func newCatManifestCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cat-manifest UUID",
		Short: "Print a pod's manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := pod.Load(g.dir, args[0])
			if err != nil {
				return err
			}
			b, err := p.ReadFile(pod.ManifestFile, pod.MaxManifestSize)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("pod %s has no manifest yet: %w", p.UUID, err)
			}
			if err != nil {
				return fmt.Errorf("manifest of pod %s: %w", p.UUID, err)
			}
			_, err = g.stdout.Write(append(b, '\n'))
			return err
		},
	}
}
