//go:build e2e

package tests

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The stage0 tests run through the stub stage1: no namespaces, so they
// check skiff's own behaviour (store, pod lifecycle, CLI) and nothing else.

func TestPodLifecycle(t *testing.T) {
	e := newEnv(t)
	probe := image(t, "probe.aci")
	uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1="+stubACI, probe, "--", "-exit=0"))
	if len(uuid) != 36 {
		t.Fatalf("prepare printed %q, want a uuid", uuid)
	}
	if out := e.mustRun("status", uuid); !strings.Contains(out, "state=prepared") {
		t.Errorf("status after prepare:\n%s", out)
	}
	// A prepared pod holds no mount: its trees are mounted to run it.
	if m := mountsUnder(e.dir); len(m) > 0 {
		t.Errorf("mounts of a prepared pod: %v", m)
	}
	e.mustRun("run-prepared", uuid)
	out := e.mustRun("status", uuid)
	for _, want := range []string{"state=exited", "app-probe=0"} {
		if !strings.Contains(out, want) {
			t.Errorf("status after run lacks %q:\n%s", want, out)
		}
	}
	var list []struct{ UUID, State string }
	if err := json.Unmarshal([]byte(e.mustRun("list", "--format=json")), &list); err != nil {
		t.Fatalf("list --format=json: %v", err)
	}
	if len(list) != 1 || list[0].UUID != uuid || list[0].State != "exited" {
		t.Errorf("list = %+v", list)
	}
	if out, _, code := e.run("run-prepared", uuid); code == 0 {
		t.Errorf("run-prepared of an exited pod succeeded: %s", out)
	}
	e.mustRun("gc", "--grace-period=0")
	if out := e.mustRun("list", "--no-legend"); strings.TrimSpace(out) != "" {
		t.Errorf("pods left after gc: %s", out)
	}
	if m := mountsUnder(e.dir); len(m) > 0 {
		t.Errorf("mounts left after gc: %v", m)
	}

	// rm of a prepared pod, and a --uuid-file-save round trip.
	save := filepath.Join(t.TempDir(), "uuid")
	e.mustRun("prepare", "--stage1="+stubACI, "--uuid-file-save="+save, probe)
	b, _ := os.ReadFile(save)
	e.mustRun("rm", strings.TrimSpace(string(b)))
	if out := e.mustRun("list", "--no-legend"); strings.TrimSpace(out) != "" {
		t.Errorf("pods left after rm: %s", out)
	}
	if m := mountsUnder(e.dir); len(m) > 0 {
		t.Errorf("mounts left after rm: %v", m)
	}
}

func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	probe := image(t, "probe.aci")
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"success", []string{probe, "--", "-exit=0"}, 0},
		{"one app fails", []string{probe, "--", "-exit=3"}, 3},
		{"second of two fails", []string{probe, "--name=a", "--", "-sleep=200ms", "---", probe, "--name=b", "--", "-exit=5"}, 5},
		{"usage: unknown flag", []string{"--bogus", probe}, 2},
		{"usage: bad --net", []string{"--net=a,,b", probe}, 2},
		{"unknown network", []string{"--net=bridge", probe}, 254},
		{"usage: no image", nil, 2},
		{"missing image file", []string{"/nonexistent/x.aci"}, 254},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "--stage1=" + stubACI}, tt.args...)
			_, errs, code := e.run(args...)
			if code != tt.want {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.want, errs)
			}
			if code == 254 || code == 2 {
				first := strings.SplitN(strings.TrimSpace(errs), "\n", 2)[0]
				if !strings.HasPrefix(first, "skiff: ") {
					t.Errorf("error is not one line starting with 'skiff: ': %q", errs)
				}
			}
		})
	}
}

