//go:build e2e

package tests

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Registry credentials, CAs and the registries configuration end to end,
// against Debian's real docker-registry (htpasswd basic auth, HTTPS with a
// CA the test makes, plain http as a mirror).

// authRegistry starts a docker-registry that wants user:password (htpasswd
// with bcrypt) and holds the probe image as auth/probe:1.
func authRegistry(t *testing.T, user, password string) (addr, ref string) {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":"+string(hash)+"\n"), 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\nauth:\n  htpasswd:\n    realm: skiff-test\n    path: %s\n",
		filepath.Join(dir, "storage"), addr, filepath.Join(dir, "htpasswd"))
	os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600)
	cmd := exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s did not start", addr)
		}
	}
	ref = "docker://" + addr + "/auth/probe:1"
	skopeo(t, "--dest-creds="+user+":"+password, "oci:"+ociProbeImage(t, "auth")+":1", ref)
	return addr, ref
}

// oneLine fails unless errs is one line saying every one of says.
func oneLine(t *testing.T, what, errs string, code int, says ...string) {
	t.Helper()
	t.Logf("%s: %s", what, strings.TrimSpace(errs))
	if code == 0 {
		t.Errorf("%s: exit 0, want a failure", what)
	}
	if strings.Count(strings.TrimSpace(errs), "\n") > 0 {
		t.Errorf("%s: want one error line, got:\n%s", what, errs)
	}
	for _, s := range says {
		if !strings.Contains(errs, s) {
			t.Errorf("%s: error lacks %q:\n%s", what, s, errs)
		}
	}
}

// usageErr fails unless skiff exited 2 with errs' first line saying says.
func usageErr(t *testing.T, what, errs string, code int, says string) {
	t.Helper()
	first, _, _ := strings.Cut(errs, "\n")
	if code != 2 || !strings.Contains(first, says) {
		t.Errorf("%s: exit %d, want 2 and a first line saying %q:\n%s", what, code, says, errs)
	}
}

