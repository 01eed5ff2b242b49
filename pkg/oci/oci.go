// Package oci opens OCI and Docker images from a registry, an OCI image
// layout directory, an oci-archive or a docker-archive, resolves an index
// to one platform, and hands out the manifest, the config and the layers
// as verified data: a document is used only after its bytes matched their
// digest, and a layer stream never reports its end before its digest (and
// its uncompressed DiffID) matched. JSON documents are bounded in size and
// parsed strictly (no duplicate keys); unknown media types are refused.
//
// The package reads; it writes nothing. Storing blobs and unpacking layers
// (package layer) are the caller's.
package oci

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiffpod/skiff/pkg/imageref"
)

// Media types skiff interprets. Anything else is refused.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
)

// Options say how to reach an image. The zero value is a verified-TLS,
// anonymous registry client for the host's platform.
type Options struct {
	// Platform is "os/arch[/variant]"; empty means the host's.
	Platform string
	// AuthFiles are docker-style auth files ({"auths": {HOST: {"auth": ...}}}),
	// searched in order for the registry's (or a mirror's) host: the first
	// file with an entry for it wins; missing files are skipped; none
	// means anonymous.
	AuthFiles []string
	// Auth, when set, are credentials given with the request (the CRI's
	// PullImage): used instead of the auth files, never written anywhere.
	Auth *authn.AuthConfig
	// PlainHTTP allows a registry over http (skiff's --insecure-options=http).
	PlainHTTP bool
	// SkipTLSVerify accepts any certificate (--insecure-options=tls).
	SkipTLSVerify bool
	// CADir holds extra PEM CA certificates (*.crt) trusted besides the
	// system's, like /etc/skiff/certs.d/HOST:PORT/.
	CADir string
	// Mirrors serve the registry's images and are tried, in order, before
	// the registry itself. The image keeps the registry's reference (its
	// identity, also for signatures); only the bytes come from a mirror.
	Mirrors []Mirror
	// Timeout is how long a registry may stay silent (no headers, no body
	// bytes) before the request fails with ErrTimeout; 0 means 30s.
	Timeout time.Duration
	// Retries is how often a failed registry request (network error,
	// 429, 5xx) is retried with exponential backoff; 0 means 3, <0 none.
	Retries int
	// Backoff is the first retry delay, doubled each time; 0 means 500ms.
	Backoff time.Duration
}

// Image is one resolved, single-platform image. Its Manifest and Config
// have been verified against their digests; its layers are verified as
// they are read (OpenLayer). An Image holds the source open: Close it.
// OpenLayer may be called from several goroutines at once (layers
// download in parallel); each LayerReader belongs to one.
type Image struct {
	Ref imageref.Ref
	// Digest names the manifest ("sha256:..."); for a docker-archive,
	// which has no manifest, the config's digest (the Docker image ID).
	Digest digest.Digest
	// RootDigest is what the reference names: the index a tag points
	// to, or Digest when it points to the manifest. Signatures sign it.
	RootDigest  digest.Digest
	Manifest    ocispec.Manifest
	RawManifest []byte // nil for a docker-archive
	Config      ocispec.Image
	RawConfig   []byte
	Layers      []Layer

	src source
}

// Layer is one layer of an Image.
type Layer struct {
	// Blob is the manifest's descriptor of the (maybe compressed) blob.
	// For a docker-archive its Digest is empty: only DiffID verifies it.
	Blob ocispec.Descriptor
	// DiffID is the digest of the uncompressed tar, from the config.
	DiffID digest.Digest
}

// source gives the blobs of one place images live in.
type source interface {
	// root returns the descriptor the reference names, or, for a layout
	// without a tag, the raw top index to resolve (desc empty).
	root(ctx context.Context) (desc ocispec.Descriptor, index []byte, err error)
	// open returns the blob d names, unverified; the caller verifies.
	open(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error)
	close() error
}

