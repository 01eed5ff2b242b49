package podctl

import (
	"errors"
	"fmt"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/testhook"
)

// endingWait is how long a stop with wait 0 waits, after stage1's stop
// failed, for a pod that may have been ending anyway.
const endingWait = 10 * time.Second

// Stop stops running pod id through its stage1 (force kills it) and waits
// up to wait for it to end (0: returns once stage1 answered). Stop is
// idempotent: a pod that has ended, also while this stop was on its way,
// is stopped; one that never ran is an error.
func (c *Pods) Stop(id string, force bool, wait time.Duration) error {
	p, err := pod.Load(c.Dir, id)
	if err != nil {
		return err
	}
	st, err := p.Status()
	if err != nil {
		return err
	}
	switch st.State {
	case pod.PhaseRunning:
	case pod.PhaseExited, pod.PhaseExitedGarbage:
		return nil
	default:
		return fmt.Errorf("stop pod %s: %w: it is %s and never ran", p.UUID, pod.ErrState, st.State)
	}
	in, err := c.Invocation(p)
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
			return c.detachNet(p)
		}
		return nil
	case <-time.After(wait):
		if stopErr != nil {
			return stopErr
		}
		return fmt.Errorf("stop pod %s: still running after %s (try --force)", p.UUID, wait)
	}
}
