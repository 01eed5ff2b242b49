package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/layer"
	"github.com/skiffpod/skiff/pkg/oci"
	"github.com/skiffpod/skiff/pkg/perm"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// OCI images live beside ACIs (docs/images.md, "The layered store"):
//
//	cas/images/sha256-<hex>.json  the record; <hex> is the manifest digest
//	                              (a docker-archive's: the config digest)
//	cas/blobs/sha256/<hex>        the manifest and config blobs
//	cas/layer/<hex>/              a layer unpacked (rootfs/, treehash), <hex>
//	                              its diff_id; complete once renamed there
//	cas/layer/.tmp-<hex>-*        an unpacking in progress or interrupted
//	tmp/layer-<hex>.lock          flock: one unpacking of a layer at a time
//
// Layers are shared by every image that lists them and removed with the
// last image that does. The record holds an appc image manifest
// synthesized from the config (SynthesizeManifest), which is what stage1
// sees: it never learns the app came from OCI.

const (
	ociIDPrefix = "sha256-"
	// KindOCI marks an OCI image's record; ACI records have kind "aci"
	// (or none, written before OCI images existed).
	KindOCI = "oci"
	KindACI = "aci"

	// maxParallelLayers bounds the layers unpacked at once.
	maxParallelLayers = 4
)

// maxLowerLen bounds the lowerdir option of one overlay: the whole option
// string must fit one page, and upper and work dirs need room too. An
// image whose layers do not fit is merged into one tree (mergeLayers).
// overlayfs stacks at most 500 lowers.
var (
	maxLowerLen    = 3000
	maxLowerLayers = 500
)

// OCIInfo is what an OCI image's record says beyond an ACI's.
type OCIInfo struct {
	Reference    string   `json:"reference"` // as fetched, canonical (imageref.Ref.String)
	Tag          string   `json:"tag,omitempty"`
	Digest       string   `json:"digest"` // the manifest's, "sha256:..."
	ConfigDigest string   `json:"configDigest"`
	Layers       []string `json:"layers"` // diff_ids, bottom layer first
	// LayerBlobs are the compressed layer blobs the manifest names, bottom
	// first, kept in cas/blobs/sha256 for image push and export (none for
	// a docker-archive, which has no manifest).
	LayerBlobs []string `json:"layerBlobs,omitempty"`
	// Tags are the other references the image was given by image tag
	// (canonical docker:// form); a tag names one image at a time.
	Tags []string `json:"tags,omitempty"`
}

// OCIImportOptions describe an OCI image handed to ImportOCI.
type OCIImportOptions struct {
	Provenance Provenance
	// Signer and Prefix name the key that verified a Verified image's
	// signature and the name prefix it is trusted for.
	Signer, Prefix string
	// Progress, when set, gets one line per layer.
	Progress io.Writer
	// Watch, when set, wraps the uncompressed stream of each layer read
	// (a progress bar); done is called when it ends.
	Watch    func(layer string, r io.Reader) (wrapped io.Reader, done func(ok bool))
	MaxBytes int64 // bound on one layer's content; 0 means layer.DefaultMaxBytes
}

func (s *Store) ociBlobPath(hexDigest string) string {
	return filepath.Join(s.cas, "blobs", "sha256", hexDigest)
}
func (s *Store) layerPath(hexDigest string) string { return filepath.Join(s.cas, "layer", hexDigest) }

func isOCIID(id string) bool { return strings.HasPrefix(id, ociIDPrefix) }

