package build

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/skiffpod/skiff/pkg/safefile"
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
