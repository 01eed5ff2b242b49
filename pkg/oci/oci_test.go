package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/imageref"
)

// layoutBuilder writes an OCI image layout in a temporary directory, so
// tests can make any image, well-formed or hostile.
type layoutBuilder struct {
	t   *testing.T
	dir string
}

func newTestLayout(t *testing.T) *layoutBuilder {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return &layoutBuilder{t: t, dir: dir}
}

func (b *layoutBuilder) blob(mt string, data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	if err := os.WriteFile(b.blobPath(d), data, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
}

func (b *layoutBuilder) blobPath(d digest.Digest) string {
	return filepath.Join(b.dir, "blobs", "sha256", d.Encoded())
}

func (b *layoutBuilder) json(mt string, v any) ocispec.Descriptor {
	data, err := json.Marshal(v)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.blob(mt, data)
}

func (b *layoutBuilder) index(descs ...ocispec.Descriptor) {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	data, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(b.dir, "index.json"), data, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// tarOf makes a layer tar of name→content files.
func tarOf(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		tw.WriteHeader(&tar.Header{Name: files[i], Mode: 0o644, Size: int64(len(files[i+1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[i+1]))
	}
	tw.Close()
	return buf.Bytes()
}

func compress(t *testing.T, mt string, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch mt {
	case ocispec.MediaTypeImageLayerGzip, MediaTypeDockerLayerGzip:
		zw := gzip.NewWriter(&buf)
		zw.Write(plain)
		zw.Close()
	case ocispec.MediaTypeImageLayerZstd:
		zw, _ := zstd.NewWriter(&buf)
		zw.Write(plain)
		zw.Close()
	default:
		return plain
	}
	return buf.Bytes()
}

// image is the recipe of a test image; fields are changed by the hostile cases.
type image struct {
	layers    [][]byte // plain tars
	types     []string
	arch      string
	cfg       ocispec.ImageConfig
	diffIDs   []digest.Digest // nil: the right ones
	configRaw []byte          // nil: marshal the config
	configMT  string
}

// build writes img and returns its manifest descriptor.
func (b *layoutBuilder) build(img image) ocispec.Descriptor {
	var m ocispec.Manifest
	m.SchemaVersion = 2
	m.MediaType = ocispec.MediaTypeImageManifest
	c := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: img.arch}, Config: img.cfg}
	c.RootFS.Type = "layers"
	for i, plain := range img.layers {
		mt := img.types[i]
		m.Layers = append(m.Layers, b.blob(mt, compress(b.t, mt, plain)))
		c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, digest.FromBytes(plain))
	}
	if img.diffIDs != nil {
		c.RootFS.DiffIDs = img.diffIDs
	}
	mt := ocispec.MediaTypeImageConfig
	if img.configMT != "" {
		mt = img.configMT
	}
	if img.configRaw != nil {
		m.Config = b.blob(mt, img.configRaw)
	} else {
		m.Config = b.json(mt, c)
	}
	d := b.json(ocispec.MediaTypeImageManifest, m)
	d.Platform = &ocispec.Platform{OS: "linux", Architecture: img.arch}
	return d
}

func simpleImage(arch string) image {
	return image{
		layers: [][]byte{tarOf(&testing.T{}, "a", "1"), tarOf(&testing.T{}, "b", "22"), tarOf(&testing.T{}, "c", "333")},
		types:  []string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayer},
		arch:   arch,
		cfg:    ocispec.ImageConfig{Entrypoint: []string{"/bin/sh"}, User: "nobody"},
	}
}

// readAll reads every layer as a consumer would, returning the file
// names and contents it saw, and the first error.
func readAll(t *testing.T, img *Image) (string, error) {
	t.Helper()
	var seen []string
	for i := range img.Layers {
		lr, err := img.OpenLayer(context.Background(), i)
		if err != nil {
			return "", err
		}
		tr := tar.NewReader(lr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				lr.Close()
				return "", err
			}
			data, _ := io.ReadAll(tr)
			seen = append(seen, h.Name+"="+string(data))
		}
		err = lr.Finish()
		lr.Close()
		if err != nil {
			return "", err
		}
	}
	return strings.Join(seen, " "), nil
}

