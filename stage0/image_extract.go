package main

import (
	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/store"
)

func newImageExtractCmd(g *globals) *cobra.Command {
	var rootfsOnly bool
	cmd := &cobra.Command{
		Use:   "extract IMAGE DIR",
		Short: "Unpack an image into a new directory: DIR/manifest and DIR/rootfs (the image alone, not its dependencies)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImage(g, args[0], func(s *store.Store, id string) error {
				return s.Extract(cmd.Context(), id, args[1], store.Extraction{RootfsOnly: rootfsOnly})
			})
		},
	}
	cmd.Flags().BoolVar(&rootfsOnly, "rootfs-only", false, "write only the rootfs, as DIR itself (rkt's flag)")
	return cmd
}
