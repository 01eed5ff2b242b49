package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/oci"
	"github.com/skiffpod/skiff/pkg/simplesign"
	"github.com/skiffpod/skiff/pkg/store"
	"github.com/skiffpod/skiff/pkg/trust"
)

// errUnsignedOCI explains why an OCI image by tag is refused: it has no
// signature in a lookaside store (docs/images.md).
var errUnsignedOCI = errors.New("a tag needs a signature in the registry's lookaside store (registries.d, docs/images.md): pin the image by digest (docker://NAME@sha256:...) or pass --insecure-options=image")

// OCIStore is the store's side of OCI images, as FetchOCI needs it.
type OCIStore interface {
	// FindOCI returns the stored image of ref, by reference.
	FindOCI(ref imageref.Ref) (store.Image, bool, error)
	// Upgrade records a better provenance of image id.
	Upgrade(id string, p store.Provenance) error
	// ImportOCI stores img and returns its image ID.
	ImportOCI(ctx context.Context, img *oci.Image, opts store.OCIImportOptions) (string, error)
}

var _ OCIStore = (*store.Store)(nil)

// OCI is what FetchOCI needs besides the Fetcher's policy, insecure
// options, keys and progress.
type OCI struct {
	Store    OCIStore
	Platform string // os/arch[/variant] wanted; "" the host's
	// Registry returns how to reach ref's registry: its mirrors,
	// insecure settings, CAs and credentials (registries.conf, certs.d).
	Registry func(ref imageref.Ref) (oci.Options, error)
	// LocalConfig holds registries.d (lookaside stores of signatures)
	// and certs.d (the CAs of an https lookaside).
	LocalConfig string
}

// FetchOCI brings the OCI image ref names into the store, unless the pull
// policy finds it there, and returns its ID. An image pinned by digest is
// recorded digest-pinned; a registry tag must carry a simple signing
// signature (verified); anything else needs InsecureImage.
func (f *Fetcher) FetchOCI(ctx context.Context, ref imageref.Ref) (string, error) {
	if f.OCI.Store == nil || f.OCI.Registry == nil {
		return "", fmt.Errorf("fetch %s: %w", ref, ErrUnsupported)
	}
	s := f.OCI.Store
	prov := store.DigestPinned
	switch {
	case ref.Digest != "":
	case f.InsecureImage:
		prov = store.Insecure
	case ref.Transport == imageref.Docker:
		prov = store.Verified // by a simple signing signature
	default: // a layout or archive carries no signature
		return "", fmt.Errorf("fetch %s: %w", ref, errUnsignedOCI)
	}
	if prov == store.Verified && f.Keys == nil {
		return "", fmt.Errorf("fetch %s: no trusted keys to verify its signature", ref)
	}
	// The store is searched by reference, not by platform: another
	// platform than the host's is asked for again. A layout or archive is
	// always opened again: it is local, its path may be relative or its
	// content new, and layers already stored are not read twice.
	if (f.Policy != PolicyUpdate || ref.Digest != "") && f.OCI.Platform == "" && ref.Transport == imageref.Docker {
		img, ok, err := s.FindOCI(ref)
		if err != nil {
			return "", err
		}
		if ok && ref.Digest != "" && img.Provenance != prov {
			// The ID is the digest the user pinned: the stored bytes are
			// the ones asked for, whatever brought them in.
			return img.ID, s.Upgrade(img.ID, prov)
		}
		if ok && prov == store.Verified && img.Provenance != store.Verified {
			ok = false // fetched and verified again, never handed back unverified
		}
		if ok && prov == store.Verified {
			if ok, err = f.Keys.Trusts(img.Name, img.Signer); err != nil {
				return "", err
			}
		}
		if ok {
			return img.ID, nil
		}
	}
	if f.Policy == PolicyNever && ref.Transport == imageref.Docker { // a local file is no pull
		return "", fmt.Errorf("fetch %s: %w (pull policy never)", ref, store.ErrNotFound)
	}
	opts := oci.Options{Platform: f.OCI.Platform}
	if ref.Transport == imageref.Docker {
		var err error
		if opts, err = f.OCI.Registry(ref); err != nil {
			return "", err
		}
	}
	lookaside := ""
	if prov == store.Verified { // no lookaside: refused before asking the registry
		cfg, err := simplesign.Load(filepath.Join(f.OCI.LocalConfig, simplesign.DirName))
		if err != nil {
			return "", fmt.Errorf("fetch %s: %w", ref, err)
		}
		if lookaside = cfg.Lookaside(ref); lookaside == "" {
			return "", fmt.Errorf("fetch %s: %w", ref, errUnsignedOCI)
		}
	}
	img, err := oci.Open(ctx, ref, opts)
	if err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	defer img.Close()
	// Verified before anything is printed or any layer read.
	imp := store.OCIImportOptions{Provenance: prov, Progress: f.Progress}
	if prov == store.Verified {
		key, err := f.verifyOCI(ctx, ref, lookaside, string(img.RootDigest))
		if err != nil {
			return "", fmt.Errorf("fetch %s: %w", ref, err)
		}
		imp.Signer, imp.Prefix = key.Fingerprint, key.Prefix
		if f.Progress != nil {
			what := "a root key"
			if key.Prefix != "" {
				what = "trusted for " + key.Prefix
			}
			fmt.Fprintf(f.Progress, "signature of %s verified with key %s (%s)\n", ref, key.Fingerprint, what)
		}
	}
	if f.Progress != nil {
		fmt.Fprintf(f.Progress, "fetching %s (%s, %d layers)\n", ref, img.Digest, len(img.Layers))
	}
	// A bar needs a terminal that knows its width (mpb draws nothing in 0
	// columns): else one line per layer.
	if tty, ok := f.Progress.(*os.File); ok && termWidth(tty) > 0 {
		p := mpb.NewWithContext(ctx, mpb.WithOutput(tty), mpb.WithWidth(40))
		defer p.Wait()
		imp.Progress = nil // bars instead of lines
		imp.Watch = func(name string, r io.Reader) (io.Reader, func(bool)) {
			bar := p.AddBar(0, mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.CurrentKibiByte("% .1f")))
			return bar.ProxyReader(r), func(ok bool) {
				if ok {
					bar.SetTotal(-1, true)
				} else {
					bar.Abort(false)
				}
			}
		}
	}
	return s.ImportOCI(ctx, img, imp)
}

