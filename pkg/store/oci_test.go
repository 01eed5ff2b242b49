package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/oci"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("layers keep owners, whiteout devices and trusted.* xattrs: run as root")
	}
}

type entry struct {
	name, body string
	typ        byte
}

func layerTar(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeDir {
			h.Mode, h.Size = 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// writeLayout writes an OCI layout with one image tagged "t" and returns
// its reference and the layers' blob paths.
func writeLayout(t *testing.T, dir string, config map[string]any, layers ...[]byte) (imageref.Ref, []string) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	blob := func(b []byte) (string, int, string) {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		p := filepath.Join(dir, "blobs", "sha256", h)
		os.WriteFile(p, b, 0o644)
		return "sha256:" + h, len(b), p
	}
	var diffs []string
	var descs []map[string]any
	var paths []string
	for _, l := range layers {
		d, n, p := blob(l)
		diffs = append(diffs, d)
		paths = append(paths, p)
		descs = append(descs, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": config,
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffs}})
	cd, cn, _ := blob(cfg)
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn}, "layers": descs})
	md, mn, _ := blob(man)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{"mediaType": "application/vnd.oci.image.manifest.v1+json",
		"digest": md, "size": mn, "annotations": map[string]string{"org.opencontainers.image.ref.name": "t"}}}})
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	ref, err := imageref.Parse("oci:" + dir + ":t")
	if err != nil {
		t.Fatal(err)
	}
	return ref, paths
}

