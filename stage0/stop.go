package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/testhook"
	"github.com/spf13/cobra"
)

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
		if err != nil {
			return err
		}
		// The pod has ended: release its network now rather than at gc
		// (unless someone else took the pod meanwhile).
		if p.TryLock() == nil {
			defer p.Unlock()
			return detachNet(g, p)
		}
		return nil
	case <-time.After(wait):
		if stopErr != nil {
			return stopErr
		}
		return fmt.Errorf("stop pod %s: still running after %s (try --force)", p.UUID, wait)
	}
}
