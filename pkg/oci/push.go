package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiffpod/skiff/pkg/imageref"
)

// Blobs is a stored image as Push reads it: its manifest, byte for byte
// as it was fetched, and its blobs.
type Blobs struct {
	Manifest  []byte
	MediaType string
	// Open opens a blob the manifest names; Push verifies what it reads
	// against the manifest's descriptor.
	Open func(d digest.Digest) (io.ReadCloser, error)
}

// Push uploads the image b to the registry tag ref: each blob the
// registry lacks (config and layers, checked against their descriptors
// while they stream: a damaged blob fails with ErrDigestMismatch and is
// never committed), then the manifest, unchanged, so the image keeps its
// digest, which Push returns. progress, if not nil, gets one line a blob.
func Push(ctx context.Context, ref imageref.Ref, b *Blobs, opts Options, progress io.Writer) (digest.Digest, error) {
	if ref.Transport != imageref.Docker || ref.Tag == "" || ref.Digest != "" {
		return "", fmt.Errorf("push to %s: the target is a docker://REGISTRY/NAME:TAG reference", ref)
	}
	if !isManifest(b.MediaType) {
		return "", fmt.Errorf("push to %s: %w: %q is not an image manifest", ref, ErrMediaType, b.MediaType)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b.Manifest, &m); err != nil {
		return "", fmt.Errorf("push to %s: manifest: %w: %v", ref, ErrBadJSON, err)
	}
	r, err := newRegistryFor(ctx, ref, registryHost(ref), ref.Repository, opts, "pull,push")
	if err != nil {
		return "", fmt.Errorf("push to %s: %w", ref, err)
	}
	defer r.close()
	seen := map[digest.Digest]bool{}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		uploaded, err := r.pushBlob(ctx, b, d)
		if err != nil {
			return "", fmt.Errorf("push to %s: blob %s: %w", ref, d.Digest, err)
		}
		if progress != nil {
			what := "already in the registry"
			if uploaded {
				what = fmt.Sprintf("uploaded %d bytes", d.Size)
			}
			fmt.Fprintf(progress, "blob %s: %s\n", d.Digest.String()[:19], what)
		}
	}
	want := digest.FromBytes(b.Manifest)
	resp, err := r.do(ctx, http.MethodPut, r.url("manifests", ref.Tag), strings.NewReader(string(b.Manifest)), int64(len(b.Manifest)), b.MediaType)
	if err != nil {
		return "", fmt.Errorf("push to %s: manifest: %w", ref, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("push to %s: manifest: %w", ref, r.status(r.url("manifests", ref.Tag), resp))
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != want.String() {
		return "", fmt.Errorf("push to %s: %w: the registry stored the manifest as %s, not %s", ref, ErrDigestMismatch, got, want)
	}
	return want, nil
}

// pushBlob uploads blob d unless the registry has it (a monolithic
// upload: POST for a session, then one PUT with the digest).
func (r *registry) pushBlob(ctx context.Context, b *Blobs, d ocispec.Descriptor) (bool, error) {
	resp, err := r.do(ctx, http.MethodHead, r.url("blobs", d.Digest.String()), nil, 0, "")
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return false, nil
	case http.StatusNotFound:
	default:
		return false, r.status(r.url("blobs", d.Digest.String()), resp)
	}
	f, err := b.Open(d.Digest)
	if err != nil {
		return false, err
	}
	defer f.Close()
	v, err := newVerifier(f, d.Digest, d.Size)
	if err != nil {
		return false, err
	}
	start := (&url.URL{Scheme: r.scheme, Host: r.host, Path: "/v2/" + r.repo + "/blobs/uploads/"}).String()
	resp, err = r.do(ctx, http.MethodPost, start, nil, 0, "")
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return false, r.status(start, resp)
	}
	loc, err := resp.Location()
	if err != nil {
		return false, fmt.Errorf("%w: %s started an upload without a Location", ErrRegistry, r.host)
	}
	q := loc.Query()
	q.Set("digest", d.Digest.String())
	loc.RawQuery = q.Encode()
	resp, err = r.do(ctx, http.MethodPut, loc.String(), v, d.Size, "application/octet-stream")
	if v.err != nil && v.err != io.EOF { // the stored blob is damaged: nothing committed
		return false, v.err
	}
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return false, r.status(loc.String(), resp)
	}
	return true, nil
}

// do sends one request; body, if not nil, is size bytes of type ctype.
func (r *registry) do(ctx context.Context, method, u string, body io.Reader, size int64, ctype string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, r.explain(method+" "+u, err)
	}
	return resp, nil
}
