package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/skiffpod/skiff/pkg/fetch"
	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/perm"
	"github.com/skiffpod/skiff/pkg/policy"
	"github.com/skiffpod/skiff/pkg/stage1"
	"github.com/skiffpod/skiff/pkg/store"
	"github.com/skiffpod/skiff/pkg/trust"
)

// openStore opens the image store under --dir.
func (g *globals) openStore() (*store.Store, error) {
	return store.Open(g.dir, g.log)
}

// fetcher returns a Fetcher configured from the global flags. It returns
// an image already in the store, found by name or URL, only if pol would
// run it by name; otherwise it fetches and verifies it again.
func (g *globals) fetcher(s *store.Store, pol *policy.Policy, pullPolicy string, progress io.Writer) (*fetch.Fetcher, error) {
	p, err := fetch.ParsePolicy(pullPolicy)
	if err != nil {
		return nil, usageError{err}
	}
	tmp := filepath.Join(g.dir, "tmp")
	if err := perm.MkdirPrivate(tmp); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return &fetch.Fetcher{
		Store:         s,
		Keys:          trust.Open(g.localConfig),
		TmpDir:        tmp,
		InsecureHTTP:  g.insecureOpt("http"),
		InsecureImage: g.insecureOpt("image"),
		Policy:        p,
		Reuse: func(id string) error {
			img, err := s.Get(id)
			if err != nil {
				return err
			}
			req, err := g.request(img)
			if err != nil {
				return err
			}
			return pol.Check(req)
		},
		Progress: progress,
		Log:      g.log,
		OCI: fetch.OCI{
			Store: s, Platform: g.platform, Registry: g.registryOptions, LocalConfig: g.localConfig,
		},
	}, nil
}

// resolveImage turns what the user typed into an image ID: an ID or
// unique ID prefix already in the store, else anything fetch understands
// (a file, a URL, an appc name: from the store or by discovery).
func resolveImage(ctx context.Context, g *globals, s *store.Store, f *fetch.Fetcher, ref, signature string) (string, error) {
	ref, err := g.expandAlias(ref)
	if err != nil {
		return "", err
	}
	if r, err := imageref.Parse(ref); err == nil {
		if signature != "" {
			return "", usagef("%s: --signature is for ACIs", ref)
		}
		return f.FetchOCI(ctx, r)
	} else if !errors.Is(err, imageref.ErrNotOCI) {
		return "", err
	}
	if strings.HasPrefix(ref, "sha512-") || strings.HasPrefix(ref, "sha256-") {
		img, err := s.Get(ref)
		if err != nil {
			return "", err
		}
		return img.ID, nil
	}
	return f.Fetch(ctx, ref, signature)
}

// admit checks image id, which the user asked for as ref, and every image
// it depends on against the run policy. Only a full image ID typed by the
// user counts as a reference by ID: a short prefix is a convenience, not a
// digest. Dependencies are found by name in the store, so they are checked
// as names. It returns the layers it checked (id, then its dependencies, as
// prepare.App.Layers wants them): the pod must mount exactly those, not
// what a second resolution would find after an import.
func (g *globals) admit(s *store.Store, pol *policy.Policy, ref, id string) ([]string, error) {
	img, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	req, err := g.request(img)
	if err != nil {
		return nil, err
	}
	req.ByImageID = ref == img.ID
	if err := pol.Check(req); err != nil {
		return nil, fmt.Errorf("run %s: %w", ref, err)
	}
	deps, err := s.Dependencies(id)
	if err != nil {
		return nil, err
	}
	layers := []string{id}
	for _, d := range deps {
		req, err := g.request(d)
		if err == nil {
			err = pol.Check(req)
		}
		if err != nil {
			return nil, fmt.Errorf("run %s: dependency: %w", ref, err)
		}
		layers = append(layers, d.ID)
	}
	return layers, nil
}

// request asks the run policy about img as an image named by name. A
// verified image whose signing key was removed since (`skiff trust
// --remove`) counts as insecure.
func (g *globals) request(img store.Image) (policy.Request, error) {
	req := policy.Request{Name: img.Name, ID: img.ID, Provenance: img.Provenance, Insecure: g.insecureOpt("image")}
	if img.OCI != nil {
		req.Kind = policy.OCI
	}
	if img.Provenance == store.Verified {
		ok, err := trust.Open(g.localConfig).Trusts(img.Name, img.Signer)
		if err != nil {
			return req, err
		}
		req.Untrusted = !ok
	}
	return req, nil
}

// resolveStage1 turns --stage1 into a stage1 image ID in the store and
// its layers (see admit): a stage1 by name, URL or image ID must pass the
// run policy pol as any image does.
func resolveStage1(ctx context.Context, g *globals, s *store.Store, f *fetch.Fetcher, pol *policy.Policy, ref string) (string, []string, error) {
	r := stage1.Resolver{Store: s, Dirs: stage1.DefaultDirs(), Log: g.log,
		Image: func(ctx context.Context, ref string) (string, []string, error) {
			id, err := resolveImage(ctx, g, s, f, ref, "")
			if err != nil {
				return "", nil, err
			}
			layers, err := g.admit(s, pol, ref, id)
			return id, layers, err
		}}
	return r.Resolve(ctx, ref)
}