func importLayout(t *testing.T, s *Store, ref imageref.Ref) (string, error) {
	t.Helper()
	img, err := oci.Open(context.Background(), ref, oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	return s.ImportOCI(context.Background(), img, OCIImportOptions{Provenance: Insecure})
}

var (
	baseLayer = []entry{{"bin/", "", tar.TypeDir}, {"bin/app", "#!", 0}, {"etc/", "", tar.TypeDir},
		{"etc/passwd", "root:x:0:0::/:/bin/sh\nweb:x:33:44::/:/bin/sh\n", 0},
		{"gone", "x", 0}, {"opq/", "", tar.TypeDir}, {"opq/old", "x", 0}}
	topLayer = []entry{{".wh.gone", "", 0}, {"opq/", "", tar.TypeDir}, {"opq/.wh..wh..opq", "", 0}, {"opq/new", "y", 0}}
	config   = map[string]any{"Entrypoint": []string{"app"}, "Cmd": []string{"-x"}, "User": "web", "Env": []string{"PATH=/bin"}}
)

// Two images share a layer: it is unpacked once, both stack it, the
// synthesized manifest resolves the command and the user's group, and
// removing one image keeps the shared layer.
func TestImportOCIShared(t *testing.T) {
	requireRoot(t)
	s := newStore(t)
	base, top := layerTar(t, baseLayer...), layerTar(t, topLayer...)
	refA, _ := writeLayout(t, t.TempDir(), config, base, top)
	refB, _ := writeLayout(t, t.TempDir(), config, base, layerTar(t, entry{"b", "b", 0}))
	var wg sync.WaitGroup
	ids := make([]string, 3)
	for i, ref := range []imageref.Ref{refA, refA, refB} { // two at once of one image
		wg.Go(func() {
			id, err := importLayout(t, s, ref)
			if err != nil {
				t.Errorf("import %s: %v", ref, err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	if ids[0] != ids[1] || !strings.HasPrefix(ids[0], "sha256-") {
		t.Fatalf("ids %v", ids)
	}
	// A skiff that knows only format 2 must refuse this store.
	if v, err := ReadFormat(s.dir); v != Format || err != nil {
		t.Errorf("format after an OCI import: %d %v, want %d", v, err, Format)
	}
	layers, _ := os.ReadDir(filepath.Join(s.cas, "layer"))
	if len(layers) != 3 {
		t.Errorf("%d layer dirs, want 3: %v", len(layers), layers)
	}
	m, err := s.Manifest(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.App.Exec, " "); got != "/bin/app -x" || m.App.User != "web" || m.App.Group != "44" {
		t.Errorf("app: exec %q user %q group %q", got, m.App.User, m.App.Group)
	}
	dirs, err := s.LowerDirs(context.Background(), ids[0])
	if err != nil || len(dirs) != 2 {
		t.Fatalf("LowerDirs: %v %v", dirs, err)
	}
	if probs, err := s.Verify(context.Background(), false, nil); err != nil || len(probs) != 0 {
		t.Errorf("verify: %v %v", probs, err)
	}
	if err := s.Remove(ids[0], func() (map[string]string, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if layers, _ := os.ReadDir(filepath.Join(s.cas, "layer")); len(layers) != 2 {
		t.Errorf("after rm: %d layer dirs, want 2 (the shared one kept)", len(layers))
	}
	if _, err := s.LowerDirs(context.Background(), ids[2]); err != nil {
		t.Errorf("image B after rm of A: %v", err)
	}
}

// A tampered layer fails the import and leaves no layer, partial or not,
// and no record; a damaged layer tree is found by Verify and repaired by
// removing it with its image.
func TestImportOCIBad(t *testing.T) {
	requireRoot(t)
	s := newStore(t)
	ref, paths := writeLayout(t, t.TempDir(), config, layerTar(t, baseLayer...), layerTar(t, topLayer...))
	good, _ := os.ReadFile(paths[1])
	bad := bytes.Clone(good)
	bad[len(bad)-600] ^= 1 // inside opq/new's content
	os.WriteFile(paths[1], bad, 0o644)
	if _, err := importLayout(t, s, ref); !errors.Is(err, oci.ErrDigestMismatch) {
		t.Errorf("tampered layer: %v, want ErrDigestMismatch", err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.cas, "layer"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("partial layer left: %s", e.Name())
		}
	}
	if imgs, _ := s.List(); len(imgs) != 0 {
		t.Errorf("images after a failed import: %v", imgs)
	}
	if probs, err := s.Verify(context.Background(), false, nil); err != nil || len(probs) != 0 {
		t.Errorf("verify after failed import: %v %v", probs, err)
	}
	os.WriteFile(paths[1], good, 0o644)
	id, err := importLayout(t, s, ref)
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := s.LowerDirs(context.Background(), id)
	os.WriteFile(filepath.Join(dirs[0], "opq", "new"), []byte("changed"), 0o644)
	probs, err := s.Verify(context.Background(), true, nil)
	if err != nil || len(probs) != 1 || !strings.Contains(probs[0].What, "damaged tree") || !probs[0].Repaired {
		t.Fatalf("verify of a damaged layer: %+v %v", probs, err)
	}
	if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("image with a damaged layer kept: %v", err)
	}
	if probs, _ := s.Verify(context.Background(), false, nil); len(probs) != 0 {
		t.Errorf("after repair: %+v", probs)
	}
}

// An image whose layers do not fit one overlay is merged once into one
// tree, whiteouts and opaque dirs applied.
func TestMergedLayers(t *testing.T) {
	requireRoot(t)
	defer func(n int) { maxLowerLen = n }(maxLowerLen)
	maxLowerLen = 10
	s := newStore(t)
	ref, _ := writeLayout(t, t.TempDir(), config, layerTar(t, baseLayer...), layerTar(t, topLayer...))
	id, err := importLayout(t, s, ref)
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LowerDirs(context.Background(), id)
	if err != nil || len(dirs) != 1 || dirs[0] != filepath.Join(s.treePath(id), "rootfs") {
		t.Fatalf("LowerDirs: %v %v", dirs, err)
	}
	for path, want := range map[string]string{"gone": "", "opq/old": "", "opq/new": "y", "bin/app": "#!"} {
		b, err := os.ReadFile(filepath.Join(dirs[0], path))
		if want == "" && !errors.Is(err, os.ErrNotExist) || want != "" && string(b) != want {
			t.Errorf("%s: %q %v, want %q", path, b, err, want)
		}
	}
	if _, err := getxattr(filepath.Join(dirs[0], "opq"), "trusted.overlay.opaque"); !errors.Is(err, unix.ENODATA) {
		t.Errorf("merged tree keeps overlay xattrs: %v", err)
	}
	if probs, err := s.Verify(context.Background(), false, nil); err != nil || len(probs) != 0 {
		t.Errorf("verify: %v %v", probs, err)
	}
}

func TestStackLookup(t *testing.T) {
	requireRoot(t)
	top, bottom := t.TempDir(), t.TempDir()
	for _, d := range []string{"bin", "usr/bin", "opq"} {
		os.MkdirAll(filepath.Join(bottom, d), 0o755)
	}
	os.WriteFile(filepath.Join(bottom, "bin/a"), nil, 0o755)
	os.WriteFile(filepath.Join(bottom, "usr/bin/b"), nil, 0o755)
	os.WriteFile(filepath.Join(bottom, "opq/c"), nil, 0o755)
	os.MkdirAll(filepath.Join(top, "bin"), 0o755)
	os.MkdirAll(filepath.Join(top, "opq"), 0o755)
	unix.Mknod(filepath.Join(top, "bin/a"), unix.S_IFCHR, 0) // whiteout
	unix.Setxattr(filepath.Join(top, "opq"), "trusted.overlay.opaque", []byte("y"), 0)
	lowers := []string{top, bottom}
	for _, tt := range []struct {
		cmd, path, want string
	}{
		{"a", "/bin", ""},
		{"b", "/bin:/usr/bin", "/usr/bin/b"},
		{"c", "/opq", ""},
		{"sh/../b", "/usr/bin", ""},
	} {
		got, _ := lookPath(lowers, tt.cmd, tt.path)
		if got != tt.want {
			t.Errorf("lookPath(%q, %q) = %q, want %q", tt.cmd, tt.path, got, tt.want)
		}
	}
}

// Hostile or broken images: one-line errors at import, nothing kept.
func TestImportOCIRefused(t *testing.T) {
	requireRoot(t)
	for _, tt := range []struct {
		name   string
		layer  []entry
		config map[string]any
		want   error
	}{
		{"user not in passwd", baseLayer, map[string]any{"Entrypoint": []string{"/bin/app"}, "User": "nobody"}, ErrBadUser},
		{"passwd is a FIFO", []entry{{"etc/", "", tar.TypeDir}, {"etc/passwd", "", tar.TypeFifo}},
			map[string]any{"Entrypoint": []string{"/bin/app"}, "User": "web"}, ErrBadUser},
		{"no command", baseLayer, map[string]any{}, oci.ErrNoCommand},
		{"huge labels", baseLayer, map[string]any{"Entrypoint": []string{"/bin/app"},
			"Labels": map[string]string{"a": strings.Repeat("x", 5<<20)}}, oci.ErrTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ref, _ := writeLayout(t, t.TempDir(), tt.config, layerTar(t, tt.layer...))
			_, err := importLayout(t, s, ref)
			if !errors.Is(err, tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if imgs, _ := s.List(); len(imgs) != 0 {
				t.Errorf("refused image listed: %v", imgs)
			}
			// Its verified layer stays for a next fetch, until gc.
			if _, err := s.GC(context.Background(), func() (map[string]string, error) { return nil, nil }, GCOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{"layer", "blobs/sha256"} {
				if ents, _ := os.ReadDir(filepath.Join(s.cas, d)); len(ents) != 0 {
					t.Errorf("cas/%s after gc: %v", d, ents)
				}
			}
		})
	}
}

// A layer listed twice stacks once, at its top place; the kernel mounts
// the result.
func TestDuplicateLayer(t *testing.T) {
	requireRoot(t)
	s := newStore(t)
	a := layerTar(t, baseLayer...)
	b := layerTar(t, entry{".wh.gone", "", 0}, entry{"b", "b", 0})
	ref, _ := writeLayout(t, t.TempDir(), config, a, b, a)
	id, err := importLayout(t, s, ref)
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LowerDirs(context.Background(), id)
	if err != nil || len(dirs) != 2 {
		t.Fatalf("LowerDirs: %v %v", dirs, err)
	}
	mnt := t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(dirs, ":")); err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	for _, p := range []string{"gone", "b"} { // the top copy of a re-adds gone
		if _, err := os.Stat(filepath.Join(mnt, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// GC keeps an OCI image, and a layer no image lists, while a pod mounts
// the layer (pods name layers by their hex, not the image ID).
func TestGCKeepsMountedLayers(t *testing.T) {
	requireRoot(t)
	s := newStore(t)
	ref, _ := writeLayout(t, t.TempDir(), config, layerTar(t, baseLayer...))
	id, err := importLayout(t, s, ref)
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := s.LowerDirs(context.Background(), id)
	hex := filepath.Base(filepath.Dir(dirs[0]))
	mounted := func() (map[string]string, error) { return map[string]string{hex: "pod test"}, nil }
	if _, err := s.GC(context.Background(), mounted, GCOptions{ImageGracePeriod: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(id); err != nil {
		t.Errorf("gc removed an image whose layer a pod mounts: %v", err)
	}
	os.Remove(s.recordPath(id)) // its record lost: the layer is listed by no image
	if _, err := s.GC(context.Background(), mounted, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if !s.HasLayer(hex) {
		t.Errorf("gc removed a layer a pod mounts")
	}
	if _, err := s.GC(context.Background(), func() (map[string]string, error) { return nil, nil }, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.HasLayer(hex) {
		t.Errorf("gc kept an unused, unlisted layer")
	}
}

// The compressed layer blobs are kept: export writes an oci-archive that
// opens to the same manifest digest; a damaged kept blob is found by
// Verify and fails the export; extract merges the layers; a tag names one
// image and moves.
func TestOCIExportExtractTag(t *testing.T) {
	requireRoot(t)
	s := newStore(t)
	refA, paths := writeLayout(t, t.TempDir(), config, layerTar(t, baseLayer...), layerTar(t, topLayer...))
	refB, _ := writeLayout(t, t.TempDir(), config, layerTar(t, baseLayer...))
	id, err := importLayout(t, s, refA)
	if err != nil {
		t.Fatal(err)
	}
	idB, err := importLayout(t, s, refB)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join(s.cas, "blobs", "sha256", filepath.Base(p))); err != nil {
			t.Errorf("layer blob not kept: %v", err)
		}
	}
	archive := filepath.Join(t.TempDir(), "a.tar")
	f, _ := os.Create(archive)
	if err := s.Export(id, f); err != nil {
		t.Fatalf("export: %v", err)
	}
	f.Close()
	ar, _ := imageref.Parse("oci-archive:" + archive + ":t")
	img, err := oci.Open(context.Background(), ar, oci.Options{})
	if err != nil {
		t.Fatalf("open the export: %v", err)
	}
	img.Close()
	if "sha256-"+img.Digest.Encoded() != id {
		t.Errorf("exported digest %s, want %s", img.Digest, id)
	}
	if id2, err := importLayout(t, newStore(t), ar); err != nil || id2 != id {
		t.Errorf("import of the export: %s %v, want %s", id2, err, id)
	}

	dst := filepath.Join(t.TempDir(), "x")
	if err := s.Extract(context.Background(), id, dst, Extraction{RootfsOnly: true}); err != nil {
		t.Fatalf("extract: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "opq", "new")); err != nil {
		t.Errorf("extract: %v", err)
	}
	for _, p := range []string{"gone", "opq/old"} {
		if _, err := os.Lstat(filepath.Join(dst, p)); err == nil {
			t.Errorf("extract: %s not hidden", p)
		}
	}

	tag, _ := imageref.Parse("docker://example.com/x/y:2")
	for _, want := range []string{id, idB} {
		if err := s.Tag(want, tag); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(tag.String()); err != nil || got.ID != want {
			t.Errorf("by tag: %s %v, want %s", got.ID, err, want)
		}
	}
	if got, _ := s.Get(id); len(got.OCI.Tags) != 0 {
		t.Errorf("the tag did not move: %v", got.OCI.Tags)
	}
	if err := s.Tag(id, mustRef(t, "docker://example.com/x/y@sha256:"+strings.Repeat("a", 64))); !errors.Is(err, ErrBadRef) {
		t.Errorf("tag by digest: %v", err)
	}

	blob := filepath.Join(s.cas, "blobs", "sha256", filepath.Base(paths[1]))
	b, _ := os.ReadFile(blob)
	b[len(b)/2] ^= 1
	os.WriteFile(blob, b, 0o644)
	if err := s.Export(id, io.Discard); !errors.Is(err, ErrCorrupt) {
		t.Errorf("export of a damaged blob: %v, want ErrCorrupt", err)
	}
	if probs, _ := s.Verify(context.Background(), false, nil); len(probs) != 1 || probs[0].What != "corrupt blob" {
		t.Errorf("verify of a damaged layer blob: %+v", probs)
	}
	if err := s.Remove(id, func() (map[string]string, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(blob); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("layer blob kept after rm: %v", err)
	}
}

func mustRef(t *testing.T, s string) imageref.Ref {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
