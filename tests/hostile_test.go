//go:build e2e

package tests

// Hostile pod and image files (issue 10, classes 4 and 7): every command
// that meets one must fail fast with one line, or show the pod as it can,
// never hang, balloon, follow a planted symlink or write outside its data
// dir. Each command runs under a deadline so that a hang fails the test.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/aci/acitest"
	"github.com/skiffpod/skiff/pkg/pod"
)

// result is one skiff command run by within.
type result struct {
	out, errs string
	code      int
	took      time.Duration
	maxRSS    int64 // bytes
}

// within runs skiff and fails the test if it has not exited after d.
func within(t *testing.T, e *env, d time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	full := append([]string{"--dir=" + e.dir, "--local-config=" + e.config}, args...)
	c := exec.CommandContext(ctx, skiffBin, full...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	start := time.Now()
	err := c.Run()
	r := result{out: out.String(), errs: errb.String(), took: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("skiff %s: still running after %v (killed)\nstderr: %s", strings.Join(args, " "), d, r.errs)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("skiff %s: %v", strings.Join(args, " "), err)
	}
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss << 10
	}
	return r
}

// oneLine fails unless r failed with exit status code and exactly one
// error line that names every want.
func (r result) oneLine(t *testing.T, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.out, r.errs)
	}
	lines := errorLines(strings.TrimSuffix(r.errs, "Run 'skiff --help' for usage.\n")) // usage errors add the hint
	if len(lines) != 1 {
		t.Errorf("want one error line, got %d: %q", len(lines), r.errs)
	}
	for _, w := range wants {
		if !strings.Contains(r.errs, w) {
			t.Errorf("error %q does not name %q", r.errs, w)
		}
	}
}

// ok fails unless r succeeded.
func (r result) ok(t *testing.T) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.errs)
	}
}

