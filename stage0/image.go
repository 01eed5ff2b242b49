package main

import (
	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/store"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the images in the store",
	}
	cmd.AddCommand(newImageListCmd(g), newImageRmCmd(g), newImageGCCmd(g), newImageExportCmd(g),
		newImageExtractCmd(g), newImageRenderCmd(g), newImageCatManifestCmd(g), newImageVerifyCmd(g),
		newImageTagCmd(g), newImagePushCmd(g))
	return cmd
}

// withStore runs fn with the store open.
func withStore(g *globals, fn func(s *store.Store) error) error {
	s, err := g.openStore()
	if err != nil {
		return err
	}
	return fn(s)
}

// withImage runs fn on the stored image ref names (ID, ID prefix or name).
func withImage(g *globals, ref string, fn func(s *store.Store, id string) error) error {
	return withStore(g, func(s *store.Store) error {
		im, err := s.Get(ref)
		if err != nil {
			return err
		}
		return fn(s, im.ID)
	})
}
