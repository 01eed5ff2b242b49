// Package fetch resolves an image reference (a file, an https URL, or an
// appc name found by meta discovery) to an image in the store, checking
// its detached OpenPGP signature against the trusted keys first.
//
// Downloads, and copies of local image files (whose owner could rewrite
// them after the signature check), land in a temp file named fetch-*.part
// in the caller's TmpDir, are verified, imported, and removed; a process
// killed midway leaves only such a file, which the store's gc may delete.
package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/discovery"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/store"
	"github.com/skiffpod/skiff/pkg/trust"
)

// Store is what fetch needs from the image store.
type Store interface {
	// Import stores the ACI read from r and returns its image ID. It must
	// refuse an image whose manifest name is not opts.ExpectName.
	Import(ctx context.Context, r io.Reader, opts store.ImportOptions) (id string, err error)
	// FindByName returns the newest stored image with name whose labels
	// agree with labels (a label the image does not declare agrees).
	FindByName(name string, labels map[string]string) (id string, ok bool, err error)
	// Remote returns what was last downloaded from url.
	Remote(url string) (store.RemoteRecord, bool, error)
	// SetRemote records what was downloaded from url.
	SetRemote(url string, rec store.RemoteRecord) error
	// Manifest returns a stored image's manifest.
	Manifest(id string) (*schema.ImageManifest, error)
}

var _ Store = (*store.Store)(nil)

// Policy says when to download an image the store may already have.
type Policy int

const (
	// PolicyNew downloads only what the store lacks (by name for names,
	// by URL for URLs).
	PolicyNew Policy = iota
	// PolicyUpdate asks the server again, downloading only if changed.
	PolicyUpdate
	// PolicyNever uses the store only.
	PolicyNever
)

var policyNames = []string{"new", "update", "never"}

