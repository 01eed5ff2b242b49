package trust

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// signedMessage is what skopeo --sign-by writes: payload inside a
// (compressed) OpenPGP signed message.
func signedMessage(t *testing.T, e *openpgp.Entity, payload []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := openpgp.Sign(&buf, e, nil, &packet.Config{DefaultCompressionAlgo: packet.CompressionZLIB})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(payload)
	w.Close()
	return buf.Bytes()
}

func TestVerifyMessage(t *testing.T) {
	good, other := newKey(t, "good", 0, 0), newKey(t, "other", 0, 0)
	ks := Open(t.TempDir())
	const prefix = "127.0.0.1:5000/team"
	if _, err := ks.Add(prefix, bytes.NewReader(armored(t, good))); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Add("127.0.0.1:5000/else", bytes.NewReader(armored(t, other))); err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"critical":{}}`)
	msg := signedMessage(t, good, payload)
	tampered := bytes.Clone(msg)
	tampered[len(tampered)-10] ^= 1
	for _, c := range []struct {
		name, image string
		msg         []byte
		max         int64
		want        error // nil: verified by good for prefix
	}{
		{"good", "127.0.0.1:5000/team/app", msg, 1024, nil},
		{"key for another prefix", "127.0.0.1:5000/else/app", msg, 1024, ErrUntrusted},
		{"untrusted key", "127.0.0.1:5000/team/app", signedMessage(t, other, payload), 1024, ErrUntrusted},
		{"outside the prefix", "127.0.0.1:5000/teams", msg, 1024, ErrUntrusted},
		{"tampered", "127.0.0.1:5000/team/app", tampered, 1024, ErrBadSignature},
		{"payload too large", "127.0.0.1:5000/team/app", signedMessage(t, good, bytes.Repeat([]byte("x"), 2000)), 1024, ErrBadSignature},
		{"a detached signature", "127.0.0.1:5000/team/app", sign(t, good, payload, false, 0), 1024, ErrBadSignature},
		{"garbage", "127.0.0.1:5000/team/app", []byte("garbage"), 1024, ErrBadSignature},
		{"bad name", "127.0.0.1:5000/../x", msg, 1024, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, key, err := ks.VerifyMessage(c.image, bytes.NewReader(c.msg), c.max)
			switch {
			case c.name == "bad name":
				if err == nil || !strings.Contains(err.Error(), "neither an appc name") {
					t.Errorf("got %v, want a bad name", err)
				}
			case c.want != nil:
				if !errors.Is(err, c.want) {
					t.Errorf("got %v, want %v", err, c.want)
				}
			case err != nil:
				t.Fatal(err)
			case !bytes.Equal(got, payload) || key.Prefix != prefix || key.Fingerprint != fingerprint(good):
				t.Errorf("got %q by %+v", got, key)
			}
		})
	}
}
