package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffpod/skiff/pkg/fetch"
	"github.com/skiffpod/skiff/pkg/perm"
	"github.com/skiffpod/skiff/pkg/stage1"
	"github.com/skiffpod/skiff/pkg/store"
	"github.com/skiffpod/skiff/pkg/trust"
)

// openStore opens the image store under --dir.
func (g *globals) openStore() (*store.Store, error) {
	return store.Open(g.dir, g.log)
}

// fetcher returns a Fetcher configured from the global flags.
func (g *globals) fetcher(s *store.Store, policy string, progress io.Writer) (*fetch.Fetcher, error) {
	p, err := fetch.ParsePolicy(policy)
	if err != nil {
		return nil, usageError{err}
	}
	tmp := filepath.Join(g.dir, "tmp")
	if err := perm.MkdirPrivate(tmp); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return &fetch.Fetcher{
		Store:         storeAdapter{s},
		Keys:          trust.Open(g.localConfig),
		TmpDir:        tmp,
		InsecureHTTP:  g.insecureOpt("http"),
		InsecureImage: g.insecureOpt("image"),
		Policy:        p,
		Progress:      progress,
		Log:           g.log,
	}, nil
}

// resolveImage turns what the user typed into an image ID: an ID or
// unique ID prefix already in the store, else anything fetch understands
// (a file, a URL, an appc name: from the store or by discovery).
func resolveImage(ctx context.Context, s *store.Store, f *fetch.Fetcher, ref, signature string) (string, error) {
	if strings.HasPrefix(ref, "sha512-") {
		img, err := s.Get(ref)
		if err != nil {
			return "", err
		}
		return img.ID, nil
	}
	return f.Fetch(ctx, ref, signature)
}

// resolveStage1 turns --stage1 into a stage1 image ID in the store,
// importing a local stage1 file (a default such as ns or kvm from beside
// the binary, or a path) the first time and whenever that file changes.
func resolveStage1(ctx context.Context, g *globals, s *store.Store, f *fetch.Fetcher, ref string) (string, error) {
	path, short, err := stage1.DefaultImage(ref)
	if err != nil {
		return "", err
	}
	if !short {
		if fi, err := os.Stat(ref); err != nil || !fi.Mode().IsRegular() {
			return resolveImage(ctx, s, f, ref, "")
		}
		path = ref
	}
	if path, err = filepath.Abs(path); err != nil {
		return "", fmt.Errorf("stage1 %s: %w", ref, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("stage1 %s: %w", ref, err)
	}
	// A stage1 from a local file (the defaults beside the binary, or a path
	// the user gave) is trusted by location, as the skiff binary itself is:
	// running it is the same act as running a program by path. Names and
	// URLs are fetched and verified like any image. Imports are cached by
	// path, size and mtime.
	key := fmt.Sprintf("stage1:%s?size=%d&mtime=%d", path, fi.Size(), fi.ModTime().UnixNano())
	if rec, ok, err := s.Remote(key); err == nil && ok {
		if _, err := s.Get(rec.ID); err == nil {
			return rec.ID, nil
		}
	}
	file, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("stage1 %s: %w", ref, err)
	}
	defer file.Close()
	id, err := s.Import(ctx, file, store.ImportOptions{Source: path})
	if err != nil {
		return "", fmt.Errorf("import stage1 %s: %w", path, err)
	}
	if err := s.SetRemote(key, store.RemoteRecord{ID: id}); err != nil {
		g.log.Warn("cache stage1 import", "err", err)
	}
	return id, nil
}

// storeAdapter lets the store serve fetch's small interface.
type storeAdapter struct{ s *store.Store }

var _ fetch.Store = storeAdapter{}

func (a storeAdapter) Import(ctx context.Context, r io.Reader, o fetch.ImportOptions) (string, error) {
	return a.s.Import(ctx, r, store.ImportOptions{Source: o.Source, Signer: o.Signer, ExpectName: o.ExpectName})
}

func (a storeAdapter) FindByName(name string, labels map[string]string) (string, bool, error) {
	return a.s.FindByName(name, labels)
}

func (a storeAdapter) Remote(url string) (fetch.RemoteRecord, bool, error) {
	r, ok, err := a.s.Remote(url)
	return fetch.RemoteRecord{ImageID: r.ID, ETag: r.ETag, LastModified: r.LastModified, Fetched: r.FetchedAt}, ok, err
}

func (a storeAdapter) SetRemote(url string, r fetch.RemoteRecord) error {
	return a.s.SetRemote(url, store.RemoteRecord{ID: r.ImageID, ETag: r.ETag, LastModified: r.LastModified, FetchedAt: r.Fetched})
}
