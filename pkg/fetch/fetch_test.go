package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/store"
	"github.com/skiffpod/skiff/pkg/trust"
)

// fakeStore keeps images in memory. Like the real store, it refuses an
// image whose manifest name is not ExpectName.
type fakeStore struct {
	mu      sync.Mutex
	images  map[string]storedImage
	remotes map[string]store.RemoteRecord
	imports int
	// beforeImport, if set, runs when Import is called, before it reads.
	beforeImport func()
}

type storedImage struct {
	man    *schema.ImageManifest
	name   string
	labels map[string]string
	opts   store.ImportOptions
}

func newFakeStore() *fakeStore {
	return &fakeStore{images: map[string]storedImage{}, remotes: map[string]store.RemoteRecord{}}
}

func (s *fakeStore) Import(_ context.Context, r io.Reader, opts store.ImportOptions) (string, error) {
	if s.beforeImport != nil {
		s.beforeImport()
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	m, err := readManifest(bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	if m.Name.String() != opts.ExpectName {
		return "", fmt.Errorf("name %q, expected %q", m.Name, opts.ExpectName)
	}
	labels := map[string]string{}
	for _, l := range m.Labels {
		labels[l.Name.String()] = l.Value
	}
	id := fmt.Sprintf("sha512-%x", sha512.Sum512(b))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.images[id] = storedImage{man: m, name: m.Name.String(), labels: labels, opts: opts}
	s.imports++
	return id, nil
}

func (s *fakeStore) FindByName(name string, labels map[string]string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for id, img := range s.images {
		if img.name != name {
			continue
		}
		for k, v := range labels {
			if got, ok := img.labels[k]; ok && got != v {
				continue next
			}
		}
		return id, true, nil
	}
	return "", false, nil
}

func (s *fakeStore) Remote(url string) (store.RemoteRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.remotes[url]
	return rec, ok, nil
}

func (s *fakeStore) SetRemote(url string, rec store.RemoteRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remotes[url] = rec
	return nil
}

func (s *fakeStore) Manifest(id string) (*schema.ImageManifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, ok := s.images[id]
	if !ok {
		return nil, fmt.Errorf("image %s: %w", id, store.ErrNotFound)
	}
	return img.man, nil
}

var _ Store = (*fakeStore)(nil)

// makeACI builds a tiny gzipped ACI: a manifest and a rootfs with one file.
func makeACI(t *testing.T, name string, labels map[string]string) []byte {
	t.Helper()
	return makeACIDeps(t, name, labels, nil)
}

// makeACIDeps is makeACI with appc dependencies in the manifest.
func makeACIDeps(t *testing.T, name string, labels map[string]string, deps []map[string]any) []byte {
	t.Helper()
	type label struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	man := map[string]any{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name}
	var ls []label
	for k, v := range labels {
		ls = append(ls, label{k, v})
	}
	man["labels"] = ls
	if deps != nil {
		man["dependencies"] = deps
	}
	mb, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name string
		body []byte
	}{{"manifest", mb}, {"rootfs/", nil}, {"rootfs/hello", []byte(name + "\n")}} {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

func newKey(t *testing.T, name string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sign(t *testing.T, e *openpgp.Entity, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, e, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pubKey(t *testing.T, e *openpgp.Entity) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// keys returns a keystore trusting app for example.com/app, apple for
// example.com/apple and root for everything; stranger is trusted nowhere.
type testKeys struct {
	ks                         *trust.Keystore
	app, apple, root, stranger *openpgp.Entity
}

func newTestKeys(t *testing.T) testKeys {
	t.Helper()
	k := testKeys{ks: trust.Open(t.TempDir()), app: newKey(t, "app"), apple: newKey(t, "apple"),
		root: newKey(t, "root"), stranger: newKey(t, "stranger")}
	for prefix, e := range map[string]*openpgp.Entity{"example.com/app": k.app, "example.com/apple": k.apple} {
		if _, err := k.ks.Add(prefix, pubKey(t, e)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := k.ks.AddRoot(pubKey(t, k.root)); err != nil {
		t.Fatal(err)
	}
	return k
}

// server serves files by path with ETags and discovery pages for any
// host; it logs every request.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	pages map[string]string // host+path -> HTML
	log   []string
}

func newServer(t *testing.T, useTLS bool) *server {
	t.Helper()
	s := &server{files: map[string][]byte{}, pages: map[string]string{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.log = append(s.log, fmt.Sprintf("%s%s inm=%s", r.Host, r.URL.Path, r.Header.Get("If-None-Match")))
		if r.URL.Query().Get("ac-discovery") == "1" {
			page, ok := s.pages[r.Host+r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, page)
			return
		}
		b, ok := s.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		etag := fmt.Sprintf(`"%x"`, sha256.Sum256(b))
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(b)
	})
	if useTLS {
		s.Server = httptest.NewTLSServer(h)
	} else {
		s.Server = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *server) put(path string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = b
}

func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// client sends every host to the server; the httptest certificate is
// valid for example.com, so discovery of example.com names works over TLS.
func (s *server) client() *http.Client {
	tr := s.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, s.Listener.Addr().String())
	}
	return &http.Client{Transport: tr}
}

func newFetcher(t *testing.T, keys *trust.Keystore, srv *server) (*Fetcher, *fakeStore) {
	t.Helper()
	st := newFakeStore()
	tmp := t.TempDir()
	t.Cleanup(func() {
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Errorf("temp files left behind: %v", ents)
		}
	})
	f := &Fetcher{Store: st, Keys: keys, TmpDir: tmp}
	if srv != nil {
		f.Client = srv.client()
	}
	return f, st
}

func TestVerification(t *testing.T) {
	k := newTestKeys(t)
	app := makeACI(t, "example.com/app", nil)
	apple := makeACI(t, "example.com/apple", nil)
	other := makeACI(t, "example.com/other", nil)
	tests := []struct {
		name       string
		ref        string // "file" or "name"
		image      []byte
		sig        []byte // nil: no .asc at all
		insecure   bool
		wantErr    error
		wantIn     string
		wantSigner *openpgp.Entity
		wantPrefix string // the prefix the signer is trusted for
	}{
		{name: "key trusted for exact prefix", ref: "file", image: app, sig: sign(t, k.app, app), wantSigner: k.app, wantPrefix: "example.com/app"},
		{name: "root key", ref: "file", image: other, sig: sign(t, k.root, other), wantSigner: k.root},
		{name: "root key by name", ref: "name", image: app, sig: sign(t, k.root, app), wantSigner: k.root},
		{name: "untrusted key", ref: "file", image: app, sig: sign(t, k.stranger, app), wantErr: trust.ErrUntrusted, wantIn: "skiff trust"},
		{name: "apple key for app", ref: "file", image: app, sig: sign(t, k.apple, app), wantErr: trust.ErrUntrusted},
		{name: "app key for apple", ref: "file", image: apple, sig: sign(t, k.app, apple), wantErr: trust.ErrUntrusted},
		{name: "manifest name not asked name", ref: "name", image: other, sig: sign(t, k.root, other), wantErr: ErrMismatch},
		{name: "missing .asc", ref: "file", image: app, wantErr: trust.ErrNoSignature, wantIn: "--insecure-options=image"},
		{name: "missing .asc by name", ref: "name", image: app, wantErr: trust.ErrNoSignature, wantIn: "skiff trust"},
		{name: "corrupted image", ref: "file", image: append(bytes.Clone(app), 0), sig: sign(t, k.app, app), wantErr: trust.ErrBadSignature},
		{name: "insecure image skips verification", ref: "file", image: app, insecure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, true)
			f, st := newFetcher(t, k.ks, srv)
			f.InsecureImage = tt.insecure
			ref := "example.com/app"
			if tt.ref == "file" {
				ref = filepath.Join(t.TempDir(), "img.aci")
				os.WriteFile(ref, tt.image, 0o644)
				if tt.sig != nil {
					os.WriteFile(ref+".asc", tt.sig, 0o644)
				}
			} else {
				srv.pages["example.com/app"] = `<meta name="ac-discovery" content="example.com https://example.com/{name}.{ext}">`
				srv.put("/example.com/app.aci", tt.image)
				if tt.sig != nil {
					srv.put("/example.com/app.aci.asc", tt.sig)
				}
			}
			id, err := f.Fetch(context.Background(), ref, "")
			if !errors.Is(err, tt.wantErr) || (err != nil && !strings.Contains(err.Error(), tt.wantIn)) {
				t.Fatalf("Fetch() error = %v, want %v mentioning %q", err, tt.wantErr, tt.wantIn)
			}
			if err != nil {
				if st.imports != 0 {
					t.Errorf("image imported despite %v", err)
				}
				return
			}
			wantSigner := ""
			if tt.wantSigner != nil {
				wantSigner = fmt.Sprintf("%x", tt.wantSigner.PrimaryKey.Fingerprint)
			}
			if got := st.images[id].opts.Signer; got != wantSigner {
				t.Errorf("Signer = %q, want %q", got, wantSigner)
			}
			if got := st.images[id].opts.Prefix; got != tt.wantPrefix {
				t.Errorf("Prefix = %q, want %q", got, tt.wantPrefix)
			}
		})
	}
}

func TestIsPath(t *testing.T) {
	tests := []struct {
		ref  string
		want bool
	}{
		{"/abs/img.aci", true},
		{"/abs/img", true},
		{"./img", true},
		{"../img", true},
		{"img.aci", true},
		{"bin/images/busybox.aci", true},
		{"example.com/app", false},
		{"example.com/app:1.0", false},
		{"example.com/app,version=1.0", false},
		{"busybox", false},
		{"skiff.local/busybox", false},
		{"img.aci.asc", false},
		{"sha512-0123456789ab", false},
		{"https://example.com/app.aci", false},
		{"docker://example.com/app.aci", false},
	}
	for _, tt := range tests {
		if got := IsPath(tt.ref); got != tt.want {
			t.Errorf("IsPath(%q) = %v, want %v", tt.ref, got, tt.want)
		}
	}
}

// TestNameNotFile checks that a bare name is an appc name even when the
// current directory holds a file of that name: the file must not replace
// the image discovery (or the store) finds.
func TestNameNotFile(t *testing.T) {
	k := newTestKeys(t)
	app := makeACI(t, "example.com/app", nil)
	evil := makeACI(t, "example.com/app", map[string]string{"evil": "1"})
	srv := newServer(t, true)
	srv.pages["example.com/app"] = `<meta name="ac-discovery" content="example.com https://example.com/{name}.{ext}">`
	srv.put("/example.com/app.aci", app)
	srv.put("/example.com/app.aci.asc", sign(t, k.app, app))
	cwd := t.TempDir()
	os.MkdirAll(filepath.Join(cwd, "example.com"), 0o755)
	os.WriteFile(filepath.Join(cwd, "example.com", "app"), evil, 0o644)
	os.WriteFile(filepath.Join(cwd, "example.com", "app.asc"), sign(t, k.app, evil), 0o644)
	t.Chdir(cwd)
	f, st := newFetcher(t, k.ks, srv)
	id, err := f.Fetch(context.Background(), "example.com/app", "")
	if err != nil {
		t.Fatal(err)
	}
	if img := st.images[id]; img.labels["evil"] != "" || !strings.HasPrefix(img.opts.Source, "https://") {
		t.Errorf("fetched %+v, want the discovered image, not the file in the cwd", img)
	}
}

func TestExplicitSignature(t *testing.T) {
	k := newTestKeys(t)
	app := makeACI(t, "example.com/app", nil)
	dir := t.TempDir()
	img, sig := filepath.Join(dir, "img.aci"), filepath.Join(dir, "elsewhere.sig")
	os.WriteFile(img, app, 0o644)
	os.WriteFile(sig, sign(t, k.app, app), 0o644)
	f, _ := newFetcher(t, k.ks, nil)
	if _, err := f.Fetch(context.Background(), img, sig); err != nil {
		t.Fatal(err)
	}
}

func TestDownload(t *testing.T) {
	k := newTestKeys(t)
	app := makeACI(t, "example.com/app", map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"})
	tests := []struct {
		name         string
		tls          bool
		insecureHTTP bool
		ref          string // %s is the server URL
		setup        func(s *server)
		wantErr      error
		wantIn       string
		wantPath     string // a request the server must have seen
	}{
		{name: "https", tls: true, ref: "%s/app.aci", wantPath: "/app.aci"},
		{name: "plain http allowed", insecureHTTP: true, ref: "%s/app.aci", wantPath: "/app.aci"},
		{name: "plain http refused", ref: "%s/app.aci", wantErr: ErrInsecureHTTP},
		{name: "404", tls: true, ref: "%s/missing.aci", wantIn: "404 Not Found",
			setup: func(s *server) { s.put("/missing.aci.asc", sign(t, k.app, app)) }},
		{name: "bad content", tls: true, ref: "%s/page.aci", wantErr: ErrNotACI, setup: func(s *server) {
			page := []byte("<html>not an image</html>")
			s.put("/page.aci", page)
			s.put("/page.aci.asc", sign(t, k.root, page))
		}},
		{name: "discovery with labels", tls: true, ref: "example.com/app:1.0", wantPath: "example.com/images/example.com/app-1.0-linux-amd64.aci"},
		{name: "discovery label mismatch", tls: true, ref: "example.com/app:2.0", wantErr: ErrMismatch, setup: func(s *server) {
			s.put("/images/example.com/app-2.0-linux-amd64.aci", app)
			s.put("/images/example.com/app-2.0-linux-amd64.aci.asc", sign(t, k.app, app))
		}},
		{name: "discovery finds nothing", tls: true, ref: "example.com/nothing", wantIn: "no ac-discovery template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.tls)
			srv.put("/app.aci", app)
			srv.put("/app.aci.asc", sign(t, k.app, app))
			srv.put("/images/example.com/app-1.0-linux-amd64.aci", app)
			srv.put("/images/example.com/app-1.0-linux-amd64.aci.asc", sign(t, k.app, app))
			srv.pages["example.com/app"] = `<meta name="ac-discovery" content="example.com/app https://example.com/images/{name}-{version}-{os}-{arch}.{ext}">`
			if tt.setup != nil {
				tt.setup(srv)
			}
			f, st := newFetcher(t, k.ks, srv)
			f.InsecureHTTP = tt.insecureHTTP
			var progress bytes.Buffer
			f.Progress = &progress
			ref := tt.ref
			if strings.Contains(ref, "%s") {
				ref = fmt.Sprintf(ref, srv.URL)
			}
			id, err := f.Fetch(context.Background(), ref, "")
			if tt.wantErr != nil || tt.wantIn != "" {
				if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantIn) {
					t.Fatalf("Fetch() error = %v, want %v mentioning %q", err, tt.wantErr, tt.wantIn)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.images[id].name != "example.com/app" {
				t.Errorf("imported %+v", st.images[id])
			}
			if !strings.Contains(strings.Join(srv.requests(), "\n"), tt.wantPath) {
				t.Errorf("server saw %q, want a request for %s", srv.requests(), tt.wantPath)
			}
			if !strings.HasPrefix(progress.String(), "Downloading ") || strings.Count(progress.String(), "\n") != 1 {
				t.Errorf("progress output %q, want one Downloading line", progress.String())
			}
		})
	}
}

func TestPolicies(t *testing.T) {
	k := newTestKeys(t)
	v1 := makeACI(t, "example.com/app", map[string]string{"version": "1"})
	v2 := makeACI(t, "example.com/app", map[string]string{"version": "2"})
	ctx := context.Background()

	srv := newServer(t, true)
	f, st := newFetcher(t, k.ks, srv)
	url := srv.URL + "/app.aci"
	publish := func(b []byte) {
		srv.put("/app.aci", b)
		srv.put("/app.aci.asc", sign(t, k.app, b))
	}
	fetch := func(p Policy, ref string) (string, []string, error) {
		t.Helper()
		f.Policy = p
		before := len(srv.requests())
		id, err := f.Fetch(ctx, ref, "")
		return id, srv.requests()[before:], err
	}

	publish(v1)
	if _, reqs, err := fetch(PolicyNever, url); !errors.Is(err, ErrNotInStore) || len(reqs) != 0 {
		t.Fatalf("never, empty store: err %v, requests %q; want ErrNotInStore, none", err, reqs)
	}
	if _, reqs, err := fetch(PolicyNever, "example.com/app"); !errors.Is(err, ErrNotInStore) || len(reqs) != 0 {
		t.Fatalf("never by name, empty store: err %v, requests %q; want ErrNotInStore, none", err, reqs)
	}
	id1, _, err := fetch(PolicyNew, url)
	if err != nil {
		t.Fatal(err)
	}
	if rec := st.remotes[url]; rec.ID != id1 || rec.ETag == "" {
		t.Fatalf("remote record %+v, want image %s and an ETag", rec, id1)
	}

	tests := []struct {
		name       string
		policy     Policy
		ref        string
		publish    []byte
		wantID     *string
		wantReqs   int
		wantINM    bool // a conditional request was made
		wantImport int
	}{
		{name: "new, in store by URL", policy: PolicyNew, ref: url, wantID: &id1},
		{name: "new, in store by name", policy: PolicyNew, ref: "example.com/app", wantID: &id1},
		{name: "never, in store", policy: PolicyNever, ref: url, wantID: &id1},
		{name: "update, unchanged", policy: PolicyUpdate, ref: url, wantID: &id1, wantReqs: 2, wantINM: true},
		{name: "update, changed", policy: PolicyUpdate, ref: url, publish: v2, wantReqs: 2, wantINM: true, wantImport: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.publish != nil {
				publish(tt.publish)
			}
			imports := st.imports
			id, reqs, err := fetch(tt.policy, tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantID != nil && id != *tt.wantID {
				t.Errorf("id = %s, want %s", id, *tt.wantID)
			}
			if tt.wantID == nil && id == id1 {
				t.Errorf("id = %s, want a new image", id)
			}
			if len(reqs) != tt.wantReqs {
				t.Errorf("requests %q, want %d", reqs, tt.wantReqs)
			}
			if got := strings.Contains(strings.Join(reqs, "\n"), `inm="`); got != tt.wantINM {
				t.Errorf("requests %q, conditional = %v, want %v", reqs, got, tt.wantINM)
			}
			if st.imports-imports != tt.wantImport {
				t.Errorf("imports = %d, want %d", st.imports-imports, tt.wantImport)
			}
			if rec := st.remotes[url]; rec.ID != id || time.Since(rec.FetchedAt) > time.Minute {
				t.Errorf("remote record %+v, want image %s", rec, id)
			}
		})
	}
}

// TestReuse: an image in the store that Reuse refuses (one fetched without
// verification, for a verifying fetch) is fetched and verified again, by
// name and by URL, never returned as it is.
func TestReuse(t *testing.T) {
	k := newTestKeys(t)
	app := makeACI(t, "example.com/app", nil)
	ctx := context.Background()
	errNo := errors.New("stored copy refused")
	for _, by := range []string{"name", "url"} {
		t.Run(by, func(t *testing.T) {
			srv := newServer(t, true)
			srv.pages["example.com/app"] = `<meta name="ac-discovery" content="example.com ` + srv.URL + `/{name}.{ext}">`
			srv.put("/example.com/app.aci", app)
			f, st := newFetcher(t, k.ks, srv)
			ref := "example.com/app"
			if by == "url" {
				ref = srv.URL + "/example.com/app.aci"
			}
			f.InsecureImage = true
			id, err := f.Fetch(ctx, ref, "")
			if err != nil {
				t.Fatal(err)
			}
			f.InsecureImage = false
			f.Reuse = func(got string) error {
				if got != id {
					t.Errorf("Reuse(%s), want %s", got, id)
				}
				return errNo
			}

			// Never: the refusal, and nothing downloaded.
			f.Policy = PolicyNever
			before := len(srv.requests())
			if _, err := f.Fetch(ctx, ref, ""); !errors.Is(err, errNo) || len(srv.requests()) != before {
				t.Errorf("never: %v, %d requests; want the refusal and none", err, len(srv.requests())-before)
			}

			// No signature published: the fetch fails, naming the refusal
			// first, and the stored copy is not returned.
			f.Policy = PolicyNew
			if _, err := f.Fetch(ctx, ref, ""); !errors.Is(err, errNo) || !errors.Is(err, trust.ErrNoSignature) ||
				!strings.HasPrefix(err.Error(), "fetch "+ref+": stored copy refused (and fetching it again failed: ") {
				t.Errorf("unsigned: %v, want the refusal then the missing signature", err)
			}

			// Signed: downloaded in full (not "changed since?") and verified.
			srv.put("/example.com/app.aci.asc", sign(t, k.app, app))
			imports := st.imports
			before = len(srv.requests())
			got, err := f.Fetch(ctx, ref, "")
			if err != nil {
				t.Fatal(err)
			}
			reqs := strings.Join(srv.requests()[before:], "\n")
			if got != id || st.imports != imports+1 || st.images[id].opts.Signer == "" || strings.Contains(reqs, `inm="`) {
				t.Errorf("signed: id %s (want %s), %d imports, signer %q, requests %q", got, id, st.imports-imports, st.images[id].opts.Signer, reqs)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Policy
		err  bool
	}{{"new", PolicyNew, false}, {"update", PolicyUpdate, false}, {"never", PolicyNever, false}, {"always", 0, true}} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePolicy(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("ParsePolicy(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

// openPTY returns both ends of a fresh pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to draw a progress bar on: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	// A fresh pty is 0 columns wide, where mpb draws nothing.
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80}); err != nil {
		t.Fatal(err)
	}
	return master, slave
}

func TestProgressBarOnTerminal(t *testing.T) {
	k := newTestKeys(t)
	app := makeACI(t, "example.com/app", nil)
	srv := newServer(t, true)
	srv.put("/app.aci", app)
	srv.put("/app.aci.asc", sign(t, k.app, app))
	f, _ := newFetcher(t, k.ks, srv)
	master, slave := openPTY(t)
	f.Progress = slave
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(master) // until the slave closes (EIO)
		out <- string(b)
	}()
	_, err := f.Fetch(context.Background(), srv.URL+"/app.aci", "")
	slave.Close()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-out:
		want := fmt.Sprintf("] %d.0 b / %d.0 b", len(app), len(app))
		if !strings.Contains(got, want) {
			t.Errorf("terminal shows %q, want a bar ending with %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no progress bar drawn on the terminal")
	}
}

// TestFileReuse checks that an unchanged, verified file is not read again,
// and that a changed file, --pull-policy=update or an unverified earlier
// import make it read (and verified) again.
func TestFileReuse(t *testing.T) {
	k := newTestKeys(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.aci")
	write := func(img []byte) {
		t.Helper()
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".asc", sign(t, k.app, img), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app := makeACI(t, "example.com/app", nil)
	write(app)
	f, st := newFetcher(t, k.ks, nil)
	fetch := func(wantImports int) {
		t.Helper()
		if _, err := f.Fetch(context.Background(), path, ""); err != nil {
			t.Fatal(err)
		}
		if st.imports != wantImports {
			t.Errorf("imports = %d, want %d", st.imports, wantImports)
		}
	}
	fetch(1)
	fetch(1) // unchanged: reused
	f.Policy = PolicyUpdate
	fetch(2) // update reads it again
	f.Policy = PolicyNew
	write(makeACI(t, "example.com/app", map[string]string{"version": "2"}))
	fetch(3) // changed file
	os.WriteFile(path+".asc", []byte("garbage"), 0o644)
	fetch(3) // still the verified, unchanged image
	f.Reuse = func(string) error { return errors.New("no longer trusted") }
	if _, err := f.Fetch(context.Background(), path, ""); !errors.Is(err, trust.ErrBadSignature) {
		t.Errorf("refused by Reuse: err = %v, want the file verified again (and its garbage signature refused)", err)
	}
	f.Reuse = nil

	// An insecure import is not reused by a verifying fetch.
	f2, _ := newFetcher(t, k.ks, nil)
	f2.Store = st
	f2.InsecureImage = true
	other := filepath.Join(dir, "other.aci")
	os.WriteFile(other, makeACI(t, "example.com/other", nil), 0o644)
	if _, err := f2.Fetch(context.Background(), other, ""); err != nil {
		t.Fatal(err)
	}
	f.Store = st
	if _, err := f.Fetch(context.Background(), other, ""); !errors.Is(err, trust.ErrNoSignature) {
		t.Errorf("verifying fetch of an insecurely imported file: err = %v, want a missing signature", err)
	}
}

// TestFileRewrittenAfterVerify checks that the bytes imported from a local
// file are the bytes whose signature was checked, even when the file's
// owner rewrites it between the check and the import, and that a FIFO as
// the image or its signature fails at once.
func TestFileRewrittenAfterVerify(t *testing.T) {
	k := newTestKeys(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.aci")
	signed := makeACI(t, "example.com/app", nil)
	if err := os.WriteFile(path, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".asc", sign(t, k.app, signed), 0o644); err != nil {
		t.Fatal(err)
	}
	f, st := newFetcher(t, k.ks, nil)
	st.beforeImport = func() { // the owner's write, after the check
		os.WriteFile(path, makeACI(t, "example.com/app", map[string]string{"version": "evil"}), 0o644)
	}
	id, err := f.Fetch(context.Background(), path, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("sha512-%x", sha512.Sum512(signed)); id != want {
		t.Errorf("imported %s, want the signed image %s", id, want)
	}
	if img := st.images[id]; img.labels["version"] == "evil" {
		t.Errorf("the rewritten, unsigned image was imported as signed by %s", img.opts.Signer)
	}

	for _, fifo := range []string{"image", "signature"} {
		t.Run("fifo "+fifo, func(t *testing.T) {
			d := t.TempDir()
			img, sig := filepath.Join(d, "a.aci"), filepath.Join(d, "a.aci.asc")
			os.WriteFile(img, signed, 0o644)
			os.WriteFile(sig, sign(t, k.app, signed), 0o644)
			p := map[string]string{"image": img, "signature": sig}[fifo]
			os.Remove(p)
			if err := unix.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			f, _ := newFetcher(t, k.ks, nil)
			done := make(chan error, 1)
			go func() { _, err := f.Fetch(context.Background(), img, ""); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, safefile.ErrNotRegular) {
					t.Errorf("err = %v, want %v", err, safefile.ErrNotRegular)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("fetch blocked on a FIFO")
			}
		})
	}
}

// TestFetchDependencies: the dependencies of a fetched image that the
// store lacks are fetched by name (discovery) and verified, theirs too; a
// dependency pinned by image ID must be that image; one that cannot be
// found fails the fetch, naming it.
func TestFetchDependencies(t *testing.T) {
	k := newTestKeys(t)
	lib := makeACI(t, "example.com/lib", map[string]string{"version": "1"})
	libID := fmt.Sprintf("sha512-%x", sha512.Sum512(lib))
	base := makeACIDeps(t, "example.com/base", nil, []map[string]any{{"imageName": "example.com/lib", "imageID": libID, "labels": []map[string]string{{"name": "version", "value": "1"}}}})
	app := makeACIDeps(t, "example.com/app", nil, []map[string]any{{"imageName": "example.com/base"}})
	badPin := makeACIDeps(t, "example.com/badpin", nil, []map[string]any{{"imageName": "example.com/lib", "imageID": "sha512-" + strings.Repeat("0", 128)}})
	missing := makeACIDeps(t, "example.com/missing", nil, []map[string]any{{"imageName": "example.com/gone"}})
	srv := newServer(t, true)
	for _, p := range []string{"example.com", "example.com/"} {
		srv.pages[p] = `<meta name="ac-discovery" content="example.com https://example.com/{name}.{ext}">`
	}
	for name, b := range map[string][]byte{"lib": lib, "base": base, "app": app, "badpin": badPin, "missing": missing} {
		srv.put("/example.com/"+name+".aci", b)
		srv.put("/example.com/"+name+".aci.asc", sign(t, k.root, b))
	}
	for _, tt := range []struct {
		ref     string
		want    []string // names in the store afterwards
		wantErr string
	}{
		{"example.com/app", []string{"example.com/app", "example.com/base", "example.com/lib"}, ""},
		{"example.com/badpin", nil, "want the image ID sha512-000"},
		{"example.com/missing", nil, "dependency example.com/gone of example.com/missing"},
	} {
		t.Run(tt.ref, func(t *testing.T) {
			f, st := newFetcher(t, k.ks, srv)
			_, err := f.Fetch(context.Background(), tt.ref, "")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Fetch = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, img := range st.images {
				names = append(names, img.name)
			}
			slices.Sort(names)
			if !slices.Equal(names, tt.want) {
				t.Errorf("store holds %q, want %q", names, tt.want)
			}
			// Fetched again, nothing is downloaded: every dependency is there.
			before := len(srv.requests())
			if _, err := f.Fetch(context.Background(), tt.ref, ""); err != nil {
				t.Fatal(err)
			}
			if got := srv.requests()[before:]; len(got) != 0 {
				t.Errorf("a second fetch downloaded %q", got)
			}
		})
	}
}

// TestPlatformLabels: a name reference asks discovery and the store for
// the platform's os and arch, in appc's names.
func TestPlatformLabels(t *testing.T) {
	host := platformLabels("")
	if host["os"] != runtime.GOOS || host["arch"] == "" {
		t.Errorf("host labels %v", host)
	}
	for _, tt := range []struct{ platform, os, arch string }{
		{"linux/amd64", "linux", "amd64"},
		{"linux/arm64", "linux", "aarch64"},
		{"linux/386", "linux", "i386"},
		{"linux/arm/v6", "linux", "armv6l"},
		{"linux/arm", "linux", "armv7l"},
		{"linux/riscv64", "linux", "riscv64"}, // appc has no name: Go's
	} {
		if got := platformLabels(tt.platform); got["os"] != tt.os || got["arch"] != tt.arch {
			t.Errorf("platformLabels(%q) = %v, want %s/%s", tt.platform, got, tt.os, tt.arch)
		}
	}
}
