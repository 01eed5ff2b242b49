//go:build e2e

package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/pod"
)

// Host users the permission tests act as: one outside the skiff group,
// one in it. Neither needs a passwd entry.
const (
	outsiderUID = 65534
	memberUID   = 64999
)

// skiffGroup returns the gid of the host group skiff, creating it (and
// removing it after the test) when the host has none. It must exist
// before the data dir is created: modes and owners are set then.
func skiffGroup(t *testing.T) int {
	t.Helper()
	if g, err := user.LookupGroup("skiff"); err == nil {
		gid, _ := strconv.Atoi(g.Gid)
		return gid
	}
	if out, err := exec.Command("groupadd", "--system", "skiff").CombinedOutput(); err != nil {
		t.Fatalf("groupadd skiff: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", "skiff").Run() })
	g, err := user.LookupGroup("skiff")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

// reachable makes the directories above the env's data dir, and a copy
// of skiff, usable by every host user, as /var/lib and /usr/bin are: only
// the data dir's own modes may stop them.
func reachable(t *testing.T, e *env) string {
	t.Helper()
	base := filepath.Dir(e.dir)
	for _, d := range []string{filepath.Dir(base), base, e.config} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(base, "skiff")
	b, err := os.ReadFile(skiffBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// as runs argv as uid (gid = uid) with exactly the supplementary groups
// given, and returns its combined output and exit status.
func as(t *testing.T, uid int, groups []int, argv ...string) (string, int) {
	t.Helper()
	gs := make([]uint32, len(groups))
	for i, g := range groups {
		gs[i] = uint32(g)
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = "/"
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: gs}}
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil { // the exec itself was refused
		return err.Error(), -1
	}
	return string(out), 0
}

// onlyPod returns the path of the env's one pod directory.
func onlyPod(t *testing.T, e *env) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(pod.PodsDir(e.dir), "*", "*-*-*-*-*"))
	if len(m) != 1 {
		t.Fatalf("want one pod dir, have %v", m)
	}
	return m[0]
}

