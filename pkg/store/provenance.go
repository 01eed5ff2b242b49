package store

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Provenance says how an image came into the store, and so how far its
// content can be trusted; the run policy (pkg/policy) decides by it which
// images may run by name. docs/policy.md describes the values.
type Provenance string

const (
	// Verified: its signature was checked against a key trusted for its
	// name (Image.Signer, Image.TrustedPrefix).
	Verified Provenance = "verified"
	// DigestPinned: fetched by an exact digest the user gave.
	DigestPinned Provenance = "digest-pinned"
	// BuiltLocally: made on this host (reserved for `skiff build`).
	BuiltLocally Provenance = "built-locally"
	// Insecure: imported without a signature check
	// (--insecure-options=image, or a stage1 taken from a local file).
	Insecure Provenance = "insecure"
)

// Provenances lists every provenance, strongest first.
var Provenances = []Provenance{Verified, DigestPinned, BuiltLocally, Insecure}

// ParseProvenance parses one of the Provenances.
func ParseProvenance(s string) (Provenance, error) {
	for _, p := range Provenances {
		if string(p) == s {
			return p, nil
		}
	}
	names := make([]string, len(Provenances))
	for i, p := range Provenances {
		names[i] = string(p)
	}
	return "", fmt.Errorf("%w %q (want %s)", ErrBadProvenance, s, strings.Join(names, ", "))
}

// setProvenance fills in how img was imported: opts.Provenance if set, else
// verified when a signer is known, else insecure. The same rule gives
// records written before provenance existed theirs.
func (img *Image) setProvenance(p Provenance, signer, prefix string) {
	img.Signer, img.TrustedPrefix = signer, prefix
	switch {
	case p != "":
		img.Provenance = p
	case signer != "":
		img.Provenance = Verified
	default:
		img.Provenance = Insecure
	}
}

// keepStronger keeps old's provenance when it is stronger than img's: the
// bytes are the same, so an unverified import of an image verified before
// loses nothing, and does not weaken the record.
func (img *Image) keepStronger(old Image) {
	if rank(old.Provenance) < rank(img.Provenance) {
		img.Provenance, img.Signer, img.TrustedPrefix = old.Provenance, old.Signer, old.TrustedPrefix
	}
}

func rank(p Provenance) int {
	for i, q := range Provenances {
		if p == q {
			return i
		}
	}
	return len(Provenances)
}

// Dependencies returns the records of the images image id depends on,
// directly or not, resolved as Layers resolves them but without rendering:
// the run policy checks each of them too.
func (s *Store) Dependencies(id string) ([]Image, error) {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ids, err := s.resolve(id)
	if err != nil {
		return nil, fmt.Errorf("resolve dependencies of %s: %w", id, err)
	}
	var imgs []Image
	for _, dep := range ids[1:] {
		rec, err := s.readRecord(dep)
		if err != nil {
			return nil, fmt.Errorf("resolve dependencies of %s: %w", id, err)
		}
		imgs = append(imgs, rec.Image)
	}
	return imgs, nil
}

// Upgrade raises image id's provenance to p if p is stronger (an OCI image
// found again by the digest the user pinned is digest-pinned, however it
// came in first).
func (s *Store) Upgrade(id string, p Provenance) error {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := s.readRecord(id)
	if err != nil {
		return fmt.Errorf("upgrade provenance: %w", err)
	}
	if rank(p) >= rank(rec.Provenance) {
		return nil
	}
	rec.Provenance, rec.Signer, rec.TrustedPrefix = p, "", ""
	return s.writeJSON(s.recordPath(id), rec, true)
}
