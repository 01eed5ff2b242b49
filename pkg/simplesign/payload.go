// Package simplesign verifies Docker registry images signed with
// containers "simple signing", as skopeo and podman write it
// (`skopeo copy --sign-by`): signatures are OpenPGP signed messages kept
// beside the registry, in a lookaside store named per registry in
// registries.d, each over a JSON payload that names the manifest digest
// and the image reference. The OpenPGP part is trust's; this package
// finds the signatures and checks what they say.
package simplesign

import (
	"encoding/json"
	"fmt"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/strictjson"
)

// MaxPayload bounds a signature's payload (skopeo's are ~300 bytes).
const MaxPayload = 64 << 10

// signatureType is the only critical.type simple signing defines.
const signatureType = "atomic container signature"

type payload struct {
	Critical struct {
		Type  string `json:"type"`
		Image struct {
			ManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Identity struct {
			Reference string `json:"docker-reference"`
		} `json:"identity"`
	} `json:"critical"`
	Optional json.RawMessage `json:"optional"`
}

// CheckPayload checks a verified signature payload against the image the
// user asked for, ref (by tag), whose manifest digest is digest: the type
// must be an atomic container signature, the digest equal, and the
// signed reference the same repository with the same tag. Unknown keys
// under "critical" are refused, as the format requires.
func CheckPayload(data []byte, ref imageref.Ref, digest string) error {
	if err := strictjson.CheckKeys(data); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	var p payload
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	var top struct {
		Critical map[string]json.RawMessage `json:"critical"`
	}
	if err := json.Unmarshal(data, &top); err != nil || top.Critical == nil {
		return fmt.Errorf("%w: no critical object", ErrBadPayload)
	}
	crit := top.Critical
	for k := range crit {
		if k != "type" && k != "image" && k != "identity" {
			return fmt.Errorf("%w: unknown critical key %q", ErrBadPayload, k)
		}
	}
	c := p.Critical
	if c.Type != signatureType {
		return fmt.Errorf("%w: type %q, want %q", ErrBadPayload, c.Type, signatureType)
	}
	if c.Image.ManifestDigest != digest {
		return fmt.Errorf("%w: it signs manifest %q, the registry served %s", ErrBadPayload, c.Image.ManifestDigest, digest)
	}
	signed, err := imageref.Parse("docker://" + c.Identity.Reference)
	if err != nil || c.Identity.Reference == "" {
		return fmt.Errorf("%w: signed reference %q is not a Docker reference", ErrBadPayload, c.Identity.Reference)
	}
	if signed.Name() != ref.Name() || (signed.Digest == "" && signed.Tag != ref.Tag) || (signed.Digest != "" && signed.Digest != digest) {
		return fmt.Errorf("%w: it signs %s, not %s", ErrBadPayload, c.Identity.Reference, ref.Name()+":"+ref.Tag)
	}
	return nil
}
