package main

import (
	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/store"
)

func newImageCatManifestCmd(g *globals) *cobra.Command {
	var app bool
	cmd := &cobra.Command{
		Use:   "cat-manifest IMAGE",
		Short: "Print an image's manifest (an OCI image's as fetched; --app: the app skiff made of it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImage(g, args[0], func(s *store.Store, id string) error {
				if im, err := s.Get(id); err == nil && im.OCI != nil && !app {
					// The bytes as fetched and verified: they hash to the digest.
					b, err := s.OCIImageBlobs(id)
					if err != nil {
						return err
					}
					_, err = g.stdout.Write(b.Manifest)
					return err
				}
				m, err := s.Manifest(id)
				if err != nil {
					return err
				}
				return writeJSON(g.stdout, m)
			})
		},
	}
	cmd.Flags().BoolVar(&app, "app", false, "of an OCI image, print the appc image manifest skiff synthesized from its config")
	return cmd
}
