// Package trust keeps the OpenPGP public keys skiff trusts to sign images,
// each for an appc name prefix or for every name (root keys), and checks
// detached image signatures against them.
//
// On disk, under the config directory (default /etc/skiff):
//
//	trustedkeys/root.d/<fingerprint>
//	trustedkeys/prefix.d/<escaped-prefix>/<fingerprint>
//
// <fingerprint> is the lowercase hex fingerprint of the primary key and the
// file holds the armored public key. <escaped-prefix> is the prefix with
// every "/" replaced by "," (as rkt did): an appc name cannot contain ",",
// so the escaping is reversible and each prefix is one directory.
//
// A key trusted for a prefix trusts the names equal to it or below it on a
// path boundary: "example.com/app" covers "example.com/app" and
// "example.com/app/sub", never "example.com/apple".
//
// A Keystore holds no state besides its directory and is safe for
// concurrent use; keys are written with rename so readers never see half a key.
package trust

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// DefaultConfigDir is where skiff keeps its configuration, keys included.
const DefaultConfigDir = "/etc/skiff"

// maxBlob bounds what is read for one key or signature file: both are tiny,
// and a hostile server must not make us buffer gigabytes.
const maxBlob = 1 << 20

// Keystore is the set of trusted keys under one config directory.
type Keystore struct {
	dir string // <configDir>/trustedkeys
}

// Key describes a trusted key: who it is and what it is trusted for.
type Key struct {
	Prefix      string // the appc name prefix; "" for a root key
	Fingerprint string // lowercase hex
	Identities  []string
}

// Root reports whether the key is trusted for every name.
func (k Key) Root() bool { return k.Prefix == "" }

// Open returns the keystore kept under configDir. Nothing is read until used.
func Open(configDir string) *Keystore {
	return &Keystore{dir: filepath.Join(configDir, "trustedkeys")}
}

// Add trusts the public key read from r (armored or binary, exactly one
// key) for images whose name is prefix or lies below it.
func (k *Keystore) Add(prefix string, r io.Reader) (Key, error) {
	if prefix == "" {
		return Key{}, fmt.Errorf("add key: empty prefix (use AddRoot to trust a key for every name)")
	}
	if err := checkName(prefix); err != nil {
		return Key{}, fmt.Errorf("add key for %q: %w", prefix, err)
	}
	return k.add(k.prefixDir(prefix), prefix, r)
}

// AddRoot trusts the public key read from r for every image name.
func (k *Keystore) AddRoot(r io.Reader) (Key, error) {
	return k.add(filepath.Join(k.dir, "root.d"), "", r)
}

// ReadKey reads a public key as Add would take it, without trusting it:
// its fingerprint and identities, for a person to review first.
func ReadKey(r io.Reader) (Key, error) {
	e, err := readKey(r)
	if err != nil {
		return Key{}, err
	}
	return keyOf("", e), nil
}

// readKey reads exactly one usable public key: not revoked, able to sign.
func readKey(r io.Reader) (*openpgp.Entity, error) {
	el, err := readKeyRing(r)
	if err != nil {
		return nil, fmt.Errorf("add key: %w: %w", ErrBadKey, err)
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("add key: %w: want exactly one public key, got %d", ErrBadKey, len(el))
	}
	e := el[0]
	now := time.Now()
	if e.Revoked(now) {
		return nil, fmt.Errorf("add key %s: %w: revoked", fingerprint(e), ErrBadKey)
	}
	if _, ok := e.SigningKey(now); !ok {
		return nil, fmt.Errorf("add key %s: %w: no valid signing key (expired?)", fingerprint(e), ErrBadKey)
	}
	return e, nil
}

func (k *Keystore) add(dir, prefix string, r io.Reader) (Key, error) {
	e, err := readKey(r)
	if err != nil {
		return Key{}, err
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return Key{}, fmt.Errorf("add key: %w", err)
	}
	// Serialize writes only the public parts, even for a private key.
	if err := e.Serialize(w); err != nil {
		return Key{}, fmt.Errorf("add key: %w", err)
	}
	if err := w.Close(); err != nil {
		return Key{}, fmt.Errorf("add key: %w", err)
	}
	key := keyOf(prefix, e)
	if err := writeFileAtomic(dir, key.Fingerprint, buf.Bytes()); err != nil {
		return Key{}, fmt.Errorf("add key %s: %w", key.Fingerprint, err)
	}
	return key, nil
}

// Remove stops trusting the key with fingerprint for prefix ("" for a root key).
func (k *Keystore) Remove(prefix, fp string) error {
	if _, err := hex.DecodeString(fp); err != nil || fp == "" {
		return fmt.Errorf("remove key %q: not a hex fingerprint", fp)
	}
	dir := filepath.Join(k.dir, "root.d")
	if prefix != "" {
		if err := checkName(prefix); err != nil {
			return fmt.Errorf("remove key for %q: %w", prefix, err)
		}
		dir = k.prefixDir(prefix)
	}
	err := os.Remove(filepath.Join(dir, strings.ToLower(fp)))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove key %s for %q: %w", fp, prefix, ErrKeyNotFound)
	}
	if err != nil {
		return fmt.Errorf("remove key %s: %w", fp, err)
	}
	if prefix != "" {
		_ = os.Remove(dir) // only succeeds once the prefix has no keys left
	}
	return nil
}

