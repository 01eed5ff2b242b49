// Package store is skiff's content-addressed image store. Under the data
// directory it keeps:
//
//	format                      the format version (Format); absent in a version 1 store
//	cas/lock                    flock: shared to import, render and read; exclusive to rm, gc, repair
//	cas/blobs/sha512/<hex>      an image: its uncompressed ACI tar, whose sha512 is the image ID
//	cas/images/<id>.json        its metadata record (name, labels, manifest, times, source, signer)
//	cas/tree/<id>/              the image rendered (manifest, rootfs/, treehash); complete once renamed there
//	cas/tree/.tmp-<id>-*        a render in progress, or one a crash interrupted
//	cas/remotes/<sha256>.json   what was last fetched under a key (a URL, a stage1 path)
//	tmp/                        temp files, on the same filesystem so renames are atomic
//
// OCI images (IDs "sha256-<manifest digest>") keep their manifest and
// config in cas/blobs/sha256 and their layers unpacked, shared, in
// cas/layer/<diff_id>; oci.go describes that half.
//
// Every write is temp file, fsync, rename, fsync of the directory. An image
// exists once its record does, and the record is written after the blob,
// so a crash leaves at worst an orphan blob, tree or temp file: Verify
// reports those and repairs them, GC removes stale temp files.
//
// Garbage collection follows rkt's "image gc": GC removes the rendered trees
// of images the caller does not keep (it must keep every image any pod, in
// any state, uses, since trees are the pods' overlay lowerdirs, and record
// an image in its pod before rendering it); the dependencies of kept images
// are kept. With GCOptions.ImageGracePeriod set it also removes whole images
// not kept and neither used (Touch) nor imported within that period.
//
// Modes follow docs/security.md: the data dir, cas/ and the records are
// readable by the skiff group; the lock, blobs, trees, remotes and tmp/
// are root's alone. Manifests are read from the blobs; a record that says
// otherwise is refused (ErrRecordMismatch). Trees carry the TreeHash taken
// when they were rendered, which Verify checks.
//
// Dependencies are resolved from the store only. Path whitelists of
// dependent images are not applied: layers are stacked whole, as overlays.
package store

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/appc/spec/discovery"
	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/perm"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/strictjson"
)

const (
	idPrefix = "sha512-"
	// MinPrefix is the shortest ID prefix Get accepts, in hex digits.
	MinPrefix = 6
	// tmpMaxAge is when GC considers a temp file abandoned; downloads into
	// TmpDir can be slow, so be generous.
	tmpMaxAge = 24 * time.Hour
)

// Store is an image store in one data directory. Its methods are safe for
// concurrent use, also by several processes: they take the store lock.
type Store struct {
	dir string
	cas string
	log *slog.Logger
}

// Image describes a stored image.
type Image struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	Size       int64             `json:"size"` // of the uncompressed tar
	ImportedAt time.Time         `json:"importedAt"`
	LastUsedAt time.Time         `json:"lastUsedAt,omitzero"`
	Source     string            `json:"source,omitempty"` // file or URL it was last imported from
	Signer     string            `json:"signer,omitempty"` // fingerprint of the signing key; "" if unverified
	// Provenance is how the image came in (provenance.go); TrustedPrefix
	// the name prefix Signer was trusted for ("" for a root key).
	Provenance    Provenance `json:"provenance"`
	TrustedPrefix string     `json:"trustedPrefix,omitempty"`
	// Kind is KindACI or KindOCI; OCI what an OCI image's record adds.
	Kind string   `json:"kind,omitempty"`
	OCI  *OCIInfo `json:"oci,omitempty"`
}

// Digest is the image's content digest, "ALGORITHM:HEX": an OCI image's
// manifest digest (a docker-archive's: its config digest, which is also
// its ID), an ACI's sha512 of its uncompressed tar (its ID, spelled as a
// digest).
func (im Image) Digest() string {
	if im.OCI != nil {
		return im.OCI.Digest
	}
	alg, hex, ok := strings.Cut(im.ID, "-")
	if !ok {
		return ""
	}
	return alg + ":" + hex
}