func TestOCILogin(t *testing.T) {
	const user, password = "alice", "s3cret-Pa55"
	addr, ref := authRegistry(t, user, password)
	e := newEnv(t)
	fetch := []string{"fetch", "--insecure-options=image,http"}
	authFile := filepath.Join(e.config, "auth.json")
	noSecret := func(what, out string) {
		t.Helper()
		if strings.Contains(out, password) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(user+":"+password))) {
			t.Errorf("%s printed the password:\n%s", what, out)
		}
	}
	stdin := func(s string, args ...string) (string, string, int) {
		t.Helper()
		c := exec.Command(skiffBin, append([]string{"--dir=" + e.dir, "--local-config=" + e.config}, args...)...)
		c.Stdin = strings.NewReader(s)
		var out, errb strings.Builder
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}

	// Not logged in: one line naming the registry and skiff login.
	_, errs, code := e.run(append(fetch, ref)...)
	oneLine(t, "fetch without credentials", errs, code, addr, "skiff login "+addr)

	// A wrong password: refused by the registry, nothing stored.
	out, errs, code := stdin("wrong\n", "login", "--insecure-options=http", "--username", user, "--password-stdin", addr)
	oneLine(t, "login with a wrong password", errs, code, addr, "refused the user name or password")
	if _, err := os.Stat(authFile); err == nil {
		t.Errorf("a refused login wrote %s", authFile)
	}
	// Plain http needs saying, as for a fetch.
	_, errs, code = stdin(password+"\n", "login", "--username", user, "--password-stdin", addr)
	oneLine(t, "login over http without the option", errs, code, "plain http refused")

	// --password-stdin: checked, stored 0600, nothing secret printed.
	out, errs, code = stdin(password+"\n", "login", "--insecure-options=http", "--username", user, "--password-stdin", addr)
	if code != 0 {
		t.Fatalf("login: exit %d\n%s%s", code, out, errs)
	}
	noSecret("login", out+errs)
	if fi, err := os.Stat(authFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth file: %v %v, want mode 0600", fi, err)
	}
	_, errs, code = e.run(append(fetch, ref)...)
	if code != 0 {
		t.Fatalf("fetch after login: exit %d\n%s", code, errs)
	}
	noSecret("fetch", errs)
	e.mustRun("logout", addr)
	_, errs, code = e.run(append(fetch, "--pull-policy=update", ref)...)
	oneLine(t, "fetch after logout", errs, code, "skiff login "+addr)
	_, errs, code = e.run("logout", addr)
	oneLine(t, "logout twice", errs, code, "not logged in")

	// -p works and warns; the password is not echoed.
	out, errs, code = e.run("login", "--insecure-options=http", "-u", user, "-p", password, addr)
	if code != 0 || !strings.Contains(errs, "--password-stdin") {
		t.Errorf("login -p: exit %d, want a warning naming --password-stdin\n%s%s", code, out, errs)
	}
	noSecret("login -p", out+errs)
	e.mustRun("logout", "--all")
	if b, _ := os.ReadFile(authFile); strings.Contains(string(b), addr) {
		t.Errorf("logout --all left %s", b)
	}

	// The auth files, in order: --authfile, $REGISTRY_AUTH_FILE,
	// <local-config>/auth.json; then ~/.docker/config.json.
	good := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	bad := base64.StdEncoding.EncodeToString([]byte(user + ":nope"))
	write := func(p, auth string) string {
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(`{"auths":{"`+addr+`":{"auth":"`+auth+`"}}}`), 0o600)
		return p
	}
	tmp := t.TempDir()
	goodFile, badFile := write(filepath.Join(tmp, "good.json"), good), write(filepath.Join(tmp, "bad.json"), bad)
	home := filepath.Join(tmp, "home")
	write(filepath.Join(home, ".docker", "config.json"), good)
	for _, tt := range []struct {
		name  string
		env   []string
		flags []string
		ok    bool
	}{
		{"--authfile", nil, []string{"--authfile=" + goodFile}, true},
		{"--authfile before REGISTRY_AUTH_FILE", []string{"REGISTRY_AUTH_FILE=" + badFile}, []string{"--authfile=" + goodFile}, true},
		{"REGISTRY_AUTH_FILE", []string{"REGISTRY_AUTH_FILE=" + goodFile}, nil, true},
		{"REGISTRY_AUTH_FILE before docker's", []string{"REGISTRY_AUTH_FILE=" + badFile, "HOME=" + home}, nil, false},
		{"docker's config.json last", []string{"HOME=" + home}, nil, true},
		{"no credentials anywhere", []string{"HOME=" + tmp}, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append(tt.flags, fetch...), "--pull-policy=update", ref)
			_, errs, code := e.runCtx(t.Context(), tt.env, args...)
			if tt.ok && code != 0 {
				t.Errorf("exit %d\n%s", code, errs)
			}
			if !tt.ok {
				oneLine(t, tt.name, errs, code, "skiff login "+addr)
			}
		})
	}
	// login --authfile writes there, not to the default file.
	os.Remove(authFile)
	own := filepath.Join(tmp, "own", "auth.json")
	if _, errs, code := stdin(password, "login", "--authfile", own, "--insecure-options=http", "-u", user, "--password-stdin", addr); code != 0 {
		t.Fatalf("login --authfile: exit %d\n%s", code, errs)
	}
	if _, err := os.Stat(authFile); err == nil {
		t.Errorf("login --authfile wrote %s too", authFile)
	}
	if b, err := os.ReadFile(own); err != nil || !strings.Contains(string(b), good) {
		t.Errorf("login --authfile: %s %v", b, err)
	}
	// An insecure registry in registries.conf needs no flag to log in.
	conf := filepath.Join(e.config, "registries.conf")
	os.WriteFile(conf, []byte("[[registry]]\nlocation = \""+addr+"\"\ninsecure = true\n"), 0o644)
	if _, errs, code := stdin(password, "login", "-u", user, "--password-stdin", addr); code != 0 {
		t.Errorf("login to an insecure registry of registries.conf: exit %d\n%s", code, errs)
	}
	os.Remove(conf)
	// Bad input: one line each.
	_, errs, code = e.run("login", "-u", user, "--password-stdin", addr+"/auth")
	usageErr(t, "login to a repository", errs, code, "not a registry")
	_, errs, code = stdin("", "login", "--password-stdin", addr)
	usageErr(t, "--password-stdin without --username", errs, code, "--username")
	_, errs, code = e.run("logout")
	usageErr(t, "logout without a registry", errs, code, "--all")
	checkOCIStore(t, e)
}

// TestOCIRegistryCA: an HTTPS registry with a CA the test made fails with
// one line naming certs.d and --insecure-options=tls until its CA is in
// <local-config>/certs.d/HOST:PORT/; then the fetch works, and login too.
func TestOCIRegistryCA(t *testing.T) {
	addr, caFile, _, _ := tlsRegistry(t)
	certDir := t.TempDir() // skopeo takes a *.key beside for a client key
	ca, _ := os.ReadFile(caFile)
	os.WriteFile(filepath.Join(certDir, "ca.crt"), ca, 0o644)
	ref := "docker://" + addr + "/tls/probe:1"
	if out, err := exec.Command("skopeo", "copy", "--quiet", "--dest-cert-dir", certDir, "oci:"+ociProbeImage(t, "tls")+":1", ref).CombinedOutput(); err != nil {
		t.Fatalf("skopeo: %v\n%s", err, out)
	}
	e := newEnv(t)
	hostDir := filepath.Join(e.config, "certs.d", addr)
	_, errs, code := e.run("fetch", "--insecure-options=image", ref)
	oneLine(t, "fetch without the CA", errs, code, "certificate", hostDir+"/*.crt", "--insecure-options=tls")
	os.MkdirAll(hostDir, 0o755)
	os.WriteFile(filepath.Join(hostDir, "ca.crt"), ca, 0o644)
	if _, errs, code := e.run("fetch", "--insecure-options=image", ref); code != 0 {
		t.Fatalf("fetch with the CA in certs.d: exit %d\n%s", code, errs)
	}
	// The registry lets anyone in: login has nothing to refuse, and
	// talks TLS with the same CA.
	if _, errs, code := e.run("login", "-u", "x", "-p", "y", addr); code != 0 {
		t.Errorf("login over TLS: exit %d\n%s", code, errs)
	}
	checkOCIStore(t, e)
}

