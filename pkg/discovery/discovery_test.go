package discovery

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		in      string
		want    Ref
		wantErr bool
	}{
		{in: "example.com/app", want: Ref{Name: "example.com/app", Labels: map[string]string{}}},
		{in: "example.com/app:1.0", want: Ref{Name: "example.com/app", Labels: map[string]string{"version": "1.0"}}},
		{in: "example.com/app:1.0,os=linux,arch=amd64", want: Ref{Name: "example.com/app",
			Labels: map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"}}},
		{in: "example.com/app,version=2", want: Ref{Name: "example.com/app", Labels: map[string]string{"version": "2"}}},
		{in: "Example.com/app", wantErr: true},
		{in: "example.com/app:", wantErr: true},
		{in: "example.com/app:1:2", wantErr: true},
		{in: "example.com/app,os", wantErr: true},
		{in: "example.com/app:1,version=2", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRef(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseRef() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRef() = %+v, want %+v", got, tt.want)
			}
			if err != nil && !errors.Is(err, ErrBadRef) {
				t.Errorf("ParseRef() error = %v, want ErrBadRef", err)
			}
		})
	}
}

// serve answers discovery requests for any host from pages (keyed by
// host+path) and returns a client that sends every host to the server;
// the httptest certificate is valid for example.com.
func serve(t *testing.T, useTLS bool, pages map[string]string) *http.Client {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, ok := pages[strings.TrimSuffix(r.Host+r.URL.Path, "/")]
		if !ok || r.URL.Query().Get("ac-discovery") != "1" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(page))
	})
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	return &http.Client{Transport: tr}
}

func TestDiscover(t *testing.T) {
	const tpl = `<html><head>
<meta name="ac-discovery" content="example.com https://cdn.example.com/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
</head></html>`
	const other = `<meta name="ac-discovery" content="other.org https://other.org/{name}.{ext}">`
	const channel = `<meta name="ac-discovery" content="example.com https://example.com/{channel}/{name}.{ext}">`
	linux := map[string]string{"os": "linux", "arch": "amd64"}
	tests := []struct {
		name     string
		tls      bool
		insecure bool
		pages    map[string]string
		ref      Ref
		want     *Result
		wantErr  string
	}{
		{
			name:  "labels and version",
			tls:   true,
			pages: map[string]string{"example.com/app": tpl},
			ref:   Ref{Name: "example.com/app", Labels: map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"}},
			want: &Result{
				Endpoints: []Endpoint{{
					ACI:       "https://cdn.example.com/example.com/app-1.0-linux-amd64.aci",
					Signature: "https://cdn.example.com/example.com/app-1.0-linux-amd64.aci.asc",
				}},
				PublicKeys: []string{"https://example.com/pubkeys.gpg"},
			},
		},
		{
			name:  "walks up to parent, version defaults to latest",
			tls:   true,
			pages: map[string]string{"example.com": tpl},
			ref:   Ref{Name: "example.com/app/sub", Labels: linux},
			want: &Result{
				Endpoints: []Endpoint{{
					ACI:       "https://cdn.example.com/example.com/app/sub-latest-linux-amd64.aci",
					Signature: "https://cdn.example.com/example.com/app/sub-latest-linux-amd64.aci.asc",
				}},
				PublicKeys: []string{"https://example.com/pubkeys.gpg"},
			},
		},
		{
			name:  "extra label in template",
			tls:   true,
			pages: map[string]string{"example.com/app": channel},
			ref:   Ref{Name: "example.com/app", Labels: map[string]string{"channel": "beta"}},
			want: &Result{Endpoints: []Endpoint{{
				ACI:       "https://example.com/beta/example.com/app.aci",
				Signature: "https://example.com/beta/example.com/app.aci.asc",
			}}},
		},
		{
			name:    "label missing for template",
			tls:     true,
			pages:   map[string]string{"example.com/app": channel},
			ref:     Ref{Name: "example.com/app", Labels: linux},
			wantErr: "no value for {channel}",
		},
		{
			name:    "prefix does not match",
			tls:     true,
			pages:   map[string]string{"example.com/app": other},
			ref:     Ref{Name: "example.com/app", Labels: linux},
			wantErr: "no matching ac-discovery tag",
		},
		{
			name:    "404 everywhere",
			tls:     true,
			ref:     Ref{Name: "example.com/app", Labels: linux},
			wantErr: "404 Not Found",
		},
		{
			name:     "plain http allowed",
			insecure: true,
			pages:    map[string]string{"example.com/app": tpl},
			ref:      Ref{Name: "example.com/app", Labels: linux},
			want: &Result{
				Endpoints: []Endpoint{{
					ACI:       "https://cdn.example.com/example.com/app-latest-linux-amd64.aci",
					Signature: "https://cdn.example.com/example.com/app-latest-linux-amd64.aci.asc",
				}},
				PublicKeys: []string{"https://example.com/pubkeys.gpg"},
			},
		},
		{
			name:    "plain http refused",
			pages:   map[string]string{"example.com/app": tpl},
			ref:     Ref{Name: "example.com/app", Labels: linux},
			wantErr: "https://example.com/app?ac-discovery=1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{HTTP: serve(t, tt.tls, tt.pages), InsecureHTTP: tt.insecure}
			got, err := c.Discover(context.Background(), tt.ref)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Discover() error = %v, want ErrNotFound mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Discover() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestPublicKeys: the keys of the first page up the path that offers any
// for the name; none anywhere is ErrNoKeys; Get refuses plain http
// unless allowed.
func TestPublicKeys(t *testing.T) {
	const keys = `<meta name="ac-discovery-pubkeys" content="example.com/app https://example.com/app.asc">
<meta name="ac-discovery-pubkeys" content="example.com/other https://example.com/other.asc">`
	c := &Client{HTTP: serve(t, true, map[string]string{"example.com": keys, "example.com/app/sub": `<meta name="ac-discovery" content="example.com x">`})}
	got, err := c.PublicKeys(context.Background(), "example.com/app/sub")
	if err != nil || !reflect.DeepEqual(got, []string{"https://example.com/app.asc"}) {
		t.Errorf("PublicKeys = %q, %v", got, err)
	}
	if _, err := c.PublicKeys(context.Background(), "example.com/zzz"); !errors.Is(err, ErrNoKeys) {
		t.Errorf("PublicKeys of a name no tag covers = %v, want ErrNoKeys", err)
	}
	for _, url := range []string{"http://example.com/k.asc", "file:///etc/passwd", "example.com/k.asc"} {
		if _, err := c.Get(context.Background(), url); !errors.Is(err, ErrScheme) {
			t.Errorf("Get(%s) = %v, want ErrScheme", url, err)
		}
	}
}
