package podctl

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/testhook"
)

// GCOptions say when gc removes a pod.
type GCOptions struct {
	Grace          time.Duration // how long exited pods stay marked before removal
	ExpirePrepared time.Duration // prepared pods older than this are removed
	MarkOnly       bool          // only mark exited and abandoned pods; remove nothing (rkt's --mark-only)
}

// GC collects garbage: exited pods are marked (moved to exited-garbage)
// and removed once marked for longer than o.Grace; aborted and abandoned
// pods are removed; prepared pods older than o.ExpirePrepared are
// removed. Running and preparing pods (locked) are never touched. With
// o.MarkOnly gc only marks: exited pods as exited-garbage, abandoned ones
// as garbage.
func (c *Pods) GC(o GCOptions) error {
	pods, err := pod.List(c.Dir)
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
		due := gcDue(p, o)
		done()
		if !due {
			continue
		}
		if err := p.TryLock(); err != nil {
			continue // taken since the look
		}
		if err := c.collect(p, o); err != nil {
			errs = append(errs, err)
		}
		p.Unlock()
	}
	return errors.Join(errs...)
}

// gcDue reports whether gc has work on an unlocked pod in its state.
func gcDue(p *pod.Pod, o GCOptions) bool {
	switch p.State {
	case pod.Prepared:
		st, err := os.Stat(p.Path())
		return !o.MarkOnly && err == nil && time.Since(st.ModTime()) >= o.ExpirePrepared
	case pod.ExitedGarbage:
		at, err := p.MarkedAt()
		return !o.MarkOnly && err == nil && time.Since(at) >= o.Grace
	case pod.Garbage:
		return !o.MarkOnly
	}
	return true
}

// collect does gc's work on one locked pod.
func (c *Pods) collect(p *pod.Pod, o GCOptions) error {
	switch p.State {
	case pod.Running:
		fmt.Fprintf(c.out(), "moving pod %s to exited-garbage\n", p.UUID)
		if err := p.Transition(pod.ExitedGarbage); err != nil {
			return err
		}
		// An exited pod's address and ports are free from now on.
		if err := c.detachNet(p); err != nil {
			return fmt.Errorf("gc pod %s: %w", p.UUID, err)
		}
	case pod.Embryo, pod.Preparing:
		fmt.Fprintf(c.out(), "moving abandoned pod %s to garbage\n", p.UUID)
		if err := p.Transition(pod.Garbage); err != nil {
			return err
		}
	case pod.Prepared:
		st, err := os.Stat(p.Path())
		if o.MarkOnly || err != nil || time.Since(st.ModTime()) < o.ExpirePrepared {
			return nil
		}
		if err := p.Transition(pod.Garbage); err != nil {
			return err
		}
	}
	if o.MarkOnly {
		return nil
	}
	switch p.State {
	case pod.ExitedGarbage:
		at, err := p.MarkedAt()
		if err != nil || time.Since(at) < o.Grace {
			return err
		}
	case pod.Garbage:
	default:
		return nil
	}
	fmt.Fprintf(c.out(), "removing pod %s\n", p.UUID)
	return c.Delete(p)
}
