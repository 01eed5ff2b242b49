package stage1

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/pod"
)

// Installed is a stage1 image file of a short name, as `skiff version`
// shows it.
type Installed struct {
	Name      string `json:"name"`                // the short name: ns for stage1-ns.aci
	Path      string `json:"path"`                // the image file
	Image     string `json:"image,omitempty"`     // the image's name
	Version   string `json:"version,omitempty"`   // its version label
	Interface int    `json:"interface,omitempty"` // the stage1 interface version it implements
	Err       string `json:"error,omitempty"`     // why the file could not be read as a stage1
}

// List returns the stage1 image of every short name found in dirs (the
// first dir that has stage1-NAME.aci, as Resolve picks it), by name. It
// reads only each image's manifest.
func List(dirs []string) []Installed {
	seen := map[string]bool{}
	var out []Installed
	for _, d := range dirs {
		paths, _ := filepath.Glob(filepath.Join(d, "stage1-*.aci"))
		for _, p := range paths {
			name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "stage1-"), ".aci")
			if seen[name] || name == "" || strings.ContainsAny(name, ".:") {
				continue
			}
			seen[name] = true
			in := Installed{Name: name, Path: p}
			if err := in.read(); err != nil {
				in.Err = err.Error()
			}
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (in *Installed) read() error {
	f, err := os.Open(in.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := aci.Decompress(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", in.Path, err)
	}
	defer r.Close()
	m, err := aci.ReadManifest(r)
	if err != nil {
		return fmt.Errorf("read %s: %w", in.Path, err)
	}
	in.Image = m.Name.String()
	in.Version, _ = m.GetLabel("version")
	s, err := pod.ParseStage1(m)
	if err != nil {
		return err
	}
	in.Interface = s.Version
	return nil
}