func open(t *testing.T, ref string, opts Options) (*Image, error) {
	t.Helper()
	r, err := imageref.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img, err := Open(ctx, r, opts)
	if err == nil {
		t.Cleanup(func() { img.Close() })
	}
	return img, err
}

func TestOpenLayout(t *testing.T) {
	b := newTestLayout(t)
	host := b.build(simpleImage(runtime.GOARCH))
	other := simpleImage("s390x")
	other.layers = other.layers[:1]
	other.types = other.types[:1]
	arm := b.build(other)
	list := b.json(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{arm, host}})
	list.Annotations = map[string]string{ocispec.AnnotationRefName: "multi"}
	single := host
	single.Annotations = map[string]string{ocispec.AnnotationRefName: "v1"}
	b.index(list, single)

	for _, tt := range []struct {
		ref, platform, want string
		root                ocispec.Descriptor // what the tag names: signatures sign it
	}{
		{"oci:" + b.dir + ":multi", "", "a=1 b=22 c=333", list},
		{"oci:" + b.dir + ":v1", "", "a=1 b=22 c=333", host},
		{"oci:" + b.dir + ":multi", "linux/s390x", "a=1", list},
	} {
		t.Run(tt.ref+" "+tt.platform, func(t *testing.T) {
			img, err := open(t, tt.ref, Options{Platform: tt.platform})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			got, err := readAll(t, img)
			if err != nil || got != tt.want {
				t.Fatalf("layers = %q, %v; want %q", got, err, tt.want)
			}
			if img.Config.Config.User != "nobody" {
				t.Errorf("config User = %q", img.Config.Config.User)
			}
			if img.RootDigest != tt.root.Digest {
				t.Errorf("RootDigest = %s, want %s", img.RootDigest, tt.root.Digest)
			}
		})
	}
	t.Run("archive", func(t *testing.T) {
		arch := filepath.Join(t.TempDir(), "img.tar")
		tarDir(t, b.dir, arch)
		img, err := open(t, "oci-archive:"+arch+":multi", Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if got, err := readAll(t, img); err != nil || got != "a=1 b=22 c=333" {
			t.Fatalf("layers = %q, %v", got, err)
		}
	})
}

var specsV2 = specs.Versioned{SchemaVersion: 2}

// tarDir writes dir as an uncompressed tar, as skopeo writes oci-archive.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	tw.Close()
}

