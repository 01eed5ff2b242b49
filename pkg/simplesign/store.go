package simplesign

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// NewPayload returns the payload a signature of ref (a tag) whose
// manifest has digest signs, as skopeo writes it: the type, the digest
// and the reference in "critical", the creator and the time in
// "optional".
func NewPayload(ref imageref.Ref, digest, creator string, now time.Time) ([]byte, error) {
	if ref.Transport != imageref.Docker || ref.Tag == "" {
		return nil, fmt.Errorf("sign %s: a signature names a docker:// reference by tag", ref)
	}
	var p payload
	p.Critical.Type = signatureType
	p.Critical.Image.ManifestDigest = digest
	p.Critical.Identity.Reference = ref.Name() + ":" + ref.Tag
	opt, err := json.Marshal(map[string]any{"creator": creator, "timestamp": now.Unix()})
	if err != nil {
		return nil, err
	}
	p.Optional = opt
	return json.Marshal(p)
}

// Store writes sig as the next signature of ref's manifest digest in the
// lookaside at base, which must be a file:// URL, where Signature reads
// it: BASE/NAME@sha256=HEX/signature-N, N one more than the signatures
// already there. It returns the file written.
func Store(base string, ref imageref.Ref, digest string, sig []byte) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "file" || !filepath.IsAbs(u.Path) {
		return "", fmt.Errorf("store signature: %w: the lookaside to write, %q, is not file:///PATH", ErrBadConfig, base)
	}
	alg, hex, _ := strings.Cut(digest, ":")
	dir := filepath.Join(u.Path, ref.Repository+"@"+alg+"="+hex)
	if !strings.HasPrefix(dir, filepath.Clean(u.Path)+"/") {
		return "", fmt.Errorf("store signature: %s leaves %s", dir, u.Path)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("store signature: %w", err)
	}
	for i := 1; i <= MaxSignatures; i++ {
		f := filepath.Join(dir, fmt.Sprintf("signature-%d", i))
		err := safefile.WriteFile(f, sig, 0o644, false)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("store signature: %w", err)
		}
		return f, nil
	}
	return "", fmt.Errorf("store signature: %s holds %d signatures already", dir, MaxSignatures)
}