// record is the metadata file of one image; keeping the manifest here makes
// Manifest and dependency resolution cheap.
type record struct {
	Image
	Manifest json.RawMessage `json:"manifest"`
}

// ImportOptions describe an image handed to Import.
type ImportOptions struct {
	Source     string
	Signer     string
	Prefix     string     // the name prefix Signer is trusted for
	Provenance Provenance // "": verified if Signer is set, else insecure
	ExpectName string     // when set, an image of another name is refused
	MaxBytes   int64      // bound on the uncompressed size; 0 means aci.DefaultMaxBytes
	// Platform is the os/arch[/variant] the image must be for
	// (aci.CheckPlatform); "" means this host's.
	Platform string
}

// RemoteRecord remembers what was fetched under a key, for pull policies
// and conditional requests.
type RemoteRecord struct {
	ID           string    `json:"id"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"lastModified,omitempty"`
	FetchedAt    time.Time `json:"fetchedAt"`
}

// Open opens the store under dir, creating its directories as needed
// with the modes of docs/security.md. Opened by root, a store of an older
// format is migrated first (see migrate). A nil log
// discards.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{dir: dir, cas: filepath.Join(dir, "cas"), log: log}
	version, err := ReadFormat(dir)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	switch {
	case version < Format && os.Geteuid() == 0:
		err = s.migrate(context.Background())
		if err == nil {
			err = s.privateLock()
		}
	case version == 0:
		err = s.mkdirs() // an unprivileged store (tests), or an old one
	case os.Geteuid() == 0:
		err = s.mkdirs() // recreate what someone removed
		if err == nil {
			err = s.privateLock()
		}
	default:
		// Root made it; others cannot even look into its private dirs.
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// layout lists the store's directories, parents first, and whether the
// skiff group may read each.
var layout = []struct {
	path   string
	shared bool
}{
	{".", true},
	{"tmp", false},
	{"cas", true},
	{"cas/images", true},
	{"cas/blobs", false},
	{"cas/blobs/sha512", false},
	{"cas/blobs/sha256", false},
	{"cas/layer", false},
	{"cas/tree", false},
	{"cas/remotes", false},
}

// privateLock makes the lock file root's alone where an earlier release
// left it readable by the skiff group (see lock).
func (s *Store) privateLock() error {
	p := s.lockPath()
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) || perm.Differs(p, false) == "" {
		return nil
	}
	return perm.Private(p)
}

// layoutPath returns the path of a layout entry. The data dir itself may
// be a symlink an administrator made (to another disk): "dir/." names the
// directory it points to, which is what modes are set on and checked.
func (s *Store) layoutPath(rel string) string {
	if rel == "." {
		return s.dir + "/."
	}
	return filepath.Join(s.dir, rel)
}

// mkdirs creates the store's directories that are missing.
func (s *Store) mkdirs() error {
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(s.dir)), 0o755); err != nil {
		return err
	}
	for _, d := range layout {
		mk := perm.MkdirPrivate
		if d.shared {
			mk = perm.MkdirShared
		}
		if err := mk(filepath.Join(s.dir, d.path)); err != nil {
			return err
		}
	}
	return nil
}

// TmpDir is where temp files belong that end up in the store (downloads);
// it is on the store's filesystem, and GC removes what is left there.
func (s *Store) TmpDir() string { return filepath.Join(s.dir, "tmp") }

// blobPath is where image id's blob is: an ACI's tar, an OCI image's
// manifest (a docker-archive's config).
func (s *Store) blobPath(id string) string {
	if h, ok := strings.CutPrefix(id, ociIDPrefix); ok {
		return s.ociBlobPath(h)
	}
	return filepath.Join(s.cas, "blobs", "sha512", strings.TrimPrefix(id, idPrefix))
}
func (s *Store) lockPath() string            { return filepath.Join(s.cas, "lock") }
func (s *Store) recordPath(id string) string { return filepath.Join(s.cas, "images", id+".json") }
func (s *Store) treePath(id string) string   { return filepath.Join(s.cas, "tree", id) }

