package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/skiffpod/skiff/pkg/discovery"
	"github.com/skiffpod/skiff/pkg/trust"
)

// testKeyServer serves an armored public key at /key.asc and a discovery
// page for example.com offering it, over TLS, to any host name; it
// returns the key's fingerprint and a client that reaches it.
func testKeyServer(t *testing.T) (string, *http.Client) {
	t.Helper()
	e, err := openpgp.NewEntity("test", "", "test@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var key bytes.Buffer
	w, _ := armor.Encode(&key, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/key.asc":
			w.Write(key.Bytes())
		case r.URL.Query().Get("ac-discovery") == "1" && r.Host == "example.com":
			io.WriteString(w, `<meta name="ac-discovery-pubkeys" content="example.com https://example.com/key.asc">`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	k, err := trust.ReadKey(bytes.NewReader(key.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return k.Fingerprint, &http.Client{Transport: tr}
}

// TestTrustFetched: a key from a URL or by discovery is trusted only with
// --skip-fingerprint-review when stdin is no terminal (go test's is not),
// with a one-line error naming the flag otherwise; plain http is refused.
func TestTrustFetched(t *testing.T) {
	fp, client := testKeyServer(t)
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string // "" for trusted
	}{
		{"URL, reviewed elsewhere", []string{"--prefix=example.com/app", "--skip-fingerprint-review", "https://example.com/key.asc"}, ""},
		{"URL, no terminal", []string{"--prefix=example.com/app", "https://example.com/key.asc"}, "pass --skip-fingerprint-review"},
		{"discovery", []string{"--prefix=example.com/app", "--skip-fingerprint-review"}, ""},
		{"discovery, no terminal", []string{"--prefix=example.com/app"}, "pass --skip-fingerprint-review"},
		{"discovery finds nothing", []string{"--prefix=example.org/app", "--skip-fingerprint-review"}, "no ac-discovery-pubkeys"},
		{"plain http", []string{"--prefix=example.com/app", "--skip-fingerprint-review", "http://example.com/key.asc"}, "not an https URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			cfg := t.TempDir()
			g := &globals{stdout: &out, stderr: &errs, log: slog.New(slog.DiscardHandler), http: client}
			root := newRoot(g)
			root.SetArgs(append([]string{"--dir=" + t.TempDir(), "--local-config=" + cfg, "trust"}, tt.args...))
			err := root.Execute()
			keys, _ := trust.Open(cfg).List()
			if tt.wantErr == "" {
				if err != nil || len(keys) != 1 || keys[0].Fingerprint != fp || keys[0].Prefix != "example.com/app" || !strings.Contains(out.String(), fp) {
					t.Errorf("trust = %v, keys %v, out %q; want %s trusted for example.com/app", err, keys, out.String(), fp)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") || len(keys) != 0 {
				t.Errorf("trust = %v, keys %v; want one line with %q and no key", err, keys, tt.wantErr)
			}
		})
	}
}

// TestTrustReview: on a terminal the fingerprint is shown and only y or
// yes trusts the key.
func TestTrustReview(t *testing.T) {
	fp, client := testKeyServer(t)
	for answer, want := range map[string]bool{"y\n": true, "YES\n": true, "n\n": false, "\n": false, "": false} {
		t.Run(strings.TrimSpace(answer), func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, answer)
			w.Close()
			defer r.Close()
			var prompt bytes.Buffer
			cfg := t.TempDir()
			kt := keyTrust{g: &globals{stderr: &prompt}, ks: trust.Open(cfg), prefix: "example.com/app", stdin: r,
				dc: &discovery.Client{HTTP: client}, isTerminal: func(*os.File) bool { return true }}
			_, err = kt.add(context.Background(), "https://example.com/key.asc")
			if !strings.Contains(prompt.String(), "fingerprint "+fp) || !strings.Contains(prompt.String(), "Trust this key for prefix example.com/app? [y/N]") {
				t.Errorf("prompt %q", prompt.String())
			}
			keys, _ := trust.Open(cfg).List()
			if (err == nil) != want || (len(keys) == 1) != want {
				t.Errorf("answer %q: err %v, keys %v; want trusted %v", answer, err, keys, want)
			}
			if _, err := os.Stat(filepath.Join(cfg, "trustedkeys")); !want && err == nil {
				t.Errorf("a refused key left %s", filepath.Join(cfg, "trustedkeys"))
			}
		})
	}
}