// validHex256 reports whether h is a sha256 in lower-case hex.
func validHex256(h string) bool {
	if len(h) != sha256.Size*2 || strings.ToLower(h) != h {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// digestHex returns the hex of a "sha256:<hex>" digest, or an error.
func digestHex(d string) (string, error) {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || !validHex256(h) {
		return "", fmt.Errorf("%w: %q is not a sha256 digest", ErrBadRef, d)
	}
	return h, nil
}

// ImportOCI stores the OCI image img, reading each layer it lacks once
// (several at a time, each by at most one process: a lock per layer) and
// unpacking it into its own tree, and returns the image ID: "sha256-" and
// the manifest digest's hex. Nothing is visible before it is complete: a
// layer tree is renamed into place after its stream verified and its tree
// synced, the record is written last.
func (s *Store) ImportOCI(ctx context.Context, img *oci.Image, opts OCIImportOptions) (string, error) {
	const op = "import image"
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	defer unlock()
	id, err := s.importOCI(ctx, img, opts)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", op, img.Ref, err)
	}
	s.log.Debug("imported OCI image", "id", id, "ref", img.Ref.String())
	return id, nil
}

func (s *Store) importOCI(ctx context.Context, img *oci.Image, opts OCIImportOptions) (string, error) {
	idHex, err := digestHex(string(img.Digest))
	if err != nil {
		return "", err
	}
	cfgHex, err := digestHex(string(img.Manifest.Config.Digest))
	if err != nil && img.RawManifest != nil {
		return "", err
	}
	if img.RawManifest == nil { // a docker-archive: the config names the image
		cfgHex = idHex
	}
	if err := perm.MkdirPrivate(filepath.Join(s.cas, "blobs", "sha256")); err != nil {
		return "", err
	}
	if err := perm.MkdirPrivate(filepath.Join(s.cas, "layer")); err != nil {
		return "", err
	}
	// Both were verified against their digests by pkg/oci.
	if err := s.writeBlob(cfgHex, img.RawConfig); err != nil {
		return "", err
	}
	if img.RawManifest != nil {
		if err := s.writeBlob(idHex, img.RawManifest); err != nil {
			return "", err
		}
	}
	diffs := make([]string, len(img.Layers))
	for i, l := range img.Layers {
		if diffs[i], err = digestHex(string(l.DiffID)); err != nil {
			return "", err
		}
	}
	if err := s.fetchLayers(ctx, img, diffs, opts); err != nil {
		return "", err
	}
	info := &OCIInfo{Reference: img.Ref.String(), Tag: img.Ref.Tag, Digest: string(img.Digest),
		ConfigDigest: "sha256:" + cfgHex}
	var size int64
	for _, l := range img.Layers {
		info.Layers = append(info.Layers, string(l.DiffID))
		if img.RawManifest != nil {
			info.LayerBlobs = append(info.LayerBlobs, string(l.Blob.Digest))
		}
		size += max(l.Blob.Size, 0)
	}
	id := ociIDPrefix + idHex
	rec := record{Image: Image{ID: id, Name: ociName(img.Ref), Kind: KindOCI, OCI: info, Size: size,
		ImportedAt: time.Now().UTC(), Source: img.Ref.String()}}
	m, err := s.synthesize(&rec)
	if err != nil {
		return "", err
	}
	if rec.Manifest, err = json.Marshal(m); err != nil {
		return "", err
	}
	// Records are read back bounded: a config whose labels or env would
	// make one unreadable is refused here, not skipped by every listing.
	if len(rec.Manifest) > maxRecordSize/2 {
		return "", fmt.Errorf("%w: the image's app description is %d bytes, more than %d", oci.ErrTooLarge, len(rec.Manifest), maxRecordSize/2)
	}
	rec.setProvenance(opts.Provenance, opts.Signer, opts.Prefix)
	if old, err := s.readRecord(id); err == nil {
		rec.LastUsedAt = old.LastUsedAt
		rec.keepStronger(old.Image)
		if old.OCI != nil {
			rec.OCI.Tags = old.OCI.Tags
		}
	}
	return id, s.writeJSON(s.recordPath(id), rec, true)
}

// ociName is the name an OCI image is listed and found by: the registry
// and repository, or the transport and path of a layout or archive.
func ociName(r imageref.Ref) string {
	if r.Transport == imageref.Docker {
		return r.Name()
	}
	return string(r.Transport) + ":" + r.Path
}

// writeBlob stores data, already verified, under its sha256.
func (s *Store) writeBlob(hexDigest string, data []byte) error {
	p := s.ociBlobPath(hexDigest)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	return s.writeFile(p, data, false)
}

// fetchLayers makes sure every layer of img is unpacked in the store.
func (s *Store) fetchLayers(ctx context.Context, img *oci.Image, diffs []string, opts OCIImportOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, maxParallelLayers)
	for i := range diffs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			err := s.ensureLayer(ctx, img, i, diffs[i], opts)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// progressMu keeps the lines of layers read in parallel whole.
var progressMu sync.Mutex

// progress writes one line to w, if set.
func progress(w io.Writer, format string, args ...any) {
	if w == nil {
		return
	}
	progressMu.Lock()
	defer progressMu.Unlock()
	fmt.Fprintf(w, format+"\n", args...)
}

// ensureLayer unpacks layer i of img into cas/layer/<diff> unless it is
// there; the per-layer lock makes a second fetch wait for the first and
// then find the layer.
func (s *Store) ensureLayer(ctx context.Context, img *oci.Image, i int, diff string, opts OCIImportOptions) error {
	short := "sha256:" + diff[:12]
	dst := s.layerPath(diff)
	if _, err := os.Lstat(dst); err == nil && s.hasLayerBlob(img, i) {
		progress(opts.Progress, "layer %d/%d %s: already in the store", i+1, len(img.Layers), short)
		return nil
	}
	lockf, err := os.OpenFile(filepath.Join(s.TmpDir(), "layer-"+diff+".lock"), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lockf.Close()
	for {
		if err = unix.Flock(int(lockf.Fd()), unix.LOCK_EX); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock layer %s: %w", short, err)
	}
	if _, err := os.Lstat(dst); err == nil { // another fetch unpacked it meanwhile
		if s.hasLayerBlob(img, i) {
			progress(opts.Progress, "layer %d/%d %s: already in the store", i+1, len(img.Layers), short)
			return nil
		}
		// Unpacked for an image of other compression (or before blobs
		// were kept): only the blob is read, verified and kept.
		commit, err := s.keepLayerBlob(ctx, img, i, func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err })
		if err == nil {
			err = commit()
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", short, err)
		}
		progress(opts.Progress, "layer %d/%d %s: blob fetched, tree already in the store", i+1, len(img.Layers), short)
		return nil
	}
	// Holding the layer's lock, any unpacking or blob copy of it left is
	// from a fetch that was killed: restart cleanly.
	for dir, prefix := range map[string]string{filepath.Dir(dst): ".tmp-" + diff + "-", s.TmpDir(): "blob-" + diff + "-"} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix) {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".tmp-"+diff+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := os.Mkdir(filepath.Join(tmp, "rootfs"), 0o755); err != nil {
		return err
	}
	commit, err := s.keepLayerBlob(ctx, img, i, func(r io.Reader) error {
		return s.unpackLayer(ctx, r, img, i, filepath.Join(tmp, "rootfs"), opts)
	})
	if err != nil {
		return fmt.Errorf("layer %s: %w", short, err)
	}
	sum, err := TreeHash(tmp)
	if err != nil {
		return err
	}
	if err := perm.WriteFile(filepath.Join(tmp, treeHashFile), []byte(sum+"\n"), false); err != nil {
		return err
	}
	if err := perm.Private(tmp); err != nil {
		return err
	}
	if err := syncFS(tmp); err != nil {
		return err
	}
	// The blob first: a kill in between leaves a blob no image lists,
	// which gc removes, never a layer whose blob is missing.
	if err := commit(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	progress(opts.Progress, "layer %d/%d %s: fetched %s in %s", i+1, len(img.Layers), short,
		byteSize(img.Layers[i].Blob.Size), time.Since(start).Round(10*time.Millisecond))
	return nil
}

func byteSize(n int64) string {
	switch {
	case n <= 0:
		return "?"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/1024, 'f', 1, 64) + " KiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}

// hasLayerBlob reports whether layer i's compressed blob is kept (or
// needs none: a docker-archive's layers have no blob digest).
func (s *Store) hasLayerBlob(img *oci.Image, i int) bool {
	if img.RawManifest == nil {
		return true
	}
	h, err := digestHex(string(img.Layers[i].Blob.Digest))
	if err != nil {
		return false
	}
	_, err = os.Lstat(s.ociBlobPath(h))
	return err == nil
}

// keepLayerBlob reads layer i, handing its uncompressed tar to use and
// copying the compressed blob into a temp file. Only when use succeeded
// and the stream verified (blob digest and size, diff_id) does it return
// commit, which moves the synced copy into cas/blobs/sha256.
func (s *Store) keepLayerBlob(ctx context.Context, img *oci.Image, i int, use func(io.Reader) error) (commit func() error, err error) {
	var tmp *os.File
	if img.RawManifest != nil {
		// Named for the layer: a later fetch holding its lock removes what
		// a killed one left.
		diff := strings.TrimPrefix(string(img.Layers[i].DiffID), "sha256:")
		if tmp, err = os.CreateTemp(s.TmpDir(), "blob-"+diff+"-*"); err != nil {
			return nil, err
		}
		defer func() {
			tmp.Close()
			if err != nil {
				os.Remove(tmp.Name())
			}
		}()
	}
	var w io.Writer
	if tmp != nil {
		w = tmp
	}
	lr, err := img.OpenLayerTee(ctx, i, w)
	if err != nil {
		return nil, err
	}
	defer lr.Close()
	if err := use(ctxReader{ctx, lr}); err != nil {
		if ferr := lr.Finish(); ferr != nil { // a tampered stream explains a bad tar best
			return nil, ferr
		}
		return nil, err
	}
	if err := lr.Finish(); err != nil {
		return nil, err
	}
	if tmp == nil {
		return func() error { return nil }, nil
	}
	if err := tmp.Sync(); err != nil {
		return nil, err
	}
	h, err := digestHex(string(img.Layers[i].Blob.Digest))
	if err != nil {
		return nil, err
	}
	name := tmp.Name()
	return func() error {
		if err := os.Rename(name, s.ociBlobPath(h)); err != nil {
			os.Remove(name)
			return err
		}
		return syncDir(filepath.Dir(s.ociBlobPath(h)))
	}, nil
}

func (s *Store) unpackLayer(ctx context.Context, r io.Reader, img *oci.Image, i int, dir string, opts OCIImportOptions) (err error) {
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = layer.DefaultMaxBytes
	}
	// As for ACIs: a layer may use half the free space, less a margin.
	maxBytes, _, err = s.importLimit(maxBytes)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if opts.Watch != nil {
		var done func(bool)
		r, done = opts.Watch(fmt.Sprintf("layer %d/%d %s", i+1, len(img.Layers), img.Layers[i].DiffID.String()[:19]), r)
		defer func() { done(err == nil) }()
	}
	return layer.Unpack(r, root, layer.Options{MaxBytes: maxBytes})
}

// synthesize builds the appc image manifest of an OCI image from its
// config blob (checked against its digest) and its layer trees, which
// resolve a user name's primary group and a relative command: stage1
// wants numbers or names with a group, and an absolute exec.
func (s *Store) synthesize(rec *record) (*schema.ImageManifest, error) {
	info := rec.OCI
	cfg, err := s.ociConfig(info)
	if err != nil {
		return nil, err
	}
	ac, err := oci.App(cfg.Config, oci.Override{})
	if err != nil {
		return nil, err
	}
	lowers, err := s.layerDirs(info)
	if err != nil {
		return nil, err
	}
	app := ac.App
	if app.Group == "" {
		if app.Group, err = primaryGroup(lowers, app.User); err != nil {
			return nil, err
		}
	}
	cmdLen := len(cfg.Config.Cmd)
	if len(cfg.Config.Entrypoint) == 0 && cmdLen > 0 {
		cmdLen-- // Cmd[0] is the command itself
	}
	if !path.IsAbs(app.Exec[0]) {
		env := ""
		if v, ok := app.Environment.Get("PATH"); ok {
			env = v
		}
		if p, ok := lookPath(lowers, app.Exec[0], env); ok {
			app.Exec[0] = p
		}
	}
	name, err := types.SanitizeACIdentifier(strings.ToLower(strings.NewReplacer("://", "/", ":", "-").Replace(rec.Name)))
	if err != nil {
		return nil, fmt.Errorf("name %q: %w", rec.Name, err)
	}
	m := schema.BlankImageManifest()
	m.Name = types.ACIdentifier(name)
	m.App = &app
	m.Annotations.Set("skiff.dev/oci-reference", info.Reference)
	m.Annotations.Set("skiff.dev/oci-digest", info.Digest)
	m.Annotations.Set(oci.CmdLengthAnnotation, strconv.Itoa(cmdLen))
	if ac.StopSignal != 0 {
		m.Annotations.Set(oci.StopSignalAnnotation, strconv.Itoa(int(ac.StopSignal)))
	}
	sum512, err := hashFile(s.blobPath(rec.ID), "")
	if err != nil {
		return nil, err
	}
	m.Annotations.Set(oci.ManifestSHA512Annotation, sum512)
	return m, nil
}

// ociConfig reads an OCI image's config from its blob, checked against
// its digest.
func (s *Store) ociConfig(info *OCIInfo) (*ocispec.Image, error) {
	cfgHex, err := digestHex(info.ConfigDigest)
	if err != nil {
		return nil, err
	}
	raw, err := safefile.ReadFile(s.ociBlobPath(cfgHex), oci.MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != cfgHex {
		return nil, fmt.Errorf("%w: config blob %s", ErrCorrupt, info.ConfigDigest)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	return &cfg, nil
}

// Platform returns the os and arch image id is for: an OCI image's from
// its config (Go's names), an ACI's from its labels (appc's; "" where it
// has none). aci.CheckOSArch compares them.
func (s *Store) Platform(id string) (os, arch string, err error) {
	rec, err := s.readRecord(id)
	if err != nil {
		return "", "", fmt.Errorf("image platform: %w", err)
	}
	if rec.OCI != nil {
		cfg, err := s.ociConfig(rec.OCI)
		if err != nil {
			return "", "", fmt.Errorf("image platform: %s: %w", id, err)
		}
		return cfg.OS, cfg.Architecture, nil
	}
	m, err := s.Manifest(id)
	if err != nil {
		return "", "", err
	}
	os, _ = m.Labels.Get("os")
	arch, _ = m.Labels.Get("arch")
	return os, arch, nil
}

// layerDirs returns the rootfs directories of an OCI image's layers, top
// layer first (overlay lowerdir order). A layer listed twice (Docker's
// empty layer often is) keeps only its top place: overlayfs refuses a
// directory twice, and the top copy re-applies everything the lower one
// did, so the stack shows the same tree.
func (s *Store) layerDirs(info *OCIInfo) ([]string, error) {
	var dirs []string
	for _, d := range slices.Backward(info.Layers) {
		h, err := digestHex(d)
		if err != nil {
			return nil, err
		}
		if dir := filepath.Join(s.layerPath(h), "rootfs"); !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs, nil
}

// stackLookup finds rel (slash-separated, relative) in a layer stack, top
// first, as overlayfs would: a whiteout hides it and everything below, an
// opaque parent hides the layers below. It returns the layer dir holding it.
func stackLookup(lowers []string, rel string) (string, bool) {
	parts := strings.Split(rel, "/")
	for _, l := range lowers {
		hidden := false
		for i := 1; i <= len(parts); i++ {
			p := filepath.Join(l, filepath.Join(parts[:i]...))
			var st unix.Stat_t
			if unix.Lstat(p, &st) != nil {
				break
			}
			if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
				return "", false // whited out
			}
			if i == len(parts) {
				return l, true
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return "", false // a non-directory hides what was below
			}
			if v, err := getxattr(p, layer.OpaqueXattr); err == nil && v == "y" {
				hidden = true
			}
		}
		if hidden {
			return "", false
		}
	}
	return "", false
}

func getxattr(p, name string) (string, error) {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// lookPath finds a relative command in the image's PATH (podman's rule);
// symlinks count as found, they are followed inside the pod.
func lookPath(lowers []string, cmd, pathEnv string) (string, bool) {
	if strings.Contains(cmd, "/") {
		return "", false
	}
	if pathEnv == "" {
		pathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if !path.IsAbs(dir) {
			continue
		}
		rel := strings.TrimPrefix(path.Join(dir, cmd), "/")
		if _, ok := stackLookup(lowers, rel); ok {
			return "/" + rel, true
		}
	}
	return "", false
}

// primaryGroup returns the primary gid of user in the image's /etc/passwd:
// a name must be there; a number not there gets group 0, as podman does.
func primaryGroup(lowers []string, user string) (string, error) {
	_, numErr := strconv.ParseUint(user, 10, 32)
	if l, ok := stackLookup(lowers, "etc/passwd"); ok {
		root, err := os.OpenRoot(l)
		if err != nil {
			return "", err
		}
		defer root.Close()
		// Not a regular file (a FIFO would block) or too large: no passwd.
		if data, err := safefile.ReadFileIn(root, "etc/passwd", 4<<20); err == nil {
			for line := range strings.Lines(string(data)) {
				fs := strings.Split(strings.TrimRight(line, "\n"), ":")
				if len(fs) >= 4 && (fs[0] == user || numErr == nil && fs[2] == user) {
					return fs[3], nil
				}
			}
		}
	}
	if numErr == nil {
		return "0", nil
	}
	return "", fmt.Errorf("%w: user %q of the image config is not in the image's /etc/passwd", ErrBadUser, user)
}

// ociLowerDirs returns the lowerdirs of an OCI image: its layer trees, or,
// when they do not fit one overlay or merged is asked for, its merged
// tree, made once.
func (s *Store) ociLowerDirs(id string, merged bool) ([]string, error) {
	rec, err := s.readRecord(id)
	if err != nil {
		return nil, err
	}
	dirs, err := s.layerDirs(rec.OCI)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if _, err := os.Lstat(d); err != nil {
			return nil, fmt.Errorf("%w: layer %s of %s", ErrMissingLayer, filepath.Base(filepath.Dir(d)), id)
		}
	}
	if !merged && len(dirs) <= maxLowerLayers && len(strings.Join(dirs, ":")) <= maxLowerLen {
		return dirs, nil
	}
	dst := s.treePath(id)
	if _, err := os.Lstat(dst); err == nil {
		return []string{filepath.Join(dst, "rootfs")}, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".tmp-"+id+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := mergeLayers(filepath.Join(tmp, "rootfs"), slices.Backward(dirs)); err != nil {
		return nil, fmt.Errorf("merge layers of %s: %w", id, err)
	}
	sum, err := TreeHash(tmp)
	if err != nil {
		return nil, err
	}
	if err := perm.WriteFile(filepath.Join(tmp, treeHashFile), []byte(sum+"\n"), false); err != nil {
		return nil, err
	}
	if err := perm.Private(tmp); err != nil {
		return nil, err
	}
	if err := syncFS(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dst); err != nil && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return nil, err
	}
	s.log.Debug("merged layers", "id", id, "layers", len(dirs))
	return []string{filepath.Join(dst, "rootfs")}, syncDir(filepath.Dir(dst))
}

// ociReferenced returns the layer and blob hexes the OCI records other
// than except use.
func (s *Store) ociReferenced(except string) (layers, blobs map[string]bool, err error) {
	imgs, err := s.list()
	if err != nil {
		return nil, nil, err
	}
	layers, blobs = map[string]bool{}, map[string]bool{}
	for _, img := range imgs {
		if img.OCI == nil || img.ID == except {
			continue
		}
		blobs[strings.TrimPrefix(img.ID, ociIDPrefix)] = true
		if h, err := digestHex(img.OCI.ConfigDigest); err == nil {
			blobs[h] = true
		}
		for _, d := range img.OCI.Layers {
			if h, err := digestHex(d); err == nil {
				layers[h] = true
			}
		}
		for _, d := range img.OCI.LayerBlobs {
			if h, err := digestHex(d); err == nil {
				blobs[h] = true
			}
		}
	}
	return layers, blobs, nil
}

// removeOCI deletes an OCI image's record, merged tree, and the blobs and
// layers no other image uses (under the exclusive lock).
func (s *Store) removeOCI(id string) error {
	rec, err := s.readRecord(id)
	if err != nil {
		return os.RemoveAll(s.recordPath(id))
	}
	layers, blobs, err := s.ociReferenced(id)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(s.recordPath(id)); err != nil {
		return err
	}
	paths := []string{s.treePath(id)}
	for _, h := range append([]string{id, rec.OCI.ConfigDigest}, rec.OCI.LayerBlobs...) {
		h = strings.TrimPrefix(strings.TrimPrefix(h, ociIDPrefix), "sha256:")
		if validHex256(h) && !blobs[h] {
			paths = append(paths, s.ociBlobPath(h))
		}
	}
	for _, d := range rec.OCI.Layers {
		if h, err := digestHex(d); err == nil && !layers[h] {
			paths = append(paths, s.layerPath(h))
		}
	}
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// FindOCI returns the newest OCI image fetched as ref, or with ref's
// digest.
func (s *Store) FindOCI(ref imageref.Ref) (Image, bool, error) {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return Image{}, false, err
	}
	defer unlock()
	imgs, err := s.list()
	if err != nil {
		return Image{}, false, err
	}
	img, ok := findOCI(imgs, ref)
	return img, ok, nil
}

func findOCI(imgs []Image, ref imageref.Ref) (Image, bool) {
	// A tag given by image tag names its image before any fetched as it.
	for _, img := range imgs {
		if img.OCI == nil {
			continue
		}
		for _, t := range img.OCI.Tags {
			tr, err := imageref.Parse(t)
			if err == nil && (ref.Digest == "" && t == ref.String() ||
				ref.Digest != "" && img.OCI.Digest == ref.Digest && tr.Name() == ref.Name()) {
				return img, true
			}
		}
	}
	for _, img := range slices.Backward(imgs) {
		if img.OCI == nil {
			continue
		}
		if ref.Digest != "" && img.OCI.Digest == ref.Digest && img.Name == ociName(ref) ||
			ref.Digest == "" && img.OCI.Reference == ref.String() {
			return img, true
		}
	}
	return Image{}, false
}

// ociManifest synthesizes an OCI image's appc manifest again from its
// blobs and layers and checks that the record's copy agrees.
func (s *Store) ociManifest(rec *record) (*schema.ImageManifest, error) {
	if sum, err := hashFile(s.blobPath(rec.ID), rec.ID); err != nil {
		return nil, err
	} else if sum != rec.ID {
		return nil, fmt.Errorf("%w: %s", ErrCorrupt, rec.ID)
	}
	dirs, err := s.layerDirs(rec.OCI)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if _, err := os.Lstat(d); err != nil {
			return nil, fmt.Errorf("%w: %s of %s", ErrMissingLayer, filepath.Base(filepath.Dir(d)), rec.ID)
		}
	}
	m, err := s.synthesize(rec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rec.ID, err)
	}
	want, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var have bytes.Buffer // the record is stored indented
	if err := json.Compact(&have, rec.Manifest); err != nil || have.String() != string(want) {
		return nil, fmt.Errorf("%w: %s: manifest copy differs", ErrRecordMismatch, rec.ID)
	}
	return m, nil
}

// verifyLayers checks the layer trees and sha256 blobs: each layer must
// hash to the hash taken when it was unpacked, each blob to its name;
// unpackings older than tmpMaxAge were interrupted (younger ones may be
// running: fetches hold the lock shared). Complete layers and blobs no
// image lists are not problems: an interrupted or failed fetch leaves its
// verified layers for the next one to reuse, and image gc removes them.
// With repair, a damaged layer is removed with the images that list it
// (fetch them again), unless a pod uses one of them.
func (s *Store) verifyLayers(ctx context.Context, repair bool, used map[string]string) ([]Problem, error) {
	var probs []Problem
	_, blobs, err := s.ociReferenced("")
	if err != nil {
		return nil, err
	}
	imgs, err := s.list()
	if err != nil {
		return nil, err
	}
	report := func(p Problem, fix func() error) error {
		s.log.Warn("store problem", "path", p.Path, "problem", p.What)
		if repair && fix != nil {
			if err := fix(); err != nil {
				return err
			}
			p.Repaired = true
		}
		probs = append(probs, p)
		return nil
	}
	dir := filepath.Join(s.cas, "layer")
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return probs, err
		}
		p := filepath.Join(dir, e.Name())
		var what string
		var users []string
		switch {
		case strings.HasPrefix(e.Name(), ".tmp-"):
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > tmpMaxAge || repair {
				what = "incomplete layer"
			}
		case !validHex256(e.Name()):
			what = "stray file"
		default:
			what = checkTree(p)
			for _, img := range imgs {
				if img.OCI != nil && slices.Contains(img.OCI.Layers, "sha256:"+e.Name()) {
					users = append(users, img.ID)
				}
			}
		}
		if what == "" {
			continue
		}
		fix := func() error {
			for _, id := range users {
				if err := s.removeOCI(id); err != nil {
					return err
				}
			}
			return os.RemoveAll(p)
		}
		for _, id := range append(users, e.Name()) {
			if _, ok := used[id]; ok {
				what += "; in use by a pod, remove the pods that use it to repair"
				fix = nil
				break
			}
		}
		if len(users) > 0 && fix != nil {
			what += "; removing it removes " + strings.Join(users, ", ")
		}
		if err := report(Problem{Path: p, What: what}, fix); err != nil {
			return probs, err
		}
	}
	dir = filepath.Join(s.cas, "blobs", "sha256")
	if ents, err = os.ReadDir(dir); err != nil && !os.IsNotExist(err) {
		return probs, err
	}
	layerBlobs := map[string]bool{} // not checked by a record: hashed here
	for _, img := range imgs {
		if img.OCI != nil {
			for _, d := range img.OCI.LayerBlobs {
				layerBlobs[strings.TrimPrefix(d, "sha256:")] = true
			}
		}
	}
	for _, e := range ents {
		if blobs[e.Name()] && !layerBlobs[e.Name()] { // checked with its image's record
			continue
		}
		p := filepath.Join(dir, e.Name())
		sum, err := hashFile(p, ociIDPrefix)
		if err != nil {
			return probs, err
		}
		if sum == ociIDPrefix+e.Name() {
			continue
		}
		if err := report(Problem{Path: p, What: "corrupt blob"}, func() error { return os.RemoveAll(p) }); err != nil {
			return probs, err
		}
	}
	return probs, nil
}