// Open opens the image ref names and resolves it to one platform.
func Open(ctx context.Context, ref imageref.Ref, opts Options) (*Image, error) {
	plat, err := ParsePlatform(opts.Platform)
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", ref, err)
	}
	var src source
	switch ref.Transport {
	case imageref.Docker:
		return openRegistry(ctx, ref, plat, opts)
	case imageref.OCI:
		src, err = openLayoutDir(ref.Path, ref.Tag)
	case imageref.OCIArchive:
		src, err = openLayoutArchive(ref.Path, ref.Tag)
	case imageref.DockerArchive:
		var img *Image
		img, err = openDockerArchive(ref, plat)
		if err == nil {
			return img, nil
		}
	default:
		err = fmt.Errorf("transport %q: %w", ref.Transport, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", ref, err)
	}
	img, err := resolve(ctx, src, ref, plat)
	if err != nil {
		src.close()
		return nil, fmt.Errorf("open image %s: %w", ref, err)
	}
	return img, nil
}

// Close releases the image's source.
func (img *Image) Close() error { return img.src.close() }

// ParsePlatform parses "os/arch[/variant]"; "" is the host's platform.
func ParsePlatform(s string) (ocispec.Platform, error) {
	if s == "" {
		return ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || slicesContainsEmpty(parts) {
		return ocispec.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func slicesContainsEmpty(ss []string) bool {
	for _, s := range ss {
		if s == "" {
			return true
		}
	}
	return false
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// matches says whether an image for have runs on want; a wanted variant
// must match, an unwanted one is not looked at.
func matches(have *ocispec.Platform, want ocispec.Platform) bool {
	return have != nil && have.OS == want.OS && have.Architecture == want.Architecture &&
		(want.Variant == "" || have.Variant == want.Variant)
}

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// maxIndexDepth bounds indexes of indexes; real ones nest at most once.
const maxIndexDepth = 4

// maxLayers bounds the layers of one image (Docker's own limit is 127).
const maxLayers = 256

// resolve walks from the source's root through indexes to the manifest
// for plat, then fetches and checks the config.
func resolve(ctx context.Context, src source, ref imageref.Ref, plat ocispec.Platform) (*Image, error) {
	d, index, err := src.root(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[digest.Digest]bool{}
	rootDigest := d.Digest
	if index != nil { // an untagged layout: its index.json is the trust root
		if d, err = pick(index, "index.json", plat); err != nil {
			return nil, err
		}
	}
	for depth := 0; ; depth++ {
		if depth > maxIndexDepth {
			return nil, fmt.Errorf("%w: indexes nest deeper than %d", ErrIndexLoop, maxIndexDepth)
		}
		if seen[d.Digest] {
			return nil, fmt.Errorf("%w: %s", ErrIndexLoop, d.Digest)
		}
		seen[d.Digest] = true
		raw, mt, err := fetchDocument(ctx, src, d)
		if err != nil {
			return nil, err
		}
		switch {
		case isIndex(mt):
			if d, err = pick(raw, d.Digest.String(), plat); err != nil {
				return nil, err
			}
		case isManifest(mt):
			img, err := manifestImage(ctx, src, ref, d.Digest, raw, plat)
			if img != nil {
				img.RootDigest = rootDigest
			}
			return img, err
		default:
			return nil, fmt.Errorf("%w: %q for %s", ErrMediaType, mt, d.Digest)
		}
	}
}

// fetchDocument reads and verifies a manifest or index and returns it
// with its media type: the descriptor's, or else the document's own
// mediaType field; when both are there they must agree, or one reader
// could take it for an index and another for a manifest.
func fetchDocument(ctx context.Context, src source, d ocispec.Descriptor) ([]byte, string, error) {
	if err := checkDigest(d.Digest); err != nil {
		return nil, "", err
	}
	rc, err := src.open(ctx, d)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	raw, err := readVerified(rc, d.Digest, d.Size, MaxManifestSize)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", d.Digest, err)
	}
	var head struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
	}
	if err := decodeStrict(raw, &head); err != nil {
		return nil, "", fmt.Errorf("parse %s: %w", d.Digest, err)
	}
	mt := d.MediaType
	switch {
	case mt == "":
		mt = head.MediaType
	case head.MediaType != "" && head.MediaType != mt:
		return nil, "", fmt.Errorf("%w: %s is %q by its descriptor and %q by itself", ErrMediaType, d.Digest, mt, head.MediaType)
	}
	if head.SchemaVersion != 2 {
		return nil, "", fmt.Errorf("%w: %s has schemaVersion %d, want 2", ErrMediaType, d.Digest, head.SchemaVersion)
	}
	return raw, mt, nil
}

// pick chooses the manifest for plat from an index. An entry without a
// platform is taken only when it is the index's only entry.
func pick(raw []byte, name string, plat ocispec.Platform) (ocispec.Descriptor, error) {
	var idx ocispec.Index
	if err := decodeStrict(raw, &idx); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("parse index %s: %w", name, err)
	}
	if len(idx.Manifests) == 1 && idx.Manifests[0].Platform == nil {
		return idx.Manifests[0], nil
	}
	var have []string
	for _, m := range idx.Manifests {
		if matches(m.Platform, plat) {
			return m, nil
		}
		if m.Platform != nil {
			have = append(have, platformString(*m.Platform))
		}
	}
	if len(have) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("%w: index %s holds %d images and no platforms; name one by its tag", ErrNotFound, name, len(idx.Manifests))
	}
	return ocispec.Descriptor{}, fmt.Errorf("%w: index %s has no %s (it has %s)", ErrNoPlatform, name, platformString(plat), strings.Join(have, ", "))
}

func knownLayer(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		MediaTypeDockerLayerGzip, MediaTypeDockerLayer:
		return true
	}
	return false
}

