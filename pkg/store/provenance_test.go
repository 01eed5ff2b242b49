package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/skiffpod/skiff/pkg/aci/acitest"
)

func TestProvenance(t *testing.T) {
	signed := ImportOptions{Signer: "ABCD", Prefix: "example.com"}
	tests := []struct {
		name       string
		imports    []ImportOptions
		want       Provenance
		wantSigner string
		wantPrefix string
	}{
		{"unsigned", []ImportOptions{{}}, Insecure, "", ""},
		{"signed", []ImportOptions{signed}, Verified, "ABCD", "example.com"},
		{"built locally", []ImportOptions{{Provenance: BuiltLocally}}, BuiltLocally, "", ""},
		{"digest-pinned", []ImportOptions{{Provenance: DigestPinned}}, DigestPinned, "", ""},
		{"insecure after verified keeps verified", []ImportOptions{signed, {}}, Verified, "ABCD", "example.com"},
		{"verified after insecure upgrades", []ImportOptions{{}, signed}, Verified, "ABCD", "example.com"},
		{"digest-pinned after insecure upgrades", []ImportOptions{{}, {Provenance: DigestPinned}}, DigestPinned, "", ""},
		{"verified after digest-pinned upgrades", []ImportOptions{{Provenance: DigestPinned}, signed}, Verified, "ABCD", "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			img := acitest.Image(t, "example.com/app", nil)
			var id string
			for _, o := range tt.imports {
				var err error
				if id, err = s.Import(ctx, bytes.NewReader(img), o); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Provenance != tt.want || got.Signer != tt.wantSigner || got.TrustedPrefix != tt.wantPrefix {
				t.Errorf("got %s signer %q prefix %q, want %s signer %q prefix %q",
					got.Provenance, got.Signer, got.TrustedPrefix, tt.want, tt.wantSigner, tt.wantPrefix)
			}
		})
	}
}

// TestProvenanceOldRecord checks the defaulting rule for records written
// before provenance existed: a signer means verified, none insecure.
func TestProvenanceOldRecord(t *testing.T) {
	for signer, want := range map[string]Provenance{"ABCD": Verified, "": Insecure} {
		s := newStore(t)
		id := importTar(t, s, acitest.Image(t, "example.com/app", nil))
		var raw map[string]any
		data, err := os.ReadFile(s.recordPath(id))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		delete(raw, "provenance")
		delete(raw, "trustedPrefix")
		raw["signer"] = signer
		if err := s.writeJSON(s.recordPath(id), raw, true); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Provenance != want {
			t.Errorf("old record with signer %q: provenance %q, want %q", signer, got.Provenance, want)
		}
	}
}

func TestParseProvenance(t *testing.T) {
	for _, p := range Provenances {
		if got, err := ParseProvenance(string(p)); err != nil || got != p {
			t.Errorf("ParseProvenance(%q) = %q, %v", p, got, err)
		}
	}
	for _, bad := range []string{"", "Verified", "signed", "insecure "} {
		if _, err := ParseProvenance(bad); !errors.Is(err, ErrBadProvenance) {
			t.Errorf("ParseProvenance(%q): %v, want ErrBadProvenance", bad, err)
		}
	}
}

func TestDependencies(t *testing.T) {
	s := newStore(t)
	d := importTar(t, s, acitest.Image(t, "example.com/d", nil))
	b, err := s.Import(ctx, bytes.NewReader(acitest.Image(t, "example.com/b", nil, deps(dep("example.com/d")))), ImportOptions{Signer: "AB"})
	if err != nil {
		t.Fatal(err)
	}
	a := importTar(t, s, acitest.Image(t, "example.com/a", nil, deps(dep("example.com/b"))))
	got, err := s.Dependencies(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != b || got[0].Provenance != Verified || got[1].ID != d || got[1].Provenance != Insecure {
		t.Errorf("Dependencies(a) = %+v, want b (verified) then d (insecure)", got)
	}
	if got, err := s.Dependencies(d); err != nil || len(got) != 0 {
		t.Errorf("Dependencies(d) = %+v, %v, want none", got, err)
	}
}
