package store

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/oci"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// An OCI image leaves the store as it came in: its manifest blob, its
// config blob and its compressed layer blobs, byte for byte, so an image
// pushed or exported keeps its manifest digest (docs/images.md, "Tag,
// push and export").

// Tag gives OCI image id the registry reference ref as another name: it
// is listed and found by it (run, image push) as by the reference it was
// fetched as. A tag names one image: given to another, it moves.
func (s *Store) Tag(id string, ref imageref.Ref) error {
	const op = "tag image"
	if ref.Transport != imageref.Docker || ref.Digest != "" {
		return fmt.Errorf("%s: %w: %s: a tag is a docker:// reference with a tag, not a digest", op, ErrBadRef, ref)
	}
	unlock, err := s.lock(unix.LOCK_EX)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer unlock()
	rec, err := s.readRecord(id)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if rec.OCI == nil {
		return fmt.Errorf("%s %s: %w (an ACI is named by its manifest)", op, id, ErrOnlyOCI)
	}
	name := ref.String()
	imgs, err := s.list()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	for _, img := range imgs {
		if img.OCI == nil || img.ID == id || !slices.Contains(img.OCI.Tags, name) {
			continue
		}
		other, err := s.readRecord(img.ID)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		other.OCI.Tags = slices.DeleteFunc(other.OCI.Tags, func(t string) bool { return t == name })
		if err := s.writeJSON(s.recordPath(img.ID), other, true); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if slices.Contains(rec.OCI.Tags, name) {
		return nil
	}
	rec.OCI.Tags = append(rec.OCI.Tags, name)
	if err := s.writeJSON(s.recordPath(id), rec, true); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// OCIImageBlobs returns OCI image id's manifest, as fetched and checked
// against the ID, and a way to read the blobs it names (image push). The
// caller holds the store (Hold) while it reads them.
func (s *Store) OCIImageBlobs(id string) (*oci.Blobs, error) {
	rec, m, raw, err := s.ociStored(id)
	if err != nil {
		return nil, err
	}
	return &oci.Blobs{Manifest: raw, MediaType: m.MediaType, Open: func(d digest.Digest) (io.ReadCloser, error) {
		if string(d) != rec.OCI.ConfigDigest && !slices.Contains(rec.OCI.LayerBlobs, string(d)) {
			return nil, fmt.Errorf("%w: %s is not a blob of %s", ErrNotFound, d, id)
		}
		h, err := digestHex(string(d))
		if err != nil {
			return nil, err
		}
		return os.Open(s.ociBlobPath(h))
	}}, nil
}

// ociStored reads OCI image id's record and manifest blob (checked
// against the ID) and checks that every blob it names is kept.
func (s *Store) ociStored(id string) (*record, *ocispec.Manifest, []byte, error) {
	rec, err := s.readRecord(id)
	if err != nil {
		return nil, nil, nil, err
	}
	if rec.OCI == nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", id, ErrOnlyOCI)
	}
	if rec.OCI.ConfigDigest == "sha256:"+strings.TrimPrefix(id, ociIDPrefix) {
		return nil, nil, nil, fmt.Errorf("%s has no manifest (a docker-archive image): %w", id, ErrNoManifest)
	}
	raw, err := safefile.ReadFile(s.blobPath(id), oci.MaxManifestSize)
	if err != nil {
		return nil, nil, nil, err
	}
	if sum := sha256.Sum256(raw); ociIDPrefix+hex.EncodeToString(sum[:]) != id {
		return nil, nil, nil, fmt.Errorf("%w: manifest of %s", ErrCorrupt, id)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, nil, fmt.Errorf("manifest of %s: %w", id, err)
	}
	if m.MediaType == "" {
		m.MediaType = ocispec.MediaTypeImageManifest
	}
	var have []string
	for _, l := range m.Layers {
		have = append(have, string(l.Digest))
	}
	if len(rec.OCI.LayerBlobs) != len(have) || !slices.Equal(rec.OCI.LayerBlobs, have) || string(m.Config.Digest) != rec.OCI.ConfigDigest {
		return nil, nil, nil, fmt.Errorf("%s: its layer blobs are not kept (fetched by an older skiff): fetch it again with --pull-policy=update", id)
	}
	for _, d := range have {
		h, err := digestHex(d)
		if err != nil {
			return nil, nil, nil, err
		}
		if _, err := os.Lstat(s.ociBlobPath(h)); err != nil {
			return nil, nil, nil, fmt.Errorf("%w: layer blob %s of %s: fetch it again with --pull-policy=update", ErrMissingLayer, d, id)
		}
	}
	return rec, &m, raw, nil
}

// exportOCI writes OCI image id to w as an OCI image layout in a tar
// (what skopeo calls oci-archive), tagged with the tag it was fetched by.
// Every blob is checked against its digest as it is copied: a damaged
// blob fails the export with ErrCorrupt.
func (s *Store) exportOCI(id string, rec *record, w io.Writer) error {
	_, m, raw, err := s.ociStored(id)
	if err != nil {
		return err
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.Digest("sha256:" + strings.TrimPrefix(id, ociIDPrefix)), Size: int64(len(raw))}
	if rec.OCI.Tag != "" {
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: rec.OCI.Tag}
	}
	index, err := json.Marshal(ocispec.Index{Versioned: m.Versioned, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc}})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	now := time.Unix(0, 0)
	file := func(name string, size int64, r io.Reader, want string) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		h := sha256.New()
		if n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(r, size)); err != nil {
			return err
		} else if n != size {
			return fmt.Errorf("%w: %s is %d bytes, want %d", ErrCorrupt, name, n, size)
		}
		if want != "" && "sha256:"+hex.EncodeToString(h.Sum(nil)) != want {
			return fmt.Errorf("%w: %s", ErrCorrupt, want)
		}
		return nil
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	layout := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	if err := file(ocispec.ImageLayoutFile, int64(len(layout)), bytes.NewReader(layout), ""); err != nil {
		return err
	}
	if err := file("index.json", int64(len(index)), bytes.NewReader(index), ""); err != nil {
		return err
	}
	if err := file("blobs/sha256/"+digest.Digest("sha256:"+strings.TrimPrefix(id, ociIDPrefix)).Encoded(), desc.Size, bytes.NewReader(raw), string(desc.Digest)); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if seen[string(d.Digest)] {
			continue
		}
		seen[string(d.Digest)] = true
		h, err := digestHex(string(d.Digest))
		if err != nil {
			return err
		}
		f, err := os.Open(s.ociBlobPath(h))
		if err != nil {
			return err
		}
		err = file("blobs/sha256/"+h, d.Size, f, string(d.Digest))
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// extractOCI merges OCI image id's layers into a new tree at dir.
func (s *Store) extractOCI(rec *record, dir string) error {
	dirs, err := s.layerDirs(rec.OCI)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if _, err := os.Lstat(d); err != nil {
			return fmt.Errorf("%w: layer %s", ErrMissingLayer, filepath.Base(filepath.Dir(d)))
		}
	}
	return mergeLayers(dir, slices.Backward(dirs))
}
