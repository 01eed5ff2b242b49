package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podctl"
	"github.com/skiffpod/skiff/pkg/prepare"
	"github.com/skiffpod/skiff/pkg/trust"
)

// exitFsckProblems is fsck's status when it found problems it left
// unrepaired; skiff's own failures stay exitFailure.
const exitFsckProblems = 1

// fsckProblem is one line of fsck's report.
type fsckProblem struct {
	Area     string `json:"area"` // store, pods, trust
	Path     string `json:"path"`
	What     string `json:"problem"`
	Repaired bool   `json:"repaired"`
}

func newFsckCmd(g *globals) *cobra.Command {
	var f format
	var repair bool
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check the store, the pods and the trusted keys; --repair fixes what is safe",
		Long: `Check the data dir and the trust store: every blob re-hashed, every image
record against the manifest in its blob, every rendered tree against the hash
recorded when it was rendered, modes and owners (docs/security.md), pods (state
dirs, manifests, mounts left behind, images they use), trusted key files.

--repair fixes what is safe: modes, records rewritten from blobs, damaged
trees dropped (rendered again when needed; trees pods use are left), damaged
images removed, orphans and temp leftovers removed, leftover mounts unmounted.

Exit status: 0 when nothing is wrong (or everything found was repaired),
1 when problems remain, 254 when fsck itself failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			probs, err := fsck(cmd.Context(), g, repair)
			if err != nil {
				return err
			}
			left := 0
			for _, p := range probs {
				if !p.Repaired {
					left++
				}
			}
			if f.isJSON() {
				if probs == nil {
					probs = []fsckProblem{}
				}
				if err := f.write(g.stdout, probs); err != nil {
					return err
				}
			} else {
				for _, p := range probs {
					fmt.Fprintln(g.stdout, p)
				}
			}
			if left == 0 {
				return nil
			}
			hint := "run 'skiff fsck --repair'"
			if repair {
				hint = "the rest needs a person"
			}
			return &exitCode{code: exitFsckProblems, err: fmt.Errorf("fsck: %d problem(s) left; %s", left, hint)}
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&repair, "repair", false, "fix what is safe to fix")
	return cmd
}

// fsck checks the store, the pods and the trusted keys, repairing what is
// safe when repair is set, and returns every problem found.
func fsck(ctx context.Context, g *globals, repair bool) ([]fsckProblem, error) {
	var probs []fsckProblem
	s, err := g.openStore()
	if err != nil {
		return nil, err
	}
	sp, err := s.Verify(ctx, repair, func() (map[string]string, error) { return podctl.Images(g.dir) })
	if err != nil {
		return nil, err
	}
	for _, p := range sp {
		probs = append(probs, fsckProblem{"store", p.Path, p.What, p.Repaired})
	}
	pp, err := pod.Check(g.dir, pod.CheckOptions{
		Images: prepare.ImageIDs,
		HasImage: func(id string) bool {
			if s.HasLayer(id) { // an OCI image's layer, which pods mount
				return true
			}
			_, err := s.Get(id)
			return err == nil
		},
		Repair: repair,
	})
	if err != nil {
		return nil, err
	}
	for _, p := range pp {
		probs = append(probs, fsckProblem{"pods", p.Path, p.What, p.Repaired})
	}
	tp, err := trust.Open(g.localConfig).Check()
	if err != nil {
		return nil, err
	}
	for _, p := range tp {
		probs = append(probs, fsckProblem{"trust", p, "", false})
	}
	return probs, nil
}

// String is the problem as a line of the report: AREA: PATH[: WHAT][ (repaired)].
func (p fsckProblem) String() string {
	line := fmt.Sprintf("%s: %s", p.Area, p.Path)
	if p.What != "" {
		line += ": " + p.What
	}
	if p.Repaired {
		line += " (repaired)"
	}
	return line
}