// validID reports whether id is a full image ID (an ACI's sha512- or an
// OCI image's sha256-), so it is safe in a path.
func validID(id string) bool {
	if h, ok := strings.CutPrefix(id, ociIDPrefix); ok {
		return validHex256(h)
	}
	h, ok := strings.CutPrefix(id, idPrefix)
	if !ok || len(h) != sha512.Size*2 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

func hashID(sum []byte) string { return idPrefix + hex.EncodeToString(sum) }

// lock takes the store lock, shared or exclusive (unix.LOCK_SH/LOCK_EX).
//
// The lock file is root's alone: flock needs no write access, so anyone
// who may open the file may also hold it, exclusively, for as long as they
// like, and block every root command on the store. A reader who may not
// open it (a skiff group member listing images) reads without it: records
// are replaced by rename, so a reader sees each whole, old or new.
func (s *Store) lock(how int) (unlock func(), err error) {
	path := s.lockPath()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if f, err = os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
			err = perm.Private(path)
		}
	}
	if errors.Is(err, os.ErrPermission) && how == unix.LOCK_SH && os.Geteuid() != 0 {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock store: %w", err)
	}
	return func() { f.Close() }, nil
}

// Hold takes the store lock shared until release is called. GC takes it
// exclusive and asks which images are in use only then: a caller that
// holds it from resolving its images until it has recorded in a pod the
// trees it renders and mounts cannot have them collected in between.
func (s *Store) Hold() (release func(), err error) { return s.lock(unix.LOCK_SH) }

// Import stores the (possibly compressed) ACI read from r and returns its
// ID. The image is validated as it streams in; a refused image leaves
// nothing behind. Importing a stored image again updates its record.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (string, error) {
	const op = "import image"
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	defer unlock()
	id, err := s.importImage(ctx, r, opts)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	s.log.Debug("imported image", "id", id, "source", opts.Source)
	return id, nil
}

