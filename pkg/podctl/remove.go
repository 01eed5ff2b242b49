package podctl

import (
	"errors"
	"fmt"
	"os"

	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/prepare"
)

// Remove removes pod id if it is exited or prepared (not running, not
// being prepared).
func (c *Pods) Remove(id string) error {
	p, err := pod.Load(c.Dir, id)
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
	return c.Delete(p)
}

// Delete releases and deletes a locked garbage pod: its network, stage1's
// gc, then the files and every mount below the pod dir. Nothing is ever
// deleted through a mount.
func (c *Pods) Delete(p *pod.Pod) error {
	// The network goes first, from the pod dir's cache alone, whatever the
	// stage1 does: it needs the namespace file that gc then removes.
	if err := c.detachNet(p); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.UUID, err)
	}
	if p.State == pod.ExitedGarbage {
		if in, err := c.Invocation(p); err == nil {
			if err := in.GC(); err != nil {
				c.Log.Warn("stage1 gc", "pod", p.UUID, "err", err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			c.Log.Warn("stage1 gc skipped", "pod", p.UUID, "err", err)
		}
	}
	// The pod's processes are gone: its uid range can be another pod's.
	if err := prepare.ReleasePrivateUsers(p); err != nil {
		c.Log.Warn("release uid range", "pod", p.UUID, "err", err)
	}
	// mount.RemoveAll detaches each mount where it meets it and never
	// follows a symlink: a pod cannot point it elsewhere, and nothing is
	// deleted through a mount.
	if err := mount.RemoveAll(p.Path()); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.UUID, err)
	}
	return nil
}
