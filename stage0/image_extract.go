package main

import (
	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/store"
)

func newImageExtractCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "extract IMAGE DIR",
		Short: "Unpack an image's rootfs into a new directory",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImage(g, args[0], func(s *store.Store, id string) error {
				return s.ExtractRootfs(cmd.Context(), id, args[1])
			})
		},
	}
}
