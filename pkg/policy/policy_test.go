package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/skiffpod/skiff/pkg/store"
)

const id = "sha512-0123456789abcdef0123"

func TestCheck(t *testing.T) {
	custom := `{
		"default": ["verified"],
		"acceptImageIDs": false,
		"names": {
			"example.com/dev": ["verified", "insecure"],
			"example.com/dev/locked": [],
			"example.com": ["verified", "digest-pinned"]
		},
		"registries": {"registry.example.com:5000/team": ["digest-pinned"]}
	}`
	tests := []struct {
		name   string
		policy string // "" for the default policy
		req    Request
		ok     bool
	}{
		// The default: verified, digest-pinned, built-locally run by name,
		// insecure only with the run's own --insecure-options=image, any
		// image by its full ID.
		{"default verified", "", Request{Name: "skiff.local/busybox", Provenance: store.Verified}, true},
		{"default digest-pinned", "", Request{Name: "a.b/c", Provenance: store.DigestPinned}, true},
		{"default built-locally", "", Request{Name: "a.b/c", Provenance: store.BuiltLocally}, true},
		{"default insecure", "", Request{Name: "skiff.local/busybox", Provenance: store.Insecure}, false},
		{"default insecure with the flag", "", Request{Name: "skiff.local/busybox", Provenance: store.Insecure, Insecure: true}, true},
		{"default insecure by image ID", "", Request{Name: "skiff.local/busybox", Provenance: store.Insecure, ByImageID: true}, true},
		{"default unknown provenance", "", Request{Name: "a.b/c", Provenance: "bogus"}, false},
		{"default unknown provenance with the flag", "", Request{Name: "a.b/c", Provenance: "bogus", Insecure: true}, false},
		{"default verified by a key no longer trusted", "", Request{Name: "a.b/c", Provenance: store.Verified, Untrusted: true}, false},
		{"default verified by a key no longer trusted, with the flag", "", Request{Name: "a.b/c", Provenance: store.Verified, Untrusted: true, Insecure: true}, true},
		{"default verified by a key no longer trusted, by ID", "", Request{Name: "a.b/c", Provenance: store.Verified, Untrusted: true, ByImageID: true}, true},
		{"default OCI verified", "", Request{Kind: OCI, Name: "docker.io/library/busybox", Provenance: store.Verified}, true},
		{"default OCI insecure", "", Request{Kind: OCI, Name: "docker.io/library/busybox", Provenance: store.Insecure}, false},

		{"custom default", custom, Request{Name: "other.org/x", Provenance: store.DigestPinned}, false},
		{"custom default verified", custom, Request{Name: "other.org/x", Provenance: store.Verified}, true},
		{"custom image IDs checked", custom, Request{Name: "other.org/x", Provenance: store.Insecure, ByImageID: true}, false},
		{"custom prefix", custom, Request{Name: "example.com/app", Provenance: store.DigestPinned}, true},
		{"custom prefix itself", custom, Request{Name: "example.com", Provenance: store.DigestPinned}, true},
		{"custom longer prefix wins", custom, Request{Name: "example.com/dev/tool", Provenance: store.Insecure}, true},
		{"custom longest prefix accepts nothing", custom, Request{Name: "example.com/dev/locked/x", Provenance: store.Verified}, false},
		{"custom untrusted counts as insecure", custom, Request{Name: "example.com/dev/tool", Provenance: store.Verified, Untrusted: true}, true},
		{"custom nothing, but the flag", custom, Request{Name: "example.com/dev/locked/x", Provenance: store.Verified, Insecure: true}, true},
		{"custom nothing, insecure with the flag", custom, Request{Name: "example.com/dev/locked/x", Provenance: store.Insecure, Insecure: true}, true},
		{"custom prefix at a slash only", custom, Request{Name: "example.com/devil", Provenance: store.Insecure}, false},
		{"custom prefix not a string prefix", custom, Request{Name: "example.common/x", Provenance: store.DigestPinned}, false},
		{"custom registry", custom, Request{Kind: OCI, Name: "registry.example.com:5000/team/app", Provenance: store.DigestPinned}, true},
		{"custom registry verified refused", custom, Request{Kind: OCI, Name: "registry.example.com:5000/team/app", Provenance: store.Verified}, false},
		{"custom names do not apply to OCI", custom, Request{Kind: OCI, Name: "example.com/app", Provenance: store.DigestPinned}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Default()
			if tt.policy != "" {
				var err error
				if p, err = Parse([]byte(tt.policy), "test.json"); err != nil {
					t.Fatal(err)
				}
			}
			tt.req.ID = id
			err := p.Check(tt.req)
			if tt.ok && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrRefused) {
				t.Errorf("got %v, want ErrRefused", err)
			}
		})
	}
}

