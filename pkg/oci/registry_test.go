package oci

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/authfile"
	"github.com/skiffpod/skiff/pkg/layer"
)

// These tests talk to Debian's real distribution registry, filled by
// umoci and skopeo. tests/install-deps.sh installs all three.
func requireTools(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"docker-registry", "skopeo", "umoci"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("oci: %s not installed; run tests/install-deps.sh (apt-get install docker-registry skopeo umoci)", bin)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("oci: umoci unpack/repack and layer unpacking need root; run as root, as `make test` does")
	}
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// umociImage builds a two-layer image at layout:t: the second layer
// deletes a file and a file of a directory (umoci writes whiteouts).
func umociImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	run(t, dir, "umoci", "init", "--layout", "L")
	run(t, dir, "umoci", "new", "--image", "L:t")
	step := func(change func(rootfs string)) {
		run(t, dir, "umoci", "unpack", "--image", "L:t", "B")
		change(filepath.Join(dir, "B", "rootfs"))
		run(t, dir, "umoci", "repack", "--image", "L:t", "B")
		os.RemoveAll(filepath.Join(dir, "B"))
	}
	step(func(r string) {
		os.WriteFile(filepath.Join(r, "keep"), []byte("hi"), 0o644)
		os.WriteFile(filepath.Join(r, "gone"), []byte("x"), 0o644)
		os.Mkdir(filepath.Join(r, "d"), 0o755)
		os.WriteFile(filepath.Join(r, "d", "f"), []byte("y"), 0o644)
		os.Symlink("keep", filepath.Join(r, "link"))
	})
	step(func(r string) {
		os.Remove(filepath.Join(r, "gone"))
		os.Remove(filepath.Join(r, "d", "f"))
		os.WriteFile(filepath.Join(r, "d", "g"), []byte("z"), 0o644)
	})
	run(t, dir, "umoci", "config", "--image", "L:t", "--config.entrypoint", "/bin/sh",
		"--config.user", "nobody", "--config.exposedports", "80/tcp", "--config.volume", "/data")
	return filepath.Join(dir, "L")
}

type testRegistry struct {
	addr string // 127.0.0.1:PORT
	root string // its storage
}

// startRegistry runs docker-registry on a free loopback port; extra is
// YAML spliced into its config (auth, tls).
func startRegistry(t *testing.T, httpExtra, extra string) *testRegistry {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	root := filepath.Join(dir, "storage")
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n%s%s", root, addr, httpExtra, extra)
	cfgPath := filepath.Join(dir, "config.yml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("registry log:\n%s", b)
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s did not start", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &testRegistry{addr: addr, root: root}
}

func (r *testRegistry) push(t *testing.T, src, repo string, extra ...string) string {
	t.Helper()
	dst := "docker://" + r.addr + "/" + repo
	args := append([]string{"copy", "--quiet", "--dest-tls-verify=false", "--dest-creds=u:p"}, extra...)
	run(t, "", "skopeo", append(args, src, dst)...)
	return dst
}

// unpackAll unpacks every layer of img with package layer, as the store
// will, and returns the layer directories.
func unpackAll(t *testing.T, img *Image) []string {
	t.Helper()
	var dirs []string
	for i := range img.Layers {
		lr, err := img.OpenLayer(context.Background(), i)
		if err != nil {
			t.Fatalf("OpenLayer %d: %v", i, err)
		}
		d := t.TempDir()
		root, _ := os.OpenRoot(d)
		err = layer.Unpack(lr, root, layer.Options{})
		if err == nil {
			err = lr.Finish()
		}
		root.Close()
		lr.Close()
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		dirs = append(dirs, d)
	}
	return dirs
}

func checkUmociImage(t *testing.T, img *Image) {
	t.Helper()
	if len(img.Layers) != 2 {
		t.Fatalf("%d layers, want 2", len(img.Layers))
	}
	dirs := unpackAll(t, img)
	if b, _ := os.ReadFile(filepath.Join(dirs[0], "keep")); string(b) != "hi" {
		t.Errorf("layer 0 keep = %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(dirs[0], "link")); l != "keep" {
		t.Errorf("layer 0 link -> %q", l)
	}
	for _, p := range []string{"gone", "d/f"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dirs[1], p), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("layer 1 %s is not a whiteout: %v %o", p, err, st.Mode)
		}
	}
	// Stacked by the kernel as the store will: the whiteouts hide.
	mnt := t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+dirs[1]+":"+dirs[0]); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	var seen []string
	filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(mnt, p); rel != "." {
			seen = append(seen, rel)
		}
		return nil
	})
	unix.Unmount(mnt, unix.MNT_DETACH)
	if got := strings.Join(seen, " "); got != "d d/g keep link" {
		t.Errorf("overlay shows %q, want \"d d/g keep link\"", got)
	}
	a, err := App(img.Config.Config, Override{})
	if err != nil {
		t.Fatal(err)
	}
	if a.App.User != "nobody" || len(a.App.Ports) != 1 || a.App.Ports[0].Port != 80 || len(a.App.MountPoints) != 1 || a.App.MountPoints[0].Path != "/data" {
		t.Errorf("app = %+v", a.App)
	}
}