// ParsePolicy parses "new", "update" or "never".
func ParsePolicy(s string) (Policy, error) {
	for i, n := range policyNames {
		if s == n {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("parse pull policy %q: want one of %s", s, strings.Join(policyNames, ", "))
}

// platformLabels are the os and arch labels, in appc's names, that fill
// in what a name reference leaves out (as rkt did): the platform's the
// fetch is for, "os/arch[/variant]" in Go's names, "" this host's.
func platformLabels(platform string) map[string]string {
	goOS, goArch, variant := runtime.GOOS, runtime.GOARCH, ""
	if f := strings.Split(platform, "/"); len(f) >= 2 {
		goOS, goArch = f[0], f[1]
		if len(f) > 2 {
			variant = strings.TrimPrefix(f[2], "v")
		}
	}
	if goArch == "arm" && variant == "" {
		variant = "7"
	}
	os, arch, err := types.ToAppcOSArch(goOS, goArch, variant)
	if err != nil {
		os, arch = goOS, goArch
	}
	return map[string]string{"os": os, "arch": arch}
}

// Fetcher fetches images into Store. Set the fields, then call Fetch;
// a Fetcher may be used by one goroutine at a time.
type Fetcher struct {
	Store  Store
	Keys   *trust.Keystore // required unless InsecureImage
	Client *http.Client    // nil: http.DefaultClient
	TmpDir string          // where downloads go, inside the data dir

	InsecureHTTP  bool // allow plain http URLs and discovery pages
	InsecureImage bool // skip signature verification

	Policy Policy
	// Reuse, if set, says whether an image already in the store, found by
	// name or by the URL it came from, may be returned as it is (an image
	// fetched without verification may not be, for a verifying fetch).
	// When it refuses, the image is downloaded and verified again, or,
	// under PolicyNever or if that fails, its error is returned. nil: reuse.
	Reuse    func(id string) error
	Progress io.Writer // a bar if a terminal, one line per download otherwise; nil: silent
	Log      *slog.Logger
	OCI      OCI // for FetchOCI

	warnOnce sync.Once
}

// Fetch brings ref into the store and returns its image ID. signature, if
// not empty, is the path or URL of the detached signature; otherwise it is
// looked for beside the image (FILE.asc, URL.asc, or discovery's template).
func (f *Fetcher) Fetch(ctx context.Context, ref, signature string) (string, error) {
	var id string
	var err error
	switch {
	case strings.HasPrefix(ref, "https://"), strings.HasPrefix(ref, "http://"):
		id, err = f.fetchRemote(ctx, ref, or(signature, ref+".asc"), nil)
	case strings.Contains(ref, "://"):
		err = ErrUnsupported
	case IsPath(ref):
		id, err = f.fetchFile(ctx, ref, or(signature, ref+".asc"))
	default:
		id, err = f.fetchName(ctx, ref, signature)
	}
	if err == nil {
		err = f.fetchDependencies(ctx, id, map[string]bool{})
	}
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", ref, err)
	}
	return id, nil
}

// maxDependencies bounds how many dependencies one fetch brings in: a
// chain of images each naming another must end.
const maxDependencies = 64

// fetchDependencies brings in the appc dependencies of image id that the
// store lacks, as rkt did: each by its name and labels, from the store or
// by discovery, verified as any fetch by name, then theirs in turn. A
// dependency pinned by image ID must come out as that image.
func (f *Fetcher) fetchDependencies(ctx context.Context, id string, seen map[string]bool) error {
	if seen[id] {
		return nil
	}
	seen[id] = true
	m, err := f.Store.Manifest(id)
	if err != nil {
		return err
	}
	for _, d := range m.Dependencies {
		if len(seen) > maxDependencies {
			return fmt.Errorf("dependencies of %s: more than %d", m.Name, maxDependencies)
		}
		ref := discovery.Ref{Name: d.ImageName.String(), Labels: map[string]string{}}
		for _, l := range d.Labels {
			ref.Labels[l.Name.String()] = l.Value
		}
		pinned := ""
		if d.ImageID != nil && !d.ImageID.Empty() {
			pinned = d.ImageID.String()
		}
		dep := ""
		if pinned != "" {
			if dm, err := f.Store.Manifest(pinned); err == nil && dm.Name == d.ImageName {
				dep = pinned // the very image, whatever newer one shares its name
			}
		}
		if dep == "" {
			if dep, err = f.fetchRef(ctx, ref, ""); err != nil {
				return fmt.Errorf("dependency %s of %s: %w", d.ImageName, m.Name, err)
			}
		}
		if pinned != "" && dep != pinned {
			return fmt.Errorf("dependency %s of %s: %w: got %s, want the image ID %s", d.ImageName, m.Name, ErrMismatch, dep, pinned)
		}
		if err := f.fetchDependencies(ctx, dep, seen); err != nil {
			return err
		}
	}
	return nil
}

// IsPath reports whether ref names a local file: it looks like a path
// ("/x", "./x", "../x") or ends in ".aci" (and is no URL). Anything else
// is an appc name, even if a file of that name happens to be in the
// current directory: what a reference means must not depend on where
// skiff is run.
func IsPath(ref string) bool {
	return strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") ||
		strings.HasSuffix(ref, ".aci") && !strings.Contains(ref, "://")
}

// fetchFile imports a local file; pull policies do not apply, as nothing
// is downloaded, and the store deduplicates.
func (f *Fetcher) fetchFile(ctx context.Context, path, sigLoc string) (string, error) {
	img, err := openRegular(path)
	if err != nil {
		return "", err
	}
	defer img.Close()
	abs, _ := filepath.Abs(path)
	// A file imported before and not changed since (same inode, size and
	// ctime, which no writer can keep) is the same image: don't read and
	// hash it again. Only a verified import is reused for a verifying
	// fetch, and only if Reuse agrees (its key may have been removed since);
	// --pull-policy=update always reads the file.
	key, err := fileKey(img, abs)
	if err != nil {
		return "", err
	}
	if f.Policy != PolicyUpdate {
		if rec, ok, err := f.Store.Remote(key); err == nil && ok && (rec.ETag == verifiedMark || f.InsecureImage) &&
			f.reuse(rec.ID) == nil {
			return rec.ID, nil
		}
	}
	sig, err := f.signature(ctx, sigLoc)
	if err != nil {
		return "", err
	}
	// The file's owner may rewrite it at any time: verify and import a
	// private copy, so the bytes imported are the bytes verified.
	cp, err := f.privateCopy(img)
	if err != nil {
		return "", err
	}
	defer func() {
		cp.Close()
		os.Remove(cp.Name())
	}()
	id, err := f.verifyAndImport(ctx, cp, sig, abs, nil)
	if err != nil {
		return "", err
	}
	mark := verifiedMark
	if f.InsecureImage {
		mark = "unverified"
	}
	if err := f.Store.SetRemote(key, store.RemoteRecord{ID: id, ETag: mark, FetchedAt: time.Now()}); err != nil {
		f.log().Warn("remember imported file", "path", abs, "err", err)
	}
	return id, nil
}

// openRegular opens path for reading, refusing anything but a regular file
// without waiting for a FIFO's writer.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errors.Join(&os.PathError{Op: "open", Path: path, Err: safefile.ErrNotRegular}, err)
	}
	return f, nil
}

