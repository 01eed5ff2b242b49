package oci

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/authfile"
)

// tokenServer is the token service of the distribution token auth
// scheme (the one Docker Hub uses): it checks basic credentials and signs
// a JWT for the scopes asked, which the real registry verifies against
// the certificate in its rootcertbundle.
func tokenServer(t *testing.T, user, pass string) (srv *httptest.Server, bundle string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "skiff token signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle = filepath.Join(t.TempDir(), "bundle.pem")
	os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	b64 := base64.RawURLEncoding.EncodeToString
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			http.Error(w, `{"details":"bad credentials"}`, http.StatusUnauthorized)
			return
		}
		type access struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		}
		var grants []access
		for _, s := range r.URL.Query()["scope"] {
			parts := strings.Split(s, ":")
			if len(parts) == 3 {
				grants = append(grants, access{parts[0], parts[1], strings.Split(parts[2], ",")})
			}
		}
		now := time.Now().Unix()
		header, _ := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(der)}})
		claims, _ := json.Marshal(map[string]any{"iss": "skiff-test-issuer", "sub": user, "aud": r.URL.Query().Get("service"),
			"exp": now + 300, "nbf": now - 10, "iat": now, "jti": fmt.Sprint(now), "access": grants})
		signed := b64(header) + "." + b64(claims)
		sum := sha256.Sum256([]byte(signed))
		rr, ss, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		sig := make([]byte, 64)
		rr.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
		tok := signed + "." + b64(sig)
		json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300})
	}))
	t.Cleanup(srv.Close)
	return srv, bundle
}

func TestRegistryBearerToken(t *testing.T) {
	requireTools(t)
	tokens, bundle := tokenServer(t, "bob", "hunter2")
	// go-containerregistry refuses token realms on private IP literals
	// other than the registry's own (SSRF); a host name is fine.
	realm := strings.Replace(tokens.URL, "127.0.0.1", "localhost", 1) + "/token"
	reg := startRegistry(t, "", fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: skiff-test\n    issuer: skiff-test-issuer\n    rootcertbundle: %s\n", realm, bundle))
	src := "oci:" + umociImage(t) + ":t"
	run(t, "", "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds=bob:hunter2", src, "docker://"+reg.addr+"/b/img:t")
	ref := "docker://" + reg.addr + "/b/img:t"

	auth := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(auth, []byte(fmt.Sprintf(`{"auths":{"%s":{"auth":"%s"}}}`, reg.addr, base64.StdEncoding.EncodeToString([]byte("bob:hunter2")))), 0o600)
	img, err := open(t, ref, Options{PlainHTTP: true, AuthFiles: []string{auth}})
	if err != nil {
		t.Fatalf("Open with a bearer token: %v", err)
	}
	checkUmociImage(t, img)

	_, err = open(t, ref, Options{PlainHTTP: true, Retries: -1})
	checkErr(t, err, ErrRegistry, "access denied")

	ctx := context.Background()
	if err := Login(ctx, reg.addr, authfile.Cred{Username: "bob", Password: "hunter2"}, Options{PlainHTTP: true}); err != nil {
		t.Fatalf("Login with a bearer token: %v", err)
	}
	err = Login(ctx, reg.addr, authfile.Cred{Username: "bob", Password: "hunter3"}, Options{PlainHTTP: true, Retries: -1})
	checkErr(t, err, ErrDenied, "refused the user name or password")
}