func (s *Store) importImage(ctx context.Context, r io.Reader, opts ImportOptions) (string, error) {
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = aci.DefaultMaxBytes
	}
	maxBytes, fromSpace, err := s.importLimit(maxBytes)
	if err != nil {
		return "", err
	}
	in := &countReader{r: ctxReader{ctx, r}}
	dec, err := aci.Decompress(in)
	if err != nil {
		return "", err
	}
	defer dec.Close()
	tmp, err := os.CreateTemp(s.TmpDir(), "import-*")
	if err != nil {
		return "", err
	}
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }() // a no-op once renamed
	h := sha512.New()
	bw := bufio.NewWriterSize(tmp, 1<<20) // the tar comes in 512-byte records
	tee := io.TeeReader(&limitReader{r: &ratioReader{r: dec, in: in}, n: maxBytes}, io.MultiWriter(bw, h))
	m, err := aci.Validate(tee, aci.ExtractOptions{MaxBytes: maxBytes})
	if re := (*ratioError)(nil); errors.Is(err, aci.ErrTooLarge) && !errors.As(err, &re) && fromSpace {
		return "", fmt.Errorf("%w: %w (an image may use half of the free space, less 1/20 of the filesystem)", err, unix.ENOSPC)
	}
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil { // the tar's padding is part of the blob
		return "", err
	}
	if err := bw.Flush(); err != nil {
		return "", err
	}
	if opts.ExpectName != "" && string(m.Name) != opts.ExpectName {
		return "", fmt.Errorf("%w: got %q, want %q", ErrNameMismatch, m.Name, opts.ExpectName)
	}
	if err := aci.CheckPlatform(m, opts.Platform); err != nil {
		return "", err
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	id := hashID(h.Sum(nil))
	// Renaming over an existing blob is harmless: same bytes, fresh copy.
	if err := os.Rename(tmp.Name(), s.blobPath(id)); err != nil {
		return "", err
	}
	if err := syncDir(filepath.Dir(s.blobPath(id))); err != nil {
		return "", err
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	rec := record{Image: Image{ID: id, Name: string(m.Name), Size: size, ImportedAt: time.Now().UTC(),
		Source: opts.Source}, Manifest: raw}
	rec.setProvenance(opts.Provenance, opts.Signer, opts.Prefix)
	if old, err := s.readRecord(id); err == nil {
		rec.LastUsedAt = old.LastUsedAt
		rec.keepStronger(old.Image)
	}
	if len(m.Labels) > 0 {
		rec.Labels = map[string]string{}
		for _, l := range m.Labels {
			rec.Labels[string(l.Name)] = l.Value
		}
	}
	return id, s.writeJSON(s.recordPath(id), rec, true)
}

// writeJSON replaces path with v's JSON, crash-safely, readable by the
// skiff group when shared.
func (s *Store) writeJSON(path string, v any, shared bool) error {
	data, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return s.writeFile(path, data, shared)
}

// writeFile replaces path with data, crash-safely (temp file, fsync,
// rename, directory fsync), readable by the skiff group when shared.
func (s *Store) writeFile(path string, data []byte, shared bool) error {
	f, err := os.CreateTemp(s.TmpDir(), "write-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if shared {
		if err := perm.Shared(f.Name()); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// maxRecordSize bounds an image record or remote record: the manifest it
// holds is at most aci.MaxManifestSize.
const maxRecordSize = 4 << 20

func (s *Store) readRecord(id string) (*record, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q is not an image ID", ErrBadRef, id)
	}
	data, err := safefile.ReadFile(s.recordPath(id), maxRecordSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	var rec record
	if err := strictjson.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("read record of %s: %w", id, err)
	}
	if rec.Provenance == "" { // a record from before provenance
		rec.setProvenance("", rec.Signer, rec.TrustedPrefix)
	}
	if rec.Kind == "" {
		rec.Kind = KindACI
	}
	if (rec.Kind == KindOCI) != (rec.OCI != nil) || (rec.Kind == KindOCI) != isOCIID(id) {
		return nil, fmt.Errorf("read record of %s: %w: kind %q", id, ErrRecordMismatch, rec.Kind)
	}
	return &rec, nil
}

// List returns all stored images, oldest import first.
func (s *Store) List() ([]Image, error) {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.list()
}

func (s *Store) list() ([]Image, error) {
	ents, err := os.ReadDir(filepath.Join(s.cas, "images"))
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var imgs []Image
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validID(id) {
			continue
		}
		rec, err := s.readRecord(id)
		if err != nil { // Verify reports it; a listing should not fail for it
			s.log.Warn("skipping unreadable image record", "id", id, "err", err)
			continue
		}
		imgs = append(imgs, rec.Image)
	}
	slices.SortFunc(imgs, func(a, b Image) int {
		if c := a.ImportedAt.Compare(b.ImportedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return imgs, nil
}

// Get finds one image by reference: a full ID, an ID prefix of at least
// MinPrefix hex digits, or an appc name with optional ":version" and
// ",label=value" parts (e.g. "example.com/app:1.0,os=linux"), where the
// newest matching import wins.
func (s *Store) Get(ref string) (Image, error) {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	imgs, err := s.list()
	if err != nil {
		return Image{}, err
	}
	img, err := lookup(imgs, ref)
	if err != nil {
		return Image{}, fmt.Errorf("find image %q: %w", ref, err)
	}
	return img, nil
}

func lookup(imgs []Image, ref string) (Image, error) {
	if r, err := imageref.Parse(ref); err == nil {
		if img, ok := findOCI(imgs, r); ok {
			return img, nil
		}
		return Image{}, ErrNotFound
	} else if !errors.Is(err, imageref.ErrNotOCI) {
		return Image{}, fmt.Errorf("%w: %w", ErrBadRef, err)
	}
	for _, prefix := range []string{idPrefix, ociIDPrefix} {
		if _, ok := strings.CutPrefix(ref, prefix); ok {
			return lookupID(imgs, ref, prefix)
		}
	}
	app, err := discovery.NewAppFromString(ref)
	if err != nil {
		return Image{}, fmt.Errorf("%w: %w", ErrBadRef, err)
	}
	labels := map[string]string{}
	for k, v := range app.Labels {
		labels[string(k)] = v
	}
	img, ok := newest(imgs, string(app.Name), labels)
	if !ok {
		return Image{}, ErrNotFound
	}
	return img, nil
}

// lookupID finds an image by full ID or unique ID prefix.
func lookupID(imgs []Image, ref, prefix string) (Image, error) {
	if hexp, ok := strings.CutPrefix(ref, prefix); ok {
		if len(hexp) < MinPrefix {
			return Image{}, fmt.Errorf("%w: ID prefix shorter than %d hex digits", ErrBadRef, MinPrefix)
		}
		var found []Image
		for _, img := range imgs {
			if strings.HasPrefix(img.ID, ref) {
				found = append(found, img)
			}
		}
		switch len(found) {
		case 0:
			return Image{}, ErrNotFound
		case 1:
			return found[0], nil
		}
		ids := make([]string, len(found))
		for i, img := range found {
			ids[i] = img.ID
		}
		return Image{}, fmt.Errorf("%w: matches %s", ErrAmbiguous, strings.Join(ids, ", "))
	}
	return Image{}, ErrNotFound
}

// newest returns the newest image named name whose labels agree with
// labels. A label the image does not declare agrees (so os/arch defaults
// match images that leave them out), except "version", which must match
// unless "latest" is asked for.
func newest(imgs []Image, name string, labels map[string]string) (Image, bool) {
	for _, img := range slices.Backward(imgs) {
		if img.OCI == nil && img.Name == name && labelsAgree(img.Labels, labels) {
			return img, true
		}
	}
	return Image{}, false
}

func labelsAgree(have, want map[string]string) bool {
	for k, v := range want {
		hv, ok := have[k]
		switch {
		case k == "version" && v == "latest":
		case ok && hv != v, !ok && k == "version":
			return false
		}
	}
	return true
}

// FindByName returns the ID of the newest image named name whose labels
// agree with labels (see Get).
func (s *Store) FindByName(name string, labels map[string]string) (string, bool, error) {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return "", false, err
	}
	defer unlock()
	imgs, err := s.list()
	if err != nil {
		return "", false, err
	}
	img, ok := newest(imgs, name, labels)
	return img.ID, ok, nil
}

// Manifest returns the manifest of image id, read from its blob; it fails
// with ErrRecordMismatch if the image's record names it otherwise.
func (s *Store) Manifest(id string) (*schema.ImageManifest, error) {
	m, err := s.manifest(id)
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	return m, nil
}

// manifest reads image id's manifest from its blob (the tar's manifest
// entry, found by skipping over entries) and checks that the record,
// whose name and labels Get and dependency resolution trust, agrees.
func (s *Store) manifest(id string) (*schema.ImageManifest, error) {
	rec, err := s.readRecord(id)
	if err != nil {
		return nil, err
	}
	if rec.OCI != nil {
		return s.ociManifest(rec)
	}
	f, err := os.Open(s.blobPath(id))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := aci.ReadManifest(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, id, err)
	}
	if err := recordAgrees(rec, m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRecordMismatch, id, err)
	}
	return m, nil
}

// recordAgrees checks the record's name, labels and manifest copy against
// the manifest m from the blob.
func recordAgrees(rec *record, m *schema.ImageManifest) error {
	if rec.Name != string(m.Name) {
		return fmt.Errorf("record names it %q, blob %q", rec.Name, m.Name)
	}
	if len(rec.Labels) != len(m.Labels) {
		return errors.New("labels differ")
	}
	for _, l := range m.Labels {
		if v, ok := rec.Labels[string(l.Name)]; !ok || v != l.Value {
			return fmt.Errorf("label %s differs", l.Name)
		}
	}
	want, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var got schema.ImageManifest
	if err := json.Unmarshal(rec.Manifest, &got); err != nil {
		return fmt.Errorf("manifest copy: %w", err)
	}
	have, err := json.Marshal(&got)
	if err != nil {
		return err
	}
	if string(have) != string(want) {
		return errors.New("manifest copy differs")
	}
	return nil
}

// Touch records that image id was just used, for GC's grace period.
func (s *Store) Touch(id string) error {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := s.readRecord(id)
	if err != nil {
		return fmt.Errorf("touch image: %w", err)
	}
	rec.LastUsedAt = time.Now().UTC()
	return s.writeJSON(s.recordPath(id), rec, true)
}

// InUse reports the images pods use: image ID -> who uses it (e.g.
// "pod UUID"). The store calls it under its exclusive lock, after every
// Hold has been released, so a prepare's images are in the answer.
type InUse func() (map[string]string, error)

// Remove deletes image id: record, rendered tree and blob. As GC does, it
// asks inUse which images are in use (ID -> who uses it) under the store's
// exclusive lock, so after every Hold has been released, and refuses with
// ErrInUse an image in that set.
func (s *Store) Remove(id string, inUse InUse) error {
	unlock, err := s.lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.readRecord(id); err != nil {
		return fmt.Errorf("remove image: %w", err)
	}
	used, err := inUse()
	if err != nil {
		return fmt.Errorf("remove image %s: %w", id, err)
	}
	if user, ok := used[id]; ok {
		return fmt.Errorf("remove image %s: %w by %s", id, ErrInUse, user)
	}
	if isOCIID(id) && s.usedWithLayers(used)(id) {
		return fmt.Errorf("remove image %s: %w: a pod has its layers mounted", id, ErrInUse)
	}
	if err := s.remove(id); err != nil {
		return fmt.Errorf("remove image %s: %w", id, err)
	}
	return nil
}

// remove deletes the record first, so a crash midway leaves orphans, not
// an image with missing parts.
func (s *Store) remove(id string) error {
	if isOCIID(id) {
		return s.removeOCI(id)
	}
	for _, p := range []string{s.recordPath(id), s.treePath(id), s.blobPath(id)} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// Export writes the stored uncompressed ACI of image id to w; importing it
// again gives the same ID. It fails with ErrCorrupt, after writing, if the
// blob no longer matches its ID.
func (s *Store) Export(id string, w io.Writer) error {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	if rec, err := s.readRecord(id); err != nil {
		return fmt.Errorf("export image: %w", err)
	} else if rec.OCI != nil {
		if err := s.exportOCI(id, rec, w); err != nil {
			return fmt.Errorf("export image %s: %w", id, err)
		}
		return nil
	}
	f, err := os.Open(s.blobPath(id))
	if err != nil {
		return fmt.Errorf("export image: %w", err)
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(io.MultiWriter(w, h), f); err != nil {
		return fmt.Errorf("export image %s: %w", id, err)
	}
	if hashID(h.Sum(nil)) != id {
		return fmt.Errorf("export image %s: %w", id, ErrCorrupt)
	}
	return nil
}

func (s *Store) remotePath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.cas, "remotes", hex.EncodeToString(sum[:])+".json")
}

type remoteFile struct {
	Key string `json:"key"`
	RemoteRecord
}

// Remote returns what SetRemote last recorded under key, if that image is
// still stored.
func (s *Store) Remote(key string) (RemoteRecord, bool, error) {
	data, err := safefile.ReadFile(s.remotePath(key), maxRecordSize)
	if errors.Is(err, os.ErrNotExist) {
		return RemoteRecord{}, false, nil
	}
	if err != nil {
		return RemoteRecord{}, false, fmt.Errorf("read remote %q: %w", key, err)
	}
	var rf remoteFile
	if err := strictjson.Unmarshal(data, &rf); err != nil {
		return RemoteRecord{}, false, fmt.Errorf("read remote %q: %w", key, err)
	}
	if _, err := s.readRecord(rf.ID); err != nil {
		return RemoteRecord{}, false, nil
	}
	return rf.RemoteRecord, true, nil
}

// SetRemote records rec under key, replacing any earlier record.
func (s *Store) SetRemote(key string, rec RemoteRecord) error {
	if err := s.writeJSON(s.remotePath(key), remoteFile{Key: key, RemoteRecord: rec}, false); err != nil {
		return fmt.Errorf("record remote %q: %w", key, err)
	}
	return nil
}

// ctxReader stops a long copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// limitReader fails, rather than ending quietly, past n bytes.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, fmt.Errorf("%w: uncompressed size over the limit", aci.ErrTooLarge)
	}
	return n, err
}
