package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is a built single-layer OCI image, held in memory.
type Image struct {
	Layer    []byte // gzipped tar
	Tar      []byte // the same tar, uncompressed (docker-archive, ACI)
	Config   []byte
	Manifest []byte
	// ManifestDigest names the image (its OCI digest).
	ManifestDigest digest.Digest
	spec           *Spec
	env            []string
	epoch          int64
}

// newImage writes t as one layer and describes it.
func newImage(t tree, s *Spec, env []string, epoch int64) (*Image, error) {
	var raw bytes.Buffer
	if err := writeTar(&raw, t, "", epoch, s.Owners); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	gz, err := gzipBytes(raw.Bytes())
	if err != nil {
		return nil, err
	}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config: ocispec.ImageConfig{
			User: s.User, Env: env, Entrypoint: s.Exec, WorkingDir: s.WorkDir, Labels: s.Labels,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(raw.Bytes())}},
	}
	if epoch != 0 {
		c := time.Unix(epoch, 0).UTC()
		cfg.Created = &c
	}
	if len(s.Ports) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range s.Ports {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	if len(s.Volumes) > 0 {
		cfg.Config.Volumes = map[string]struct{}{}
		for _, v := range s.Volumes {
			cfg.Config.Volumes[path.Clean(v)] = struct{}{}
		}
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(gz), Size: int64(len(gz))}},
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &Image{Layer: gz, Tar: raw.Bytes(), Config: cb, Manifest: mb, ManifestDigest: digest.FromBytes(mb),
		spec: s, env: env, epoch: epoch}, nil
}

// gzipBytes compresses b with a fixed header (no name, mtime 0, OS
// "unknown"), so equal input gives equal output.
func gzipBytes(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// writeTar writes t as a tar, each name under prefix: entries sorted by
// name, every parent directory present (0755 when the tree lacks it),
// owners 0:0 (or the spec's owners) without names, mtimes epoch, no
// access or change times, no extended attributes. Nothing of the host
// that built it goes into the bytes but file content, mode and type.
func writeTar(w io.Writer, t tree, prefix string, epoch int64, owners []Owner) error {
	full := tree{}
	for k, n := range t {
		full[k] = n
		for d := path.Dir(k); d != "." && full[d] == nil; d = path.Dir(d) {
			full[d] = &node{typ: tar.TypeDir, mode: 0o755}
		}
	}
	for k, n := range full {
		if n.typ != tar.TypeDir { // a parent that is not a directory: the file loses
			for d := path.Dir(k); d != "."; d = path.Dir(d) {
				if p := t[d]; p != nil && p.typ != tar.TypeDir {
					return fmt.Errorf("%s is under %s, which is not a directory", k, d)
				}
			}
		}
	}
	names := make([]string, 0, len(full))
	for k := range full {
		names = append(names, k)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	mtime := time.Unix(epoch, 0)
	for _, k := range names {
		n := full[k]
		h := &tar.Header{Name: prefix + k, Typeflag: n.typ, Mode: int64(n.mode.Perm()), ModTime: mtime, Linkname: n.link}
		if n.mode&os.ModeSetuid != 0 {
			h.Mode |= 0o4000
		}
		if n.mode&os.ModeSetgid != 0 {
			h.Mode |= 0o2000
		}
		if n.mode&os.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		h.Uid, h.Gid = ownerOf(k, owners)
		if n.owner != nil && !ownedBySpec(k, owners) {
			h.Uid, h.Gid = n.owner[0], n.owner[1]
		}
		var src *os.File
		switch n.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeReg:
			if n.src != "" {
				f, err := n.open()
				if err != nil {
					return err
				}
				fi, err := f.Stat()
				if err != nil {
					f.Close()
					return err
				}
				src, h.Size = f, fi.Size()
			} else {
				h.Size = int64(len(n.data))
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if n.typ != tar.TypeReg {
			continue
		}
		var err error
		if src != nil {
			_, err = io.CopyN(tw, src, h.Size)
			src.Close()
		} else {
			_, err = tw.Write(n.data)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return tw.Close()
}

func ownedBySpec(p string, owners []Owner) bool {
	for _, o := range owners {
		c := clean(o.Path)
		if c == "" || p == c || strings.HasPrefix(p, c+"/") {
			return true
		}
	}
	return false
}

// ownerOf is the owner the spec gives p (the longest matching path), or 0:0.
func ownerOf(p string, owners []Owner) (int, int) {
	uid, gid, best := 0, 0, -1
	for _, o := range owners {
		c := clean(o.Path)
		if (c == "" || p == c || strings.HasPrefix(p, c+"/")) && len(c) > best {
			uid, gid, best = o.UID, o.GID, len(c)
		}
	}
	return uid, gid
}
