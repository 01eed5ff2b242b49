package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/prepare"
	"github.com/skiffpod/skiff/pkg/store"
	"github.com/spf13/cobra"
)

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
