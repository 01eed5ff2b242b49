//go:build e2e

package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/aci"
)

// probeVariant writes into dir an unsigned copy of probe.aci named
// skiff.local/NAME, with its app and annotations changed, and returns its
// path. Run it with --insecure-options=image.
func probeVariant(t *testing.T, dir, name string, app func(*types.App), ann types.Annotations) string {
	t.Helper()
	f, err := os.Open(image(t, "probe.aci"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := aci.Decompress(f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tree := filepath.Join(dir, name)
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	m, err := aci.Extract(r, root, aci.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Name = *types.MustACIdentifier("skiff.local/" + name)
	app(m.App)
	m.Annotations = append(m.Annotations, ann...)
	out := filepath.Join(dir, name+".aci")
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := aci.Write(w, m, filepath.Join(tree, "rootfs")); err != nil {
		t.Fatal(err)
	}
	if b, err := json.Marshal(m.App); err == nil {
		t.Logf("built %s: app %s, annotations %v", out, b, m.Annotations)
	}
	return out
}
