package stage1

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/pod"
)

// writeACI writes an image of the given name and version label to path;
// a stage1 one when entrypoints is set.
func writeACI(t *testing.T, path, name, version string, stage1 bool) {
	t.Helper()
	m := &schema.ImageManifest{Name: types.ACIdentifier(name), Labels: types.Labels{{Name: "version", Value: version}}}
	if stage1 {
		m.Annotations = pod.Stage1Annotations(map[string]string{pod.EntrypointRun: "/run"})
	}
	var b bytes.Buffer
	if err := aci.Write(&b, m, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestList: one entry per short name, from the first dir that has it,
// with the image's name, version and interface; a file that is no stage1
// is listed with the reason.
func TestList(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	writeACI(t, filepath.Join(first, "stage1-ns.aci"), "example.com/ns", "1.2.3", true)
	writeACI(t, filepath.Join(second, "stage1-ns.aci"), "example.com/shadowed", "9", true)
	writeACI(t, filepath.Join(second, "stage1-kvm.aci"), "example.com/kvm", "4.5", true)
	writeACI(t, filepath.Join(second, "stage1-app.aci"), "example.com/app", "1", false)
	os.WriteFile(filepath.Join(second, "stage1-junk.aci"), []byte("not an image"), 0o644)

	got := List([]string{first, second, filepath.Join(first, "missing")})
	want := []Installed{
		{Name: "app", Path: filepath.Join(second, "stage1-app.aci"), Image: "example.com/app", Version: "1"},
		{Name: "junk", Path: filepath.Join(second, "stage1-junk.aci")},
		{Name: "kvm", Path: filepath.Join(second, "stage1-kvm.aci"), Image: "example.com/kvm", Version: "4.5", Interface: pod.ABIVersion},
		{Name: "ns", Path: filepath.Join(first, "stage1-ns.aci"), Image: "example.com/ns", Version: "1.2.3", Interface: pod.ABIVersion},
	}
	if len(got) != len(want) {
		t.Fatalf("List = %+v, want %d entries", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if (g.Err != "") != (w.Name == "app" || w.Name == "junk") {
			t.Errorf("%s: error %q", w.Name, g.Err)
		}
		g.Err = ""
		if g != w {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
}
