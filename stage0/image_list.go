package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/store"
)

func newImageListCmd(g *globals) *cobra.Command {
	var f format
	var full, noLegend bool
	var fields string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List images in the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			cols, err := pickColumns(fields)
			if err != nil {
				return usageError{err}
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
				for i, r := range rows {
					rows[i] = pick(r, cols)
				}
				return table(g.stdout, pick(imageColumns, cols), rows, noLegend)
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&full, "full", false, "print full image IDs and digests")
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "omit the header line; columns separated by tabs")
	cmd.Flags().StringVar(&fields, "fields", "", "comma-separated columns to print, in order: "+strings.Join(imageFields, ","))
	return cmd
}

// listedImage is a row of `image list --format=json`: the stored record
// and its digest (store.Image.Digest), a field of its own for scripts.
type listedImage struct {
	store.Image
	Digest string `json:"digest"`
}

// imageColumns are image list's columns, imageFields their names for
// --fields (rkt's where rkt had the column: importtime, lastused).
var (
	imageColumns = []string{"ID", "KIND", "NAME", "VERSION", "LAYERS", "PROVENANCE", "SIZE", "IMPORTED", "LAST USED", "DIGEST"}
	imageFields  = []string{"id", "kind", "name", "version", "layers", "provenance", "size", "importtime", "lastused", "digest"}
)

// pickColumns returns the indexes of the --fields names, every column
// when there are none.
func pickColumns(fields string) ([]int, error) {
	var cols []int
	if fields == "" {
		for i := range imageColumns {
			cols = append(cols, i)
		}
		return cols, nil
	}
	for _, f := range strings.Split(fields, ",") {
		i := slices.Index(imageFields, strings.ToLower(strings.TrimSpace(f)))
		if i < 0 {
			return nil, fmt.Errorf("--fields: unknown field %q (want %s)", f, strings.Join(imageFields, ","))
		}
		cols = append(cols, i)
	}
	return cols, nil
}

// pick returns row's cells at cols, in that order.
func pick(row []string, cols []int) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = row[c]
	}
	return out
}

func lastUsed(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.DateTime)
}