func TestImageCommands(t *testing.T) {
	e := newEnv(t)
	busybox := image(t, "busybox.aci")
	id := strings.TrimSpace(e.mustRun("fetch", "--full", busybox))
	if !strings.HasPrefix(id, "sha512-") || len(id) != 7+128 {
		t.Fatalf("fetch printed %q", id)
	}
	var imgs []struct{ ID, Name, Digest string }
	if err := json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json")), &imgs); err != nil {
		t.Fatal(err)
	}
	// An ACI's digest is the sha512 of its tar: its ID, spelled as a digest.
	if len(imgs) != 1 || imgs[0].ID != id || imgs[0].Name != "skiff.local/busybox" || imgs[0].Digest != "sha512:"+id[7:] {
		t.Fatalf("image list = %+v", imgs)
	}
	if out := e.mustRun("image", "list"); !strings.Contains(out, "skiff.local/busybox") || !strings.Contains(out, "NAME") ||
		!strings.Contains(out, "DIGEST") || !strings.Contains(out, "sha512:"+id[7:19]+"\n") {
		t.Errorf("image list table:\n%s", out)
	}
	if out := e.mustRun("image", "list", "--full"); !strings.Contains(out, "sha512:"+id[7:]) {
		t.Errorf("image list --full lacks the whole digest:\n%s", out)
	}
	if out := e.mustRun("image", "cat-manifest", id[:20]); !strings.Contains(out, `"skiff.local/busybox"`) {
		t.Errorf("cat-manifest by prefix:\n%s", out)
	}
	// export re-imports to the same ID.
	exported := filepath.Join(t.TempDir(), "exported.aci")
	e.mustRun("image", "export", id, exported)
	e2 := newEnv(t)
	if got := strings.TrimSpace(e2.mustRun("--insecure-options=image", "fetch", "--full", exported)); got != id {
		t.Errorf("re-imported export has ID %s, want %s", got, id)
	}
	// render and extract.
	dirs := strings.Fields(e.mustRun("image", "render", id))
	if len(dirs) == 0 {
		t.Fatal("render printed no tree")
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "bin", "busybox")); err != nil {
		t.Errorf("rendered tree lacks bin/busybox: %v", err)
	}
	// As rkt's: DIR/manifest and DIR/rootfs, or (--rootfs-only) the tree as DIR;
	// render DIR merges the dependencies in (busybox has none).
	for _, args := range [][]string{{"extract"}, {"extract", "--rootfs-only"}, {"render"}, {"render", "--rootfs-only"}} {
		dst := filepath.Join(t.TempDir(), "x")
		e.mustRun(append(append([]string{"image"}, args...), id, dst)...)
		rootfs, manifest := filepath.Join(dst, "rootfs"), true
		if slices.Contains(args, "--rootfs-only") {
			rootfs, manifest = dst, false
		}
		if _, err := os.Stat(filepath.Join(rootfs, "bin", "busybox")); err != nil {
			t.Errorf("image %v: the tree lacks bin/busybox: %v", args, err)
		}
		if b, err := os.ReadFile(filepath.Join(dst, "manifest")); manifest != (err == nil) || manifest && !strings.Contains(string(b), `"skiff.local/busybox"`) {
			t.Errorf("image %v: manifest %.40q, %v; want one: %v", args, b, err, manifest)
		}
	}
	if _, errs, code := e.run("image", "render", "--rootfs-only", id); code != 2 {
		t.Errorf("render --rootfs-only without DIR: exit %d, want 2:\n%s", code, errs)
	}
	// verify: clean, then a flipped byte is found and repaired.
	if out := e.mustRun("image", "verify"); !strings.Contains(out, "consistent") {
		t.Errorf("verify of a clean store:\n%s", out)
	}
	blob := findBlob(t, e.dir, id)
	flipByte(t, blob, 4096)
	out, _, code := e.run("image", "verify")
	if code == 0 || !strings.Contains(out, id[7:27]) {
		t.Errorf("verify missed a flipped byte (exit %d):\n%s", code, out)
	}
	e.mustRun("image", "verify", "--repair")
	if out := e.mustRun("image", "verify"); !strings.Contains(out, "consistent") {
		t.Errorf("verify after repair:\n%s", out)
	}
	// rm, and an ambiguous or unknown ref is an error.
	e.mustRun("fetch", busybox)
	e.mustRun("image", "rm", id)
	if _, _, code := e.run("image", "cat-manifest", id); code != 254 {
		t.Errorf("cat-manifest of removed image: exit %d", code)
	}
	if _, _, code := e.run("image", "rm", "sha512-"); code == 0 {
		t.Errorf("image rm of an ambiguous/empty prefix succeeded")
	}
}