func TestPermissionModel(t *testing.T) {
	gid := skiffGroup(t)
	e := newEnv(t)
	bin := reachable(t, e)
	out := e.mustRun("prepare", "--stage1=ns", image(t, "probe.aci"))
	uuid := uuidsIn(out)[0]
	podDir := onlyPod(t, e)
	id := imageID(t, e, "skiff.local/probe")
	trees := []string{filepath.Join(e.dir, "cas", "tree", id)}
	records := []string{filepath.Join(e.dir, "cas", "images", id+".json")}
	blobs := []string{filepath.Join(e.dir, "cas", "blobs", "sha512", strings.TrimPrefix(id, "sha512-"))}
	t.Run("modes", func(t *testing.T) {
		tests := []struct {
			path string
			mode os.FileMode
			gid  int
		}{
			{e.dir, 0o750, gid},
			{filepath.Join(e.dir, "format"), 0o640, gid},
			{filepath.Join(e.dir, "tmp"), 0o700, 0},
			{filepath.Join(e.dir, "cas"), 0o750, gid},
			{filepath.Join(e.dir, "cas", "lock"), 0o600, 0},
			{filepath.Join(e.dir, "cas", "images"), 0o750, gid},
			{records[0], 0o640, gid},
			{filepath.Join(e.dir, "cas", "blobs"), 0o700, 0},
			{blobs[0], 0o600, 0},
			{filepath.Join(e.dir, "cas", "tree"), 0o700, 0},
			{trees[0], 0o700, 0},
			{filepath.Join(e.dir, "cas", "remotes"), 0o700, 0},
			{pod.PodsDir(e.dir), 0o750, gid},
			{filepath.Dir(podDir), 0o750, gid},
			{podDir, 0o710, gid},
			{filepath.Join(podDir, pod.ManifestFile), 0o640, gid},
			{filepath.Join(podDir, pod.Stage1Dir), 0o700, 0},
			{filepath.Join(podDir, pod.OverlayDir), 0o700, 0},
		}
		for _, tt := range tests {
			fi, err := os.Lstat(tt.path)
			if err != nil {
				t.Error(err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode().Perm() != tt.mode || st.Uid != 0 || int(st.Gid) != tt.gid {
				t.Errorf("%s: mode %04o owner %d:%d, want %04o 0:%d", tt.path, fi.Mode().Perm(), st.Uid, st.Gid, tt.mode, tt.gid)
			}
		}
	})
	// Programs an unprivileged user could try to run: from a rendered
	// tree, and from the pod's app root (the overlay) and its upper dir.
	targets := []string{
		filepath.Join(trees[0], "rootfs", "probe"),
		filepath.Join(podDir, pod.AppRootfs("probe"), "probe"),
		filepath.Join(podDir, pod.Stage1Rootfs, "skiff", "run"),
	}
	t.Run("outsider", func(t *testing.T) {
		for _, args := range [][]string{{"list"}, {"image", "list"}} {
			out, code := as(t, outsiderUID, nil, append([]string{bin, "--dir=" + e.dir}, args...)...)
			if code == 0 || strings.Contains(out, uuid[:8]) || strings.Contains(out, "skiff.local/probe") {
				t.Errorf("skiff %v as a user outside the skiff group: exit %d, want failure:\n%s", args, code, out)
			}
			if !strings.Contains(out, "permission denied") || strings.Count(strings.TrimSpace(out), "\n") > 0 {
				t.Errorf("skiff %v as outsider: want one line naming the cause, got:\n%s", args, out)
			}
		}
		for _, p := range append(targets, blobs[0]) {
			if out, code := as(t, outsiderUID, nil, p, "-print-user"); code == 0 || !strings.Contains(out, "ermission denied") {
				t.Errorf("outsider ran %s: exit %d:\n%s", p, code, out)
			}
		}
	})
	t.Run("member", func(t *testing.T) {
		out, code := as(t, memberUID, []int{gid}, bin, "--dir="+e.dir, "list")
		if code != 0 || !strings.Contains(out, uuid[:8]) || !strings.Contains(out, "prepared") {
			t.Errorf("skiff list as a skiff group member: exit %d:\n%s", code, out)
		}
		out, code = as(t, memberUID, []int{gid}, bin, "--dir="+e.dir, "list", "--format=json")
		if code != 0 || !strings.Contains(out, uuid) {
			t.Errorf("skiff list --format=json as member: exit %d:\n%s", code, out)
		}
		out, code = as(t, memberUID, []int{gid}, bin, "--dir="+e.dir, "image", "list")
		if code != 0 || !strings.Contains(out, "skiff.local/probe") {
			t.Errorf("skiff image list as member: exit %d:\n%s", code, out)
		}
		for _, p := range append(targets, blobs[0]) {
			if out, code := as(t, memberUID, []int{gid}, p, "-print-user"); code == 0 || !strings.Contains(out, "ermission denied") {
				t.Errorf("member ran %s: exit %d:\n%s", p, code, out)
			}
		}
		if out, code := as(t, memberUID, []int{gid}, "ls", trees[0]); code == 0 {
			t.Errorf("member listed a rendered tree:\n%s", out)
		}
	})
}

// suidImage writes an image holding the probe twice: /probe, and
// /probe-suid owned by root with the setuid bit.
func suidImage(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := goBuild(filepath.Join(root, "probe"), "./tests/probe"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(root, "probe-suid")
	if err := os.WriteFile(suid, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier("skiff.local/suid")
	m.Labels = types.Labels{{Name: "version", Value: "1"}, {Name: "os", Value: "linux"}, {Name: "arch", Value: "amd64"}}
	m.App = &types.App{Exec: types.Exec{"/probe-suid", "-print-user"}, User: "0", Group: "0"}
	out := filepath.Join(t.TempDir(), "suid.aci")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := aci.Write(f, m, root); err != nil {
		t.Fatal(err)
	}
	return out
}

// mountOptions returns the per-mount options of the mount at path.
func mountOptions(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[4] == path {
			return f[5]
		}
	}
	t.Fatalf("%s is not a mount point", path)
	return ""
}

func TestSetuidInPod(t *testing.T) {
	suid := suidImage(t)
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		modes := map[string][]string{"overlay": nil}
		if s == "ns" { // the copy is made by stage0, the same for every stage1
			modes["copy"] = []string{"--no-overlay"}
		}
		for name, podFlags := range modes {
			t.Run(name, func(t *testing.T) {
				args := append([]string{"--insecure-options=image", "prepare", "--stage1=" + s}, podFlags...)
				out := e.mustRun(append(args, suid, "--user=65534", "--group=65534")...)
				uuid := uuidsIn(out)[0]
				p, err := pod.Load(e.dir, uuid)
				if err != nil {
					t.Fatal(err)
				}
				// A prepared pod holds no mount (its trees are mounted to run
				// it); its copy, if any, is where no unprivileged user reaches.
				if m := mountsUnder(p.Path()); len(m) > 0 {
					t.Errorf("mounts of a prepared pod: %v", m)
				}
				bin := filepath.Join(p.File(pod.AppRootfs("suid")), "probe-suid")
				outsider := func(when string) {
					t.Helper()
					if _, err := os.Stat(bin); err != nil {
						t.Fatalf("%s: %v", when, err)
					}
					if out, code := as(t, outsiderUID, nil, bin, "-print-user"); code == 0 || strings.Contains(out, "EUID=0") {
						t.Errorf("%s: host user ran the pod's setuid binary: exit %d:\n%s", when, code, out)
					}
				}
				if name == "copy" {
					outsider("prepared")
				}
				// Inside the pod it works as in any Linux root.
				out, errs, code := e.run("run-prepared", uuid)
				if code != 0 {
					t.Fatalf("run-prepared: exit %d:\n%s%s", code, out, errs)
				}
				mustContain(t, out+errs, "UID=65534", "EUID=0")
				// The host side of a pod that ran (its mounts are held until
				// rm): every mount of image content is nosuid,nodev, and no
				// unprivileged user can reach the binary anyway.
				p, err = pod.Load(e.dir, uuid)
				if err != nil {
					t.Fatal(err)
				}
				bin = filepath.Join(p.File(pod.AppRootfs("suid")), "probe-suid")
				for _, m := range []string{p.File(pod.Stage1Rootfs), p.File(pod.AppRootfs("suid"))} {
					opts := "," + mountOptions(t, m) + ","
					if !strings.Contains(opts, ",nosuid,") || !strings.Contains(opts, ",nodev,") {
						t.Errorf("host mount %s has options %s, want nosuid,nodev", m, opts)
					}
				}
				outsider("exited")
				e.mustRun("rm", uuid)
			})
		}
		t.Run("no-new-privileges", func(t *testing.T) {
			out, errs, code := e.run("--insecure-options=image", "run", "--stage1="+s, suid, "--user=65534", "--group=65534", "--no-new-privileges")
			if code != 0 {
				t.Fatalf("run: exit %d:\n%s%s", code, out, errs)
			}
			mustContain(t, out+errs, "UID=65534", "EUID=65534")
		})
	})
}

// imageID returns the ID of the one stored image named name.
func imageID(t *testing.T, e *env, name string) string {
	t.Helper()
	return idIn(t, e.mustRun("image", "list", "--format=json"), name)
}

// idIn returns the ID of the image named name in the output of
// `skiff image list --format=json`.
func idIn(t *testing.T, list, name string) string {
	t.Helper()
	var imgs []struct{ ID, Name string }
	if err := json.Unmarshal([]byte(list), &imgs); err != nil {
		t.Fatal(err)
	}
	for _, i := range imgs {
		if i.Name == name {
			return i.ID
		}
	}
	t.Fatalf("no image %s in %v", name, imgs)
	return ""
}

func TestFsck(t *testing.T) {
	e := newEnv(t)
	e.mustRun("fetch", image(t, "probe.aci"))
	id := imageID(t, e, "skiff.local/probe")
	tree := strings.TrimSpace(e.mustRun("image", "render", id))
	// A store and a pod in ordinary use are clean.
	e.mustRun("run", "--stage1=ns", image(t, "probe.aci"), "--", "-print-user")
	if out := e.mustRun("fsck"); out != "" {
		t.Errorf("fsck of a store in ordinary use reported:\n%s", out)
	}
	e.mustRun("gc", "--grace-period=0")

	t.Run("damaged tree", func(t *testing.T) {
		// What an attacker who once reached the tree would do: a setuid
		// bit, and changed bytes.
		bin := filepath.Join(e.dir, "cas", "tree", id, "rootfs", "probe")
		if err := os.Chmod(bin, 0o755|os.ModeSetuid); err != nil {
			t.Fatal(err)
		}
		out, errs, code := e.run("image", "verify")
		if code == 0 || !strings.Contains(out, "damaged tree") {
			t.Errorf("image verify on a damaged tree (%s): exit %d:\n%s%s", tree, code, out, errs)
		}
		out, errs, code = e.run("fsck")
		if code != 1 || !strings.Contains(out, "damaged tree") || !strings.Contains(errs, "skiff fsck --repair") {
			t.Errorf("fsck on a damaged tree: exit %d, want 1:\n%s%s", code, out, errs)
		}
		out = e.mustRun("fsck", "--repair")
		mustContain(t, out, "damaged tree", "(repaired)")
		if out := e.mustRun("fsck"); out != "" {
			t.Errorf("fsck after repair:\n%s", out)
		}
		e.mustRun("image", "render", id)
		if fi, err := os.Stat(bin); err != nil || fi.Mode()&os.ModeSetuid != 0 {
			t.Errorf("re-rendered tree: %v, %v", fi, err)
		}
	})

	t.Run("edited sidecar", func(t *testing.T) {
		rec := filepath.Join(e.dir, "cas", "images", id+".json")
		b, err := os.ReadFile(rec)
		if err != nil {
			t.Fatal(err)
		}
		var r map[string]any
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		app := r["manifest"].(map[string]any)["app"].(map[string]any)
		app["exec"] = []string{"/probe", "-print-env=EDITED"}
		edited, _ := json.Marshal(r)
		if err := os.WriteFile(rec, edited, 0o640); err != nil {
			t.Fatal(err)
		}
		// What runs comes from the blob: the edited record is refused.
		out, errs, code := e.run("prepare", "--stage1="+stubACI, id)
		if code == 0 || !strings.Contains(errs, "does not match its blob") || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("prepare from an edited record: exit %d, want one line naming the mismatch:\n%s%s", code, out, errs)
		}
		out, errs, code = e.run("fsck", "--format=json")
		var probs []struct{ Area, Path, Problem string }
		if err := json.Unmarshal([]byte(out), &probs); err != nil {
			t.Fatalf("fsck --format=json: %v:\n%s", err, out)
		}
		if code != 1 || len(probs) != 1 || probs[0].Area != "store" || probs[0].Path != rec || !strings.Contains(probs[0].Problem, "does not match its blob") {
			t.Errorf("fsck on an edited record: exit %d, %+v\n%s", code, probs, errs)
		}
		mustContain(t, e.mustRun("fsck", "--repair"), "(repaired)")
		e.mustRun("fsck")
		out = e.mustRun("prepare", "--stage1="+stubACI, id)
		p, err := pod.Load(e.dir, uuidsIn(out)[0])
		if err != nil {
			t.Fatal(err)
		}
		if b, err = os.ReadFile(p.File(pod.ManifestFile)); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("EDITED")) {
			t.Errorf("pod manifest took the edited exec:\n%s", b)
		}
		e.mustRun("rm", uuidsIn(out)[0])
	})

	t.Run("leftover mounts", func(t *testing.T) {
		// A removal that died between moving the pod to garbage and
		// unmounting it: a pod that ran (a prepared one holds no mount).
		save := filepath.Join(t.TempDir(), "uuid")
		e.mustRun("run", "--stage1="+stubACI, "--uuid-file-save="+save, id)
		b, err := os.ReadFile(save)
		if err != nil {
			t.Fatal(err)
		}
		p, err := pod.Load(e.dir, strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		garbage := filepath.Join(pod.PodsDir(e.dir), string(pod.Garbage), p.UUID)
		if err := os.Rename(p.Path(), garbage); err != nil {
			t.Fatal(err)
		}
		out, errs, code := e.run("fsck")
		if code != 1 || !strings.Contains(out, "mount(s) left over in a garbage pod") {
			t.Errorf("fsck with a mounted garbage pod: exit %d:\n%s%s", code, out, errs)
		}
		mustContain(t, e.mustRun("fsck", "--repair"), "(repaired)")
		if m := mountsUnder(garbage); len(m) > 0 {
			t.Errorf("mounts left after repair: %v", m)
		}
		e.mustRun("fsck")
	})
}

