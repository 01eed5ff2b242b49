package oci

import (
	"archive/tar"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// archiveRow is one entry of a test archive.
type archiveRow struct {
	name, body, link string
}

func writeArchive(t *testing.T, rows ...archiveRow) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, r := range rows {
		h := &tar.Header{Name: r.name, Mode: 0o644, Size: int64(len(r.body)), Typeflag: tar.TypeReg}
		if r.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, r.link, 0
		}
		tw.WriteHeader(h)
		tw.Write([]byte(r.body))
	}
	tw.Close()
	return p
}

// dockerSave returns the rows of a docker-archive with one layer.
func dockerSave(t *testing.T, arch string) (rows []archiveRow, cfgName string) {
	t.Helper()
	plain := tarOf(t, "f", "data")
	c := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: arch}}
	c.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(plain)}}
	cfg, _ := json.Marshal(c)
	cfgName = digest.FromBytes(cfg).Encoded() + ".json"
	man, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{"x:t"}, "Layers": []string{"l1/layer.tar"}}})
	return []archiveRow{{name: "manifest.json", body: string(man)}, {name: cfgName, body: string(cfg)}, {name: "l1/layer.tar", body: string(plain)}}, cfgName
}

func TestDockerArchive(t *testing.T) {
	good, _ := dockerSave(t, runtime.GOARCH)
	img, err := open(t, "docker-archive:"+writeArchive(t, good...), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got, err := readAll(t, img); err != nil || got != "f=data" {
		t.Fatalf("layers = %q, %v", got, err)
	}

	// A layer shared by symlink, as old `docker save` writes it.
	linked := append(good[:2:2], archiveRow{name: "l0/layer.tar", body: good[2].body}, archiveRow{name: "l1/layer.tar", link: "../l0/layer.tar"})
	img, err = open(t, "docker-archive:"+writeArchive(t, linked...), Options{})
	if err != nil {
		t.Fatalf("Open with a linked layer: %v", err)
	}
	if got, err := readAll(t, img); err != nil || got != "f=data" {
		t.Fatalf("linked layers = %q, %v", got, err)
	}
}

func TestDockerArchiveRefuses(t *testing.T) {
	with := func(change func(rows []archiveRow, cfg string) []archiveRow) []archiveRow {
		rows, cfg := dockerSave(t, runtime.GOARCH)
		return change(rows, cfg)
	}
	tests := []struct {
		name   string
		rows   []archiveRow
		atRead bool
		want   error
		says   string
	}{
		{"no manifest.json", with(func(r []archiveRow, _ string) []archiveRow { return r[1:] }), false, ErrNotFound, "not a docker-archive"},
		{"two images", with(func(r []archiveRow, _ string) []archiveRow {
			r[0].body = "[" + r[0].body[1:len(r[0].body)-1] + "," + r[0].body[1:]
			return r
		}), false, nil, "holds 2 images"},
		{"duplicate key", with(func(r []archiveRow, cfg string) []archiveRow {
			r[0].body = `[{"Config":"` + cfg + `","Config":"x","Layers":[]}]`
			return r
		}), false, ErrBadJSON, "duplicate key"},
		{"config renamed", with(func(r []archiveRow, cfg string) []archiveRow {
			r[1].body = r[1].body[:len(r[1].body)-1] + `,"author":"x"}`
			return r
		}), false, ErrDigestMismatch, "hashes to"},
		{"config path escapes", with(func(r []archiveRow, cfg string) []archiveRow {
			r[0].body = `[{"Config":"../../etc/passwd","Layers":[]}]`
			return r
		}), false, ErrNotFound, "../../etc/passwd"},
		{"layer changed", with(func(r []archiveRow, _ string) []archiveRow {
			r[2].body = string(tarOf(t, "f", "evil"))
			return r
		}), true, ErrDigestMismatch, "hashes to"},
		{"symlink loop", with(func(r []archiveRow, _ string) []archiveRow {
			return append(r[:2], archiveRow{name: "l1/layer.tar", link: "../l2/layer.tar"}, archiveRow{name: "l2/layer.tar", link: "../l1/layer.tar"})
		}), false, nil, "too many links"},
		{"duplicate entry", with(func(r []archiveRow, _ string) []archiveRow { return append(r, r[2]) }), false, nil, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := open(t, "docker-archive:"+writeArchive(t, tt.rows...), Options{})
			if tt.atRead {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				_, err = readAll(t, img)
			}
			checkErr(t, err, tt.want, tt.says)
		})
	}
	t.Run("not a tar", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x")
		os.WriteFile(p, []byte("just text, not a tar header at all"), 0o644)
		_, err := open(t, "docker-archive:"+p, Options{})
		checkErr(t, err, nil, "not an uncompressed tar")
	})
	t.Run("compressed", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x")
		os.WriteFile(p, []byte("\x1f\x8bgzip?"), 0o644)
		_, err := open(t, "docker-archive:"+p, Options{})
		checkErr(t, err, nil, "give the uncompressed tar")
	})
}
