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

// An app sandbox is prepared with no apps; AddApp gives it one, with its
// rootfs mounted, and RemoveApp takes it away, mount and all; a pod that
// is not a sandbox and a name taken are refused, leaving nothing behind.
func TestSandboxAddRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("prepare mounts: needs root")
	}
	for _, noOverlay := range []bool{false, true} {
		t.Run(fmt.Sprintf("noOverlay=%v", noOverlay), func(t *testing.T) {
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
			app := imp("example.com/app", map[string]string{"hello": "hi"}, `"app":{"exec":["/x"],"user":"0","group":"0"}`)
			o := Options{DataDir: dir, Stage1: stage1, Stage1Layers: []string{stage1}, NoOverlay: noOverlay}
			if _, err := Prepare(ctx, s, o); err == nil {
				t.Fatal("a pod with no apps that is not a sandbox was prepared")
			}
			plain, err := Prepare(ctx, s, Options{DataDir: dir, Stage1: stage1, Stage1Layers: []string{stage1}, NoOverlay: noOverlay,
				Apps: []App{{Image: app, Layers: []string{app}, Name: "plain"}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mount.UnmountAll(plain.Path()); plain.Unlock() })
			if _, err := AddApp(ctx, s, plain, App{Image: app, Layers: []string{app}, Name: "b"}, nil); err == nil {
				t.Error("an app was added to a pod that is not a sandbox")
			}

			o.Sandbox = true
			p, err := Prepare(ctx, s, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mount.UnmountAll(p.Path()); p.Unlock() })
			name, err := AddApp(ctx, s, p, App{Image: app, Layers: []string{app}, Name: "a"}, nil)
			if err != nil || name != "a" {
				t.Fatalf("AddApp = %q, %v", name, err)
			}
			if b, err := os.ReadFile(p.File(pod.AppRootfs("a") + "/hello")); err != nil || string(b) != "hi" {
				t.Errorf("app rootfs: %q, %v", b, err)
			}
			if _, err := os.Stat(p.File(pod.AppManifest("a"))); err != nil {
				t.Error(err)
			}
			pm, err := ReadManifest(p)
			if err != nil || len(pm.Apps) != 1 || pm.Apps[0].Name != "a" || !pod.IsSandbox(pm) {
				t.Fatalf("manifest: %+v, %v", pm, err)
			}
			if _, err := AddApp(ctx, s, p, App{Image: app, Layers: []string{app}, Name: "a"}, nil); !errors.Is(err, ErrAppExists) {
				t.Errorf("second app a: %v, want ErrAppExists", err)
			}
			if _, err := os.Stat(p.File(pod.AppRootfs("a") + "/hello")); err != nil {
				t.Errorf("a refused second app a broke the first: %v", err)
			}

			if err := RemoveApp(p, "a"); err != nil {
				t.Fatal(err)
			}
			if ms, _ := mount.Under(p.File(pod.AppDir("a"))); len(ms) != 0 {
				t.Errorf("mounts left: %v", ms)
			}
			for _, f := range []string{pod.AppDir("a"), "overlay/app-a"} {
				if _, err := os.Lstat(p.File(f)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left: %v", f, err)
				}
			}
			if pm, _ := ReadManifest(p); len(pm.Apps) != 0 {
				t.Errorf("apps left in the manifest: %v", pm.Apps)
			}
			records, err := readMounts(p)
			if err != nil || len(records) != 1 {
				t.Errorf("mount records = %v, %v; want the stage1's alone", records, err)
			}

			// A KVM guest writes the stage1's tree while the sandbox runs:
			// an apps dir it made a symlink to a host dir is refused, and
			// nothing is made or removed there.
			host := t.TempDir()
			os.MkdirAll(filepath.Join(host, "c", "keep"), 0o755)
			apps := p.File(pod.AppsDir)
			if err := os.RemoveAll(apps); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(host, apps); err != nil {
				t.Fatal(err)
			}
			if _, err := AddApp(ctx, s, p, App{Image: app, Layers: []string{app}, Name: "b"}, nil); err == nil {
				t.Error("an app was added through a symlinked apps dir")
			}
			if err := removeApp(p, "c"); err == nil {
				t.Error("an app was removed through a symlinked apps dir")
			}
			ents, _ := os.ReadDir(host)
			if _, err := os.Stat(filepath.Join(host, "c", "keep")); err != nil || len(ents) != 1 {
				t.Errorf("the host dir behind the symlink was changed: %v, %v", ents, err)
			}
			if ms, _ := mount.Under(host); len(ms) != 0 {
				t.Errorf("mounted on the host dir: %v", ms)
			}
		})
	}
}
