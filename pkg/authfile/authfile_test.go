package authfile

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLookup(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	first := write(t, `{"auths":{"127.0.0.1:5000":{"auth":"`+b64("alice:pw1")+`"}}}`)
	second := write(t, `{"auths":{"127.0.0.1:5000":{"auth":"`+b64("bob:pw2")+`"},
		"https://index.docker.io/v1/":{"username":"hub","password":"pw3"},
		"quay.io":{"identitytoken":"tok"}},"credsStore":"desktop"}`)
	missing := filepath.Join(t.TempDir(), "none.json")
	for _, tt := range []struct {
		name     string
		files    []string
		registry string
		want     Cred
		file     string
		ok       bool
	}{
		{"first file wins", []string{missing, first, second}, "127.0.0.1:5000", Cred{Username: "alice", Password: "pw1"}, first, true},
		{"falls through", []string{first, second}, "docker.io", Cred{Username: "hub", Password: "pw3"}, second, true},
		{"identity token", []string{second}, "quay.io", Cred{IdentityToken: "tok"}, second, true},
		{"none", []string{first, second}, "ghcr.io", Cred{}, "", false},
		{"no files", nil, "ghcr.io", Cred{}, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, f, ok, err := Lookup(tt.files, tt.registry)
			if err != nil || c != tt.want || f != tt.file || ok != tt.ok {
				t.Errorf("got %+v %q %v %v, want %+v %q %v", c, f, ok, err, tt.want, tt.file, tt.ok)
			}
		})
	}
}

func TestLookupRefuses(t *testing.T) {
	for _, tt := range []struct{ name, content, says string }{
		{"not JSON", `{`, "bad auth file"},
		{"duplicate key", `{"auths":{"a.io":{"username":"a","username":"b"}}}`, "duplicate key"},
		{"bad auth", `{"auths":{"a.io":{"auth":"!!"}}}`, "not base64"},
		{"auth without colon", `{"auths":{"a.io":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("x")) + `"}}}`, "not base64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := Lookup([]string{write(t, tt.content)}, "a.io")
			if err == nil || !strings.Contains(err.Error(), tt.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line saying %q", err, tt.says)
			}
		})
	}
}

func TestSetRemove(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "sub", "auth.json")
	if err := Set(f, "127.0.0.1:5000", "alice", "s3:cret"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if fi, _ := os.Stat(filepath.Dir(f)); fi.Mode().Perm() != 0o700 {
		t.Errorf("made dir mode %v, want 0700", fi.Mode())
	}
	// Other keys and entries survive; a URL-spelled key for the same
	// registry is replaced.
	os.WriteFile(f, []byte(`{"auths":{"http://127.0.0.1:5000/v2/":{"auth":"eDp5"},"quay.io":{"auth":"eDp5"}},"credHelpers":{"x":"y"}}`), 0o600)
	if err := Set(f, "127.0.0.1:5000", "alice", "s3:cret"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f)
	if strings.Contains(string(b), "http://") || !strings.Contains(string(b), "credHelpers") || !strings.Contains(string(b), "quay.io") {
		t.Errorf("after Set: %s", b)
	}
	c, _, ok, err := Lookup([]string{f}, "127.0.0.1:5000")
	if err != nil || !ok || c.Username != "alice" || c.Password != "s3:cret" {
		t.Errorf("Lookup after Set: %+v %v %v", c, ok, err)
	}
	if err := Remove(f, "127.0.0.1:5000"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(f, "127.0.0.1:5000"); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("second Remove: %v, want ErrNotLoggedIn", err)
	}
	if err := RemoveAll(f); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(f)
	if strings.Contains(string(b), "quay.io") || !strings.Contains(string(b), "credHelpers") {
		t.Errorf("after RemoveAll: %s", b)
	}
	// Never written through a symlink.
	link := filepath.Join(dir, "link.json")
	os.Symlink(filepath.Join(dir, "target"), link)
	if err := Set(link, "a.io", "u", "p"); err == nil {
		t.Errorf("Set wrote through a symlink")
	}
	if _, err := os.Stat(filepath.Join(dir, "target")); err == nil {
		t.Errorf("symlink target created")
	}
}

func TestRegistry(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"quay.io", "quay.io"},
		{"127.0.0.1:5000", "127.0.0.1:5000"},
		{"docker://127.0.0.1:5000", "127.0.0.1:5000"},
		{"https://index.docker.io/v1/", "docker.io"},
		{"docker.io", "docker.io"},
		{"localhost", "localhost"},
		{"quay.io/team", ""},
		{"", ""},
		{"a b", ""},
		{"../x", ""},
	} {
		got, err := Registry(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") || (err != nil && !errors.Is(err, ErrBadRegistry)) {
			t.Errorf("Registry(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
