package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/ulikunitz/xz"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/aci/acitest"
)

var ctx = context.Background()

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func importTar(t *testing.T, s *Store, tar []byte) string {
	t.Helper()
	id, err := s.Import(ctx, bytes.NewReader(tar), ImportOptions{Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func sha(data []byte) string {
	sum := sha512.Sum512(data)
	return "sha512-" + hex.EncodeToString(sum[:])
}

// snapshot lists every path under the data dir with its mode and content
// hash, to prove an operation changed nothing.
func snapshot(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var sum string
		if fi.Mode().IsRegular() && d.Name() != "lock" {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = sha(data)
		}
		fmt.Fprintf(&b, "%s %v %s\n", p, fi.Mode(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestImportCompressed(t *testing.T) {
	s := newStore(t)
	img := acitest.Image(t, "example.com/app", map[string]string{"hello": "world"})
	want := sha(img)
	var gz, xzb bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(img)
	zw.Close()
	xw, _ := xz.NewWriter(&xzb)
	xw.Write(img)
	xw.Close()
	inputs := map[string][]byte{"tar": img, "gzip": gz.Bytes(), "xz": xzb.Bytes()}
	bz := exec.Command("bzip2", "-c") // Go has no bzip2 writer
	bz.Stdin = bytes.NewReader(img)
	if out, err := bz.Output(); err == nil {
		inputs["bzip2"] = out
	} else {
		t.Logf("bzip2 tool unavailable, not testing bzip2: %v", err)
	}
	for kind, data := range inputs {
		t.Run(kind, func(t *testing.T) {
			id, err := s.Import(ctx, bytes.NewReader(data), ImportOptions{Source: kind})
			if err != nil {
				t.Fatal(err)
			}
			if id != want {
				t.Errorf("ID %s, want sha512 of the tar %s", id, want)
			}
		})
	}
	imgs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Size != int64(len(img)) || imgs[0].Name != "example.com/app" {
		t.Errorf("after %d imports of one image, List = %+v", len(inputs), imgs)
	}
}

func TestImportDedupe(t *testing.T) {
	s := newStore(t)
	img := acitest.Image(t, "example.com/app", nil)
	id1 := importTar(t, s, img)
	id2, err := s.Import(ctx, bytes.NewReader(img), ImportOptions{Source: "second", Signer: "ABCD"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(id1)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 || got.Source != "second" || got.Signer != "ABCD" {
		t.Errorf("ids %s %s, image %+v", id1, id2, got)
	}
}

func TestImportRefused(t *testing.T) {
	type E = acitest.Entry
	good := E{Name: "manifest", Body: acitest.Manifest("example.com/app")}
	tests := []struct {
		name string
		data []byte
		opts ImportOptions
		want error
	}{
		{"absolute", acitest.Tar(t, good, E{Name: "/etc/passwd"}), ImportOptions{}, aci.ErrUnsafeEntry},
		{"symlink escape", acitest.Tar(t, good, E{Name: "rootfs/l", Type: '2', Link: "/"}, E{Name: "rootfs/l/etc/passwd"}), ImportOptions{}, aci.ErrUnsafeEntry},
		{"device", acitest.Tar(t, good, E{Name: "rootfs/null", Type: '3'}), ImportOptions{}, aci.ErrUnsafeEntry},
		{"hardlink out", acitest.Tar(t, good, E{Name: "rootfs/pw", Type: '1', Link: "/etc/passwd"}), ImportOptions{}, aci.ErrUnsafeEntry},
		{"no manifest", acitest.Tar(t, E{Name: "rootfs/x"}), ImportOptions{}, aci.ErrNoManifest},
		{"bad manifest", acitest.Tar(t, E{Name: "manifest", Body: "{"}), ImportOptions{}, aci.ErrBadManifest},
		{"bomb", gzipped(t, acitest.Tar(t, good, E{Name: "rootfs/zeros", Body: strings.Repeat("\x00", 1<<20)})), ImportOptions{MaxBytes: 64 << 10}, aci.ErrTooLarge},
		{"not an image", []byte("hello, I am a text file, not a tar at all, but long enough......"), ImportOptions{}, aci.ErrUnknownFormat},
		{"wrong name", acitest.Tar(t, good, E{Name: "rootfs/"}), ImportOptions{ExpectName: "example.com/other"}, ErrNameMismatch},
		{"other platform", acitest.Tar(t, E{Name: "manifest", Body: acitest.Manifest("example.com/app", `"labels":[{"name":"os","value":"linux"},{"name":"arch","value":"s390x"}]`)}, E{Name: "rootfs/"}), ImportOptions{Platform: "linux/amd64"}, aci.ErrPlatform},
	}
	s := newStore(t)
	importTar(t, s, acitest.Image(t, "example.com/existing", map[string]string{"a": "b"}))
	before := snapshot(t, s)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Import(ctx, bytes.NewReader(tt.data), tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if after := snapshot(t, s); after != before {
				t.Errorf("store changed:\n%s\nwant\n%s", after, before)
			}
		})
	}
}

func gzipped(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func TestExportReimport(t *testing.T) {
	s := newStore(t)
	id := importTar(t, s, gzipped(t, acitest.Image(t, "example.com/app", map[string]string{"f": "x"})))
	var out bytes.Buffer
	if err := s.Export(id, &out); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t)
	if id2 := importTar(t, s2, out.Bytes()); id2 != id {
		t.Errorf("re-import gave %s, want %s", id2, id)
	}
}

func TestLookup(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2025, 1, d, 0, 0, 0, 0, time.UTC) }
	id := func(prefix string) string { return "sha512-" + prefix + strings.Repeat("0", 128-len(prefix)) }
	imgs := []Image{ // List order: oldest import first
		{ID: id("abcdef01"), Name: "example.com/app", Labels: map[string]string{"version": "1.0", "os": "linux"}, ImportedAt: day(1)},
		{ID: id("abcdef02"), Name: "example.com/app", Labels: map[string]string{"version": "2.0", "os": "linux"}, ImportedAt: day(2)},
		{ID: id("123456"), Name: "example.com/plain", ImportedAt: day(3)},
	}
	tests := []struct {
		ref  string
		want string
		err  error
	}{
		{imgs[2].ID, imgs[2].ID, nil},
		{"sha512-abcdef01", imgs[0].ID, nil},
		{"sha512-abcdef", "", ErrAmbiguous},
		{"sha512-abc", "", ErrBadRef},
		{"sha512-ffffff", "", ErrNotFound},
		{"example.com/app", imgs[1].ID, nil}, // newest wins
		{"example.com/app:1.0", imgs[0].ID, nil},
		{"example.com/app:latest", imgs[1].ID, nil},
		{"example.com/app,version=1.0,os=linux", imgs[0].ID, nil},
		{"example.com/app,os=freebsd", "", ErrNotFound},
		{"example.com/plain,arch=amd64", imgs[2].ID, nil}, // undeclared labels agree
		{"example.com/plain:1.0", "", ErrNotFound},        // but a version must be declared
		{"example.com/none", "", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := lookup(imgs, tt.ref)
			if !errors.Is(err, tt.err) || got.ID != tt.want {
				t.Errorf("got %q, %v; want %q, %v", got.ID, err, tt.want, tt.err)
			}
			if errors.Is(err, ErrAmbiguous) && !strings.Contains(err.Error(), imgs[0].ID) {
				t.Errorf("ambiguity error should list candidates: %v", err)
			}
		})
	}
}

func TestGetPrefix(t *testing.T) {
	s := newStore(t)
	id := importTar(t, s, acitest.Image(t, "example.com/app", nil))
	got, err := s.Get(id[:len("sha512-")+12])
	if err != nil || got.ID != id {
		t.Errorf("Get(prefix) = %v, %v", got.ID, err)
	}
	if _, err := s.Get("sha512-"); !errors.Is(err, ErrBadRef) {
		t.Errorf("Get(empty prefix) = %v, want ErrBadRef", err)
	}
}

func dep(name string, extra ...string) string {
	return fmt.Sprintf(`{"imageName":%q%s}`, name, strings.Join(extra, ""))
}

func deps(ds ...string) string { return `"dependencies":[` + strings.Join(ds, ",") + `]` }

func TestLayers(t *testing.T) {
	s := newStore(t)
	d := importTar(t, s, acitest.Image(t, "example.com/d", map[string]string{"d": "d"}))
	b := importTar(t, s, acitest.Image(t, "example.com/b", nil, deps(dep("example.com/d"))))
	c := importTar(t, s, acitest.Image(t, "example.com/c", nil, deps(dep("example.com/d", `,"imageID":"`+d+`"`))))
	a := importTar(t, s, acitest.Image(t, "example.com/a", nil, deps(dep("example.com/b"), dep("example.com/c"))))
	layers, err := s.Layers(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range layers {
		got = append(got, l.ID)
		if _, err := os.Stat(l.Dir); err != nil {
			t.Errorf("layer %s not rendered: %v", l.ID, err)
		}
	}
	// a's deps: c lies above b, d below both of them.
	if want := []string{a, c, b, d}; !slices.Equal(got, want) {
		t.Errorf("layers\n%q\nwant\n%q", got, want)
	}
	dirs, err := s.LowerDirs(ctx, a)
	if err != nil || len(dirs) != 4 || dirs[3] != filepath.Join(s.treePath(d), "rootfs") {
		t.Errorf("LowerDirs = %q, %v", dirs, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dirs[3], "d")); string(data) != "d" {
		t.Errorf("rendered d/rootfs/d = %q", data)
	}

	t.Run("missing", func(t *testing.T) {
		x := importTar(t, s, acitest.Image(t, "example.com/x", nil, deps(dep("example.com/gone"))))
		_, err := s.Layers(ctx, x)
		if !errors.Is(err, ErrMissingDependency) || !strings.Contains(err.Error(), "example.com/gone") {
			t.Errorf("got %v, want ErrMissingDependency naming example.com/gone", err)
		}
	})
	t.Run("cycle", func(t *testing.T) {
		p := importTar(t, s, acitest.Image(t, "example.com/p", nil, deps(dep("example.com/q"))))
		importTar(t, s, acitest.Image(t, "example.com/q", nil, deps(dep("example.com/p"))))
		if _, err := s.Layers(ctx, p); !errors.Is(err, ErrDependencyCycle) {
			t.Errorf("got %v, want ErrDependencyCycle", err)
		}
	})
}

func TestRender(t *testing.T) {
	s := newStore(t)
	id := importTar(t, s, acitest.Image(t, "example.com/app", map[string]string{"f": "content"}))
	// A crashed render must not count as rendered.
	half := filepath.Join(s.cas, "tree", ".tmp-"+id+"-crashed")
	if err := os.MkdirAll(filepath.Join(half, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	dirs := make([]string, 4)
	errs := make([]error, 4)
	for i := range dirs {
		wg.Go(func() { dirs[i], errs[i] = s.Render(ctx, id) })
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != s.treePath(id) {
			t.Fatalf("render %d: %q, %v", i, dirs[i], errs[i])
		}
	}
	if data, err := os.ReadFile(filepath.Join(dirs[0], "rootfs/f")); string(data) != "content" {
		t.Fatalf("rendered file = %q, %v", data, err)
	}
	// Idempotent: a second render keeps the tree as it is.
	marker := filepath.Join(dirs[0], "marker")
	os.WriteFile(marker, nil, 0o644)
	if _, err := s.Render(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("second render replaced the tree")
	}
	if ents, _ := os.ReadDir(filepath.Join(s.cas, "tree")); len(ents) != 2 { // the tree and the crashed one
		t.Errorf("tree dir holds %d entries, want 2", len(ents))
	}
}

func TestRemoveAndRemote(t *testing.T) {
	s := newStore(t)
	id := importTar(t, s, acitest.Image(t, "example.com/app", nil))
	rec := RemoteRecord{ID: id, ETag: `"x"`, FetchedAt: time.Now().UTC().Truncate(time.Second)}
	if err := s.SetRemote("https://example.com/app.aci", rec); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Remote("https://example.com/app.aci"); err != nil || !ok || got != rec {
		t.Errorf("Remote = %+v, %v, %v", got, ok, err)
	}
	if _, ok, _ := s.Remote("https://example.com/other.aci"); ok {
		t.Error("unknown key found")
	}
	if _, err := s.Render(ctx, id); err != nil {
		t.Fatal(err)
	}
	inUse := func() (map[string]string, error) { return map[string]string{id: "pod P"}, nil }
	if err := s.Remove(id, inUse); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "by pod P") {
		t.Errorf("Remove of an image in use = %v, want ErrInUse naming the pod", err)
	}
	if err := s.Remove(id, func() (map[string]string, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	for _, p := range []string{s.blobPath(id), s.treePath(id), s.recordPath(id)} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
	if _, ok, _ := s.Remote("https://example.com/app.aci"); ok {
		t.Error("Remote still points at a removed image")
	}
}

func TestGC(t *testing.T) {
	s := newStore(t)
	base := importTar(t, s, acitest.Image(t, "example.com/base", nil))
	app := importTar(t, s, acitest.Image(t, "example.com/app", nil, deps(dep("example.com/base"))))
	other := importTar(t, s, acitest.Image(t, "example.com/other", nil))
	for _, id := range []string{app, other} {
		if _, err := s.Layers(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	keep := func() (map[string]string, error) { return map[string]string{app: "pod test"}, nil }
	removed, err := s.GC(ctx, keep, GCOptions{})
	if err != nil || !slices.Equal(removed, []string{other}) {
		t.Fatalf("GC = %q, %v; want only other's tree", removed, err)
	}
	for id, want := range map[string]bool{app: true, base: true, other: false} {
		if _, err := os.Stat(s.treePath(id)); (err == nil) != want {
			t.Errorf("tree of %s present=%v, want %v", id, err == nil, want)
		}
	}
	if _, err := s.Get(other); err != nil {
		t.Errorf("GC without grace period removed an image: %v", err)
	}
	time.Sleep(10 * time.Millisecond)
	removed, err = s.GC(ctx, keep, GCOptions{ImageGracePeriod: time.Millisecond})
	if err != nil || !slices.Equal(removed, []string{other}) {
		t.Fatalf("GC with grace = %q, %v", removed, err)
	}
	imgs, _ := s.List()
	if len(imgs) != 2 {
		t.Errorf("after image GC: %d images, want app and base", len(imgs))
	}
}

// TestGCWaitsForHold checks that GC asks what is in use only once no
// caller holds the store: a prepare between rendering its trees and
// recording them in its pod.
func TestGCWaitsForHold(t *testing.T) {
	s := newStore(t)
	release, err := s.Hold()
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	asked := make(chan bool, 1)
	done := make(chan error, 1)
	go func() {
		_, err := s.GC(ctx, func() (map[string]string, error) {
			select {
			case <-released:
				asked <- true
			default:
				asked <- false
			}
			return nil, nil
		}, GCOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("GC ran while the store was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(released)
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GC still waits after the hold was released")
	}
	if !<-asked {
		t.Error("GC asked what is in use before the hold was released")
	}
}

func TestVerify(t *testing.T) {
	s := newStore(t)
	good := importTar(t, s, acitest.Image(t, "example.com/good", nil))
	bad := importTar(t, s, acitest.Image(t, "example.com/bad", map[string]string{"f": "0123456789"}))
	if _, err := s.Render(ctx, good); err != nil {
		t.Fatal(err)
	}
	if probs, err := s.Verify(ctx, false, nil); err != nil || len(probs) != 0 {
		t.Fatalf("clean store: %v, %v", probs, err)
	}
	blob, err := os.ReadFile(s.blobPath(bad))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(blob, []byte("0123456789"))
	blob[i] ^= 1
	if err := os.WriteFile(s.blobPath(bad), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(s.cas, "tree", ".tmp-"+good+"-crashed"), 0o755)

	if _, err := s.Render(ctx, bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("render of flipped blob: %v, want ErrCorrupt", err)
	}
	probs, err := s.Verify(ctx, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var whats []string
	for _, p := range probs {
		whats = append(whats, p.String())
	}
	joined := strings.Join(whats, "\n")
	if len(probs) != 2 || !strings.Contains(joined, "corrupt blob") || !strings.Contains(joined, "incomplete tree") {
		t.Fatalf("problems:\n%s", joined)
	}
	if _, err := s.Verify(ctx, true, nil); err != nil {
		t.Fatal(err)
	}
	if probs, err := s.Verify(ctx, false, nil); err != nil || len(probs) != 0 {
		t.Errorf("after repair: %v, %v", probs, err)
	}
	if _, err := s.Get(bad); !errors.Is(err, ErrNotFound) {
		t.Errorf("corrupt image still there: %v", err)
	}
	if _, err := s.Get(good); err != nil {
		t.Errorf("good image lost: %v", err)
	}
}

func TestExtractAndTouch(t *testing.T) {
	s := newStore(t)
	importTar(t, s, acitest.Image(t, "example.com/base", map[string]string{"etc/base": "base", "etc/hostname": "base"}))
	id := importTar(t, s, acitest.Image(t, "example.com/app", map[string]string{"etc/hostname": "pod"}, deps(dep("example.com/base"))))
	// rkt's image extract and render, each with and without --rootfs-only.
	tests := []struct {
		name   string
		how    Extraction
		rootfs string // where the tree lands below dst
		base   bool   // the dependency's file is there
	}{
		{"extract", Extraction{}, "rootfs", false},
		{"extract rootfs only", Extraction{RootfsOnly: true}, "", false},
		{"render", Extraction{Dependencies: true}, "rootfs", true},
		{"render rootfs only", Extraction{Dependencies: true, RootfsOnly: true}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out")
			if err := s.Extract(ctx, id, dst, tt.how); err != nil {
				t.Fatal(err)
			}
			if data, err := os.ReadFile(filepath.Join(dst, tt.rootfs, "etc/hostname")); string(data) != "pod" {
				t.Errorf("extracted file = %q, %v", data, err)
			}
			if _, err := os.Stat(filepath.Join(dst, tt.rootfs, "etc/base")); (err == nil) != tt.base {
				t.Errorf("the dependency's file: %v, want it there: %v", err, tt.base)
			}
			b, err := os.ReadFile(filepath.Join(dst, "manifest"))
			if tt.how.RootfsOnly {
				if err == nil {
					t.Error("a manifest beside a rootfs-only tree")
				}
				return
			}
			var m schema.ImageManifest
			if err != nil || json.Unmarshal(b, &m) != nil || m.Name != "example.com/app" {
				t.Errorf("manifest %s, %v: want example.com/app's", b, err)
			}
			if ents, _ := os.ReadDir(dst); len(ents) != 2 {
				t.Errorf("dst holds %d entries, want manifest and rootfs", len(ents))
			}
		})
	}
	if err := s.Touch(id); err != nil {
		t.Fatal(err)
	}
	if img, _ := s.Get(id); time.Since(img.LastUsedAt) > time.Minute {
		t.Errorf("LastUsedAt = %v", img.LastUsedAt)
	}
	m, err := s.Manifest(id)
	if err != nil || m.Name != "example.com/app" {
		t.Errorf("Manifest = %v, %v", m, err)
	}
}

func TestImageDigest(t *testing.T) {
	hex512 := strings.Repeat("ab", 64)
	hex256 := strings.Repeat("cd", 32)
	for _, c := range []struct {
		name string
		im   Image
		want string
	}{
		{"aci", Image{ID: "sha512-" + hex512, Kind: KindACI}, "sha512:" + hex512},
		{"aci without kind", Image{ID: "sha512-" + hex512}, "sha512:" + hex512},
		{"oci", Image{ID: "sha256-" + hex256, Kind: KindOCI, OCI: &OCIInfo{Digest: "sha256:" + hex256}}, "sha256:" + hex256},
		{"no id", Image{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.im.Digest(); got != c.want {
				t.Errorf("Digest() = %q, want %q", got, c.want)
			}
		})
	}
}