// TestOCIRegistriesConf: <local-config>/registries.conf. A mirror serves
// an upstream name the upstream (unreachable here) never answers, as
// kubelet's registry.k8s.io images are served by a local registry; the
// image keeps its upstream name, also for signatures. Aliases, per-registry
// insecure, blocked registries, and strict parsing.
func TestOCIRegistriesConf(t *testing.T) {
	addr, _, _ := registry(t)
	home, fpr, pub := gpgKey(t, "mirror@skiff.test")
	lookaside := t.TempDir()
	layout := ociProbeImage(t, "mirrored")
	// Signed for its upstream name, pushed to the mirror.
	push := func(repo, identity string) {
		t.Helper()
		regd := t.TempDir()
		os.WriteFile(filepath.Join(regd, "default.yaml"), []byte("default-docker:\n  lookaside-staging: file://"+lookaside+"\n"), 0o644)
		args := []string{"copy", "--quiet", "--dest-tls-verify=false", "--registries.d", regd, "--sign-by", fpr}
		if identity != "" {
			args = append(args, "--sign-identity", identity)
		}
		cmd := exec.Command("skopeo", append(args, "oci:"+layout+":1", "docker://"+addr+"/"+repo+":1")...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo: %v\n%s", err, out)
		}
	}
	push("k8s/signed", "registry.k8s.io/k8s/signed:1")
	push("k8s/mirrorname", "") // signed for the mirror's name only
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down := l.Addr().String() // nothing listens: a mirror that is down
	l.Close()

	e := newEnv(t)
	e.mustRun("trust", "--prefix", "registry.k8s.io/k8s", pub)
	os.MkdirAll(filepath.Join(e.config, "registries.d"), 0o755)
	os.WriteFile(filepath.Join(e.config, "registries.d", "k8s.yaml"), []byte("docker:\n  registry.k8s.io:\n    lookaside: file://"+lookaside+"\n"), 0o644)
	conf := filepath.Join(e.config, "registries.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
[aliases]
probe = "registry.k8s.io/k8s/signed"

[[registry]]
location = "registry.k8s.io"
[[registry.mirror]]
location = %q
insecure = true
[[registry.mirror]]
location = %q
insecure = true

[[registry]]
location = %q
insecure = true

[[registry]]
location = "%s/blocked"
blocked = true
`, down, addr, addr, addr)), 0o644)

	// By its upstream name, from the second mirror, verified by the
	// signature made for the upstream name: no --insecure-options at all.
	upstream := "docker://registry.k8s.io/k8s/signed:1"
	out, errs, code := e.run("fetch", upstream)
	if code != 0 {
		t.Fatalf("fetch through the mirror: exit %d\n%s%s", code, out, errs)
	}
	mustContain(t, errs, "signature of "+upstream+" verified")
	list := e.mustRun("image", "list")
	mustContain(t, list, "registry.k8s.io/k8s/signed", "verified")
	mustNotContain(t, list, addr)
	// It runs by its upstream name.
	out, errs, code = e.run("run", "--stage1=ns", upstream, "--", "-read-file=/marker")
	if code != 0 || !strings.Contains(out, "READ_FILE=mirrored") {
		t.Errorf("run through the mirror: exit %d\n%s%s", code, out, errs)
	}
	// A signature for the mirror's name does not sign the upstream name.
	_, errs, code = e.run("fetch", "docker://registry.k8s.io/k8s/mirrorname:1")
	oneLine(t, "signature for the mirror's name", errs, code, "signature")
	// The alias: docker://probe is the upstream image.
	if _, errs, code := e.run("fetch", "docker://probe:1"); code != 0 {
		t.Errorf("fetch by alias: exit %d\n%s", code, errs)
	}
	// Per-registry insecure: the plain-http registry with no flag.
	direct := "docker://" + addr + "/k8s/signed:1"
	if _, errs, code := e.run("fetch", "--insecure-options=image", direct); code != 0 {
		t.Errorf("insecure registry from registries.conf: exit %d\n%s", code, errs)
	}
	_, errs, code = e.run("fetch", "--insecure-options=image", "docker://"+addr+"/blocked/x:1")
	oneLine(t, "blocked", errs, code, "blocked")
	checkOCIStore(t, e)

	// Strict parsing: one line naming the file and the key; nothing fetched.
	for _, tt := range []struct{ name, conf, key string }{
		{"unknown key", "[[registry]]\nlocation = \"a.io\"\nmirrors = []\n", "registry.mirrors"},
		{"bad value", "[[registry]]\nlocation = \"a.io\"\ninsecure = \"yes\"\n", "registry.insecure"},
		{"bad location", "[[registry]]\nlocation = \"http://a.io\"\n", "registry.location"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(conf, []byte(tt.conf), 0o644)
			_, errs, code := e.run("fetch", "--insecure-options=image,http", direct)
			oneLine(t, tt.name, errs, code, conf, tt.key)
		})
	}
}