// verifyOCI finds the simple signing signatures of ref's manifest digest
// in the lookaside store at base and returns the key of the first one
// that a key trusted for the registry/name made over a payload naming
// this digest and this reference. Each failure is named, on one line.
func (f *Fetcher) verifyOCI(ctx context.Context, ref imageref.Ref, base, digest string) (*trust.Key, error) {
	// An https lookaside is checked with the system CAs and those in
	// certs.d/HOST:PORT, as a registry is.
	client := http.DefaultClient
	if u, err := url.Parse(base); err == nil && u.Scheme != "file" {
		tr, err := oci.Transport(oci.Options{CADir: filepath.Join(f.OCI.LocalConfig, "certs.d", u.Host), PlainHTTP: u.Scheme == "http", Timeout: 30 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("lookaside %s: %w", base, err)
		}
		client = &http.Client{Transport: tr}
	}
	ks := f.Keys
	var errs []string
	for i := 1; i <= simplesign.MaxSignatures; i++ {
		sig, ok, err := simplesign.Signature(ctx, client, base, ref, digest, i)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		payload, key, err := ks.VerifyMessage(ref.Name(), bytes.NewReader(sig), simplesign.MaxPayload)
		if err == nil {
			err = simplesign.CheckPayload(payload, ref, digest)
		}
		if err == nil {
			return key, nil
		}
		errs = append(errs, fmt.Sprintf("signature-%d: %v", i, err))
	}
	if len(errs) == 0 {
		return nil, errUnsignedOCI
	}
	return nil, fmt.Errorf("no valid signature for %s in %s: %s", digest, base, strings.Join(errs, "; "))
}

func termWidth(f *os.File) int {
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return w
}
