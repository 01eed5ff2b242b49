//go:build e2e

package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlsRegistry starts a docker-registry serving HTTPS with a certificate
// for 127.0.0.1 from a CA the test makes; it returns its address, the
// CA certificate file and the server's certificate and key files.
func tlsRegistry(t *testing.T) (addr, caFile, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skiff e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, cert, key = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "srv.crt"), filepath.Join(dir, "srv.key")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o644)
	kb, _ := x509.MarshalECPrivateKey(srvKey)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n  tls:\n    certificate: %s\n    key: %s\n",
		filepath.Join(dir, "storage"), addr, cert, key)
	os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600)
	cmd := exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, caFile, cert, key
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s did not start", addr)
		}
	}
}

// gpgKey makes an OpenPGP signing key in its own GNUPGHOME, as
// tests/images/build.sh does, and returns the home, the fingerprint and
// the armored public key's file.
func gpgKey(t *testing.T, email string) (home, fpr, pub string) {
	t.Helper()
	home, err := os.MkdirTemp("", "skiff-e2e-gpg-") // short: gpg-agent's socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	os.Chmod(home, 0o700)
	gpg := func(args ...string) string {
		out, err := exec.Command("gpg", append([]string{"--homedir", home, "--batch"}, args...)...).Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return string(out)
	}
	gpg("--quiet", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", "skiff sign test <"+email+">", "rsa2048", "sign", "never")
	for _, l := range strings.Split(gpg("--with-colons", "--list-keys", email), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" && fpr == "" {
			fpr = f[9]
		}
	}
	pub = filepath.Join(home, "pub.asc")
	os.WriteFile(pub, []byte(gpg("--armor", "--export", fpr)), 0o644)
	return home, fpr, pub
}

// signedPush pushes layout as ref (docker://...) with skopeo, signed by
// fpr into the lookaside dir when fpr is set.
func signedPush(t *testing.T, layout, ref, home, fpr, lookaside string) {
	t.Helper()
	regd := t.TempDir()
	os.WriteFile(filepath.Join(regd, "default.yaml"), []byte("default-docker:\n  lookaside-staging: file://"+lookaside+"\n"), 0o644)
	args := []string{"copy", "--quiet", "--dest-tls-verify=false", "--registries.d", regd}
	if fpr != "" {
		args = append(args, "--sign-by", fpr)
	}
	cmd := exec.Command("skopeo", append(args, "oci:"+layout+":1", ref)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo %v: %v\n%s", args, err, out)
	}
}

// sigDir is where skopeo put the signatures of repo's manifest digest.
func sigDir(t *testing.T, lookaside, repo string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(lookaside, repo+"@sha256=*"))
	if len(m) != 1 {
		t.Fatalf("signatures of %s: %v", repo, m)
	}
	return m[0]
}

