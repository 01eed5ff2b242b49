package stage1image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/pod"
)

func TestImageManifest(t *testing.T) {
	for _, apps := range []bool{false, true} {
		b, err := imageManifest("skiff.dev/stage1-test", "1.2.3", apps, []string{pod.FeatureMetadata, pod.FeatureDebug, pod.FeaturePrivateUsers, "other"})
		if err != nil {
			t.Fatal(err)
		}
		var m schema.ImageManifest
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		s, err := pod.ParseStage1(&m)
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range []string{pod.EntrypointRun, pod.EntrypointEnter, pod.EntrypointStop, pod.EntrypointGC} {
			if !s.Supports(ep) {
				t.Errorf("manifest lacks entrypoint %s", ep)
			}
		}
		for _, f := range []string{pod.FeatureMetadata, pod.FeatureDebug, pod.FeaturePrivateUsers, "other"} {
			if !s.Supports(f) {
				t.Errorf("manifest lacks feature %s", f)
			}
		}
		if s.Supports("private") {
			t.Errorf("a prefix of a feature matched")
		}
		if s.SupportsApps() != apps {
			t.Errorf("apps %v: SupportsApps() = %v", apps, s.SupportsApps())
		}
		if v, _ := m.GetLabel("version"); v != "1.2.3" {
			t.Errorf("version label = %q", v)
		}
	}
}

func TestELFClosure(t *testing.T) {
	if _, err := os.Stat("/usr/lib/systemd/systemd"); err != nil {
		t.Skip("needs the host's systemd: apt-get install -y systemd")
	}
	libs, err := elfClosure("/", systemdFiles)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range libs {
		names = append(names, usrPath(l))
	}
	for _, want := range []string{"ld-linux-x86-64.so.2", "libc.so.6", "libsystemd-shared-"} {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, want) }) {
			t.Errorf("closure %q lacks %s", names, want)
		}
	}
}

func TestTarWriterOmit(t *testing.T) {
	var b bytes.Buffer
	tw := &tarWriter{tw: tar.NewWriter(&b), seen: map[string]bool{},
		omit: func(n string) bool { return strings.HasPrefix(n, "rootfs/usr/") && n != "rootfs/usr/" }}
	tw.file("rootfs/usr/lib/systemd/systemd", 0o755, []byte("ELF"))
	tw.symlink("rootfs/lib", "usr/lib")
	tw.file("rootfs/etc/os-release", 0o644, []byte("ID=x"))
	if tw.err != nil || tw.tw.Close() != nil {
		t.Fatal(tw.err)
	}
	var got []string
	tr := tar.NewReader(&b)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		got = append(got, h.Name)
	}
	// The omitted file's parents are kept down to the first omitted one.
	want := []string{"rootfs/", "rootfs/usr/", "rootfs/lib", "rootfs/etc/", "rootfs/etc/os-release"}
	if !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
}
