package trust

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// newKey makes a fast ed25519 key; at shifts its creation time into the past.
func newKey(t *testing.T, name string, at time.Duration, lifetime uint32) *openpgp.Entity {
	t.Helper()
	cfg := &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		KeyLifetimeSecs: lifetime,
		Time:            func() time.Time { return time.Now().Add(-at) },
	}
	e, err := openpgp.NewEntity(name, "", name+"@example.com", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func armored(t *testing.T, e *openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

func sign(t *testing.T, e *openpgp.Entity, data []byte, armor bool, at time.Duration) []byte {
	t.Helper()
	cfg := &packet.Config{Time: func() time.Time { return time.Now().Add(-at) }}
	var buf bytes.Buffer
	var err error
	if armor {
		err = openpgp.ArmoredDetachSign(&buf, e, bytes.NewReader(data), cfg)
	} else {
		err = openpgp.DetachSign(&buf, e, bytes.NewReader(data), cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestVerify(t *testing.T) {
	ks := Open(t.TempDir())
	app := newKey(t, "app", 0, 0)
	root := newKey(t, "root", 0, 0)
	stranger := newKey(t, "stranger", 0, 0)
	apple := newKey(t, "apple", 0, 0)
	expired := newKey(t, "expired", 48*time.Hour, 3600)
	revoked := newKey(t, "revoked", 0, 0)
	if _, err := ks.Add("example.com/app", bytes.NewReader(armored(t, app))); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.AddRoot(bytes.NewReader(armored(t, root))); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Add("example.com/apple", bytes.NewReader(armored(t, apple))); err != nil {
		t.Fatal(err)
	}
	// Add refuses expired and revoked keys, so these were trusted while
	// still good: place them as a past Add would have.
	image := []byte("pretend this is an ACI")
	corrupt := []byte("pretend this is an ACJ")
	revokedSig := sign(t, revoked, image, true, 0) // made before the revocation
	if err := revoked.RevokeKey(packet.KeyCompromised, "leaked", nil); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*openpgp.Entity{expired, revoked} {
		if err := writeFileAtomic(ks.prefixDir("example.com/app"), fingerprint(e), armored(t, e)); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name       string
		asked      string
		signer     *openpgp.Entity
		signedAt   time.Duration
		binary     bool
		data       []byte
		sig        []byte // overrides the generated signature when set
		wantErr    error
		wantIn     string // in the error message, to tell causes apart
		wantPrefix string
	}{
		{name: "exact prefix", asked: "example.com/app", signer: app, wantPrefix: "example.com/app"},
		{name: "below prefix", asked: "example.com/app/sub", signer: app, wantPrefix: "example.com/app"},
		{name: "binary signature", asked: "example.com/app", signer: app, binary: true, wantPrefix: "example.com/app"},
		{name: "root key", asked: "other.org/thing", signer: root, wantPrefix: ""},
		{name: "untrusted key", asked: "example.com/app", signer: stranger, wantErr: ErrUntrusted},
		{name: "key for apple, asked app", asked: "example.com/app", signer: apple, wantErr: ErrUntrusted},
		{name: "key for app, asked apple", asked: "example.com/apple", signer: app, wantErr: ErrUntrusted},
		{name: "key for app, asked parent", asked: "example.com", signer: app, wantErr: ErrUntrusted},
		{name: "corrupted image", asked: "example.com/app", signer: app, data: corrupt, wantErr: ErrBadSignature},
		{name: "expired key", asked: "example.com/app", signer: expired, signedAt: 47*time.Hour + 30*time.Minute, wantErr: ErrUntrusted, wantIn: "expired"},
		{name: "revoked key", asked: "example.com/app", signer: revoked, sig: revokedSig, wantErr: ErrUntrusted, wantIn: "revoked"},
		{name: "empty signature", asked: "example.com/app", sig: []byte{}, wantErr: ErrNoSignature},
		{name: "garbage signature", asked: "example.com/app", sig: []byte("not a signature"), wantErr: ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := tt.sig
			if sig == nil {
				sig = sign(t, tt.signer, image, !tt.binary, tt.signedAt)
			}
			data := image
			if tt.data != nil {
				data = tt.data
			}
			got, err := ks.Verify(tt.asked, bytes.NewReader(data), bytes.NewReader(sig))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("Verify() error = %v, want it to mention %q", err, tt.wantIn)
			}
			if err != nil {
				return
			}
			if got.Prefix != tt.wantPrefix || got.Fingerprint != fingerprint(tt.signer) {
				t.Errorf("Verify() = %+v, want prefix %q fingerprint %s", got, tt.wantPrefix, fingerprint(tt.signer))
			}
		})
	}
}

func TestAdd(t *testing.T) {
	good := newKey(t, "good", 0, 0)
	var binary bytes.Buffer
	if err := good.Serialize(&binary); err != nil {
		t.Fatal(err)
	}
	revoked := newKey(t, "revoked", 0, 0)
	if err := revoked.RevokeKey(packet.KeyCompromised, "", nil); err != nil {
		t.Fatal(err)
	}
	two := append(armored(t, newKey(t, "a", 0, 0)), armored(t, newKey(t, "b", 0, 0))...)
	var twoBinary bytes.Buffer
	newKey(t, "c", 0, 0).Serialize(&twoBinary)
	newKey(t, "d", 0, 0).Serialize(&twoBinary)

	tests := []struct {
		name    string
		prefix  string
		key     []byte
		wantErr bool
	}{
		{name: "armored", prefix: "example.com/app", key: armored(t, good)},
		{name: "binary", prefix: "example.com/app", key: binary.Bytes()},
		{name: "empty prefix", prefix: "", key: armored(t, good), wantErr: true},
		{name: "invalid prefix", prefix: "Example.com/../x", key: armored(t, good), wantErr: true},
		{name: "revoked", prefix: "example.com/app", key: armored(t, revoked), wantErr: true},
		{name: "expired", prefix: "example.com/app", key: armored(t, newKey(t, "old", 48*time.Hour, 60)), wantErr: true},
		{name: "two keys", prefix: "example.com/app", key: two, wantErr: true},
		{name: "two binary keys", prefix: "example.com/app", key: twoBinary.Bytes(), wantErr: true},
		{name: "garbage", prefix: "example.com/app", key: []byte("hello"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := t.TempDir()
			got, err := Open(cfg).Add(tt.prefix, bytes.NewReader(tt.key))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Add() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			want := filepath.Join(cfg, "trustedkeys", "prefix.d", "example.com,app", fingerprint(good))
			b, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("key file: %v", err)
			}
			if !strings.HasPrefix(string(b), "-----BEGIN PGP PUBLIC KEY BLOCK-----") || got.Fingerprint != fingerprint(good) {
				t.Errorf("stored %q as %+v", b[:40], got)
			}
		})
	}
}

func TestListRemove(t *testing.T) {
	ks := Open(t.TempDir())
	a, b := newKey(t, "a", 0, 0), newKey(t, "b", 0, 0)
	mustAdd := func(_ Key, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustAdd(ks.Add("example.com/app/sub", bytes.NewReader(armored(t, a))))
	mustAdd(ks.AddRoot(bytes.NewReader(armored(t, b))))

	keys, err := ks.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[0].Root() || keys[1].Prefix != "example.com/app/sub" ||
		keys[1].Identities[0] != "a <a@example.com>" {
		t.Fatalf("List() = %+v", keys)
	}
	for _, tt := range []struct {
		name string
		key  *openpgp.Entity
		want bool
	}{
		{"example.com/app/sub", a, true},
		{"example.com/app/sub/x", a, true},
		{"example.com/app", a, false},
		{"example.com/app/subway", a, false},
		{"other.org/x", b, true},
	} {
		if got, err := ks.Trusts(tt.name, fingerprint(tt.key)); err != nil || got != tt.want {
			t.Errorf("Trusts(%s, %s) = %v, %v; want %v", tt.name, fingerprint(tt.key), got, err, tt.want)
		}
	}
	if err := ks.Remove("example.com/app", fingerprint(a)); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Remove(wrong prefix) = %v, want ErrKeyNotFound", err)
	}
	if err := ks.Remove("example.com/app/sub", fingerprint(a)); err != nil {
		t.Fatal(err)
	}
	if err := ks.Remove("", fingerprint(b)); err != nil {
		t.Fatal(err)
	}
	if keys, err := ks.List(); err != nil || len(keys) != 0 {
		t.Errorf("List() after Remove = %+v, %v", keys, err)
	}
	if got, err := ks.Trusts("example.com/app/sub", fingerprint(a)); err != nil || got {
		t.Errorf("Trusts() after Remove = %v, %v; want false", got, err)
	}
}