func TestOpenRefuses(t *testing.T) {
	host := runtime.GOARCH
	// tag names the single image of a layout.
	tag := func(b *layoutBuilder, d ocispec.Descriptor) string {
		d.Annotations = map[string]string{ocispec.AnnotationRefName: "t"}
		b.index(d)
		return "oci:" + b.dir + ":t"
	}
	rawManifest := func(b *layoutBuilder, mt string, raw string) string {
		return tag(b, b.blob(mt, []byte(raw)))
	}
	tests := []struct {
		name   string
		make   func(b *layoutBuilder) string
		atRead bool // the error comes while reading layers, not at Open
		want   error
		says   string
	}{
		{"manifest not JSON", func(b *layoutBuilder) string {
			return rawManifest(b, ocispec.MediaTypeImageManifest, "not json")
		}, false, ErrBadJSON, "invalid JSON"},
		{"manifest duplicate key", func(b *layoutBuilder) string {
			return rawManifest(b, ocispec.MediaTypeImageManifest, `{"schemaVersion":2,"layers":[],"layers":[]}`)
		}, false, ErrBadJSON, `duplicate key "layers"`},
		{"manifest keys differing in case", func(b *layoutBuilder) string {
			return rawManifest(b, ocispec.MediaTypeImageManifest, `{"schemaVersion":2,"config":{},"Config":{}}`)
		}, false, ErrBadJSON, `duplicate key "Config"`},
		{"manifest trailing data", func(b *layoutBuilder) string {
			return rawManifest(b, ocispec.MediaTypeImageManifest, `{"schemaVersion":2} {}`)
		}, false, ErrBadJSON, "after the document"},
		{"manifest too large", func(b *layoutBuilder) string {
			return rawManifest(b, ocispec.MediaTypeImageManifest, `{"schemaVersion":2,"x":"`+strings.Repeat("a", MaxManifestSize)+`"}`)
		}, false, ErrTooLarge, "more than"},
		{"manifest deeply nested", func(b *layoutBuilder) string {
			return rawManifest(b, ocispec.MediaTypeImageManifest, `{"schemaVersion":2,"x":`+strings.Repeat("[", 1000)+strings.Repeat("]", 1000)+`}`)
		}, false, ErrBadJSON, "nested deeper"},
		{"schema 1", func(b *layoutBuilder) string {
			return rawManifest(b, ocispec.MediaTypeImageManifest, `{"schemaVersion":1}`)
		}, false, ErrMediaType, "schemaVersion 1"},
		{"unknown manifest media type", func(b *layoutBuilder) string {
			return rawManifest(b, "application/vnd.example+json", `{"schemaVersion":2}`)
		}, false, ErrMediaType, "application/vnd.example+json"},
		{"media type confusion", func(b *layoutBuilder) string {
			return rawManifest(b, ocispec.MediaTypeImageManifest, `{"schemaVersion":2,"mediaType":"`+ocispec.MediaTypeImageIndex+`"}`)
		}, false, ErrMediaType, "by its descriptor"},
		{"unknown layer media type", func(b *layoutBuilder) string {
			img := simpleImage(host)
			img.types[0] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
			return tag(b, b.build(img))
		}, false, ErrMediaType, "nondistributable"},
		{"unknown config media type", func(b *layoutBuilder) string {
			img := simpleImage(host)
			img.configMT = "application/octet-stream"
			return tag(b, b.build(img))
		}, false, ErrMediaType, "octet-stream"},
		{"config duplicate key", func(b *layoutBuilder) string {
			img := simpleImage(host)
			img.configRaw = []byte(`{"architecture":"` + host + `","os":"linux","config":{"User":"a","User":"root"},"rootfs":{"type":"layers","diff_ids":[]}}`)
			img.layers, img.types = nil, nil
			return tag(b, b.build(img))
		}, false, ErrBadJSON, `duplicate key "User"`},
		{"config for another platform", func(b *layoutBuilder) string {
			return tag(b, b.build(simpleImage("s390x")))
		}, false, ErrNoPlatform, "image is for linux/s390x"},
		{"diff_ids miscounted", func(b *layoutBuilder) string {
			img := simpleImage(host)
			img.diffIDs = []digest.Digest{digest.FromString("x")}
			return tag(b, b.build(img))
		}, false, ErrBadJSON, "1 diff_ids for 3 layers"},
		{"index without the platform", func(b *layoutBuilder) string {
			d := b.build(simpleImage("s390x"))
			return tag(b, b.json(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specsV2, Manifests: []ocispec.Descriptor{d, d}}))
		}, false, ErrNoPlatform, "it has linux/s390x"},
		{"indexes nested too deep", func(b *layoutBuilder) string {
			d := b.build(simpleImage(host))
			for range 6 {
				d = b.json(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specsV2, Manifests: []ocispec.Descriptor{d}})
			}
			return tag(b, d)
		}, false, ErrIndexLoop, "deeper than 4"},
		{"manifest blob tampered", func(b *layoutBuilder) string {
			d := b.build(simpleImage(host))
			data, _ := os.ReadFile(b.blobPath(d.Digest))
			data[len(data)-2] = ' '
			os.WriteFile(b.blobPath(d.Digest), data, 0o644)
			return tag(b, d)
		}, false, ErrDigestMismatch, "hashes to"},
		{"config truncated", func(b *layoutBuilder) string {
			d := b.build(simpleImage(host))
			m := readManifest(t, b, d)
			os.Truncate(b.blobPath(m.Config.Digest), m.Config.Size-1)
			return tag(b, d)
		}, false, ErrDigestMismatch, "truncated"},
		{"layer tampered", func(b *layoutBuilder) string {
			d := b.build(simpleImage(host))
			m := readManifest(t, b, d)
			p := b.blobPath(m.Layers[2].Digest) // the uncompressed one: still a valid tar
			data, _ := os.ReadFile(p)
			data[bytes.Index(data, []byte("333"))] = '4'
			os.WriteFile(p, data, 0o644)
			return tag(b, d)
		}, true, ErrDigestMismatch, "hashes to"},
		{"layer truncated", func(b *layoutBuilder) string {
			d := b.build(simpleImage(host))
			m := readManifest(t, b, d)
			os.Truncate(b.blobPath(m.Layers[0].Digest), m.Layers[0].Size-4)
			return tag(b, d)
		}, true, ErrDigestMismatch, ""},
		{"layer longer than its descriptor", func(b *layoutBuilder) string {
			d := b.build(simpleImage(host))
			m := readManifest(t, b, d)
			f, _ := os.OpenFile(b.blobPath(m.Layers[2].Digest), os.O_APPEND|os.O_WRONLY, 0)
			f.Write(make([]byte, 512))
			f.Close()
			return tag(b, d)
		}, true, ErrDigestMismatch, "longer than"},
		{"diff_id wrong", func(b *layoutBuilder) string {
			img := simpleImage(host)
			img.diffIDs = []digest.Digest{digest.FromString("x"), digest.FromBytes(img.layers[1]), digest.FromBytes(img.layers[2])}
			return tag(b, b.build(img))
		}, true, ErrDigestMismatch, "hashes to"},
		{"blob is a FIFO", func(b *layoutBuilder) string {
			d := b.build(simpleImage(host))
			m := readManifest(t, b, d)
			os.Remove(b.blobPath(m.Config.Digest))
			if err := unix.Mkfifo(b.blobPath(m.Config.Digest), 0o600); err != nil {
				t.Fatal(err)
			}
			return tag(b, d)
		}, false, nil, "not a regular file"},
		{"blob is a symlink out of the layout", func(b *layoutBuilder) string {
			d := b.build(simpleImage(host))
			m := readManifest(t, b, d)
			outside := filepath.Join(t.TempDir(), "cfg")
			os.Rename(b.blobPath(m.Config.Digest), outside)
			os.Symlink(outside, b.blobPath(m.Config.Digest))
			return tag(b, d)
		}, false, nil, "escapes"},
		{"tag missing", func(b *layoutBuilder) string {
			tag(b, b.build(simpleImage(host)))
			return "oci:" + b.dir + ":nope"
		}, false, ErrNotFound, `tag "nope"`},
		{"untagged layout with two images", func(b *layoutBuilder) string {
			d := b.build(simpleImage(host))
			d.Platform = nil
			b.index(d, d)
			return "oci:" + b.dir
		}, false, ErrNotFound, "holds 2 images and no platforms"},
		{"not a layout", func(b *layoutBuilder) string {
			os.Remove(filepath.Join(b.dir, "oci-layout"))
			return tag(b, b.build(simpleImage(host)))
		}, false, ErrNotFound, "not an OCI image layout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestLayout(t)
			ref := tt.make(b)
			img, err := open(t, ref, Options{})
			if tt.atRead {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				_, err = readAll(t, img)
			}
			if err == nil {
				t.Fatalf("no error, want %v saying %q", tt.want, tt.says)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line saying %q", err, tt.says)
			}
		})
	}
}