// readSignature reads the signature file at path, at most maxSignature bytes.
func readSignature(path string) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSignature+1))
	if err == nil && len(b) > maxSignature {
		err = fmt.Errorf("%s: %w", path, safefile.ErrTooLarge)
	}
	return b, err
}

// privateCopy copies src into a new temp file in TmpDir (inside the data
// dir, root's only) and returns it open, at its start.
func (f *Fetcher) privateCopy(src *os.File) (*os.File, error) {
	tmp, err := os.CreateTemp(f.TmpDir, "fetch-*.part")
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", src.Name(), err)
	}
	_, err = io.Copy(tmp, src)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("copy %s: %w", src.Name(), err)
	}
	return tmp, nil
}

// verifiedMark tags the record of a file whose signature was checked.
const verifiedMark = "verified"

// fileKey names one version of a local file for the store's remote records.
func fileKey(f *os.File, abs string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("file://%s?dev=%d&ino=%d&size=%d&ctime=%d.%09d", abs, st.Dev, st.Ino, st.Size, st.Ctim.Sec, st.Ctim.Nsec), nil
}

// fetchName resolves an appc name through the store or discovery.
func (f *Fetcher) fetchName(ctx context.Context, s, sigLoc string) (string, error) {
	ref, err := discovery.ParseRef(s)
	if err != nil {
		return "", err
	}
	return f.fetchRef(ctx, ref, sigLoc)
}

func (f *Fetcher) fetchRef(ctx context.Context, ref discovery.Ref, sigLoc string) (string, error) {
	for k, v := range platformLabels(f.OCI.Platform) {
		if _, ok := ref.Labels[k]; !ok {
			ref.Labels[k] = v
		}
	}
	var refused error // why the store's copy would not do
	if f.Policy != PolicyUpdate {
		id, ok, err := f.Store.FindByName(ref.Name, ref.Labels)
		if err != nil {
			return "", fmt.Errorf("look up store: %w", err)
		}
		if ok {
			if refused = f.reuse(id); refused == nil {
				return id, nil
			}
		}
		if f.Policy == PolicyNever {
			return "", or(refused, ErrNotInStore)
		}
	}
	dc := &discovery.Client{HTTP: f.Client, InsecureHTTP: f.InsecureHTTP}
	res, err := dc.Discover(ctx, ref)
	if err != nil {
		return "", again(refused, err)
	}
	ep := res.Endpoints[0]
	f.log().Debug("discovered", "name", ref.Name, "aci", ep.ACI, "signature", ep.Signature)
	id, err := f.fetchRemote(ctx, ep.ACI, or(sigLoc, ep.Signature), &ref)
	return id, again(refused, err)
}

// reuse asks f.Reuse whether the store's image id will do.
func (f *Fetcher) reuse(id string) error {
	if f.Reuse == nil {
		return nil
	}
	return f.Reuse(id)
}

// again explains a failed fetch of an image whose stored copy was refused:
// the refusal is what the user must act on.
func again(refused, err error) error {
	var re *refusedError
	if refused == nil || err == nil || errors.As(err, &re) {
		return err
	}
	return &refusedError{refused, err}
}

// refusedError is a fetch that failed after Reuse refused the store's copy.
type refusedError struct{ refused, err error }

func (e *refusedError) Error() string {
	return fmt.Sprintf("%v (and fetching it again failed: %v)", e.refused, e.err)
}
func (e *refusedError) Unwrap() []error { return []error{e.refused, e.err} }

