package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/podctl"
	"github.com/skiffpod/skiff/pkg/store"
)

func newImageVerifyCmd(g *globals) *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every image in the store and report damage (--repair removes it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(g, func(s *store.Store) error {
				probs, err := s.Verify(cmd.Context(), repair, func() (map[string]string, error) { return podctl.Images(g.dir) })
				if err != nil {
					return err
				}
				for _, p := range probs {
					fmt.Fprintln(g.stdout, p)
				}
				if len(probs) == 0 {
					fmt.Fprintln(g.stdout, "store is consistent")
					return nil
				}
				if repair {
					fmt.Fprintf(g.stdout, "repaired %d problem(s); fetch the damaged images again\n", len(probs))
					return nil
				}
				return &exitCode{code: exitFailure, err: fmt.Errorf("image verify: %d problem(s); run 'skiff image verify --repair'", len(probs))}
			})
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "remove damaged images and trees so the store is consistent again")
	return cmd
}
