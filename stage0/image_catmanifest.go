package main

import (
	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/store"
)

func newImageCatManifestCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cat-manifest IMAGE",
		Short: "Print an image's manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImage(g, args[0], func(s *store.Store, id string) error {
				m, err := s.Manifest(id)
				if err != nil {
					return err
				}
				return writeJSON(g.stdout, m)
			})
		},
	}
}