// List returns every trusted key, root keys first, then by prefix.
func (k *Keystore) List() ([]Key, error) {
	dirs := map[string]string{filepath.Join(k.dir, "root.d"): ""}
	ents, err := os.ReadDir(filepath.Join(k.dir, "prefix.d"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	for _, de := range ents {
		dirs[filepath.Join(k.dir, "prefix.d", de.Name())] = strings.ReplaceAll(de.Name(), ",", "/")
	}
	var keys []Key
	for dir, prefix := range dirs {
		el, err := readDir(dir)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		for _, e := range el {
			keys = append(keys, keyOf(prefix, e))
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Prefix != keys[j].Prefix {
			return keys[i].Prefix < keys[j].Prefix
		}
		return keys[i].Fingerprint < keys[j].Fingerprint
	})
	return keys, nil
}

// Verify checks that signature (a detached OpenPGP signature, armored or
// binary) was made over all of image by a key trusted for name: a root key
// or a key trusted for a prefix of name. It returns the signing key, with
// the most specific prefix it is trusted for.
func (k *Keystore) Verify(name string, image io.ReadSeeker, signature io.Reader) (*Key, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("verify %q: %w", name, err)
	}
	if signature == nil {
		return nil, fmt.Errorf("verify %q: %w", name, ErrNoSignature)
	}
	sig, err := readBlob(signature, openpgp.SignatureType)
	if err != nil {
		return nil, fmt.Errorf("verify %q: %w: %w", name, ErrBadSignature, err)
	}
	if len(sig) == 0 {
		return nil, fmt.Errorf("verify %q: %w", name, ErrNoSignature)
	}
	ring, prefixOf, err := k.keyring(name)
	if err != nil {
		return nil, fmt.Errorf("verify %q: %w", name, err)
	}
	if _, err := image.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("verify %q: %w", name, err)
	}
	img := &errReader{r: image}
	_, signer, err := openpgp.VerifyDetachedSignature(ring, img, bytes.NewReader(sig), nil)
	switch {
	case img.err != nil:
		return nil, fmt.Errorf("verify %q: read image: %w", name, img.err)
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return nil, fmt.Errorf("verify %q: %w (no key trusted for this name made it)", name, ErrUntrusted)
	case errors.Is(err, pgperrors.ErrKeyRevoked), errors.Is(err, pgperrors.ErrKeyExpired),
		errors.Is(err, pgperrors.ErrSignatureExpired):
		return nil, fmt.Errorf("verify %q: key %s: %w: %w", name, fingerprint(signer), ErrUntrusted, err)
	case err != nil:
		return nil, fmt.Errorf("verify %q: %w: %w", name, ErrBadSignature, err)
	}
	key := keyOf(prefixOf[fingerprint(signer)], signer)
	return &key, nil
}

// VerifyMessage checks that msg is an OpenPGP signed message (as
// "simple signing" writes them: the payload inside, compressed or not)
// signed by a key trusted for name, and returns the payload, at most max
// bytes, with the signing key.
func (k *Keystore) VerifyMessage(name string, msg io.Reader, max int64) ([]byte, *Key, error) {
	if err := checkName(name); err != nil {
		return nil, nil, fmt.Errorf("verify %q: %w", name, err)
	}
	raw, err := readBlob(msg, "PGP MESSAGE")
	if err != nil {
		return nil, nil, fmt.Errorf("verify %q: %w: %w", name, ErrBadSignature, err)
	}
	ring, prefixOf, err := k.keyring(name)
	if err != nil {
		return nil, nil, fmt.Errorf("verify %q: %w", name, err)
	}
	md, err := openpgp.ReadMessage(bytes.NewReader(raw), ring, nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("verify %q: %w: %w", name, ErrBadSignature, err)
	}
	if !md.IsSigned || md.IsEncrypted {
		return nil, nil, fmt.Errorf("verify %q: %w: not a signed message", name, ErrBadSignature)
	}
	// The body is read to its end before the signature is known good: a
	// compressed payload is bounded so it cannot expand without limit.
	payload, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, max+1))
	if err == nil && int64(len(payload)) > max {
		err = fmt.Errorf("payload larger than %d bytes", max)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("verify %q: %w: %w", name, ErrBadSignature, err)
	}
	switch err := md.SignatureError; {
	case md.SignedBy == nil:
		return nil, nil, fmt.Errorf("verify %q: %w (no key trusted for this name made it)", name, ErrUntrusted)
	case errors.Is(err, pgperrors.ErrKeyRevoked), errors.Is(err, pgperrors.ErrKeyExpired),
		errors.Is(err, pgperrors.ErrSignatureExpired):
		return nil, nil, fmt.Errorf("verify %q: key %s: %w: %w", name, fingerprint(md.SignedBy.Entity), ErrUntrusted, err)
	case err != nil:
		return nil, nil, fmt.Errorf("verify %q: %w: %w", name, ErrBadSignature, err)
	case md.Signature == nil:
		return nil, nil, fmt.Errorf("verify %q: %w: no signature packet", name, ErrBadSignature)
	}
	key := keyOf(prefixOf[fingerprint(md.SignedBy.Entity)], md.SignedBy.Entity)
	return payload, &key, nil
}

