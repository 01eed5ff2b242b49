package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/testhook"
	"github.com/spf13/cobra"
)

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
		// An exited pod's address and ports are free from now on.
		if err := detachNet(g, p); err != nil {
			return fmt.Errorf("gc pod %s: %w", p.UUID, err)
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
