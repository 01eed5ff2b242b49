package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/prepare"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/store"
	"github.com/skiffpod/skiff/pkg/testhook"
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
				if f == "json" {
					if imgs == nil {
						imgs = []store.Image{}
					}
					return writeJSON(g.stdout, imgs)
				}
				var rows [][]string
				for _, im := range imgs {
					id := im.ID
					if !full && len(id) > 19 {
						id = id[:19]
					}
					// An OCI image's VERSION is its tag; LAYERS counts its
					// layers (an ACI's: itself, dependencies aside).
					version, layers, kind := im.Labels["version"], "1", store.KindACI
					if im.OCI != nil {
						version, layers, kind = im.OCI.Tag, strconv.Itoa(len(im.OCI.Layers)), store.KindOCI
					}
					rows = append(rows, []string{id, kind, im.Name, version, layers, string(im.Provenance), humanSize(im.Size), im.ImportedAt.Format(time.DateTime), lastUsed(im.LastUsedAt)})
					// A name given by image tag is a row of its own, as podman lists it.
					for _, t := range tagNames(im) {
						rows = append(rows, []string{id, kind, t[0], t[1], layers, string(im.Provenance), humanSize(im.Size), im.ImportedAt.Format(time.DateTime), lastUsed(im.LastUsedAt)})
					}
				}
				return table(g.stdout, []string{"ID", "KIND", "NAME", "VERSION", "LAYERS", "PROVENANCE", "SIZE", "IMPORTED", "LAST USED"}, rows, noLegend)
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&full, "full", false, "print full image IDs")
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "omit the header line; columns separated by tabs")
	return cmd
}

func lastUsed(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.DateTime)
}

func newImageRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm IMAGE...",
		Short: "Remove images from the store (by ID, ID prefix or name)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(g, func(s *store.Store) error {
				var failed bool
				for _, ref := range args {
					im, err := s.Get(ref)
					if err == nil {
						testhook.Wait(testhook.ImageRm)
						// In use is asked under the store's exclusive lock, as
						// for image gc: a prepare holds it shared until its pod
						// records its trees.
						err = s.Remove(im.ID, func() (map[string]string, error) { return podImages(g.dir) })
					}
					if errors.Is(err, store.ErrInUse) {
						err = fmt.Errorf("%w (remove the pod first)", err)
					}
					if err != nil {
						fmt.Fprintf(g.stderr, "skiff: image rm %s: %v\n", ref, err)
						failed = true
						continue
					}
					fmt.Fprintf(g.stdout, "removed %s (%s)\n", im.ID, im.Name)
				}
				if failed {
					return &exitCode{code: exitFailure}
				}
				return nil
			})
		},
	}
}

func newImageGCCmd(g *globals) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove rendered trees no pod uses, and images unused for --grace-period",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(g, func(s *store.Store) error {
				// In use is asked under the store's exclusive lock: a prepare
				// holds it shared until its pod records its trees.
				inUse := func() (map[string]string, error) { return podImages(g.dir) }
				removed, err := s.GC(cmd.Context(), inUse, store.GCOptions{ImageGracePeriod: grace})
				for _, r := range removed {
					fmt.Fprintf(g.stdout, "removed %s\n", r)
				}
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace-period", 24*time.Hour, "remove images not used for this long (0 keeps every image, removing only unused trees)")
	return cmd
}

// podImages returns the IDs of every image some pod still uses (its
// stage1, its apps and their dependencies, from the pod's overlay record),
// each with "pod UUID" of one pod that uses it.
func podImages(dir string) (map[string]string, error) {
	pods, err := pod.List(dir)
	if err != nil {
		return nil, err
	}
	used := map[string]string{}
	for _, p := range pods {
		// A pod that changes state (prepare -> prepared, a rename) while
		// it is read is read again where it went.
		ids := podImageIDs(p)
		for range 3 {
			if _, err := os.Lstat(p.Path()); !errors.Is(err, fs.ErrNotExist) {
				break
			}
			moved, err := pod.Load(dir, p.UUID)
			if err != nil {
				break // removed: it uses nothing
			}
			p, ids = moved, podImageIDs(moved)
		}
		for _, id := range ids {
			used[id] = "pod " + p.UUID
		}
	}
	return used, nil
}

// podImageIDs returns the images pod p uses: its stage1 and its apps'
// layers (an OCI image's layers by their diff_id hexes). A pod not
// prepared yet has none: a prepare holds the store until it has written
// them, so gc cannot be asking in between.
func podImageIDs(p *pod.Pod) []string {
	var ids []string
	if b, err := p.ReadFile(prepare.Stage1ImageFile, pod.MaxStateFileSize); err == nil {
		ids = append(ids, strings.TrimSpace(string(b)))
	}
	b, err := p.ReadFile("mounts.json", 16<<20)
	if err != nil {
		return ids
	}
	var recs []struct{ Lowers []string }
	if json.Unmarshal(b, &recs) == nil {
		for _, r := range recs {
			for _, l := range r.Lowers {
				ids = append(ids, filepath.Base(filepath.Dir(l)))
			}
		}
	}
	return ids
}

func newImageExportCmd(g *globals) *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "export IMAGE FILE",
		Short: "Write an image from the store to a file: an ACI, or an OCI image as an oci-archive (re-imports to the same ID)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImage(g, args[0], func(s *store.Store, id string) error {
				err := safefile.Write(args[1], 0o644, overwrite, func(w io.Writer) error { return s.Export(id, w) })
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("image export: %w (use --overwrite to replace)", err)
				}
				if err != nil {
					return fmt.Errorf("image export: %w", err)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace FILE if it exists")
	return cmd
}

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

func newImageVerifyCmd(g *globals) *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every image in the store and report damage (--repair removes it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(g, func(s *store.Store) error {
				probs, err := s.Verify(cmd.Context(), repair, func() (map[string]string, error) { return podImages(g.dir) })
				if err != nil {
					return err
				}
				for _, p := range probs {
					fmt.Fprintln(g.stdout, p)
				}
				if len(probs) == 0 {
					fmt.Fprintln(g.stdout, "store is consistent")
					return nil
				}
				if repair {
					fmt.Fprintf(g.stdout, "repaired %d problem(s); fetch the damaged images again\n", len(probs))
					return nil
				}
				return &exitCode{code: exitFailure, err: fmt.Errorf("image verify: %d problem(s); run 'skiff image verify --repair'", len(probs))}
			})
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "remove damaged images and trees so the store is consistent again")
	return cmd
}
