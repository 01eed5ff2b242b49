package main

import (
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/store"
)

func newImageListCmd(g *globals) *cobra.Command {
	var f format
	var full, noLegend bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List images in the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			return withStore(g, func(s *store.Store) error {
				imgs, err := s.List()
				if err != nil {
					return err
				}
				if f.isJSON() {
					out := make([]listedImage, len(imgs))
					for i, im := range imgs {
						out[i] = listedImage{im, im.Digest()}
					}
					return f.write(g.stdout, out)
				}
				var rows [][]string
				for _, im := range imgs {
					id, digest := im.ID, im.Digest()
					if !full {
						id, digest = id[:min(len(id), 19)], digest[:min(len(digest), 19)]
					}
					// An OCI image's VERSION is its tag; LAYERS counts its
					// layers (an ACI's: itself, dependencies aside).
					version, layers, kind := im.Labels["version"], "1", store.KindACI
					if im.OCI != nil {
						version, layers, kind = im.OCI.Tag, strconv.Itoa(len(im.OCI.Layers)), store.KindOCI
					}
					rows = append(rows, []string{id, kind, im.Name, version, layers, string(im.Provenance), humanSize(im.Size), im.ImportedAt.Format(time.DateTime), lastUsed(im.LastUsedAt), digest})
					// A name given by image tag is a row of its own, as podman lists it.
					for _, t := range tagNames(im) {
						rows = append(rows, []string{id, kind, t[0], t[1], layers, string(im.Provenance), humanSize(im.Size), im.ImportedAt.Format(time.DateTime), lastUsed(im.LastUsedAt), digest})
					}
				}
				return table(g.stdout, []string{"ID", "KIND", "NAME", "VERSION", "LAYERS", "PROVENANCE", "SIZE", "IMPORTED", "LAST USED", "DIGEST"}, rows, noLegend)
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&full, "full", false, "print full image IDs and digests")
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "omit the header line; columns separated by tabs")
	return cmd
}

// listedImage is a row of `image list --format=json`: the stored record
// and its digest (store.Image.Digest), a field of its own for scripts.
type listedImage struct {
	store.Image
	Digest string `json:"digest"`
}

func lastUsed(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.DateTime)
}
