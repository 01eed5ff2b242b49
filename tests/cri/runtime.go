package cri

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CacheDir is where tools.sh builds (CacheDir/bin) and the image layouts
// are kept: $SKIFF_TEST_CACHE, else /var/cache/skiff-test.
func CacheDir() string {
	if d := os.Getenv("SKIFF_TEST_CACHE"); d != "" {
		return d
	}
	return "/var/cache/skiff-test"
}

// Tool returns the path of a tool tools.sh built, or an error naming what
// to run when it is missing.
func Tool(name string) (string, error) {
	p := filepath.Join(CacheDir(), "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s missing: run tests/cri/tools.sh (make test does; the kubelet: make test-kubelet)", p)
	}
	return p, nil
}

// Crictl runs the cached crictl against endpoint (unix:///PATH) and returns
// its standard output; its standard error (warnings) goes into the error.
func Crictl(ctx context.Context, endpoint string, args ...string) (string, error) {
	bin, err := Tool("crictl")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	full := append([]string{"--runtime-endpoint=" + endpoint, "--image-endpoint=" + endpoint, "--timeout=60s"}, args...)
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, bin, full...)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return stdout.String(), fmt.Errorf("crictl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// Daemon is a CRI runtime started by Start; Stop undoes it.
type Daemon struct {
	Endpoint string // unix:///PATH
	Log      string // its output
	cmd      *exec.Cmd
	exited   chan struct{}
	undo     []func() error
}

// Start starts the CRI runtime cmd (its output to logPath) and waits until
// endpoint answers `crictl version`. undo runs, in order, after Stop has
// removed every pod and stopped the daemon.
func Start(cmd *exec.Cmd, endpoint, logPath string, undo ...func() error) (*Daemon, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	d := &Daemon{Endpoint: endpoint, Log: logPath, cmd: cmd, exited: make(chan struct{}), undo: undo}
	go func() { cmd.Wait(); logf.Close(); close(d.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := Crictl(context.Background(), endpoint, "version"); err == nil {
			return d, nil
		}
		select {
		case <-d.exited:
			d.Stop()
			return nil, fmt.Errorf("%s exited; its log ends:\n%s", cmd.Path, Tail(logPath, 30))
		default:
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("%s did not answer on %s in 60s; its log ends:\n%s", cmd.Path, endpoint, Tail(logPath, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop removes every pod through the CRI, stops the daemon (SIGTERM, then
// SIGKILL after 15 s) and runs the undo steps.
func (d *Daemon) Stop() error {
	var errs []error
	select {
	case <-d.exited:
	default:
		if _, err := Crictl(context.Background(), d.Endpoint, "rmp", "--force", "--all"); err != nil {
			errs = append(errs, err)
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
	}
	for _, u := range d.undo {
		if err := u(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StartContainerd writes c's config and files and starts containerd from
// the cache (its shim found on PATH there). Stop also kills shims left
// running, unmounts what is left below c.Dir, deletes the bridge, and
// removes /run/containerd (where shims keep their sockets) when it was not
// there before.
func StartContainerd(c Containerd) (*Daemon, error) {
	bin, err := Tool("containerd")
	if err != nil {
		return nil, err
	}
	if _, err := Tool("containerd-shim-runc-v2"); err != nil {
		return nil, err
	}
	files := c.Files()
	files["config.toml"] = c.Config()
	for name, body := range files {
		p := filepath.Join(c.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	_, err = os.Stat("/run/containerd")
	hadRun := err == nil
	// containerd puts its pods' cgroups below k8s.io in each hierarchy.
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/k8s.io")
	if len(cgroups) > 0 {
		cgroups = nil // there before: not ours to remove
	} else {
		cgroups = []string{"/sys/fs/cgroup/*/k8s.io", "/sys/fs/cgroup/k8s.io"}
	}
	cmd := exec.Command(bin, "--config", filepath.Join(c.Dir, "config.toml"))
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return Start(cmd, "unix://"+c.Socket(), filepath.Join(c.Dir, "containerd.log"), func() error {
		killShims(filepath.Join(filepath.Dir(bin), "containerd-shim-runc-v2"), c.Socket())
		err := UnmountUnder(c.Dir)
		exec.Command("ip", "link", "del", "ctrd0").Run()
		if !hadRun {
			err = errors.Join(err, UnmountUnder("/run/containerd"), os.RemoveAll("/run/containerd"))
		}
		for _, pattern := range cgroups {
			dirs, _ := filepath.Glob(pattern)
			for _, d := range dirs {
				err = errors.Join(err, removeCgroup(d))
			}
		}
		return err
	})
}

// removeCgroup removes the cgroup dir and those below it, deepest first
// (a cgroup dir is removed with rmdir, its files are the kernel's).
func removeCgroup(dir string) error {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}

// killShims kills the shims of the containerd at socket (their command
// line names its address): after a clean rmp there are none.
func killShims(shim, socket string) {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte(shim)) || !bytes.Contains(b, []byte(socket)) {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// UnmountUnder lazily unmounts every mount at or below dir, deepest first.
func UnmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mounts []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mounts[i], err))
		}
	}
	return errors.Join(errs...)
}

// Tail returns the last n lines of the file at path.
func Tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ImageLayout returns the dir of images.sh's output (layout/, images.txt)
// for the checkout at repo, built once per version of its inputs
// (images.sh, imagebin) under CacheDir()/cri-images.
func ImageLayout(repo string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"tests/cri/images.sh", "tests/cri/imagebin/main.go"} {
		b, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	dir := filepath.Join(CacheDir(), "cri-images", hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "images.txt")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(tmp, "imagebin"), "./tests/cri/imagebin")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "PATH="+os.Getenv("PATH")+":/usr/local/go/bin")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build imagebin: %w: %s", err, b)
	}
	sh := exec.Command("sh", filepath.Join(repo, "tests/cri/images.sh"), filepath.Join(tmp, "out"), filepath.Join(tmp, "imagebin"))
	if b, err := sh.CombinedOutput(); err != nil {
		return "", fmt.Errorf("images.sh: %w\n%s", err, b)
	}
	if err := os.Rename(filepath.Join(tmp, "out"), dir); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	return dir, nil
}

// PushImages copies each image of ImageLayout's dir to the registry at addr
// under its upstream name without the registry host:
// registry.k8s.io/pause:3.9 becomes addr/pause:3.9, where a mirror of
// registry.k8s.io looks for it.
func PushImages(dir, addr string) error {
	list, err := os.ReadFile(filepath.Join(dir, "images.txt"))
	if err != nil {
		return err
	}
	// One repository's tags go one after another: docker-registry 2.8
	// loses blobs when the same image is pushed to one repository twice
	// at once ("manifest blob unknown").
	byRepo := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		_, name, _ := strings.Cut(l, " ")
		_, path, _ := strings.Cut(name, "/") // the repository here: k8s.gcr.io/pause and registry.k8s.io/pause are one
		repo, _, _ := strings.Cut(path, ":")
		byRepo[repo] = append(byRepo[repo], l)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, 4)
	for _, lines := range byRepo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, l := range lines {
				ref, name, _ := strings.Cut(l, " ")
				_, path, _ := strings.Cut(name, "/")
				c := exec.Command("skopeo", "copy", "-q", "--dest-tls-verify=false",
					"oci:"+filepath.Join(dir, "layout")+":"+ref, "docker://"+addr+"/"+path)
				if b, err := c.CombinedOutput(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("push %s as %s: %w: %s", ref, name, err, b))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ShmIDs lists the host's System V shared memory segments. critest's
// HostIpc specs make one each with ipcmk and never remove it: a run's
// caller removes what was not there before (RemoveShm).
func ShmIDs() map[string]bool {
	ids := map[string]bool{}
	b, _ := os.ReadFile("/proc/sysvipc/shm")
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines[min(1, len(lines)):] {
		if f := strings.Fields(l); len(f) > 1 {
			ids[f[1]] = true
		}
	}
	return ids
}

// RemoveShm removes the segments not in before.
func RemoveShm(before map[string]bool) error {
	var errs []error
	for id := range ShmIDs() {
		if !before[id] {
			if b, err := exec.Command("ipcrm", "-m", id).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ipcrm -m %s: %w: %s", id, err, bytes.TrimSpace(b)))
			}
		}
	}
	return errors.Join(errs...)
}