func TestCheckMessage(t *testing.T) {
	err := Default().Check(Request{Name: "skiff.local/busybox", ID: id, Provenance: store.Insecure})
	msg := err.Error()
	for _, want := range []string{"skiff.local/busybox", id[:19], "insecure", "the default policy", "--insecure-options=image"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message %q is not one line", msg)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, data, mention string
	}{
		{"unknown key", `{"defualt": ["verified"]}`, `unknown key "defualt"`},
		{"duplicate top-level key", `{"default": ["verified"], "default": ["insecure"]}`, `duplicate key "default"`},
		{"duplicate prefix", `{"names": {"a.b": ["verified"], "a.b": ["insecure"]}}`, `duplicate key "a.b"`},
		{"unknown provenance", `{"default": ["signed"]}`, `unknown provenance "signed"`},
		{"unknown provenance in a prefix", `{"names": {"example.com": ["verified", "Insecure"]}}`, `names["example.com"]`},
		{"null list", `{"names": {"example.com": null}}`, "not null"},
		{"bad name prefix", `{"names": {"Example.com": ["verified"]}}`, `names["Example.com"]`},
		{"empty name prefix", `{"names": {"": ["verified"]}}`, `names[""]`},
		{"trailing slash", `{"names": {"example.com/": ["verified"]}}`, "appc name prefix"},
		{"bad registry", `{"registries": {"https://r.example.com": ["verified"]}}`, `registries["https://r.example.com"]`},
		{"wrong type", `{"default": "verified"}`, "default: a JSON string where a list"},
		{"bad bool", `{"acceptImageIDs": "yes"}`, "acceptImageIDs: a JSON string where true or false"},
		{"not JSON", `default: verified`, "invalid character"},
		{"trailing data", `{} {}`, "after the top-level object"},
		{"empty", ``, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data), "/etc/skiff/policy.json")
			if !errors.Is(err, ErrBadPolicy) {
				t.Fatalf("got %v, want ErrBadPolicy", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "policy /etc/skiff/policy.json: ") || !strings.Contains(msg, tt.mention) || strings.Contains(msg, "\n") {
				t.Errorf("message %q: want one line naming the file and %q", msg, tt.mention)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Run("missing file gives the default", func(t *testing.T) {
		p, err := Load(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Check(Request{Name: "a.b/c", Provenance: store.Insecure}); !errors.Is(err, ErrRefused) {
			t.Errorf("default policy let an insecure image run by name: %v", err)
		}
	})
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, FileName), []byte(`{"names": {"a.b": ["insecure"]}}`), 0o644)
		p, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Check(Request{Name: "a.b/c", Provenance: store.Insecure}); err != nil {
			t.Errorf("policy file not applied: %v", err)
		}
	})
	t.Run("FIFO", func(t *testing.T) {
		dir := t.TempDir()
		if err := syscall.Mkfifo(filepath.Join(dir, FileName), 0o644); err != nil {
			t.Skip("mkfifo:", err)
		}
		if _, err := Load(dir); !errors.Is(err, ErrBadPolicy) {
			t.Errorf("got %v, want ErrBadPolicy for a FIFO", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, FileName), 0o755)
		if _, err := Load(dir); !errors.Is(err, ErrBadPolicy) {
			t.Errorf("got %v, want ErrBadPolicy for a directory", err)
		}
	})
}