func TestRegistry(t *testing.T) {
	requireTools(t)
	src := "oci:" + umociImage(t) + ":t"
	reg := startRegistry(t, "", "")
	oci := reg.push(t, src, "test/img:oci")
	v2s2 := reg.push(t, src, "test/img:v2s2", "--format", "v2s2")
	// Recompressed in a layout first: pushing straight to the registry,
	// skopeo reuses the gzip blobs its cache knows.
	zlayout := filepath.Join(t.TempDir(), "Z")
	run(t, "", "skopeo", "copy", "--quiet", "--dest-compress", "--dest-compress-format", "zstd", src, "oci:"+zlayout+":t")
	zst := reg.push(t, "oci:"+zlayout+":t", "test/zimg:t", "--preserve-digests")
	archive := filepath.Join(t.TempDir(), "save.tar")
	run(t, "", "skopeo", "copy", "--quiet", src, "docker-archive:"+archive+":test/img:t")
	ociArchive := filepath.Join(t.TempDir(), "img.tar")
	run(t, "", "skopeo", "copy", "--quiet", src, "oci-archive:"+ociArchive+":t")

	plain := Options{PlainHTTP: true, Timeout: 10 * time.Second}
	for _, tt := range []struct{ ref, layerType string }{
		{oci, "application/vnd.oci.image.layer.v1.tar+gzip"},
		{v2s2, MediaTypeDockerLayerGzip},
		{zst, "application/vnd.oci.image.layer.v1.tar+zstd"},
		{"docker-archive:" + archive, MediaTypeDockerLayer},
		{"oci-archive:" + ociArchive + ":t", "application/vnd.oci.image.layer.v1.tar+gzip"},
		{src, "application/vnd.oci.image.layer.v1.tar+gzip"},
	} {
		t.Run(tt.ref, func(t *testing.T) {
			img, err := open(t, tt.ref, plain)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if mt := img.Layers[0].Blob.MediaType; mt != tt.layerType {
				t.Errorf("layer media type %q, want %q", mt, tt.layerType)
			}
			checkUmociImage(t, img)
		})
	}

	t.Run("index with two platforms", func(t *testing.T) {
		b := newTestLayout(t)
		host := b.build(simpleImage(runtime.GOARCH))
		other := simpleImage("s390x")
		other.layers, other.types = other.layers[:1], other.types[:1]
		list := b.json(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{b.build(other), host}})
		list.Annotations = map[string]string{ocispec.AnnotationRefName: "multi"}
		b.index(list)
		multi := reg.push(t, "oci:"+b.dir+":multi", "test/multi:t", "--all")
		for platform, want := range map[string]string{"": "a=1 b=22 c=333", "linux/s390x": "a=1"} {
			img, err := open(t, multi, Options{PlainHTTP: true, Platform: platform})
			if err != nil {
				t.Fatalf("Open %q: %v", platform, err)
			}
			if got, err := readAll(t, img); err != nil || got != want {
				t.Errorf("platform %q: layers %q, %v; want %q", platform, got, err, want)
			}
		}
		_, err := open(t, multi, Options{PlainHTTP: true, Platform: "linux/mips64"})
		checkErr(t, err, ErrNoPlatform, "has no linux/mips64")
	})

	t.Run("retries a flaky registry", func(t *testing.T) {
		// A proxy in front of the real registry that fails every other request.
		target, _ := url.Parse("http://" + reg.addr)
		proxy := httputil.NewSingleHostReverseProxy(target)
		var n atomic.Int32
		flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1)%2 == 1 {
				http.Error(w, "try again", http.StatusServiceUnavailable)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		defer flaky.Close()
		ref := "docker://" + strings.TrimPrefix(flaky.URL, "http://") + "/test/img:oci"
		img, err := open(t, ref, Options{PlainHTTP: true, Backoff: 10 * time.Millisecond})
		if err != nil {
			t.Fatalf("Open through the flaky proxy: %v", err)
		}
		checkUmociImage(t, img)
		if _, err := open(t, ref, Options{PlainHTTP: true, Retries: -1}); err == nil {
			t.Errorf("no error without retries: the proxy is not flaky")
		}
	})

	t.Run("mirrors", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		down := l.Addr().String() // refuses connections
		l.Close()
		ref := "docker://" + down + "/upstream/img:oci"
		img, err := open(t, ref, Options{PlainHTTP: true, Retries: -1, Mirrors: []Mirror{
			{Host: down, Repository: "upstream/img", PlainHTTP: true},
			{Host: reg.addr, Repository: "test/img", PlainHTTP: true},
		}})
		if err != nil {
			t.Fatalf("Open from the second mirror: %v", err)
		}
		if img.Ref.String() != ref {
			t.Errorf("image identity %s, want the upstream %s", img.Ref, ref)
		}
		checkUmociImage(t, img)
		// A mirror without the image: the registry itself serves it.
		if _, err := open(t, oci, Options{PlainHTTP: true, Mirrors: []Mirror{{Host: reg.addr, Repository: "none/img", PlainHTTP: true}}}); err != nil {
			t.Fatalf("fallback to the registry: %v", err)
		}
		// A mirror's insecure setting is its own.
		_, err = open(t, ref, Options{Retries: -1, Mirrors: []Mirror{{Host: reg.addr, Repository: "test/img"}}})
		checkErr(t, err, nil, "mirror "+reg.addr+": ")
		// All fail: one line with the registry's error and the mirrors'.
		_, err = open(t, ref, Options{PlainHTTP: true, Retries: -1, Mirrors: []Mirror{{Host: reg.addr, Repository: "none/img", PlainHTTP: true}}})
		checkErr(t, err, nil, "404 from "+reg.addr)
		if !strings.Contains(err.Error(), down) {
			t.Errorf("error %q does not name the registry %s", err, down)
		}
	})

	t.Run("layers in parallel", func(t *testing.T) {
		img, err := open(t, oci, plain)
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, len(img.Layers))
		for i := range img.Layers {
			go func() {
				lr, err := img.OpenLayer(context.Background(), i)
				if err == nil {
					err = lr.Finish()
					lr.Close()
				}
				errs <- err
			}()
		}
		for range img.Layers {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("pinned by digest", func(t *testing.T) {
		img, err := open(t, oci, plain)
		if err != nil {
			t.Fatal(err)
		}
		ref := "docker://" + reg.addr + "/test/img@" + img.Digest.String()
		if _, err := open(t, ref, plain); err != nil {
			t.Fatalf("Open %s: %v", ref, err)
		}
	})

	refuses := []struct {
		name, ref string
		opts      Options
		want      error
		says      string
	}{
		{"plain http needs the option", oci, Options{Timeout: 5 * time.Second}, nil, "https"},
		{"unknown tag", "docker://" + reg.addr + "/test/img:nope", plain, ErrNotFound, "404"},
		{"unknown repository", "docker://" + reg.addr + "/test/none", plain, ErrNotFound, "404"},
		{"wrong digest", "docker://" + reg.addr + "/test/img@sha256:" + strings.Repeat("0", 64), plain, ErrNotFound, "404"},
		{"platform", oci, Options{PlainHTTP: true, Platform: "linux/s390x"}, ErrNoPlatform, "image is for linux/"},
	}
	for _, tt := range refuses {
		t.Run(tt.name, func(t *testing.T) {
			_, err := open(t, tt.ref, tt.opts)
			checkErr(t, err, tt.want, tt.says)
		})
	}

	t.Run("tampered config in the registry", func(t *testing.T) {
		img, err := open(t, v2s2, plain)
		if err != nil {
			t.Fatal(err)
		}
		d := img.Manifest.Config.Digest
		data := filepath.Join(reg.root, "docker/registry/v2/blobs/sha256", d.Encoded()[:2], d.Encoded(), "data")
		b, _ := os.ReadFile(data)
		t.Cleanup(func() { os.WriteFile(data, b, 0o644) }) // other images share it
		os.WriteFile(data, []byte(strings.Replace(string(b), "nobody", "root  ", 1)), 0o644)
		_, err = open(t, v2s2, plain)
		checkErr(t, err, ErrDigestMismatch, "hashes to")
	})

	t.Run("tampered blob in the registry", func(t *testing.T) {
		img, err := open(t, oci, plain)
		if err != nil {
			t.Fatal(err)
		}
		d := img.Layers[1].Blob.Digest
		data := filepath.Join(reg.root, "docker/registry/v2/blobs/sha256", d.Encoded()[:2], d.Encoded(), "data")
		b, err := os.ReadFile(data)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-5] ^= 0xff // the gzip trailer: decompresses, hashes wrong
		os.WriteFile(data, b, 0o644)
		lr, err := img.OpenLayer(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		defer lr.Close()
		root, _ := os.OpenRoot(t.TempDir())
		defer root.Close()
		err = layer.Unpack(lr, root, layer.Options{})
		if err == nil {
			err = lr.Finish()
		}
		checkErr(t, err, nil, "")
		if !errors.Is(err, ErrDigestMismatch) && !strings.Contains(err.Error(), "gzip") {
			t.Errorf("error %v, want a digest mismatch or a gzip error", err)
		}
	})
}

func checkErr(t *testing.T, err, want error, says string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v saying %q", want, says)
	}
	t.Logf("error: %v", err)
	if want != nil && !errors.Is(err, want) {
		t.Errorf("error %v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q: want one line saying %q", err, says)
	}
}

