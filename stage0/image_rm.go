package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/podctl"
	"github.com/skiffpod/skiff/pkg/store"
	"github.com/skiffpod/skiff/pkg/testhook"
)

func newImageRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm IMAGE...",
		Short: "Remove images from the store (by ID, ID prefix or name)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(g, func(s *store.Store) error {
				var failed bool
				for _, ref := range args {
					im, err := s.Get(ref)
					if err == nil {
						testhook.Wait(testhook.ImageRm)
						// In use is asked under the store's exclusive lock, as
						// for image gc: a prepare holds it shared until its pod
						// records its trees.
						err = s.Remove(im.ID, func() (map[string]string, error) { return podctl.Images(g.dir) })
					}
					if errors.Is(err, store.ErrInUse) {
						err = fmt.Errorf("%w (remove the pod first)", err)
					}
					if err != nil {
						fmt.Fprintf(g.stderr, "skiff: image rm %s: %v\n", ref, err)
						failed = true
						continue
					}
					fmt.Fprintf(g.stdout, "removed %s (%s)\n", im.ID, im.Name)
				}
				if failed {
					return &exitCode{code: exitFailure}
				}
				return nil
			})
		},
	}
}
