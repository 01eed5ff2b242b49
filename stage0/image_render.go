package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/store"
)

func newImageRenderCmd(g *globals) *cobra.Command {
	var rootfsOnly bool
	cmd := &cobra.Command{
		Use:   "render IMAGE [DIR]",
		Short: "Render an image and its dependencies in the store and print the tree directories; with DIR, write the merged tree there (DIR/manifest and DIR/rootfs, as rkt)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rootfsOnly && len(args) == 1 {
				return usagef("--rootfs-only needs DIR")
			}
			return withImage(g, args[0], func(s *store.Store, id string) error {
				if len(args) == 2 {
					return s.Extract(cmd.Context(), id, args[1], store.Extraction{Dependencies: true, RootfsOnly: rootfsOnly})
				}
				dirs, err := s.LowerDirs(cmd.Context(), id)
				if err != nil {
					return err
				}
				for _, d := range dirs {
					fmt.Fprintln(g.stdout, d)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&rootfsOnly, "rootfs-only", false, "write only the merged rootfs, as DIR itself (rkt's flag)")
	return cmd
}
