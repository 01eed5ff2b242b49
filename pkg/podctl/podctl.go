// Package podctl is what stage0 does to the pods of a data dir after
// preparing them: find a pod's stage1 and call its entrypoints, stop a pod
// and wait for it to end, remove pods, collect garbage, and tell which
// images pods still use. The CLI parses and prints; the lifecycle is here.
package podctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/prepare"
	"github.com/skiffpod/skiff/pkg/stage1"
	"github.com/skiffpod/skiff/pkg/store"
)

// Pods operates on the pods of one data dir. Its fields are its whole
// configuration; a Pods holds no state between calls.
type Pods struct {
	Dir string // the data dir (--dir)
	// Store opens the image store, where pods' stage1 trees are. It is
	// called only when a stage1 entrypoint must run.
	Store func() (*store.Store, error)
	// DetachNet releases what stage0 attached for a pod's network, from
	// the pod dir alone; it must be repeatable. Nil: pods have no network.
	DetachNet func(p *pod.Pod) error
	Debug     bool         // passed on to stage1 entrypoints
	Log       *slog.Logger // never nil
	Out       io.Writer    // gc's progress lines; nil discards
}

func (c *Pods) out() io.Writer {
	if c.Out == nil {
		return io.Discard
	}
	return c.Out
}

func (c *Pods) detachNet(p *pod.Pod) error {
	if c.DetachNet == nil {
		return nil
	}
	return c.DetachNet(p)
}

// Invocation finds the store tree of the pod's stage1, to call its
// entrypoints from there (never from the pod's writable copy).
func (c *Pods) Invocation(p *pod.Pod) (stage1.Invocation, error) {
	in := stage1.Invocation{Pod: p, Debug: c.Debug}
	id, err := prepare.Stage1Image(p)
	if err != nil {
		return in, err
	}
	if c.Store == nil {
		return in, fmt.Errorf("pod %s: no image store to find its stage1 in", p.UUID)
	}
	s, err := c.Store()
	if err != nil {
		return in, err
	}
	in.Tree, err = s.Render(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return in, fmt.Errorf("pod %s: its stage1 image %s is no longer in the store", p.UUID, id)
	}
	return in, err
}

// Running loads pod id and checks that it runs, for operation op.
func (c *Pods) Running(op, id string) (*pod.Pod, pod.Status, error) {
	p, err := pod.Load(c.Dir, id)
	if err != nil {
		return nil, pod.Status{}, err
	}
	st, err := p.Status()
	if err != nil {
		return nil, st, err
	}
	if st.State != pod.PhaseRunning {
		return nil, st, fmt.Errorf("%s pod %s: %w: it is %s", op, p.UUID, pod.ErrState, st.State)
	}
	return p, st, nil
}

// Images returns the IDs of every image some pod still uses (its stage1,
// its apps and their dependencies, from the pod's overlay record), each
// with "pod UUID" of one pod that uses it: the in-use answer the store's
// Remove, GC and Verify ask for.
func Images(dir string) (map[string]string, error) {
	pods, err := pod.List(dir)
	if err != nil {
		return nil, err
	}
	used := map[string]string{}
	for _, p := range pods {
		// A pod that changes state (prepare -> prepared, a rename) while
		// it is read is read again where it went.
		ids := prepare.ImageIDs(p)
		for range 3 {
			if _, err := os.Lstat(p.Path()); !errors.Is(err, fs.ErrNotExist) {
				break
			}
			moved, err := pod.Load(dir, p.UUID)
			if err != nil {
				break // removed: it uses nothing
			}
			p, ids = moved, prepare.ImageIDs(moved)
		}
		for _, id := range ids {
			used[id] = "pod " + p.UUID
		}
	}
	return used, nil
}

// WaitReady polls for the ready marker stage1 writes and returns the pod
// as it is then, wherever it moved meanwhile.
func WaitReady(p *pod.Pod, d time.Duration) (*pod.Pod, error) {
	deadline := time.Now().Add(d)
	for {
		p2, err := pod.Load(p.Dir(), p.UUID)
		if err != nil {
			return nil, err
		}
		st, err := p2.Status()
		// A pod moving from prepare/ to run/ (stage0 attaches its network
		// in between) is looked for again.
		if err != nil && !errors.Is(err, pod.ErrNotExist) {
			return nil, err
		}
		if err == nil && st.Ready {
			return p2, nil
		}
		if err == nil && st.State != pod.PhaseRunning && st.State != pod.PhasePrepared && st.State != pod.PhasePreparing {
			return nil, fmt.Errorf("pod %s is %s, it never became ready", p.UUID, st.State)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pod %s: not ready after %s", p.UUID, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
