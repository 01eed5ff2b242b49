package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/spf13/cobra"
)

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
	// The network goes first, from the pod dir's cache alone, whatever the
	// stage1 does: it needs the namespace file that gc then removes.
	if err := detachNet(g, p); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.UUID, err)
	}
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
