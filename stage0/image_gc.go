package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/podctl"
	"github.com/skiffpod/skiff/pkg/store"
)

func newImageGCCmd(g *globals) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove rendered trees no pod uses, and images unused for --grace-period",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(g, func(s *store.Store) error {
				// In use is asked under the store's exclusive lock: a prepare
				// holds it shared until its pod records its trees.
				inUse := func() (map[string]string, error) { return podctl.Images(g.dir) }
				removed, err := s.GC(cmd.Context(), inUse, store.GCOptions{ImageGracePeriod: grace})
				for _, r := range removed {
					fmt.Fprintf(g.stdout, "removed %s\n", r)
				}
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace-period", 24*time.Hour, "remove images not used for this long (0 keeps every image, removing only unused trees)")
	return cmd
}
