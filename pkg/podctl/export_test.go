package podctl

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/prepare"
)

// TestExport: only an exited pod's app exports, as the app left it (the
// image's files and its own); the pod stays locked until done.
func TestExport(t *testing.T) {
	tests := []struct {
		name    string
		state   func(p *pod.Pod)
		app     string
		wantErr string
	}{
		{"exited", exited, "", ""},
		{"exited with the app named", exited, "hello", ""},
		{"exited with no such app", exited, "nosuch", `no app "nosuch"`},
		{"running", running, "", "only an exited pod"},
		{"prepared", prepared, "", "it is prepared, not exited"},
		{"aborted prepare", abortedPrepare, "", "it is aborted-prepare, not exited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newStubPods(t)
			p := sp.prepare(t)
			// The app ran in its tree, and changed it.
			if err := prepare.Mount(p); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p.File(pod.AppRootfs("hello"))+"/changed", []byte("by the app"), 0o644); err != nil {
				t.Fatal(err)
			}
			tt.state(p)
			write, done, err := sp.Export(p.UUID, tt.app)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Export = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := sp.Remove(p.UUID); !errors.Is(err, pod.ErrLocked) {
				t.Errorf("Remove during the export = %v, want ErrLocked", err)
			}
			var b bytes.Buffer
			if err := write(&b); err != nil {
				t.Fatal(err)
			}
			done()
			files := map[string]string{}
			tr := tar.NewReader(&b)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				c, _ := io.ReadAll(tr)
				files[h.Name] = string(c)
			}
			if files["rootfs/hello"] != "world" || files["rootfs/changed"] != "by the app" || !strings.Contains(files["manifest"], `"name":"example.com/hello"`) {
				t.Errorf("exported %v", files)
			}
			if err := sp.Remove(p.UUID); err != nil {
				t.Errorf("Remove after the export: %v", err)
			}
		})
	}
}
