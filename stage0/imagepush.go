package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/oci"
	"github.com/skiffpod/skiff/pkg/store"
)

func newImagePushCmd(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push IMAGE [docker://REGISTRY/NAME:TAG]",
		Short: "Upload an OCI image from the store to a registry, unchanged (same manifest digest)",
		Long: `Upload an OCI image from the store to a registry. The blobs uploaded are the
ones the store kept, checked against their digests as they stream, and the
manifest is the one fetched, so the image keeps its digest, which push
prints. Without a target, IMAGE must be a docker:// reference (its own name
or one given by 'skiff image tag'). --insecure-options=http or tls and the
credentials are those of fetch.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := args[len(args)-1]
			ref, err := imageref.Parse(target)
			if err != nil {
				return usagef("image push: %v", err)
			}
			if ref.Transport != imageref.Docker || ref.Digest != "" {
				return usagef("image push: %s: the target is a docker://REGISTRY/NAME:TAG reference", target)
			}
			return withImage(g, args[0], func(s *store.Store, id string) error {
				release, err := s.Hold() // no gc while the blobs are read
				if err != nil {
					return err
				}
				defer release()
				blobs, err := s.OCIImageBlobs(id)
				if err != nil {
					return fmt.Errorf("image push: %w", err)
				}
				progress := g.stderr
				if quiet {
					progress = nil
				}
				// A push goes to the registry itself, never to its mirrors.
				opts, err := g.registryOptions(ref)
				if err != nil {
					return err
				}
				opts.Mirrors = nil
				d, err := oci.Push(cmd.Context(), ref, blobs, opts, progress)
				if err != nil {
					return fmt.Errorf("image push: %w", err)
				}
				fmt.Fprintf(g.stdout, "docker://%s@%s\n", ref.Name(), d)
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print no progress lines")
	return cmd
}
