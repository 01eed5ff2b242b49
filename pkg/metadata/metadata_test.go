package metadata

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffpod/skiff/pkg/pod"
)

const (
	testUUID = "6f3b1c2e-8f0a-4d9e-9a51-3c0f7f1b2a44"
	testID   = "sha512-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

var testPod = `{"acVersion":"0.8.11","acKind":"PodManifest",
 "apps":[
  {"name":"web","image":{"name":"example.com/web","id":"` + testID + `"},
   "annotations":[{"name":"y","value":"pod"},{"name":"z","value":"pod"}]},
  {"name":"bare","image":{"name":"example.com/bare","id":"` + testID + `"}}],
 "volumes":null,"isolators":null,
 "annotations":[{"name":"owner","value":"alice"}],"ports":null}`

var testImages = map[string][]byte{
	"web":  []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/web","annotations":[{"name":"x","value":"img"},{"name":"y","value":"img"}]}`),
	"bare": []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/bare"}`),
}

func newTest(t *testing.T) *Service {
	t.Helper()
	s, err := New(testUUID, []byte(testPod), testImages)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// do sends one request to s; form, if not nil, is POSTed.
func do(s *Service, method, path string, form url.Values) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, path, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestEndpoints(t *testing.T) {
	s := newTest(t)
	base := "/" + s.token + Prefix
	tests := []struct {
		name, method, path string
		code               int
		typ, body          string
	}{
		{"pod manifest", "GET", base + "/pod/manifest", 200, typeJSON, testPod},
		{"pod uuid", "GET", base + "/pod/uuid", 200, typeText, testUUID},
		{"pod annotations", "GET", base + "/pod/annotations", 200, typeJSON, `[{"name":"owner","value":"alice"}]`},
		{"app annotations merged, pod's win", "GET", base + "/apps/web/annotations", 200, typeJSON,
			`[{"name":"x","value":"img"},{"name":"y","value":"pod"},{"name":"z","value":"pod"}]`},
		{"app without annotations", "GET", base + "/apps/bare/annotations", 200, typeJSON, `[]`},
		{"image manifest as stored", "GET", base + "/apps/web/image/manifest", 200, typeJSON, string(testImages["web"])},
		{"image id", "GET", base + "/apps/web/image/id", 200, typeText, testID},
		{"unknown app", "GET", base + "/apps/nope/image/id", 404, "", ""},
		{"unknown app entry", "GET", base + "/apps/web/image", 404, "", ""},
		{"unknown pod entry", "GET", base + "/pod/secret", 404, "", ""},
		{"no version", "GET", "/" + s.token + "/acMetadata/pod/uuid", 404, "", ""},
		{"wrong token", "GET", "/" + strings.Repeat("0", 32) + Prefix + "/pod/uuid", 404, "", ""},
		{"token prefix", "GET", "/" + s.token[:31] + Prefix + "/pod/uuid", 404, "", ""},
		{"no token", "GET", Prefix + "/pod/uuid", 404, "", ""},
		{"post to a get endpoint", "POST", base + "/pod/uuid", 405, "", ""},
		{"get sign", "GET", base + "/pod/hmac/sign", 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(s, tt.method, tt.path, nil)
			if w.Code != tt.code {
				t.Fatalf("%s %s: code %d, want %d (%s)", tt.method, tt.path, w.Code, tt.code, w.Body)
			}
			if tt.code != 200 {
				if strings.Contains(w.Body.String(), "alice") || strings.Contains(w.Body.String(), testUUID) {
					t.Errorf("error answer leaks pod data: %q", w.Body)
				}
				return
			}
			if got := w.Header().Get("Content-Type"); got != tt.typ {
				t.Errorf("Content-Type %q, want %q", got, tt.typ)
			}
			if got := w.Body.String(); got != tt.body {
				t.Errorf("body\n%s\nwant\n%s", got, tt.body)
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	s := newTest(t)
	other := newTest(t) // the same pod's data, another key
	if s.token == other.token {
		t.Fatal("two services got the same token")
	}
	sign := func(s *Service, content string) string {
		t.Helper()
		w := do(s, "POST", "/"+s.token+Prefix+"/pod/hmac/sign", url.Values{"content": {content}})
		if w.Code != 200 || w.Header().Get("Content-Type") != typeText {
			t.Fatalf("sign: %d %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		return w.Body.String()
	}
	sig := sign(s, "Old MacDonald")
	if again := sign(s, "Old MacDonald"); again != sig {
		t.Errorf("same content signed twice: %q, %q", sig, again)
	}
	if sig == sign(other, "Old MacDonald") {
		t.Errorf("two pods' keys give the same signature")
	}
	tests := []struct {
		name string
		form url.Values
		code int
	}{
		{"own signature", url.Values{"content": {"Old MacDonald"}, "uuid": {testUUID}, "signature": {sig}}, 200},
		{"uuid in upper case", url.Values{"content": {"Old MacDonald"}, "uuid": {strings.ToUpper(testUUID)}, "signature": {sig}}, 200},
		{"other content", url.Values{"content": {"Old McDonald"}, "uuid": {testUUID}, "signature": {sig}}, 403},
		{"other pod's uuid", url.Values{"content": {"Old MacDonald"}, "uuid": {"11111111-2222-3333-4444-555555555555"}, "signature": {sig}}, 403},
		{"other key's signature", url.Values{"content": {"Old MacDonald"}, "uuid": {testUUID}, "signature": {sign(other, "Old MacDonald")}}, 403},
		{"empty signature", url.Values{"content": {"Old MacDonald"}, "uuid": {testUUID}, "signature": {""}}, 403},
		{"signature not base64", url.Values{"content": {"Old MacDonald"}, "uuid": {testUUID}, "signature": {"!!"}}, 400},
		{"bad uuid", url.Values{"content": {"Old MacDonald"}, "uuid": {"pod"}, "signature": {sig}}, 400},
		{"no content", url.Values{"uuid": {testUUID}, "signature": {sig}}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(s, "POST", "/"+s.token+Prefix+"/pod/hmac/verify", tt.form)
			if w.Code != tt.code {
				t.Errorf("verify: code %d, want %d (%s)", w.Code, tt.code, w.Body)
			}
		})
	}
	if w := do(s, "POST", "/"+s.token+Prefix+"/pod/hmac/sign", url.Values{}); w.Code != 400 {
		t.Errorf("sign without content: code %d, want 400", w.Code)
	}
	if w := do(s, "POST", "/"+other.token+Prefix+"/pod/hmac/sign", url.Values{"content": {"x"}}); w.Code != 404 {
		t.Errorf("sign with another pod's token: code %d, want 404", w.Code)
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name, uuid, pod string
		images          map[string][]byte
	}{
		{"bad uuid", "nope", testPod, testImages},
		{"bad pod manifest", testUUID, "{", testImages},
		{"app without image manifest", testUUID, testPod, map[string][]byte{"web": testImages["web"]}},
		{"bad image manifest", testUUID, testPod, map[string][]byte{"web": []byte("["), "bare": testImages["bare"]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.uuid, []byte(tt.pod), tt.images); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func TestServe(t *testing.T) {
	s := newTest(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	u := s.URL(l.Addr().String())
	if !strings.HasPrefix(u, "http://127.0.0.1:") || len(strings.TrimPrefix(u[len("http://"):], l.Addr().String()+"/")) != 32 {
		t.Errorf("URL %q: want http://ADDR/ and a 128-bit hex token", u)
	}
	resp, err := http.Get(u + Prefix + "/pod/uuid")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != testUUID {
		t.Errorf("GET uuid: %d %q", resp.StatusCode, b)
	}
	l.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
}

func TestForPod(t *testing.T) {
	dir := t.TempDir()
	write := func(p string, b []byte) {
		t.Helper()
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(pod.ManifestFile, []byte(testPod))
	write(pod.AppManifest("web"), testImages["web"])
	t.Chdir(dir)
	if _, err := ForPod(testUUID); err == nil {
		t.Error("ForPod without bare's image manifest: no error")
	}
	write(pod.AppManifest("bare"), testImages["bare"])
	s, err := ForPod(testUUID)
	if err != nil {
		t.Fatalf("ForPod: %v", err)
	}
	if w := do(s, "GET", "/"+s.token+Prefix+"/apps/bare/image/manifest", nil); w.Body.String() != string(testImages["bare"]) {
		t.Errorf("bare's image manifest: %q", w.Body)
	}
}

// TestForPodFollows checks that ForPod's service follows the pod manifest
// stage0 replaces (app add, app rm) without reading again what it knew: an
// image manifest of a known app changed on disk afterwards (by the pod) is
// not what it says.
func TestForPodFollows(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		// As stage0 does: a new file renamed into place.
		if err := os.WriteFile(p+".new", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
	}
	write(pod.ManifestFile, []byte(testPod))
	write(pod.AppManifest("web"), testImages["web"])
	write(pod.AppManifest("bare"), testImages["bare"])
	s, err := ForPod(testUUID)
	if err != nil {
		t.Fatalf("ForPod: %v", err)
	}
	get := func(p string) (int, string) {
		w := do(s, "GET", "/"+s.token+Prefix+p, nil)
		return w.Code, w.Body.String()
	}
	added := `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/added"}`
	write(pod.AppManifest("added"), []byte(added))
	write(pod.AppManifest("web"), []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/forged"}`))
	withAdded := strings.Replace(testPod, `"apps":[`, `"apps":[{"name":"added","image":{"name":"example.com/added","id":"`+testID+`"}},`, 1)
	write(pod.ManifestFile, []byte(withAdded))

	steps := []struct {
		name, path string
		code       int
		body       string
	}{
		{"added app's image manifest", "/apps/added/image/manifest", 200, added},
		{"added app's image id", "/apps/added/image/id", 200, testID},
		{"pod manifest as replaced", "/pod/manifest", 200, withAdded},
		{"a known app's manifest is not read again", "/apps/web/image/manifest", 200, string(testImages["web"])},
	}
	for _, st := range steps {
		if code, body := get(st.path); code != st.code || body != st.body {
			t.Errorf("%s: %d %q, want %d %q", st.name, code, body, st.code, st.body)
		}
	}
	// app rm of bare; then a manifest that does not parse keeps the last good one.
	write(pod.ManifestFile, []byte(strings.Replace(withAdded, `,
  {"name":"bare","image":{"name":"example.com/bare","id":"`+testID+`"}}`, "", 1)))
	if code, _ := get("/apps/bare/image/id"); code != 404 {
		t.Errorf("removed app: %d, want 404", code)
	}
	write(pod.ManifestFile, []byte("{"))
	if code, body := get("/apps/added/image/id"); code != 200 || body != testID {
		t.Errorf("after a bad manifest: %d %q, want the last good one", code, body)
	}
}