func TestRegistryBasicAuth(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	htpasswd := filepath.Join(dir, "htpasswd")
	os.WriteFile(htpasswd, []byte("alice:"+string(hash)+"\n"), 0o600)
	reg := startRegistry(t, "", fmt.Sprintf("auth:\n  htpasswd:\n    realm: test\n    path: %s\n", htpasswd))
	src := "oci:" + umociImage(t) + ":t"
	run(t, "", "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds=alice:s3cret", src, "docker://"+reg.addr+"/p/img:t")
	ref := "docker://" + reg.addr + "/p/img:t"

	authFile := func(entry string) string {
		p := filepath.Join(t.TempDir(), "auth.json")
		os.WriteFile(p, []byte(entry), 0o600)
		return p
	}
	good := authFile(fmt.Sprintf(`{"auths":{"%s":{"auth":"%s"}}}`, reg.addr, base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))))
	t.Run("with credentials", func(t *testing.T) {
		img, err := open(t, ref, Options{PlainHTTP: true, AuthFiles: []string{good}})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		checkUmociImage(t, img)
	})
	t.Run("url-style key", func(t *testing.T) {
		f := authFile(fmt.Sprintf(`{"auths":{"http://%s/v2/":{"username":"alice","password":"s3cret"}}}`, reg.addr))
		if _, err := open(t, ref, Options{PlainHTTP: true, AuthFiles: []string{f}}); err != nil {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("login", func(t *testing.T) {
		ctx := context.Background()
		if err := Login(ctx, reg.addr, authfile.Cred{Username: "alice", Password: "s3cret"}, Options{PlainHTTP: true}); err != nil {
			t.Fatalf("Login: %v", err)
		}
		err := Login(ctx, reg.addr, authfile.Cred{Username: "alice", Password: "wrong"}, Options{PlainHTTP: true, Retries: -1})
		checkErr(t, err, ErrDenied, reg.addr+" refused the user name or password")
		err = Login(ctx, reg.addr, authfile.Cred{Username: "alice", Password: "s3cret"}, Options{Retries: -1})
		checkErr(t, err, ErrInsecure, "plain http refused")
	})
	for _, tt := range []struct {
		name, file, says string
		want             error
	}{
		{"anonymous", "", "skiff login " + reg.addr, ErrDenied},
		{"missing file is anonymous", filepath.Join(dir, "none.json"), "access denied", ErrRegistry},
		{"wrong password", authFile(fmt.Sprintf(`{"auths":{"%s":{"username":"alice","password":"x"}}}`, reg.addr)), "access denied", ErrRegistry},
		{"duplicate keys in the auth file", authFile(fmt.Sprintf(`{"auths":{"%s":{"username":"alice","username":"bob"}}}`, reg.addr)), "duplicate key", authfile.ErrBadFile},
		{"bad auth field", authFile(fmt.Sprintf(`{"auths":{"%s":{"auth":"!!"}}}`, reg.addr)), "not base64", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := open(t, ref, Options{PlainHTTP: true, AuthFiles: []string{tt.file}, Retries: -1})
			checkErr(t, err, tt.want, tt.says)
		})
	}
}

// testCA makes a CA and a certificate for 127.0.0.1 signed by it.
func testCA(t *testing.T, dir string) (caDir, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skiff test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caDir = filepath.Join(dir, "certs.d")
	os.Mkdir(caDir, 0o700)
	os.WriteFile(filepath.Join(caDir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	cert, key = filepath.Join(dir, "srv.crt"), filepath.Join(dir, "srv.key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o644)
	kb, _ := x509.MarshalECPrivateKey(srvKey)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return caDir, cert, key
}

func TestRegistryTLS(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	caDir, cert, key := testCA(t, dir)
	reg := startRegistry(t, fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key), "")
	src := "oci:" + umociImage(t) + ":t"
	run(t, "", "skopeo", "copy", "--quiet", "--dest-cert-dir", caDir, src, "docker://"+reg.addr+"/s/img:t")
	ref := "docker://" + reg.addr + "/s/img:t"
	t.Run("verified with the CA dir", func(t *testing.T) {
		img, err := open(t, ref, Options{CADir: caDir})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		checkUmociImage(t, img)
	})
	t.Run("unknown CA refused", func(t *testing.T) {
		_, err := open(t, ref, Options{Retries: -1, CADir: filepath.Join(dir, "none")})
		checkErr(t, err, nil, "certificate")
		checkErr(t, err, nil, "(trust its CA as "+filepath.Join(dir, "none")+"/*.crt, or use --insecure-options=tls)")
	})
	t.Run("skip verify", func(t *testing.T) {
		if _, err := open(t, ref, Options{SkipTLSVerify: true}); err != nil {
			t.Fatalf("Open: %v", err)
		}
	})
}

// TestRegistryHostile: servers that misbehave. They are not registries
// standing in for one: they are the bad peers a client must survive.
func TestRegistryHostile(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answered
		}
	}()
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer fail.Close()
	slowBody := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Write([]byte(`{"schemaVersion":`))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the rest never comes
	}))
	defer slowBody.Close()
	hostOf := func(u string) string { return strings.TrimPrefix(u, "http://") }

	for _, tt := range []struct {
		name, addr string
		want       error
		says       string
	}{
		{"hangs", hang.Addr().String(), ErrTimeout, "did not answer"},
		{"answers 500", hostOf(fail.URL), nil, "500"},
		{"stalls in the body", hostOf(slowBody.URL), ErrTimeout, "sent nothing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := open(t, "docker://"+tt.addr+"/x/y:t", Options{PlainHTTP: true, Timeout: time.Second, Retries: 1, Backoff: 10 * time.Millisecond})
			checkErr(t, err, tt.want, tt.says)
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
