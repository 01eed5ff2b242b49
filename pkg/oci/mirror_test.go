package oci

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMirrorGetsOwnCredentials: a mirror that asks for credentials gets
// its own entry of the auth file, never the registry's: a mirror (maybe
// run by someone else) must not learn the upstream password.
func TestMirrorGetsOwnCredentials(t *testing.T) {
	b := newTestLayout(t)
	root := b.build(simpleImage(runtime.GOARCH))
	upstream := reachable(t, func() string { return flakyRegistry(t, b, root, 0, 0) })
	var mu sync.Mutex
	var seen []string
	mirror := reachable(t, func() string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Header.Get("Authorization"))
			mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Basic realm="mirror"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	})
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tt := range []struct {
		name, auths, want string
	}{
		{"no entry for the mirror", fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, upstream, enc("up:secret")), ""},
		{"its own entry", fmt.Sprintf(`{"auths":{%q:{"auth":%q},%q:{"auth":%q}}}`, upstream, enc("up:secret"), mirror, enc("mirror:other")), "Basic " + enc("mirror:other")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			file := filepath.Join(t.TempDir(), "auth.json")
			os.WriteFile(file, []byte(tt.auths), 0o600)
			img, err := open(t, "docker://"+upstream+"/x/y:t", Options{PlainHTTP: true, Timeout: 5 * time.Second, Retries: -1, AuthFiles: []string{file},
				Mirrors: []Mirror{{Host: mirror, Repository: "x/y", PlainHTTP: true}}})
			if err != nil {
				t.Fatalf("Open (falling back to the registry): %v", err)
			}
			if got, err := readAll(t, img); err != nil || got != "a=1 b=22 c=333" {
				t.Errorf("layers %q, %v", got, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 {
				t.Fatal("the mirror was not asked")
			}
			for _, a := range seen {
				if strings.Contains(a, enc("up:secret")) {
					t.Errorf("the mirror got the registry's credentials: %q", a)
				}
			}
			if last := seen[len(seen)-1]; last != tt.want {
				t.Errorf("the mirror's last request had Authorization %q, want %q", last, tt.want)
			}
		})
	}
}