// fetchRemote downloads url unless the policy lets the store's copy do.
// asked, if set, is the name reference the image must match.
func (f *Fetcher) fetchRemote(ctx context.Context, url, sigLoc string, asked *discovery.Ref) (string, error) {
	if err := f.checkScheme(url); err != nil {
		return "", err
	}
	rec, known, err := f.Store.Remote(url)
	if err != nil {
		return "", fmt.Errorf("look up store: %w", err)
	}
	var refused error
	if known {
		refused = f.reuse(rec.ID)
	}
	if known && refused == nil && f.Policy != PolicyUpdate {
		return rec.ID, nil
	}
	if f.Policy == PolicyNever {
		return "", or(refused, ErrNotInStore)
	}
	// The signature is small: get it first so a missing one fails fast.
	sig, err := f.signature(ctx, sigLoc)
	if err != nil {
		return "", again(refused, err)
	}
	// Ask "changed since?" only about a copy that may be reused.
	var prev *store.RemoteRecord
	if known && refused == nil {
		prev = &rec
	}
	img, next, err := f.download(ctx, url, prev)
	if err != nil {
		return "", again(refused, err)
	}
	if img == nil { // not modified
		rec.FetchedAt = next.FetchedAt
		if err := f.Store.SetRemote(url, rec); err != nil {
			return "", fmt.Errorf("record download: %w", err)
		}
		return rec.ID, nil
	}
	defer func() {
		img.Close()
		os.Remove(img.Name())
	}()
	id, err := f.verifyAndImport(ctx, img, sig, url, asked)
	if err != nil {
		return "", again(refused, err)
	}
	next.ID = id
	if err := f.Store.SetRemote(url, next); err != nil {
		return "", fmt.Errorf("record download: %w", err)
	}
	return id, nil
}

// verifyAndImport checks the image against asked (if set) and its
// signature against the keys trusted for its name, then imports it.
func (f *Fetcher) verifyAndImport(ctx context.Context, img io.ReadSeeker, sig []byte, source string, asked *discovery.Ref) (string, error) {
	m, err := readManifest(img)
	if err != nil {
		return "", err
	}
	name := m.Name.String()
	if asked != nil {
		if err := matches(m, asked); err != nil {
			return "", err
		}
	}
	var signer, prefix string
	if !f.InsecureImage {
		key, err := f.Keys.Verify(name, img, bytes.NewReader(sig))
		if errors.Is(err, trust.ErrUntrusted) {
			return "", fmt.Errorf("%w; trust the signing key with `skiff trust --prefix %s`", err, name)
		}
		if err != nil {
			return "", err
		}
		signer, prefix = key.Fingerprint, key.Prefix
		f.log().Info("signature verified", "name", name, "key", key.Fingerprint, "prefix", key.Prefix)
	}
	if _, err := img.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	// The store's error names the operation; ours (fetch REF) the source.
	return f.Store.Import(ctx, img, store.ImportOptions{Source: source, Signer: signer, Prefix: prefix, ExpectName: name, Platform: f.OCI.Platform})
}

// matches reports whether manifest m is the image ref asked for: the same
// name, and no declared label contradicting an asked one.
func matches(m *schema.ImageManifest, ref *discovery.Ref) error {
	if m.Name.String() != ref.Name {
		return fmt.Errorf("%w: image is named %q, asked %q", ErrMismatch, m.Name, ref.Name)
	}
	for k, want := range ref.Labels {
		if got, ok := m.GetLabel(k); ok && got != want {
			return fmt.Errorf("%w: image has %s=%s, asked %s=%s", ErrMismatch, k, got, k, want)
		}
	}
	return nil
}

// signature reads the detached signature at loc (a path or URL), or
// returns nil when verification is off.
func (f *Fetcher) signature(ctx context.Context, loc string) ([]byte, error) {
	if f.InsecureImage {
		f.warnOnce.Do(func() {
			f.log().Warn("image signature verification is disabled (--insecure-options=image)")
		})
		return nil, nil
	}
	if f.Keys == nil {
		return nil, errors.New("verify signature: no keystore")
	}
	var sig []byte
	var err error
	if strings.HasPrefix(loc, "https://") || strings.HasPrefix(loc, "http://") {
		sig, err = f.get(ctx, loc)
	} else {
		sig, err = readSignature(loc)
	}
	var he *httpError
	if errors.Is(err, os.ErrNotExist) || errors.As(err, &he) && he.code == http.StatusNotFound {
		return nil, fmt.Errorf("%w at %s: have the image signed by a key added with `skiff trust`, or pass --insecure-options=image",
			trust.ErrNoSignature, loc)
	}
	if err != nil {
		return nil, fmt.Errorf("get signature: %w", err)
	}
	return sig, nil
}

func (f *Fetcher) checkScheme(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme == "https", u.Scheme == "http" && f.InsecureHTTP:
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%s: %w", rawURL, ErrInsecureHTTP)
	}
	return fmt.Errorf("%s: %w", rawURL, ErrUnsupported)
}

func (f *Fetcher) log() *slog.Logger {
	if f.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Log
}

func or[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}
