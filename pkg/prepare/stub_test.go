package prepare

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"

	"github.com/skiffpod/skiff/pkg/aci/acitest"
	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1/stage1test"
	"github.com/skiffpod/skiff/pkg/store"
)

// stubACI is the stub stage1 image, built once by TestMain.
var stubACI string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "prepare-test-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	if stubACI, err = stage1test.Stub(dir); err != nil {
		fmt.Println(err)
		return 1
	}
	return m.Run()
}

// Prepare fills a pod for the stub stage1 as docs/stage1-abi.md says, by
// overlay or by copy, mounting nothing, and Mount mounts its trees, none
// twice.
func TestPrepareStub(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("prepare mounts: needs root")
	}
	for _, noOverlay := range []bool{false, true} {
		t.Run(fmt.Sprintf("noOverlay=%v", noOverlay), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir() + "/data"
			s, err := store.Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(stubACI)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s1, err := s.Import(ctx, f, store.ImportOptions{Source: stubACI})
			if err != nil {
				t.Fatal(err)
			}
			app, err := s.Import(ctx, bytes.NewReader(acitest.Image(t, "example.com/hello", map[string]string{"hello": "world"},
				`"app":{"exec":["/hello","a"],"user":"0","group":"0"}`)), store.ImportOptions{Source: "test"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := Prepare(ctx, s, Options{DataDir: dir, Stage1: s1, Stage1Layers: []string{s1},
				Apps: []App{{Image: app, Layers: []string{app}, Args: []string{"b"}}}, NoOverlay: noOverlay,
				Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mount.UnmountAll(p.Path()); p.Unlock() })

			if p.State != pod.Preparing || p.LockFile() == nil {
				t.Errorf("prepared pod is %s, lock %v; want preparing and locked", p.State, p.LockFile())
			}
			b, err := p.ReadFile(pod.ManifestFile, pod.MaxManifestSize)
			if err != nil {
				t.Fatal(err)
			}
			pm, err := pod.ParseManifest(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(pm.Apps) != 1 || pm.Apps[0].Name.String() != "hello" || !slices.Equal(pm.Apps[0].App.Exec, []string{"/hello", "a", "b"}) {
				t.Errorf("pod manifest apps = %+v, want hello running /hello a b", pm.Apps)
			}
			st1, err := pod.ReadStage1(p.Path())
			if err != nil || st1.Name != stage1test.StubName || !st1.Supports(pod.EntrypointGC) {
				t.Errorf("stage1 manifest = %+v, %v; want the stub's, with gc", st1, err)
			}
			if id, err := Stage1Image(p); err != nil || id != s1 {
				t.Errorf("Stage1Image = %s, %v; want %s", id, err, s1)
			}
			if ids := ImageIDs(p); !slices.Contains(ids, s1) || !slices.Contains(ids, app) || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 2 {
				t.Errorf("ImageIDs = %q, want the stage1 %s and the app %s", ids, s1, app)
			}
			// Prepare mounts nothing (a prepared pod's removal unmounts
			// nothing); Mount mounts the trees for a run.
			if mounted, err := mount.Under(p.Path()); err != nil || len(mounted) != 0 {
				t.Fatalf("mounts under the prepared pod = %q, %v; want none", mounted, err)
			}
			if err := Mount(p); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(p.File(pod.AppRootfs("hello") + "/hello")); err != nil || string(b) != "world" {
				t.Errorf("app rootfs /hello = %q, %v; want world", b, err)
			}
			// Written before the stage1's tree was mounted, seen in it.
			if b, err := os.ReadFile(p.File(pod.AppManifest("hello"))); err != nil || !bytes.Contains(b, []byte(`"example.com/hello"`)) {
				t.Errorf("app manifest in the stage1 tree = %q, %v; want hello's image manifest", b, err)
			}
			if _, err := os.Lstat(p.File(pod.Stage1Rootfs + "/" + pod.EntrypointRun)); err != nil {
				t.Errorf("stage1 rootfs has no run entrypoint: %v", err)
			}
			mounted, err := mount.Under(p.Path())
			if err != nil || len(mounted) != 2 {
				t.Fatalf("mounts under the pod = %q, %v; want the stage1's and the app's", mounted, err)
			}
			if err := Mount(p); err != nil {
				t.Fatal(err)
			}
			if again, _ := mount.Under(p.Path()); len(again) != len(mounted) {
				t.Errorf("Mount on a mounted pod: %d mounts, want %d", len(again), len(mounted))
			}
		})
	}
}