// manifestImage checks a manifest, fetches and checks its config.
func manifestImage(ctx context.Context, src source, ref imageref.Ref, dgst digest.Digest, raw []byte, plat ocispec.Platform) (*Image, error) {
	img := &Image{Ref: ref, Digest: dgst, RawManifest: raw, src: src}
	if err := decodeStrict(raw, &img.Manifest); err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", dgst, err)
	}
	m := &img.Manifest
	if m.Config.MediaType != ocispec.MediaTypeImageConfig && m.Config.MediaType != MediaTypeDockerConfig {
		return nil, fmt.Errorf("%w: config %q in manifest %s", ErrMediaType, m.Config.MediaType, dgst)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("%w: manifest %s has %d layers, more than %d", ErrTooLarge, dgst, len(m.Layers), maxLayers)
	}
	for _, l := range m.Layers {
		if !knownLayer(l.MediaType) {
			return nil, fmt.Errorf("%w: layer %s is %q", ErrMediaType, l.Digest, l.MediaType)
		}
		if err := checkDigest(l.Digest); err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("%w: layer %s has size %d", ErrBadJSON, l.Digest, l.Size)
		}
	}
	if err := checkDigest(m.Config.Digest); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	rc, err := src.open(ctx, m.Config)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if img.RawConfig, err = readVerified(rc, m.Config.Digest, m.Config.Size, MaxConfigSize); err != nil {
		return nil, fmt.Errorf("read config %s: %w", m.Config.Digest, err)
	}
	if err := parseConfig(img, plat); err != nil {
		return nil, err
	}
	for i, l := range m.Layers {
		img.Layers = append(img.Layers, Layer{Blob: l, DiffID: img.Config.RootFS.DiffIDs[i]})
	}
	return img, nil
}

// parseConfig parses img.RawConfig and checks it against the layers and
// the platform.
func parseConfig(img *Image, plat ocispec.Platform) error {
	c := &img.Config
	if err := decodeStrict(img.RawConfig, c); err != nil {
		return fmt.Errorf("parse config: %w", err)
	}
	if c.RootFS.Type != "layers" {
		return fmt.Errorf("%w: config rootfs type %q, want \"layers\"", ErrBadJSON, c.RootFS.Type)
	}
	if n := len(img.Manifest.Layers); n > 0 && len(c.RootFS.DiffIDs) != n {
		return fmt.Errorf("%w: config has %d diff_ids for %d layers", ErrBadJSON, len(c.RootFS.DiffIDs), n)
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := checkDigest(d); err != nil {
			return fmt.Errorf("config diff_id: %w", err)
		}
	}
	have := ocispec.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}
	if !matches(&have, plat) {
		return fmt.Errorf("%w: image is for %s, want %s (choose with the platform option)", ErrNoPlatform, platformString(have), platformString(plat))
	}
	return nil
}
