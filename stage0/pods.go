package main

import (
	"fmt"

	"github.com/skiffpod/skiff/pkg/podctl"
	"github.com/skiffpod/skiff/pkg/podnet"
)

// pods returns the pod lifecycle operations, configured by the globals.
func (g *globals) pods() *podctl.Pods {
	return &podctl.Pods{
		Dir:       g.dir,
		Store:     g.openStore,
		DetachNet: g.podNet().Detach,
		Debug:     g.debug,
		Log:       g.log,
		Out:       g.stdout,
	}
}

// podNet is the pod networks of the data dir.
func (g *globals) podNet() podnet.Host {
	return podnet.Host{Dir: g.dir, LocalConfig: g.localConfig, Log: g.log}
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