func findBlob(t *testing.T, dir, id string) string {
	t.Helper()
	hex := strings.TrimPrefix(id, "sha512-")
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(filepath.Base(p), hex) && found == "" {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no blob for %s under %s", id, dir)
	}
	return found
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestSignatures(t *testing.T) {
	busybox := image(t, "busybox.aci")
	t.Run("untrusted", func(t *testing.T) {
		e := &env{t: t, dir: filepath.Join(t.TempDir(), "d"), config: filepath.Join(t.TempDir(), "c")}
		_, errs, code := e.run("fetch", busybox)
		if code != 254 || !strings.Contains(errs, "skiff trust") {
			t.Errorf("fetch with no trusted key: exit %d, stderr %q (want 254 and a hint to 'skiff trust')", code, errs)
		}
		e.mustRun("--insecure-options=image", "fetch", busybox)
	})
	t.Run("wrong prefix", func(t *testing.T) {
		e := &env{t: t, dir: filepath.Join(t.TempDir(), "d"), config: filepath.Join(t.TempDir(), "c")}
		e.mustRun("trust", "--prefix", "skiff.local/other", image(t, "test-key.asc"))
		if _, errs, code := e.run("fetch", busybox); code != 254 {
			t.Errorf("fetch with a key for another prefix: exit %d %s", code, errs)
		}
	})
	t.Run("trusted", func(t *testing.T) {
		e := newEnv(t)
		e.mustRun("fetch", busybox)
	})
	t.Run("missing asc", func(t *testing.T) {
		e := newEnv(t)
		lone := filepath.Join(t.TempDir(), "lone.aci")
		copyFile(t, busybox, lone)
		if _, errs, code := e.run("fetch", lone); code != 254 || !strings.Contains(errs, "insecure-options") {
			t.Errorf("fetch without .asc: exit %d %q", code, errs)
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hostile builds an ACI tar from entries, after a valid manifest unless
// noManifest.
type entry struct {
	name     string
	typ      byte
	body     string
	linkname string
}

func hostileACI(t *testing.T, noManifest bool, entries ...entry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if !noManifest {
		m := `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"skiff.local/evil","labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}]}`
		tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(m)), Typeflag: tar.TypeReg})
		tw.Write([]byte(m))
		tw.WriteHeader(&tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir})
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Linkname: e.linkname, Size: int64(len(e.body))}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			h.Devmajor, h.Devminor = 1, 3
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		tw.WriteHeader(h)
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "evil.aci")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHostileImages(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "outside")
	tests := []struct {
		name    string
		noMan   bool
		entries []entry
		mention string // the message must name this
	}{
		{"absolute path", false, []entry{{name: "/etc/evil", typ: tar.TypeReg, body: "x"}}, "/etc/evil"},
		{"dot-dot", false, []entry{{name: "rootfs/../../evil", typ: tar.TypeReg, body: "x"}}, "evil"},
		{"symlink out then write through", false, []entry{
			{name: "rootfs/l", typ: tar.TypeSymlink, linkname: outside},
			{name: "rootfs/l/pwned", typ: tar.TypeReg, body: "x"}}, "rootfs/l/pwned"},
		{"relative symlink out then write through", false, []entry{
			{name: "rootfs/up", typ: tar.TypeSymlink, linkname: "../../../../../../../../" + outside},
			{name: "rootfs/up/pwned", typ: tar.TypeReg, body: "x"}}, "rootfs/up/pwned"},
		{"hardlink outside", false, []entry{{name: "rootfs/h", typ: tar.TypeLink, linkname: "/etc/passwd"}}, "rootfs/h"},
		{"hardlink dot-dot", false, []entry{{name: "rootfs/h", typ: tar.TypeLink, linkname: "../../x"}}, "rootfs/h"},
		{"char device", false, []entry{{name: "rootfs/null", typ: tar.TypeChar}}, "rootfs/null"},
		{"block device", false, []entry{{name: "rootfs/sda", typ: tar.TypeBlock}}, "rootfs/sda"},
		{"extra top-level entry", false, []entry{{name: "evil", typ: tar.TypeReg, body: "x"}}, "evil"},
		{"missing manifest", true, []entry{{name: "rootfs/", typ: tar.TypeDir}}, "manifest"},
	}
	e := newEnv(t)
	e.mustRun("--insecure-options=image", "fetch", image(t, "busybox.aci"))
	before := treeListing(t, e.dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(outside)
			os.MkdirAll(outside, 0o755)
			p := hostileACI(t, tt.noMan, tt.entries...)
			_, errs, code := e.run("--insecure-options=image", "fetch", p)
			if code != 254 {
				t.Fatalf("exit %d, want 254; stderr %q", code, errs)
			}
			lines := errorLines(errs)
			if len(lines) != 1 || !strings.Contains(lines[0], tt.mention) {
				t.Errorf("want one line naming %q, got %q", tt.mention, errs)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("wrote outside the data dir: %v", ents)
			}
			if _, err := os.Stat("/etc/evil"); err == nil {
				t.Errorf("/etc/evil was created")
			}
			if after := treeListing(t, e.dir); after != before {
				t.Errorf("store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// errorLines returns stderr's lines, less warnings.
func errorLines(stderr string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(l, "skiff: warning: ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// treeListing describes every file under dir (names, sizes, modes), except
// the scratch dir and lock files, so two listings compare the store.
func treeListing(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "tmp" || strings.HasPrefix(rel, "tmp/") {
			return nil
		}
		fi, _ := d.Info()
		size := int64(0)
		if fi != nil && !d.IsDir() {
			size = fi.Size()
		}
		lines = append(lines, fmt.Sprintf("%s %s %d", rel, d.Type(), size))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestRunPreparedRace(t *testing.T) {
	e := newEnv(t)
	uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1="+stubACI, image(t, "probe.aci"), "--", "-sleep=1s"))
	var wg sync.WaitGroup
	codes := make([]int, 2)
	errs := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i], codes[i] = e.run("run-prepared", uuid)
		}()
	}
	wg.Wait()
	ok := 0
	for i, c := range codes {
		if c == 0 {
			ok++
		} else if !strings.Contains(errs[i], "in use") && !strings.Contains(errs[i], "not prepared") {
			t.Errorf("loser's error does not say why: %q", errs[i])
		}
	}
	if ok != 1 {
		t.Fatalf("%d run-prepared succeeded, want exactly 1 (codes %v, stderr %q)", ok, codes, errs)
	}
}

func TestGCSparesRunningPods(t *testing.T) {
	e := newEnv(t)
	save := filepath.Join(t.TempDir(), "uuid")
	c, _ := e.start("run", "--stage1="+stubACI, "--uuid-file-save="+save, image(t, "probe.aci"), "--", "-sleep=60s")
	var uuid string
	waitFor(t, "the pod to run", 30*time.Second, func() bool {
		b, _ := os.ReadFile(save)
		uuid = strings.TrimSpace(string(b))
		out, _, _ := e.run("status", uuid)
		return uuid != "" && strings.Contains(out, "state=running")
	})
	e.mustRun("gc", "--grace-period=0", "--expire-prepared=0")
	if out := e.mustRun("status", uuid); !strings.Contains(out, "state=running") {
		t.Fatalf("gc touched a running pod:\n%s", out)
	}
	if _, _, code := e.run("rm", uuid); code == 0 {
		t.Fatalf("rm removed a running pod")
	}
	e.mustRun("stop", uuid)
	c.Wait()
	if out := e.mustRun("status", "--wait", uuid); !strings.Contains(out, "state=exited") {
		t.Errorf("after stop:\n%s", out)
	}
	e.mustRun("gc", "--grace-period=0")
	if _, _, code := e.run("status", uuid); code == 0 {
		t.Errorf("pod still there after gc")
	}
}
