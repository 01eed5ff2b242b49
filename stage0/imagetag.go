package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/store"
)

func newImageTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag IMAGE docker://REGISTRY/NAME:TAG",
		Short: "Give an OCI image in the store another name (for image push and run)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := imageref.Parse(args[1])
			if err != nil {
				return usagef("image tag: %v", err)
			}
			if ref.Transport != imageref.Docker || ref.Digest != "" {
				return usagef("image tag: %s: the new name is a docker://REGISTRY/NAME:TAG reference", args[1])
			}
			return withImage(g, args[0], func(s *store.Store, id string) error {
				if err := s.Tag(id, ref); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "tagged %s as %s\n", id, ref)
				return nil
			})
		},
	}
}

// tagNames returns the names and tags image tag gave im.
func tagNames(im store.Image) [][2]string {
	if im.OCI == nil {
		return nil
	}
	var out [][2]string
	for _, t := range im.OCI.Tags {
		if r, err := imageref.Parse(t); err == nil {
			out = append(out, [2]string{r.Name(), r.Tag})
		}
	}
	return out
}
