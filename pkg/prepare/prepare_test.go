package prepare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/skiffpod/skiff/pkg/aci/acitest"
	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/store"
)

// TestPrepareMountsCheckedLayers checks that a pod gets exactly the
// dependency its caller resolved and checked against the run policy, even
// when an image imported in between would now win the resolution by name:
// prepare must not resolve dependencies a second time.
func TestPrepareMountsCheckedLayers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("prepare mounts: needs root")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	imp := func(name string, files map[string]string, extra ...string) string {
		t.Helper()
		id, err := s.Import(ctx, bytes.NewReader(acitest.Image(t, name, files, extra...)), store.ImportOptions{Source: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	stage1 := imp("example.com/stage1", map[string]string{"run": ""}, fmt.Sprintf(
		`"annotations":[{"name":%q,"value":"1"},{"name":%q,"value":"/run"}]`, pod.AnnotationVersion, pod.AnnotationRun))
	checkedDep := imp("example.com/dep", map[string]string{"which": "checked"}, `"labels":[{"name":"version","value":"1"}]`)
	app := imp("example.com/app", nil, `"app":{"exec":["/x"],"user":"0","group":"0"}`, `"dependencies":[{"imageName":"example.com/dep"}]`)

	// The check: what stage0's admit resolves and puts to the policy.
	deps, err := s.Dependencies(app)
	if err != nil || len(deps) != 1 || deps[0].ID != checkedDep {
		t.Fatalf("dependencies = %v, %v; want %s", deps, err, checkedDep)
	}
	layers := []string{app, deps[0].ID}

	// Between check and use, a newer image of the dependency's name.
	newDep := imp("example.com/dep", map[string]string{"which": "unchecked"}, `"labels":[{"name":"version","value":"2"}]`)
	if deps, _ := s.Dependencies(app); len(deps) != 1 || deps[0].ID != newDep {
		t.Fatalf("the store's answer did not change: %v", deps)
	}

	p, err := Prepare(ctx, s, Options{DataDir: dir, Stage1: stage1, Stage1Layers: []string{stage1},
		Apps: []App{{Image: app, Layers: layers}}, NoOverlay: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mount.UnmountAll(p.Path()); p.Unlock() })
	b, err := os.ReadFile(p.File(pod.AppRootfs("app") + "/which"))
	if err != nil || string(b) != "checked" {
		t.Errorf("the pod's app has dependency %q (%v), want the checked one", b, err)
	}

	// Without the checked layers, prepare refuses rather than resolving.
	for name, a := range map[string]App{
		"no layers":            {Image: app},
		"layers of another id": {Image: app, Layers: []string{checkedDep}},
	} {
		q, err := Prepare(ctx, s, Options{DataDir: dir, Stage1: stage1, Stage1Layers: []string{stage1}, Apps: []App{a}, NoOverlay: true})
		if err == nil {
			mount.UnmountAll(q.Path())
			q.Unlock()
		}
		if !errors.Is(err, ErrLayers) {
			t.Errorf("%s: err = %v, want ErrLayers", name, err)
		}
	}
}
