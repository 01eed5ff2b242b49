package main

import (
	"fmt"

	"github.com/skiffpod/skiff/pkg/pod"
)

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