// Trusts reports whether the key with fingerprint fp is trusted for name
// now (as a root key or for a prefix of name): an image verified with a
// key that was removed since is not to be taken as verified any more.
func (k *Keystore) Trusts(name, fp string) (bool, error) {
	if err := checkName(name); err != nil {
		return false, fmt.Errorf("look up key for %q: %w", name, err)
	}
	_, prefixOf, err := k.keyring(name)
	if err != nil {
		return false, fmt.Errorf("look up key for %q: %w", name, err)
	}
	_, ok := prefixOf[strings.ToLower(fp)]
	return ok, nil
}

// keyring gathers the keys trusted for name, and the most specific prefix
// each is trusted for.
func (k *Keystore) keyring(name string) (openpgp.EntityList, map[string]string, error) {
	prefixes := []string{""} // root first, so longer prefixes overwrite it below
	for i, c := range name {
		if c == '/' {
			prefixes = append(prefixes, name[:i])
		}
	}
	prefixes = append(prefixes, name)

	var ring openpgp.EntityList
	prefixOf := map[string]string{}
	for _, p := range prefixes {
		dir := filepath.Join(k.dir, "root.d")
		if p != "" {
			dir = k.prefixDir(p)
		}
		el, err := readDir(dir)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range el {
			prefixOf[fingerprint(e)] = p
		}
		ring = append(ring, el...)
	}
	return ring, prefixOf, nil
}

func (k *Keystore) prefixDir(prefix string) string {
	return filepath.Join(k.dir, "prefix.d", strings.ReplaceAll(prefix, "/", ","))
}

// readDir reads every key file in dir; a missing dir holds no keys. An
// unreadable key is an error rather than skipped, so a damaged keystore
// is noticed.
func readDir(dir string) (openpgp.EntityList, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var el openpgp.EntityList
	for _, de := range ents {
		if strings.HasPrefix(de.Name(), ".") || !de.Type().IsRegular() {
			continue // temp files of an interrupted Add
		}
		f, err := os.Open(filepath.Join(dir, de.Name()))
		if err != nil {
			return nil, err
		}
		keys, err := readKeyRing(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read key %s: %w", filepath.Join(dir, de.Name()), err)
		}
		el = append(el, keys...)
	}
	return el, nil
}

func readKeyRing(r io.Reader) (openpgp.EntityList, error) {
	b, err := readBlob(r, openpgp.PublicKeyType, openpgp.PrivateKeyType)
	if err != nil {
		return nil, err
	}
	return openpgp.ReadKeyRing(bytes.NewReader(b))
}

// readBlob reads a small OpenPGP object, removing ASCII armor if present.
func readBlob(r io.Reader, armorTypes ...string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxBlob+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBlob {
		return nil, fmt.Errorf("larger than %d bytes", maxBlob)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN ")) {
		return b, nil
	}
	if bytes.Count(b, []byte("-----BEGIN ")) > 1 {
		return nil, fmt.Errorf("more than one armored block")
	}
	blk, err := armor.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode armor: %w", err)
	}
	ok := false
	for _, t := range armorTypes {
		ok = ok || blk.Type == t
	}
	if !ok {
		return nil, fmt.Errorf("armored %q, want %q", blk.Type, armorTypes)
	}
	return io.ReadAll(blk.Body)
}

func writeFileAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return safefile.WriteFile(filepath.Join(dir, name), data, 0o644, true)
}

func keyOf(prefix string, e *openpgp.Entity) Key {
	k := Key{Prefix: prefix, Fingerprint: fingerprint(e)}
	for id := range e.Identities {
		k.Identities = append(k.Identities, id)
	}
	sort.Strings(k.Identities)
	return k
}

func fingerprint(e *openpgp.Entity) string {
	if e == nil || e.PrimaryKey == nil {
		return "unknown"
	}
	return hex.EncodeToString(e.PrimaryKey.Fingerprint)
}

// errReader remembers a read error so it is not mistaken for a bad signature.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// checkName accepts an appc name or a Docker registry name
// (REGISTRY[:PORT][/NAME], imageref.CheckPrefix): keys are trusted for
// either, and neither can hold "," or a ".." part.
func checkName(name string) error {
	if _, err := types.NewACIdentifier(name); err == nil {
		return nil
	}
	if imageref.CheckPrefix(name) != nil {
		return fmt.Errorf("%q is neither an appc name nor REGISTRY[/NAME]", name)
	}
	return nil
}