// v1Commit is the first release (no format file, 0755 store directories,
// no tree hashes), which the migration test builds and fills a store with.
const v1Commit = "65ff6c13a9703c9b8c7c2e4a1d170e0b7045e2c3"

// buildV1 builds the first release's skiff from this checkout's history,
// beside links to the stage1 images.
func buildV1(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	archive := exec.Command("git", "-C", repoRoot, "archive", "--format=tar", v1Commit)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	var errb bytes.Buffer
	archive.Stderr = &errb
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s (the test needs the checkout's git history): %v: %s", v1Commit, err, errb.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "skiff"), "./stage0")
	c.Dir = src
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "PATH="+os.Getenv("PATH")+":/usr/local/go/bin")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("build skiff %s: %v\n%s", v1Commit, err, out)
	}
	// The first release speaks stage1 interface version 1 only: it gets
	// today's stage1-ns stamped as version 1 (which stage1-ns, knowing
	// every flag of versions <= 3, is).
	stampStage1(t, filepath.Join(binDir, "stage1-ns.aci"), filepath.Join(dir, "stage1-ns.aci"), "1")
	return filepath.Join(dir, "skiff")
}

// stampStage1 copies the stage1 image src to dst with its manifest's
// interface-version annotation set to version.
func stampStage1(t *testing.T, src, dst, version string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw := gzip.NewWriter(out)
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "manifest" {
			var m schema.ImageManifest
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			m.Annotations.Set(types.ACIdentifier(pod.AnnotationVersion), version)
			if body, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMigrationFromV1(t *testing.T) {
	old := buildV1(t)
	e := newEnv(t)
	v1 := func(args ...string) string {
		t.Helper()
		c := exec.Command(old, append([]string{"--dir=" + e.dir, "--local-config=" + e.config}, args...)...)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("v1 skiff %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	uuid := uuidsIn(v1("prepare", "--stage1=ns", image(t, "probe.aci")))[0]
	v1("fetch", image(t, "busybox.aci"))
	bb := idIn(t, v1("image", "list", "--format=json"), "skiff.local/busybox")
	v1("image", "render", bb)
	if fi, err := os.Stat(filepath.Join(e.dir, "cas", "tree")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("v1 store: cas/tree %v, %v; want the old 0755 layout", fi, err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "format")); err == nil {
		t.Fatal("v1 store already has a format file")
	}
	// Damage done before the migration must still be found after it.
	bbBin, _ := filepath.Glob(filepath.Join(e.dir, "cas", "tree", bb, "rootfs", "bin", "busybox"))
	if len(bbBin) != 1 {
		t.Fatalf("no busybox in the rendered tree")
	}
	if err := os.Chmod(bbBin[0], 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}

	// The first command of the new skiff, as root, migrates.
	out := e.mustRun("list")
	mustContain(t, out, uuid[:8], "prepared")
	if b, err := os.ReadFile(filepath.Join(e.dir, "format")); err != nil || strings.TrimSpace(string(b)) != "3" {
		t.Errorf("format file after migration: %q, %v", b, err)
	}
	p, err := pod.Load(e.dir, uuid)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		e.dir: 0o750, filepath.Join(e.dir, "cas"): 0o750, filepath.Join(e.dir, "cas", "tree"): 0o700,
		filepath.Join(e.dir, "cas", "blobs"): 0o700, pod.PodsDir(e.dir): 0o750, p.Path(): 0o710,
		p.File(pod.ManifestFile): 0o640, p.File(pod.Stage1Dir): 0o700, p.File(pod.OverlayDir): 0o700,
	} {
		if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s after migration: %v, %v; want mode %04o", path, fi, err, want)
		}
	}
	trees, _ := filepath.Glob(filepath.Join(e.dir, "cas", "tree", "sha512-*"))
	for _, tr := range trees {
		if _, err := os.Stat(filepath.Join(tr, "treehash")); err != nil {
			t.Errorf("tree %s has no hash after migration", tr)
		}
	}
	for _, m := range []string{p.File(pod.Stage1Rootfs), p.File(pod.AppRootfs("probe"))} {
		if opts := "," + mountOptions(t, m) + ","; !strings.Contains(opts, ",nosuid,") || !strings.Contains(opts, ",nodev,") {
			t.Errorf("v1 pod's mount %s after migration: %s, want nosuid,nodev", m, opts)
		}
	}
	out, errs, code := e.run("fsck")
	if code != 1 || !strings.Contains(out, bb) || !strings.Contains(out, "damaged tree") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("fsck after migration: exit %d, want only the busybox tree damaged before it:\n%s%s", code, out, errs)
	}
	e.mustRun("fsck", "--repair")
	e.mustRun("fsck")
	// The pod prepared by v1 runs on the new skiff.
	out, errs, code = e.run("run-prepared", uuid)
	if code != 0 {
		t.Fatalf("run-prepared of a v1 pod: exit %d:\n%s%s", code, out, errs)
	}
	e.mustRun("rm", uuid)
}

// skiff floors its umask at 022, so nothing it or a stage1 creates in a
// pod dir the skiff group can read (such as stage1-kvm's control socket,
// which accepts enter commands) is writable by anyone but root.
func TestUmaskFloor(t *testing.T) {
	e := newEnv(t)
	save := filepath.Join(t.TempDir(), "uuid")
	c := exec.Command("sh", "-c", `umask 0; exec "$@"`, "sh", skiffBin, "--dir="+e.dir, "--local-config="+e.config,
		"run", "--stage1=ns", "--uuid-file-save="+save, image(t, "probe.aci"), "--", "-sleep=300s")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Wait()
	var uuid string
	waitFor(t, "the pod to be ready", 2*time.Minute, func() bool {
		b, _ := os.ReadFile(save)
		uuid = strings.TrimSpace(string(b))
		_, _, code := e.run("status", "--wait-ready=1s", uuid)
		return uuid != "" && code == 0
	})
	// skiff exec'd the stage1 in its own process: that is what runs now.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Umask:\t0022\n") {
		t.Errorf("stage1 of a skiff started with umask 0:\n%s", b)
	}
	e.mustRun("stop", uuid)
}
