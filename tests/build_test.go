//go:build e2e

package tests

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// skiff build end to end: a redis-server microcontainer from Debian's
// package, built twice (the second time elsewhere, pinned by the first
// build's lock) to the same digest, run on both stage1s and by podman.

const redisSpec = `name: skiff.local/redis
debs: [redis-server]
exec: [/usr/bin/redis-server, --port, "6379", --protected-mode, "no", --save, ""]
user: redis
ports: ["6379"]
`

// minbaseRedisBytes is `du -sb` of `debootstrap --variant=minbase
// --include=redis-server bookworm` (Debian 12, measured once on this
// machine kind, docs/build.md): the full-distro image the microcontainer
// replaces.
const minbaseRedisBytes = 218998306

func TestBuildRedis(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Fatal("apt-get missing: skiff build needs Debian's apt")
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dirA, "redis.yaml"), []byte(redisSpec), 0o644)
	e := newEnv(t)
	start := time.Now()
	digestA := strings.TrimSpace(e.mustRun("build", "-f", filepath.Join(dirA, "redis.yaml"), "-o", "oci:"+filepath.Join(dirA, "out")+":1"))
	took := time.Since(start)
	lock, err := os.ReadFile(filepath.Join(dirA, "redis.lock"))
	if err != nil || !strings.Contains(string(lock), "\nredis-server 5:") {
		t.Fatalf("lock file: %v\n%s", err, lock)
	}

	// The second build: another directory, TMPDIR, umask and hostname,
	// the lock copied beside the spec, so the same package versions.
	os.WriteFile(filepath.Join(dirB, "redis.yaml"), []byte(redisSpec), 0o644)
	os.WriteFile(filepath.Join(dirB, "redis.lock"), lock, 0o644)
	tmpB := filepath.Join(dirB, "tmp")
	os.Mkdir(tmpB, 0o700)
	c := exec.Command("unshare", "-u", "sh", "-c", `hostname other-builder && umask 077 && exec "$@"`, "sh",
		skiffBin, "--dir="+e.dir, "build", "-f", "redis.yaml", "-o", "oci:out:1")
	c.Dir = dirB
	c.Env = append(os.Environ(), "TMPDIR="+tmpB)
	start = time.Now()
	out, err := c.Output()
	if err != nil {
		t.Fatalf("second build: %v", err)
	}
	t.Logf("second build, pinned by the lock: %s", time.Since(start).Round(time.Millisecond))
	if got := strings.TrimSpace(string(out)); got != digestA || !strings.HasPrefix(got, "sha256:") {
		t.Errorf("second build gave %q, the first %q", got, digestA)
	}
	if ents, _ := os.ReadDir(tmpB); len(ents) != 0 {
		t.Errorf("the build left %d entries in TMPDIR", len(ents))
	}
	if b, _ := os.ReadFile(filepath.Join(dirB, "redis.lock")); string(b) != string(lock) {
		t.Errorf("the pinned build rewrote the lock")
	}

	// What is inside: redis and its libraries, no shell.
	layout := filepath.Join(dirA, "out")
	files, size := layerFiles(t, layout, true)
	for _, sh := range []string{"bin/sh", "usr/bin/sh", "bin/dash", "bin/bash", "usr/bin/dpkg", "usr/bin/apt"} {
		if _, ok := files[sh]; ok {
			t.Errorf("the image holds /%s", sh)
		}
	}
	for _, want := range []string{"usr/bin/redis-check-rdb", "lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "etc/passwd"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the image lacks /%s", want)
		}
	}
	t.Logf("microcontainer: %d entries, %d bytes unpacked, built in %s (full distro: %d bytes)", len(files), size, took.Round(time.Millisecond), minbaseRedisBytes)
	if size*5 > minbaseRedisBytes {
		t.Errorf("the image is %d bytes, more than a fifth of minbase+redis (%d)", size, minbaseRedisBytes)
	}

	// It runs on both stage1s and answers PING.
	for _, s1 := range []string{"ns", "kvm"} {
		t.Run(s1, func(t *testing.T) {
			e := e.with(t)
			save := filepath.Join(t.TempDir(), "uuid")
			c, log := e.start("--insecure-options=image", "run", "--stage1="+s1, "--net=default", "--uuid-file-save="+save, "oci:"+layout+":1")
			var uuid string
			waitFor(t, "the pod to start", 3*time.Minute, func() bool {
				b, _ := os.ReadFile(save)
				uuid = strings.TrimSpace(string(b))
				return uuid != "" && c.ProcessState == nil
			})
			var ip string
			waitFor(t, "a pod address", time.Minute, func() bool {
				out, _, _ := e.run("status", "--format=json", uuid)
				var st podStatus
				if json.Unmarshal([]byte(out), &st) == nil && len(st.Networks) > 0 && len(st.Networks[0].IPs) > 0 {
					ip, _, _ = strings.Cut(st.Networks[0].IPs[0], "/")
				}
				return ip != ""
			})
			if reply := redisPing(t, ip+":6379", 3*time.Minute); reply != "+PONG" {
				t.Errorf("PING answered %q\n%s", reply, log)
			}
			e.mustRun("stop", uuid)
			c.Wait()
		})
	}

	// podman runs the same layout.
	t.Run("podman", func(t *testing.T) {
		if _, err := exec.LookPath("podman"); err != nil {
			t.Fatal("podman missing: run tests/install-deps.sh (make test does)")
		}
		tmp := t.TempDir()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		podman := []string{"--root=" + filepath.Join(tmp, "root"), "--runroot=" + filepath.Join(tmp, "run"),
			"--storage-driver=vfs", "--cgroup-manager=cgroupfs", "--runtime=runc"}
		name := fmt.Sprintf("skiff-build-%d", port)
		// podman names an oci: image after its path, which must be lower case.
		lower, err := os.MkdirTemp("", "skiff-build-podman-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(lower) })
		if out, err := exec.Command("cp", "-a", layout, filepath.Join(lower, "out")).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		run := append(append([]string{}, podman...), "run", "-d", "--name", name, "--network=host",
			"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "oci:"+filepath.Join(lower, "out")+":1", "--port", fmt.Sprint(port))
		if out, err := exec.Command("podman", run...).CombinedOutput(); err != nil {
			t.Fatalf("podman run: %v\n%s", err, out)
		}
		t.Cleanup(func() {
			exec.Command("podman", append(append([]string{}, podman...), "rm", "-f", "-t", "0", name)...).Run()
			exec.Command("podman", append(append([]string{}, podman...), "rmi", "-a", "-f")...).Run()
		})
		if reply := redisPing(t, fmt.Sprintf("127.0.0.1:%d", port), time.Minute); reply != "+PONG" {
			logs, _ := exec.Command("podman", append(append([]string{}, podman...), "logs", name)...).CombinedOutput()
			t.Errorf("PING under podman answered %q\n%s", reply, logs)
		}
	})
}

// redisPing sends PING to the redis at addr until it answers.
func redisPing(t *testing.T, addr string, d time.Duration) string {
	t.Helper()
	var reply string
	waitFor(t, "redis at "+addr, d, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return false
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		reply = strings.TrimSpace(line)
		return err == nil
	})
	return reply
}