// removeUnreferenced removes, under the exclusive lock, the layers and
// sha256 blobs no image lists (left by a crash between a fetch's layers
// and its record), and interrupted unpackings and blob copies; not a layer
// a pod mounts (keep says so of its hex).
func (s *Store) removeUnreferenced(keep func(string) bool) error {
	layers, blobs, err := s.ociReferenced("")
	if err != nil {
		return err
	}
	// No fetch runs under the exclusive lock: a blob copy left is a kill's.
	tmps, _ := filepath.Glob(filepath.Join(s.TmpDir(), "blob-*"))
	for _, p := range tmps {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(filepath.Join(s.cas, "layer"))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range ents {
		if keep(e.Name()) {
			layers[e.Name()] = true
		}
	}
	for _, d := range []struct {
		dir  string
		keep map[string]bool
	}{{filepath.Join(s.cas, "layer"), layers}, {filepath.Join(s.cas, "blobs", "sha256"), blobs}} {
		ents, err := os.ReadDir(d.dir)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		for _, e := range ents {
			if d.keep[e.Name()] {
				continue
			}
			if err := os.RemoveAll(filepath.Join(d.dir, e.Name())); err != nil {
				return err
			}
			s.log.Info("gc: removed unreferenced layer or blob", "path", filepath.Join(d.dir, e.Name()))
		}
	}
	return nil
}

// usedWithLayers extends a set of image IDs pods use with the OCI images
// whose layers a pod mounts: pods name the trees they mount (for an OCI
// image, its layers' diff_id hexes), not always image IDs.
func (s *Store) usedWithLayers(used map[string]string) func(id string) bool {
	imgs, _ := s.list()
	byLayer := map[string]bool{}
	for _, img := range imgs {
		if img.OCI == nil {
			continue
		}
		for _, d := range img.OCI.Layers {
			if _, ok := used[strings.TrimPrefix(d, "sha256:")]; ok {
				byLayer[img.ID] = true
			}
		}
	}
	return func(id string) bool { _, ok := used[id]; return ok || byLayer[id] }
}

// HasLayer reports whether the layer of diff_id hex h is in the store.
func (s *Store) HasLayer(h string) bool {
	if !validHex256(h) {
		return false
	}
	_, err := os.Lstat(s.layerPath(h))
	return err == nil
}
