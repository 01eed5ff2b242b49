package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/store"
)

func newImageRenderCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "render IMAGE",
		Short: "Render an image and its dependencies in the store; prints the tree directories",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImage(g, args[0], func(s *store.Store, id string) error {
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
}
