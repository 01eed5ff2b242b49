package simplesign

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/imageref"
)

const (
	dig   = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	other = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

func mustRef(t *testing.T, s string) imageref.Ref {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func body(typ, digest, ref string) string {
	return fmt.Sprintf(`{"critical":{"type":%q,"image":{"docker-manifest-digest":%q},"identity":{"docker-reference":%q}},"optional":{"creator":"skopeo"}}`, typ, digest, ref)
}

func TestCheckPayload(t *testing.T) {
	ref := mustRef(t, "docker://127.0.0.1:5000/app:1")
	const typ = "atomic container signature"
	for _, c := range []struct {
		name, data, want string // want: "" for ok, else a part of the error
	}{
		{"skopeo's", body(typ, dig, "127.0.0.1:5000/app:1"), ""},
		{"by digest", body(typ, dig, "127.0.0.1:5000/app@"+dig), ""},
		{"another digest", body(typ, other, "127.0.0.1:5000/app:1"), "it signs manifest"},
		{"by another digest", body(typ, dig, "127.0.0.1:5000/app@"+other), "it signs 127.0.0.1:5000/app@"},
		{"another tag", body(typ, dig, "127.0.0.1:5000/app:2"), "it signs 127.0.0.1:5000/app:2"},
		{"another repository", body(typ, dig, "127.0.0.1:5000/apple:1"), "it signs"},
		{"another registry", body(typ, dig, "127.0.0.1:5001/app:1"), "it signs"},
		{"no tag means latest", body(typ, dig, "127.0.0.1:5000/app"), "it signs"},
		{"bad reference", body(typ, dig, "127.0.0.1:5000/APP:1"), "not a Docker reference"},
		{"empty reference", body(typ, dig, ""), "not a Docker reference"},
		{"another type", body("cosign container image signature", dig, "127.0.0.1:5000/app:1"), "type"},
		{"unknown critical key", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + dig + `"},"identity":{"docker-reference":"127.0.0.1:5000/app:1"},"extra":1}}`, "unknown critical key"},
		{"duplicate digest", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + other + `","docker-manifest-digest":"` + dig + `"},"identity":{"docker-reference":"127.0.0.1:5000/app:1"}}}`, "duplicate"},
		{"no critical", `{"optional":{}}`, "no critical"},
		{"not JSON", `garbage`, "invalid"},
		{"a list", `[1]`, "cannot unmarshal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckPayload([]byte(c.data), ref, dig)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !errors.Is(err, ErrBadPayload) || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want an ErrBadPayload saying %q", err, c.want)
			}
		})
	}
}

func TestLoadAndLookaside(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		ref   string
		want  string // lookaside, or "error: ..." part
	}{
		{"none", nil, "docker://r.example/a/b:1", ""},
		{"default", map[string]string{"default.yaml": "default-docker:\n  lookaside: file:///sigs\n"}, "docker://r.example/a:1", "file:///sigs"},
		{"sigstore is lookaside", map[string]string{"a.yaml": "default-docker:\n  sigstore: https://s.example/x/\n"}, "docker://r.example/a:1", "https://s.example/x"},
		{"most specific", map[string]string{"a.yaml": "default-docker:\n  lookaside: file:///d\ndocker:\n  r.example:\n    lookaside: file:///r\n  r.example/team:\n    lookaside: file:///t\n"}, "docker://r.example/team/app:1", "file:///t"},
		{"registry", map[string]string{"a.yaml": "docker:\n  r.example:\n    lookaside: file:///r\n  r.example/team:\n    lookaside: file:///t\n"}, "docker://r.example/teams:1", "file:///r"},
		{"other registry", map[string]string{"a.yaml": "docker:\n  r.example:\n    lookaside: file:///r\n"}, "docker://q.example/a:1", ""},
		{"staging only ignored", map[string]string{"a.yaml": "default-docker:\n  lookaside-staging: file:///s\n"}, "docker://r.example/a:1", ""},
		{"twice", map[string]string{"a.yaml": "docker:\n  r.example:\n    lookaside: file:///a\n", "b.yaml": "docker:\n  r.example:\n    lookaside: file:///b\n"}, "docker://r.example/a:1", "error: configured twice"},
		{"default twice", map[string]string{"a.yaml": "default-docker:\n  lookaside: file:///a\n", "b.yaml": "default-docker:\n  lookaside: file:///b\n"}, "docker://r.example/a:1", "error: also set"},
		{"relative file", map[string]string{"a.yaml": "default-docker:\n  lookaside: file://sigs\n"}, "docker://r.example/a:1", "error: want file:///PATH"},
		{"ftp", map[string]string{"a.yaml": "default-docker:\n  lookaside: ftp://x/\n"}, "docker://r.example/a:1", "error: want file:///PATH"},
		{"bad scope", map[string]string{"a.yaml": "docker:\n  ../x:\n    lookaside: file:///a\n"}, "docker://r.example/a:1", "error: is not REGISTRY"},
		{"not YAML", map[string]string{"a.yaml": "docker: [\n"}, "docker://r.example/a:1", "error: yaml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, b := range c.files {
				os.WriteFile(filepath.Join(dir, n), []byte(b), 0o644)
			}
			cfg, err := Load(dir)
			if want, isErr := strings.CutPrefix(c.want, "error: "); isErr {
				if err == nil || !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), want) {
					t.Errorf("got %v, want an ErrBadConfig saying %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Lookaside(mustRef(t, c.ref)); got != c.want {
				t.Errorf("lookaside %q, want %q", got, c.want)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	dir := t.TempDir()
	ref := mustRef(t, "docker://r.example/team/app:1")
	sigDir := filepath.Join(dir, "team/app@sha256="+strings.TrimPrefix(dig, "sha256:"))
	os.MkdirAll(sigDir, 0o755)
	os.WriteFile(filepath.Join(sigDir, "signature-1"), []byte("one"), 0o644)
	os.WriteFile(filepath.Join(sigDir, "signature-2"), make([]byte, MaxSignature+1), 0o644)
	os.Mkdir(filepath.Join(sigDir, "signature-3"), 0o755)
	srv := httptest.NewServer(http.StripPrefix("/base", http.FileServer(http.Dir(dir))))
	defer srv.Close()
	for _, base := range []string{"file://" + dir, srv.URL + "/base"} {
		for _, c := range []struct {
			i    int
			want string // "absent", "error: ...", or the content
		}{
			{1, "one"},
			{2, "error: larger than"},
			{4, "absent"},
		} {
			sig, ok, err := Signature(context.Background(), srv.Client(), base, ref, dig, c.i)
			switch want, isErr := strings.CutPrefix(c.want, "error: "); {
			case isErr:
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s signature-%d: got %v, want an error saying %q", base, c.i, err, want)
				}
			case err != nil:
				t.Errorf("%s signature-%d: %v", base, c.i, err)
			case c.want == "absent" && ok, c.want != "absent" && string(sig) != c.want:
				t.Errorf("%s signature-%d: %q %v, want %q", base, c.i, sig, ok, c.want)
			}
		}
	}
	// A directory where a signature belongs is an error, not the end.
	if _, _, err := Signature(context.Background(), nil, "file://"+dir, ref, dig, 3); err == nil {
		t.Error("signature-3 (a directory): no error")
	}
}

