package build

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/simplesign"
)

// Signer is the first secret key of keyring (armored, not encrypted).
func Signer(keyring []byte) (*openpgp.Entity, error) {
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(keyring))
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	var signer *openpgp.Entity
	for _, e := range el {
		if e.PrivateKey != nil {
			signer = e
			break
		}
	}
	if signer == nil {
		return nil, fmt.Errorf("the key file holds no secret key")
	}
	if signer.PrivateKey.Encrypted {
		return nil, fmt.Errorf("the secret key is encrypted (export it without a passphrase)")
	}
	return signer, nil
}

// SignACI writes FILE.asc, an armored detached OpenPGP signature of the
// ACI file, as `skiff fetch` and rkt verify it.
func SignACI(file string, signer *openpgp.Entity) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	defer f.Close()
	return safefile.Write(file+".asc", 0o644, false, func(w io.Writer) error {
		if err := openpgp.ArmoredDetachSign(w, signer, f, nil); err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		return nil
	})
}

// SignOCI writes a containers "simple signing" signature of the image
// pushed as ref (a docker:// tag) whose manifest has digest into the
// lookaside at base (file://), as `skopeo copy --sign-by` does: an
// OpenPGP signed message (binary) over simplesign's payload. It returns
// the file written.
func SignOCI(ref imageref.Ref, digest string, signer *openpgp.Entity, base string) (string, error) {
	payload, err := simplesign.NewPayload(ref, digest, "skiff build", time.Now())
	if err != nil {
		return "", err
	}
	var sig bytes.Buffer
	w, err := openpgp.Sign(&sig, signer, nil, nil)
	if err == nil {
		_, err = w.Write(payload)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return simplesign.Store(base, ref, digest, sig.Bytes())
}
