package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiffpod/skiff/pkg/imageref"
)

// dockerArchive is `docker save` / `podman save` output: manifest.json
// names a config file and layer tars. There is no manifest to verify:
// the config is checked against the digest its file name carries, and
// the layers against the config's diff_ids.
type dockerArchive struct {
	t *tarFiles
}

func openDockerArchive(ref imageref.Ref, plat ocispec.Platform) (*Image, error) {
	t, err := openTarFiles(ref.Path)
	if err != nil {
		return nil, err
	}
	img, err := dockerArchiveImage(t, ref, plat)
	if err != nil {
		t.close()
		return nil, err
	}
	return img, nil
}

func dockerArchiveImage(t *tarFiles, ref imageref.Ref, plat ocispec.Platform) (*Image, error) {
	src := &dockerArchive{t: t}
	l := &layout{files: t}
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := l.readJSON("manifest.json", &entries); err != nil {
		return nil, fmt.Errorf("not a docker-archive: %w", err)
	}
	if len(entries) != 1 {
		return nil, fmt.Errorf("docker-archive holds %d images, want 1", len(entries))
	}
	e := entries[0]
	if len(e.Layers) > maxLayers {
		return nil, fmt.Errorf("%w: %d layers, more than %d", ErrTooLarge, len(e.Layers), maxLayers)
	}
	rc, size, err := t.open(e.Config)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer rc.Close()
	if size > MaxConfigSize {
		return nil, fmt.Errorf("%w: config is %d bytes, more than %d", ErrTooLarge, size, MaxConfigSize)
	}
	raw, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	dgst := digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
	// The config's file name is its digest: "<hex>.json" (docker),
	// "<hex>" or "blobs/sha256/<hex>" (newer writers).
	if named := strings.TrimSuffix(path.Base(e.Config), ".json"); named != dgst.Encoded() {
		return nil, fmt.Errorf("%w: config %s hashes to %s", ErrDigestMismatch, e.Config, dgst)
	}
	img := &Image{Ref: ref, Digest: dgst, RawConfig: raw, src: src}
	img.Manifest = ocispec.Manifest{
		MediaType: MediaTypeDockerManifest,
		Config:    ocispec.Descriptor{MediaType: MediaTypeDockerConfig, Digest: dgst, Size: size},
	}
	for _, name := range e.Layers {
		_, lsize, err := t.open(name)
		if err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
		// The file name stands in for a digest: open finds it by name.
		img.Manifest.Layers = append(img.Manifest.Layers, ocispec.Descriptor{
			MediaType: MediaTypeDockerLayer, Size: lsize, URLs: []string{name},
		})
	}
	if err := parseConfig(img, plat); err != nil {
		return nil, err
	}
	if len(img.Config.RootFS.DiffIDs) != len(e.Layers) {
		return nil, fmt.Errorf("%w: config has %d diff_ids for %d layers", ErrBadJSON, len(img.Config.RootFS.DiffIDs), len(e.Layers))
	}
	for i, d := range img.Manifest.Layers {
		img.Layers = append(img.Layers, Layer{Blob: d, DiffID: img.Config.RootFS.DiffIDs[i]})
	}
	return img, nil
}

func (a *dockerArchive) root(context.Context) (ocispec.Descriptor, []byte, error) {
	return ocispec.Descriptor{}, nil, fmt.Errorf("docker-archive has no manifest")
}

func (a *dockerArchive) open(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if len(d.URLs) != 1 {
		return nil, fmt.Errorf("docker-archive: %w: %s", ErrNotFound, d.Digest)
	}
	rc, _, err := a.t.open(d.URLs[0])
	return rc, err
}

func (a *dockerArchive) close() error { return a.t.close() }