// layerFiles lists the entries of the single layer of the image in the
// layout, and the bytes of their content; with rootOwned, it checks that
// each is 0:0 with mtime 0.
func layerFiles(t *testing.T, layout string, rootOwned bool) (map[string]bool, int64) {
	t.Helper()
	var idx struct{ Manifests []struct{ Digest string } }
	readJSON(t, filepath.Join(layout, "index.json"), &idx)
	var m struct{ Layers []struct{ Digest string } }
	readJSON(t, blobPath(layout, idx.Manifests[0].Digest), &m)
	if len(m.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(m.Layers))
	}
	f, err := os.Open(blobPath(layout, m.Layers[0].Digest))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]bool{}
	var size int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rootOwned && (h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0) || h.Uname != "" {
			t.Errorf("%s: owner %d:%d %q, mtime %v", h.Name, h.Uid, h.Gid, h.Uname, h.ModTime)
		}
		files[strings.TrimSuffix(h.Name, "/")] = true
		size += h.Size
	}
	return files, size
}

func blobPath(layout, d string) string {
	return filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

// TestBuildBadInput: a spec with an unknown key, a package apt does not
// know, a program whose library is not in the image: one line naming the
// cause, no output, nothing left in TMPDIR.
func TestBuildBadInput(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o700)
	os.WriteFile(filepath.Join(dir, "colour.yaml"), []byte("debs: [redis-server]\ncolour: red\nexec: [/usr/bin/redis-server]\n"), 0o644)
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown key", []string{"-f", filepath.Join(dir, "colour.yaml")}, []string{`unknown key "colour"`, "line 2"}},
		{"missing package", []string{"--deb", "no-such-package-skiff", "--exec", "/bin/x"}, []string{"no-such-package-skiff"}},
		{"missing library", []string{"--path", "/usr/bin/ls:/bin/ls", "--path", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2:/lib64/ld-linux-x86-64.so.2", "--exec", "/bin/ls"},
			[]string{"missing library", "/bin/ls needs libselinux.so.1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			outDir := filepath.Join(dir, "out-"+strings.ReplaceAll(tt.name, " ", "-"))
			_, errs, code := e.runCtx(t.Context(), []string{"TMPDIR=" + tmp}, append([]string{"build", "-o", "oci:" + outDir}, tt.args...)...)
			if code == 0 || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("exit %d, want one line:\n%s", code, errs)
			}
			mustContain(t, errs, tt.want...)
			if _, err := os.Lstat(outDir); err == nil {
				t.Errorf("the failed build left %s", outDir)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("the failed build left %d entries in TMPDIR", len(ents))
			}
		})
	}
}