func readManifest(t *testing.T, b *layoutBuilder, d ocispec.Descriptor) ocispec.Manifest {
	t.Helper()
	var m ocispec.Manifest
	data, _ := os.ReadFile(b.blobPath(d.Digest))
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLayerNeverEOFBeforeVerified reads a tampered layer byte by byte: no
// read may return io.EOF, however the consumer reads.
func TestLayerNeverEOFBeforeVerified(t *testing.T) {
	plain := tarOf(t, "f", "good")
	bad := bytes.Replace(plain, []byte("good"), []byte("evil"), 1)
	for _, mt := range []string{ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd} {
		t.Run(mt, func(t *testing.T) {
			blob := compress(t, mt, bad)
			l := Layer{Blob: ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(compress(t, mt, plain)), Size: int64(len(blob))}, DiffID: digest.FromBytes(plain)}
			lr, err := newLayerReader(io.NopCloser(bytes.NewReader(blob)), l, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer lr.Close()
			p := make([]byte, 1)
			for {
				_, err := lr.Read(p)
				if err == io.EOF {
					t.Fatal("io.EOF from a tampered layer")
				}
				if err != nil {
					if !errors.Is(err, ErrDigestMismatch) {
						t.Fatalf("error %v, want ErrDigestMismatch", err)
					}
					return
				}
			}
		})
	}
}