func TestStaging(t *testing.T) {
	for _, c := range []struct {
		name, yaml, ref, want string
	}{
		{"none", "", "docker://r.example/a:1", ""},
		{"lookaside is written too", "default-docker:\n  lookaside: file:///sigs\n", "docker://r.example/a:1", "file:///sigs"},
		{"staging first", "default-docker:\n  lookaside: https://s.example\n  lookaside-staging: file:///stage/\n", "docker://r.example/a:1", "file:///stage"},
		{"sigstore-staging", "default-docker:\n  sigstore-staging: file:///old\n", "docker://r.example/a:1", "file:///old"},
		{"most specific scope", "default-docker:\n  lookaside-staging: file:///d\ndocker:\n  r.example/team:\n    lookaside-staging: file:///t\n", "docker://r.example/team/app:1", "file:///t"},
		{"bad staging", "default-docker:\n  lookaside-staging: file://rel\n", "", "error: want file:///PATH"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(c.yaml), 0o644)
			cfg, err := Load(dir)
			if want, isErr := strings.CutPrefix(c.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("got %v, want an error saying %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Staging(mustRef(t, c.ref)); got != c.want {
				t.Errorf("staging %q, want %q", got, c.want)
			}
		})
	}
}

// TestPayloadAndStore: a payload NewPayload writes is one CheckPayload
// accepts for the same tag and digest (and no other); Store lays
// signatures out where Signature finds them, numbered on.
func TestPayloadAndStore(t *testing.T) {
	ref := mustRef(t, "docker://127.0.0.1:5000/team/app:1")
	p, err := NewPayload(ref, dig, "skiff build", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPayload(p, ref, dig); err != nil {
		t.Errorf("own payload refused: %v\n%s", err, p)
	}
	if err := CheckPayload(p, mustRef(t, "docker://127.0.0.1:5000/team/app:2"), dig); err == nil {
		t.Error("payload accepted for another tag")
	}
	if err := CheckPayload(p, ref, other); err == nil {
		t.Error("payload accepted for another digest")
	}
	if !strings.Contains(string(p), `"creator":"skiff build"`) || !strings.Contains(string(p), `"timestamp":1700000000`) {
		t.Errorf("payload %s: want the creator and timestamp in optional", p)
	}
	if _, err := NewPayload(mustRef(t, "docker://127.0.0.1:5000/team/app@"+dig), dig, "x", time.Now()); err == nil {
		t.Error("a payload for a reference by digest: no error")
	}

	dir := t.TempDir()
	base := "file://" + dir
	for i, sig := range []string{"one", "two"} {
		f, err := Store(base, ref, dig, []byte(sig))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, "team/app@sha256="+strings.TrimPrefix(dig, "sha256:"), fmt.Sprintf("signature-%d", i+1)); f != want {
			t.Errorf("stored at %s, want %s", f, want)
		}
		got, ok, err := Signature(context.Background(), nil, base, ref, dig, i+1)
		if err != nil || !ok || string(got) != sig {
			t.Errorf("signature-%d read back: %q %v %v", i+1, got, ok, err)
		}
	}
	// A symlink where the next one goes is not written through.
	sigDir := filepath.Join(dir, "team/app@sha256="+strings.TrimPrefix(dig, "sha256:"))
	os.Symlink("/etc/passwd", filepath.Join(sigDir, "signature-3"))
	if _, err := Store(base, ref, dig, []byte("three")); err == nil {
		t.Error("stored through a symlink")
	}
	for _, bad := range []string{"https://s.example/x", "file://relative", ""} {
		if _, err := Store(bad, ref, dig, []byte("x")); err == nil || !errors.Is(err, ErrBadConfig) {
			t.Errorf("Store to %q: %v, want ErrBadConfig", bad, err)
		}
	}
}