// TestBuildBaseAndOutputs: a build on a base image from the store (the
// busybox ACI) runs on ns; the same build written as every output kind
// is read back by skiff (ACI, oci-archive, docker-archive, a push to a
// registry, fetched back by the digest build printed).
func TestBuildBaseAndOutputs(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	id := strings.TrimSpace(e.mustRun("fetch", image(t, "busybox.aci")))
	hello := filepath.Join(dir, "hello.txt")
	os.WriteFile(hello, []byte("hello from skiff build\n"), 0o600)
	args := []string{"build", "--base", id, "--path", hello + ":/etc/hello.txt", "--exec", "/bin/cat /etc/hello.txt", "--name", "skiff.local/hello"}
	layout := filepath.Join(dir, "layout")
	e.mustRun(append(args, "-o", "oci:"+layout+":1")...)
	out, errs, code := e.run("--insecure-options=image", "run", "--stage1=ns", "oci:"+layout+":1")
	if code != 0 || !strings.Contains(out+errs, "hello from skiff build") {
		t.Errorf("run of the build on busybox: exit %d\n%s%s", code, out, errs)
	}
	// The base is there whole, owners and modes kept; the added file is 0:0.
	files, _ := layerFiles(t, layout, false)
	if !files["bin/busybox"] || !files["etc/hello.txt"] {
		t.Errorf("the image lacks the base's /bin/busybox or the added /etc/hello.txt")
	}

	// A signed ACI: fetched without --insecure-options once its key is trusted.
	key, err := openpgp.NewEntity("builder", "", "builder@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var sec, pub bytes.Buffer
	w, _ := armor.Encode(&sec, openpgp.PrivateKeyType, nil)
	key.SerializePrivate(w, nil)
	w.Close()
	w, _ = armor.Encode(&pub, openpgp.PublicKeyType, nil)
	key.Serialize(w)
	w.Close()
	os.WriteFile(filepath.Join(dir, "key.sec"), sec.Bytes(), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pub"), pub.Bytes(), 0o644)
	signed := filepath.Join(dir, "signed.aci")
	d := strings.TrimSpace(e.mustRun(append(args, "--sign-key", filepath.Join(dir, "key.sec"), "-o", "aci:"+signed)...))
	if _, errs, code := e.run("fetch", "--full", signed); code == 0 {
		t.Errorf("a signed ACI by an untrusted key fetched:\n%s", errs)
	}
	e.mustRun("trust", "--prefix", "skiff.local/hello", filepath.Join(dir, "key.pub"))
	if got := strings.TrimSpace(e.mustRun("fetch", "--full", signed)); got != d {
		t.Errorf("signed ACI fetched as %s, build printed %s", got, d)
	}
	if _, errs, code := e.run(append(args, "--sign-key", filepath.Join(dir, "key.sec"), "-o", "oci:"+filepath.Join(dir, "nope"))...); code != 2 || !strings.Contains(errs, "signs aci: and docker:// outputs") {
		t.Errorf("--sign-key with an OCI output: exit %d: %s", code, errs)
	}

	addr, _, _ := registry(t)
	for _, o := range []string{"aci:" + filepath.Join(dir, "hello.aci"), "oci-archive:" + filepath.Join(dir, "hello.tar"),
		"docker-archive:" + filepath.Join(dir, "hello-docker.tar"), "docker://" + addr + "/skiff/built:1"} {
		t.Run(strings.SplitN(o, ":", 2)[0], func(t *testing.T) {
			e := e.with(t)
			d := strings.TrimSpace(e.mustRun(append([]string{"--insecure-options=http"}, append(args, "-o", o)...)...))
			ref := strings.TrimPrefix(o, "aci:")
			if strings.HasPrefix(o, "docker://") {
				ref = "docker://" + addr + "/skiff/built@" + d
			}
			got := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image,http", ref))
			if strings.HasPrefix(o, "aci:") || strings.HasPrefix(o, "docker://") {
				if want := strings.Replace(d, ":", "-", 1); got != want {
					t.Errorf("fetched as %s, build printed %s", got, d)
				}
			}
			// An existing output is refused, before any work.
			if _, errs, code := e.run(append(args, "-o", o)...); !strings.HasPrefix(o, "docker://") && (code == 0 || !strings.Contains(errs, "exists")) {
				t.Errorf("build over an existing output: exit %d: %s", code, errs)
			}
		})
	}
}

// TestBuildSignedPush: `skiff build -o docker://REF --sign-key KEY` writes a
// simple signing signature of the pushed manifest into the registry's
// lookaside (registries.d); skiff fetch verifies it with the key trusted
// for the name and refuses a tampered one or a moved tag; skopeo, the
// peer, verifies it under a policy that requires the key.
func TestBuildSignedPush(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	addr, _, _ := registry(t)
	home, fpr, pub := gpgKey(t, "builder@skiff.test")
	sec, err := exec.Command("gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
		"--armor", "--export-secret-keys", fpr).Output()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key.sec")
	os.WriteFile(keyFile, sec, 0o600)
	id := strings.TrimSpace(e.mustRun("fetch", image(t, "busybox.aci")))
	build := func(e *env, content, tag string, sign bool) (string, string, int) {
		hello := filepath.Join(dir, "hello-"+tag+".txt")
		os.WriteFile(hello, []byte(content), 0o600)
		args := []string{"--insecure-options=http", "build", "--base", id, "--path", hello + ":/etc/hello.txt",
			"--exec", "/bin/cat /etc/hello.txt", "-o", "docker://" + addr + "/skiff/signed:" + tag}
		if sign {
			args = append(args, "--sign-key", keyFile)
		}
		out, errs, code := e.run(args...)
		return strings.TrimSpace(out), errs, code
	}
	// No lookaside to write to: refused before anything is built or pushed.
	if _, errs, code := build(e, "none", "0", true); code != 254 || !strings.Contains(errs, "no file:// lookaside") || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
		t.Errorf("--sign-key without a lookaside: exit %d, want 254 and one line:\n%s", code, errs)
	}
	if err := exec.Command("skopeo", "inspect", "--tls-verify=false", "docker://"+addr+"/skiff/signed:0").Run(); err == nil {
		t.Error("pushed although the signature had nowhere to go")
	}

	lookaside := t.TempDir()
	regd := filepath.Join(e.config, "registries.d")
	os.MkdirAll(regd, 0o755)
	os.WriteFile(filepath.Join(regd, "local.yaml"), []byte("docker:\n  "+addr+":\n    lookaside: file://"+lookaside+"\n"), 0o644)
	d, errs, code := build(e, "signed by skiff build\n", "1", true)
	if code != 0 || !strings.HasPrefix(d, "sha256:") || !strings.Contains(errs, "signed docker://"+addr+"/skiff/signed:1") {
		t.Fatalf("signed push: exit %d, printed %q\n%s", code, d, errs)
	}
	sigFile := filepath.Join(lookaside, "skiff/signed@sha256="+strings.TrimPrefix(d, "sha256:"), "signature-1")
	if _, err := os.Stat(sigFile); err != nil {
		t.Fatalf("no signature where the lookaside says: %v", err)
	}

	// skiff: verified with the key trusted for the name, no insecure option.
	e.mustRun("trust", "--prefix", addr+"/skiff", pub)
	fresh := func() *env {
		f := newEnv(t)
		os.MkdirAll(filepath.Join(f.config, "registries.d"), 0o755)
		os.WriteFile(filepath.Join(f.config, "registries.d", "local.yaml"), []byte("docker:\n  "+addr+":\n    lookaside: file://"+lookaside+"\n"), 0o644)
		f.mustRun("trust", "--prefix", addr+"/skiff", pub)
		return f
	}
	f := fresh()
	got := strings.TrimSpace(f.mustRun("fetch", "--full", "--insecure-options=http", "docker://"+addr+"/skiff/signed:1"))
	if want := strings.Replace(d, ":", "-", 1); got != want {
		t.Errorf("fetched as %s, build printed %s", got, d)
	}
	var imgs []struct{ Kind, Provenance, Signer string }
	json.Unmarshal([]byte(f.mustRun("image", "list", "--format=json")), &imgs)
	verified := false
	for _, i := range imgs {
		verified = verified || i.Kind == "oci" && i.Provenance == "verified" && strings.EqualFold(i.Signer, fpr)
	}
	if !verified {
		t.Errorf("the signed image is not recorded verified by %s: %+v", fpr, imgs)
	}
	if out, errs, code := f.run("run", "--stage1=ns", "--insecure-options=http", "docker://"+addr+"/skiff/signed:1"); code != 0 || !strings.Contains(out+errs, "signed by skiff build") {
		t.Errorf("run of the signed image: exit %d\n%s%s", code, out, errs)
	}

	// skopeo verifies it too, under a policy that requires the key (and
	// refuses it under one that requires another key: it did verify).
	_, _, otherPub := gpgKey(t, "other@skiff.test")
	for i, c := range []struct {
		key string
		ok  bool
	}{{pub, true}, {otherPub, false}} {
		policy := filepath.Join(dir, fmt.Sprintf("policy-%d.json", i))
		os.WriteFile(policy, []byte(`{"default":[{"type":"reject"}],"transports":{"docker":{"`+addr+`/skiff":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"`+c.key+`"}]},"oci":{"":[{"type":"insecureAcceptAnything"}]}}}`), 0o644)
		out, err := exec.Command("skopeo", "--policy", policy, "--registries.d", regd, "copy", "--quiet", "--src-tls-verify=false", "--remove-signatures",
			"docker://"+addr+"/skiff/signed:1", fmt.Sprintf("oci:%s/copy-%d:1", dir, i)).CombinedOutput()
		if (err == nil) != c.ok {
			t.Errorf("skopeo under a policy requiring %s: %v, want ok=%v\n%s", c.key, err, c.ok, out)
		}
	}

	// Tampered: a byte of the signature changed.
	d2, errs, code := build(e, "tampered\n", "2", true)
	if code != 0 {
		t.Fatalf("second signed push: exit %d\n%s", code, errs)
	}
	sig2 := filepath.Join(lookaside, "skiff/signed@sha256="+strings.TrimPrefix(d2, "sha256:"), "signature-1")
	b, _ := os.ReadFile(sig2)
	b[len(b)/2] ^= 0xff
	os.WriteFile(sig2, b, 0o644)
	// Moved: tag 1 now names another image, unsigned; the old signature
	// (of the first digest) is put beside it.
	d3, errs, code := build(e, "moved\n", "1", false)
	if code != 0 {
		t.Fatalf("unsigned push: exit %d\n%s", code, errs)
	}
	old, _ := os.ReadFile(sigFile)
	movedDir := filepath.Join(lookaside, "skiff/signed@sha256="+strings.TrimPrefix(d3, "sha256:"))
	os.MkdirAll(movedDir, 0o755)
	os.WriteFile(filepath.Join(movedDir, "signature-1"), old, 0o644)
	f = fresh()
	for tag, want := range map[string]string{"2": "signature-1: verify", "1": "it signs manifest"} {
		if _, errs, code := f.run("fetch", "--insecure-options=http", "docker://"+addr+"/skiff/signed:"+tag); code == 0 || !strings.Contains(errs, want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("tag %s: exit %d, want one line saying %q:\n%s", tag, code, want, errs)
		}
	}
	if out := f.mustRun("image", "list", "--format=json"); strings.Contains(out, `"oci"`) {
		t.Errorf("refused images stored:\n%s", out)
	}
}