// writeACI writes an image of the given tar entries (a manifest first,
// unless the entries bring their own) and returns its path.
func writeACI(t *testing.T, entries ...acitest.Entry) string {
	t.Helper()
	if len(entries) == 0 || entries[0].Name != "manifest" {
		entries = append([]acitest.Entry{{Name: "manifest", Body: acitest.Manifest("skiff.local/evil",
			`"labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}]`)}}, entries...)
	}
	p := filepath.Join(t.TempDir(), "evil.aci")
	if err := os.WriteFile(p, acitest.Tar(t, entries...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHostileImageLimits(t *testing.T) {
	type E = acitest.Entry
	tests := []struct {
		name    string
		aci     func(t *testing.T) string
		mention string
	}{
		{"deeper than 1024", func(t *testing.T) string {
			return writeACI(t, E{Name: "rootfs/"}, E{Name: "rootfs/" + strings.Repeat("d/", 1025) + "f"})
		}, "deeper than 1024 components"},
		{"longer than PATH_MAX", func(t *testing.T) string {
			return writeACI(t, E{Name: "rootfs/"}, E{Name: "rootfs/" + strings.Repeat("longname/", 460)})
		}, "longer than 4096"},
		{"pax sparse", func(t *testing.T) string {
			return writeACI(t, E{Name: "rootfs/"}, E{Name: "rootfs/sparse", Body: "hello", PAX: map[string]string{
				"GNU.sparse.size": strconv.Itoa(1 << 30), "GNU.sparse.numblocks": "1", "GNU.sparse.map": "0,5"}})
		}, "sparse file"},
		{"uid 2^31", func(t *testing.T) string {
			return writeACI(t, E{Name: "rootfs/"}, E{Name: "rootfs/f", Uid: 1 << 31})
		}, "uid 2147483648"},
		{"no rootfs", func(t *testing.T) string { return writeACI(t) }, "no rootfs"},
		{"duplicate manifest key", func(t *testing.T) string {
			return writeACI(t, E{Name: "manifest", Body: `{"acKind":"ImageManifest","acVersion":"0.8.11",` +
				`"name":"skiff.local/evil","app":{"exec":["/bin/true"],"user":"0","group":"0","user":"root"}}`}, E{Name: "rootfs/"})
		}, `duplicate key "app.user"`},
		{"decompression bomb", func(t *testing.T) string {
			// 256 MiB of zeros in 250 KiB: far past 100:1.
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
			tw := tar.NewWriter(zw)
			m := acitest.Manifest("skiff.local/bomb")
			tw.WriteHeader(&tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(m))})
			tw.Write([]byte(m))
			tw.WriteHeader(&tar.Header{Name: "rootfs/zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 256 << 20})
			io.CopyN(tw, zeroReader{}, 256<<20)
			tw.Close()
			zw.Close()
			p := filepath.Join(t.TempDir(), "bomb.aci")
			os.WriteFile(p, buf.Bytes(), 0o644)
			return p
		}, "decompresses to more than 100 times"},
	}
	e := newEnv(t)
	e.mustRun("--insecure-options=image", "fetch", image(t, "busybox.aci"))
	before := treeListing(t, e.dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := within(t, e.with(t), 60*time.Second, "--insecure-options=image", "fetch", tt.aci(t))
			r.oneLine(t, 254, tt.mention)
			if after := treeListing(t, e.dir); after != before {
				t.Errorf("store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestDeepImageRenders: 1024 levels is allowed, and renders in seconds
// (it took 40 s when every file operation walked the path one component
// per system call).
func TestDeepImageRenders(t *testing.T) {
	es := []acitest.Entry{{Name: "rootfs/"}}
	p := "rootfs/"
	for i := 0; i < aci.MaxDepth-1; i++ {
		p += "d/"
		es = append(es, acitest.Entry{Name: p}, acitest.Entry{Name: p + "f", Body: "x"})
	}
	img := writeACI(t, es...)
	e := newEnv(t)
	r := within(t, e, 60*time.Second, "--insecure-options=image", "prepare", "--stage1="+stubACI, img, "--exec=/d/f")
	if r.code != 0 {
		t.Fatalf("prepare: exit %d: %s", r.code, r.errs)
	}
	if r.took > 20*time.Second {
		t.Errorf("prepare of a 1024-level image took %v", r.took)
	}
	t.Logf("prepare of a 1024-level image took %v", r.took)
}

// TestImageXattrs: of an image's xattrs only user.* (and
// security.capability) reach the rendered tree: never trusted.overlay.*,
// which overlayfs would obey when the tree is a lowerdir.
func TestImageXattrs(t *testing.T) {
	img := writeACI(t, acitest.Entry{Name: "rootfs/"}, acitest.Entry{Name: "rootfs/xattr-file", Body: "x", PAX: map[string]string{
		"SCHILY.xattr.user.kept":                "yes",
		"SCHILY.xattr.trusted.overlay.opaque":   "y",
		"SCHILY.xattr.trusted.overlay.redirect": "/etc",
		"SCHILY.xattr.security.ima":             "\x03\x02",
	}})
	e := newEnv(t)
	within(t, e, 60*time.Second, "--insecure-options=image", "prepare", "--stage1="+stubACI, img, "--exec=/xattr-file").ok(t)
	found := 0
	filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "xattr-file" || strings.Contains(p, "/pods/") {
			return nil
		}
		found++
		buf := make([]byte, 1024)
		n, err := unix.Llistxattr(p, buf)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Trim(string(buf[:n]), "\x00")
		if got != "user.kept" {
			t.Errorf("%s has xattrs %q, want only user.kept", p, strings.ReplaceAll(got, "\x00", ","))
		}
		return nil
	})
	if found == 0 {
		t.Fatal("no rendered xattr-file in the store")
	}
}

// fifoPasswdImage is busybox.aci with a FIFO as /etc/passwd.
func fifoPasswdImage(t *testing.T) string {
	t.Helper()
	src, err := os.Open(image(t, "busybox.aci"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dec, err := aci.Decompress(src)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tr, tw := tar.NewReader(dec), tar.NewWriter(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		switch strings.TrimPrefix(h.Name, "./") {
		case "rootfs/etc/passwd":
			continue
		case "manifest":
			var m schema.ImageManifest
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			m.Name = *types.MustACIdentifier("skiff.local/fifo-passwd")
			body, _ = json.Marshal(m)
			h.Size = int64(len(body))
		}
		tw.WriteHeader(h)
		tw.Write(body)
	}
	tw.WriteHeader(&tar.Header{Name: "rootfs/etc/passwd", Typeflag: tar.TypeFifo, Mode: 0o644})
	tw.Close()
	p := filepath.Join(t.TempDir(), "fifo-passwd.aci")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFIFOPasswd: a FIFO as the image's /etc/passwd made the stage1 hang
// while resolving --user. Both stage1s resolve users on the host, with the
// same code (pkg/appspec), before the pod boots: cheap on kvm too.
func TestFIFOPasswd(t *testing.T) {
	img := fifoPasswdImage(t)
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		r := within(t, e, 90*time.Second, "--insecure-options=image", "run", "--stage1="+s, img, "--user=nobody", "--exec=/bin/true")
		if r.code == 0 {
			t.Fatalf("run succeeded:\n%s%s", r.out, r.errs)
		}
		mustContain(t, r.errs, "etc/passwd", "not a regular file")
		if l := errorLines(r.errs); len(l) != 1 {
			t.Errorf("want one error line, got %q", l)
		}
		t.Logf("failed after %v: %q", r.took, r.errs)
	})
}

// exitedPod runs a pod that exits at once and returns its directory.
func exitedPod(t *testing.T, e *env) (string, string) {
	t.Helper()
	save := filepath.Join(t.TempDir(), "uuid")
	r := within(t, e, 90*time.Second, "run", "--stage1=ns", "--uuid-file-save="+save, image(t, "busybox.aci"), "--exec=/bin/true")
	if r.code != 0 {
		t.Fatalf("run: exit %d: %s", r.code, r.errs)
	}
	b, err := os.ReadFile(save)
	if err != nil {
		t.Fatal(err)
	}
	uuid := strings.TrimSpace(string(b))
	return uuid, filepath.Join(pod.PodsDir(e.dir), string(pod.Running), uuid)
}

// plant replaces path by a hostile file of the given kind.
func plant(t *testing.T, path, kind, secret string) {
	t.Helper()
	os.Remove(path)
	var err error
	switch kind {
	case "fifo":
		err = unix.Mkfifo(path, 0o644)
	case "huge": // 2 GiB declared, nothing stored
		if err = os.WriteFile(path, []byte("1"), 0o644); err == nil {
			err = os.Truncate(path, 2<<30)
		}
	case "symlink":
		err = os.Symlink(secret, path)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestHostilePodFiles: a pod's pid file, app status files and manifest are
// written where a pod (or a compromised stage1) can reach; list, status and
// cat-manifest must neither hang on them, nor read gigabytes, nor follow a
// symlink to a host file.
func TestHostilePodFiles(t *testing.T) {
	e := newEnv(t)
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "secret")
	os.WriteFile(secret, []byte("4242\n"), 0o600) // reads as a pid and an exit status
	uuid, dir := exitedPod(t, e)
	manifest, err := os.ReadFile(filepath.Join(dir, pod.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"pid":        filepath.Join(dir, pod.PidFile),
		"app status": filepath.Join(dir, pod.AppStatusDir, "busybox"),
	}
	for what, path := range files {
		for _, kind := range []string{"fifo", "huge", "symlink"} {
			t.Run(what+"/"+kind, func(t *testing.T) {
				plant(t, path, kind, secret)
				for _, args := range [][]string{{"list"}, {"list", "--format=json"}, {"status", uuid}} {
					r := within(t, e.with(t), 20*time.Second, args...)
					if r.code != 0 && len(errorLines(r.errs)) != 1 {
						t.Errorf("%v: exit %d without one error line: %q", args, r.code, r.errs)
					}
					if strings.Contains(r.out, "4242") {
						t.Errorf("%v followed the symlink to a host file:\n%s", args, r.out)
					}
					if r.maxRSS > 256<<20 {
						t.Errorf("%v: max RSS %d MiB", args, r.maxRSS>>20)
					}
				}
			})
		}
		os.Remove(path)
	}
	t.Run("cat-manifest symlink", func(t *testing.T) {
		os.WriteFile(secret, []byte("host secret\n"), 0o600)
		mpath := filepath.Join(dir, pod.ManifestFile)
		os.Remove(mpath)
		if err := os.Symlink(secret, mpath); err != nil {
			t.Fatal(err)
		}
		r := within(t, e.with(t), 20*time.Second, "cat-manifest", uuid)
		r.oneLine(t, 254, "symlink")
		mustNotContain(t, r.out, "host secret")
		for kind, mention := range map[string]string{"fifo": "not a regular file", "huge": "too large"} {
			plant(t, mpath, kind, secret)
			r := within(t, e.with(t), 20*time.Second, "cat-manifest", uuid)
			r.oneLine(t, 254, mention)
			// list and status read the manifest too, for the app names.
			within(t, e.with(t), 20*time.Second, "list").ok(t)
			within(t, e.with(t), 20*time.Second, "status", uuid).ok(t)
		}
		os.Remove(mpath)
		os.WriteFile(mpath, manifest, 0o644)
	})
}

// TestHostileOutputFiles: --uuid-file-save and image export write where the
// user says; a symlink or FIFO planted there must be refused, not followed
// or blocked on.
func TestHostileOutputFiles(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.mustRun("fetch", image(t, "busybox.aci")))
	for _, kind := range []string{"symlink", "dangling symlink", "fifo"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "target")
			os.WriteFile(target, []byte("untouched"), 0o644)
			out := filepath.Join(dir, "out")
			switch kind {
			case "symlink":
				os.Symlink(target, out)
			case "dangling symlink":
				os.Symlink(filepath.Join(dir, "created"), out)
			case "fifo":
				unix.Mkfifo(out, 0o644)
			}
			check := func(t *testing.T) {
				if b, _ := os.ReadFile(target); string(b) != "untouched" {
					t.Errorf("wrote through the symlink: target is %q", b)
				}
				if _, err := os.Lstat(filepath.Join(dir, "created")); err == nil {
					t.Errorf("created the dangling symlink's target")
				}
			}
			t.Run("uuid-file-save", func(t *testing.T) {
				r := within(t, e.with(t), 60*time.Second, "run", "--stage1="+stubACI, "--uuid-file-save="+out, image(t, "busybox.aci"))
				r.oneLine(t, 254, "--uuid-file-save")
				check(t)
				if l := e.mustRun("list", "--format=json"); len(uuidsIn(l)) != 0 {
					t.Errorf("a pod was prepared: %s", l)
				}
			})
			for _, overwrite := range []bool{false, true} {
				args := []string{"image", "export", id, out}
				if overwrite {
					args = append(args, "--overwrite")
				}
				t.Run(strings.Join(append([]string{"export"}, args[4:]...), " "), func(t *testing.T) {
					r := within(t, e.with(t), 60*time.Second, args...)
					r.oneLine(t, 254, "image export")
					check(t)
				})
			}
		})
	}
	// The ordinary cases still work: a new file, and --overwrite of a file.
	out := filepath.Join(t.TempDir(), "busybox.aci")
	e.mustRun("image", "export", id, out)
	within(t, e, 60*time.Second, "image", "export", id, out).oneLine(t, 254, "--overwrite")
	e.mustRun("image", "export", id, out, "--overwrite")
	if b, _ := os.ReadFile(out); len(b) < 1<<20 {
		t.Errorf("export wrote %d bytes", len(b))
	}
}

// TestBadHostname: --hostname is checked before anything is prepared.
func TestBadHostname(t *testing.T) {
	e := newEnv(t)
	for _, h := range []string{"bad_name", "-lead", "a..b", strings.Repeat("x", 65), "new\nline"} {
		for _, cmd := range []string{"run", "prepare"} {
			r := within(t, e.with(t), 30*time.Second, cmd, "--stage1="+stubACI, "--hostname="+h, image(t, "busybox.aci"))
			r.oneLine(t, 2, "--hostname")
		}
	}
	if l := e.mustRun("list", "--format=json"); len(uuidsIn(l)) != 0 {
		t.Errorf("a pod was prepared: %s", l)
	}
	// A valid name still runs.
	within(t, e, 60*time.Second, "run", "--stage1="+stubACI, "--hostname=web-01.example", image(t, "busybox.aci"), "--exec=/bin/true").ok(t)
}