func TestOCISimpleSigning(t *testing.T) {
	addr, _, _ := registry(t)
	home, fpr, pub := gpgKey(t, "good@skiff.test")
	badHome, badFpr, _ := gpgKey(t, "bad@skiff.test")
	lookaside := t.TempDir()
	one, two := ociProbeImage(t, "one"), ociProbeImage(t, "two")
	repo := func(name string) string { return "docker://" + addr + "/sign/" + name + ":1" }

	// Signed by the trusted key; signature-1 garbage, the good one second:
	// several are tried in order.
	signedPush(t, one, repo("good"), home, fpr, lookaside)
	d := sigDir(t, lookaside, "sign/good")
	os.Rename(filepath.Join(d, "signature-1"), filepath.Join(d, "signature-2"))
	os.WriteFile(filepath.Join(d, "signature-1"), []byte("garbage"), 0o644)
	// Signed by a key not trusted.
	signedPush(t, one, repo("wrongkey"), badHome, badFpr, lookaside)
	// A good signature of sign/digest:1 for image one; then the tag moves
	// to image two, unsigned, and the signature is copied beside it.
	signedPush(t, one, repo("digest"), home, fpr, lookaside)
	oldSig, _ := os.ReadFile(filepath.Join(sigDir(t, lookaside, "sign/digest"), "signature-1"))
	signedPush(t, two, repo("digest"), home, "", lookaside)
	// A good signature of sign/other:1, copied to sign/ref:1 (same bytes,
	// same digest): it names another reference.
	signedPush(t, one, repo("other"), home, fpr, lookaside)
	signedPush(t, one, repo("ref"), home, "", lookaside)
	otherSig, _ := os.ReadFile(filepath.Join(sigDir(t, lookaside, "sign/other"), "signature-1"))
	place := func(name string, sig []byte) {
		dir := filepath.Join(lookaside, "sign", name+"@sha256="+strings.TrimPrefix(e2eDigest(t, repo(name)), "sha256:"))
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, "signature-1"), sig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	place("digest", oldSig)
	place("ref", otherSig)
	// Garbage only.
	signedPush(t, one, repo("garbage"), home, "", lookaside)
	place("garbage", []byte("-----BEGIN PGP MESSAGE-----\n\nnot base64\n-----END PGP MESSAGE-----\n"))
	// No signature at all.
	signedPush(t, one, repo("unsigned"), home, "", lookaside)

	// The same signed image on an HTTPS registry whose CA is in certs.d,
	// its signatures served by an HTTPS lookaside with a certificate from
	// the same CA: it runs with no --insecure-options at all.
	tlsAddr, caFile, cert, key := tlsRegistry(t)
	tlsLookaside := t.TempDir()
	signedPush(t, one, "docker://"+tlsAddr+"/sign/good:1", home, fpr, tlsLookaside)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(tlsLookaside))}
	go srv.ServeTLS(l, cert, key)
	t.Cleanup(func() { srv.Close() })

	e := newEnv(t)
	os.MkdirAll(filepath.Join(e.config, "registries.d"), 0o755)
	os.WriteFile(filepath.Join(e.config, "registries.d", "local.yaml"), []byte("docker:\n  "+addr+":\n    lookaside: file://"+lookaside+"\n"), 0o644)
	os.WriteFile(filepath.Join(e.config, "registries.d", "tls.yaml"), []byte("docker:\n  "+tlsAddr+"/sign:\n    lookaside: https://"+l.Addr().String()+"/\n"), 0o644)
	ca, _ := os.ReadFile(caFile)
	for _, host := range []string{tlsAddr, l.Addr().String()} {
		os.MkdirAll(filepath.Join(e.config, "certs.d", host), 0o755)
		os.WriteFile(filepath.Join(e.config, "certs.d", host, "ca.crt"), ca, 0o644)
	}
	e.mustRun("trust", "--prefix", addr+"/sign", pub)
	e.mustRun("trust", "--prefix", tlsAddr, pub)

	for _, c := range []struct{ name, want string }{
		{"wrongkey", "signature-1: verify \"" + addr + "/sign/wrongkey\": signature not made by a trusted key"},
		{"digest", "signature-1: signature does not match the image: it signs manifest"},
		{"ref", "signature-1: signature does not match the image: it signs " + addr + "/sign/other:1"},
		{"garbage", "signature-1: verify \"" + addr + "/sign/garbage\": bad signature"},
		{"unsigned", "a tag needs a signature"},
	} {
		_, errs, code := e.run("run", "--stage1=ns", "--insecure-options=http", repo(c.name))
		if code == 0 || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("%s: exit %d, want one line saying %q:\n%s", c.name, code, c.want, errs)
		}
	}
	// Nothing stored by the refusals.
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "cas", "layer")); len(ents) != 0 {
		t.Errorf("layers stored by refused fetches: %v", ents)
	}
	if out := e.mustRun("image", "list", "--format=json"); strings.Contains(out, `"oci"`) {
		t.Errorf("images stored by refused fetches:\n%s", out)
	}

	// The signed tag runs with no --insecure-options=image, and is verified
	// by the key for its prefix.
	out, errs, code := e.run("run", "--stage1=ns", "--insecure-options=http", repo("good"))
	if code != 0 || !strings.Contains(out, "UID=1234") {
		t.Fatalf("signed tag: exit %d\n%s%s", code, out, errs)
	}
	var imgs []struct {
		Kind, Provenance, Signer, TrustedPrefix string
	}
	json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json")), &imgs)
	found := false
	for _, i := range imgs {
		if i.Kind == "oci" {
			found = true
			if i.Provenance != "verified" || !strings.EqualFold(i.Signer, fpr) || i.TrustedPrefix != addr+"/sign" {
				t.Errorf("signed image recorded as %+v, want verified by %s for %s/sign", i, fpr, addr)
			}
		}
	}
	if !found {
		t.Errorf("signed image not listed: %+v", imgs)
	}
	if out, errs, code := e.run("run", "--stage1=ns", "docker://"+tlsAddr+"/sign/good:1"); code != 0 || !strings.Contains(out, "UID=1234") {
		t.Errorf("signed tag over https, no insecure option: exit %d\n%s%s", code, out, errs)
	}
	// The run policy's registries scope applies to OCI images: verified is
	// not enough where it asks for a digest pin.
	os.WriteFile(filepath.Join(e.config, "policy.json"), []byte(`{"registries": {"`+addr+`/sign": ["digest-pinned"]}}`), 0o644)
	if _, errs, code := e.run("run", "--stage1=ns", "--insecure-options=http", repo("good")); code == 0 || !strings.Contains(errs, "refused by the run policy") {
		t.Errorf("policy registries scope not applied: exit %d\n%s", code, errs)
	}
	os.Remove(filepath.Join(e.config, "policy.json"))
	// Once its key is no longer trusted, the stored copy is not run by tag.
	e.mustRun("trust", "--remove", strings.ToLower(fpr), "--prefix", addr+"/sign")
	if _, errs, code := e.run("run", "--stage1=ns", "--insecure-options=http", repo("good")); code == 0 {
		t.Errorf("signed tag ran after its key was removed:\n%s", errs)
	}
	checkOCIStore(t, e)
}

// e2eDigest asks the registry for the manifest digest ref's tag names.
func e2eDigest(t *testing.T, ref string) string {
	t.Helper()
	out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v", ref, err)
	}
	return strings.TrimSpace(string(out))
}
