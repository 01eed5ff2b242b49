package nspawn

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/launch"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// nspawn compiles its system-call filter (libseccomp, for three
// architectures) on every start: about half of a bare nspawn's time. A pod
// whose nspawn already ran on this host, this boot, with the same binaries
// and the same filter-shaping options and environment gets that filter
// from the first pod instead: nspawn runs with SYSTEMD_SECCOMP=0, and the
// pod's init (this program as /usr/lib/systemd/systemd, InitMain)
// installs the very programs nspawn installed before, then execs systemd.
// The first pod of a shape is learned from: its init waits on a FIFO while
// run reads nspawn's filters from it with ptrace (docs/stage1-ns.md,
// "nspawn's filter, learned once").
const (
	// filterDir holds the learned filters: KEY.libs lists the files nspawn
	// had mapped, KEY.LIBHASH the filters learned with those files as
	// they were.
	filterDir = "/run/skiff/nspawn-seccomp"
	// podFilter is the stage1 rootfs's copy of the filters for its init;
	// filterEnv, in the init's environment, is its sha256: the init must
	// install it (nspawn compiles none).
	podFilter = "nspawn-seccomp"
	filterEnv = "SKIFF_NSPAWN_FILTER"
	// podLearn is the FIFO the init waits on while run reads its filters.
	podLearn = "nspawn-seccomp.learn"
	// PodSystemd is where the stage1-ns image puts the pod's systemd.
	PodSystemd = "/skiff/systemd"
	// learnWait bounds the init's wait for run, and run's for the init.
	learnWait = 30 * time.Second
)

// filterKey names the filter nspawn at bin compiles for a pod started with
// args and env: this boot, the binary's identity, nspawn's SYSTEMD_*
// variables and every argument but those that only name this pod's things
// (its directory, machine, binds, hostname, namespaces' paths, the init's
// arguments), which do not shape the filter.
func filterKey(bin string, args, env []string) (string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", err
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", err
	}
	id, err := identity(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", bytes.TrimSpace(boot), id)
	for _, e := range env {
		if strings.HasPrefix(e, "SYSTEMD_") {
			h.Write([]byte(e + "\x00"))
		}
	}
	for _, a := range args {
		switch k, _, _ := strings.Cut(a, "="); {
		case k == "--directory" || k == "--machine" || k == "--uuid" || k == "--hostname" || k == "--bind" || k == "--bind-ro" ||
			strings.HasPrefix(a, "systemd."):
			continue
		case k == "--network-namespace-path" || k == "--private-users":
			a = k // the namespace, not which one
		}
		h.Write([]byte(a + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// identity is a file's path, device, inode, size and times: another
// version of it (a package upgrade) has another.
func identity(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return fmt.Sprintf("%s:%d:%d:%d:%d.%d:%d.%d", path, st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec), nil
}

// libHash hashes the identities of files (nspawn's mapped binaries: itself,
// libseccomp, libsystemd-shared, libc, ...).
func libHash(files []string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		id, err := identity(f)
		if err != nil {
			return "", err
		}
		h.Write([]byte(id + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// filterPlan is what a run does about nspawn's filter.
type filterPlan struct {
	sum   string // the sha256 of the learned filters the init installs; nspawn compiles none
	learn string // the key to learn from this pod's init, if any
}

// planFilter looks the pod's filter up and prepares the stage1 rootfs's
// /skiff for its init: the learned filters, or the FIFO to learn them
// through. Any failure leaves nspawn to compile the filter, as before.
func planFilter(log *slog.Logger, bin string, args, env []string) filterPlan {
	dir, err := skiffDir()
	if err != nil {
		log.Debug("nspawn's filter: not cached", "err", err)
		return filterPlan{}
	}
	defer dir.Close()
	key, err := filterKey(bin, args, env)
	if err != nil {
		log.Debug("nspawn's filter: not cached", "err", err)
		return filterPlan{}
	}
	b, err := readCached(key)
	if err == nil {
		if err := writeNew(dir, podFilter, b); err == nil {
			sum := sha256.Sum256(b)
			return filterPlan{sum: hex.EncodeToString(sum[:])}
		}
		log.Debug("nspawn's filter: cannot hand it to the pod", "err", err)
		unix.Unlinkat(int(dir.Fd()), podFilter, 0)
		return filterPlan{}
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Warn("nspawn's filter: ignoring the learned copy", "err", err)
	}
	if err := unix.Mkfifoat(int(dir.Fd()), podLearn, 0o644); err != nil {
		log.Debug("nspawn's filter: cannot learn it", "err", err)
		return filterPlan{}
	}
	return filterPlan{learn: key}
}

// skiffDir opens the stage1 rootfs's /skiff, not following links.
func skiffDir() (*os.File, error) {
	fd, err := unix.Open(filepath.Join(pod.Stage1Rootfs, "skiff"), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(pod.Stage1Rootfs, "skiff"), Err: err}
	}
	return os.NewFile(uintptr(fd), "skiff"), nil
}

// readCached returns the learned filters of key for nspawn's binaries as
// they are now, trusting only files no one but root could have written: a
// root-owned directory and files, none writable by others.
func readCached(key string) ([]byte, error) {
	libs, err := readRoots(filepath.Join(filterDir, key+".libs"))
	if err != nil {
		return nil, err
	}
	lh, err := libHash(strings.Fields(string(libs)))
	if err != nil {
		return nil, err
	}
	b, err := readRoots(filepath.Join(filterDir, key+"."+lh))
	if err != nil {
		return nil, err
	}
	if _, err := launch.ReadFilters(bytes.NewReader(b)); err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%s.%s: not filters: %v", key, lh, err)
	}
	return b, nil
}

// readRoots reads file when it and its directories up to /run/skiff are
// root's alone.
func readRoots(file string) ([]byte, error) {
	for _, p := range []string{filepath.Dir(filepath.Dir(file)), filepath.Dir(file), file} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		if st.Uid != 0 || st.Mode&0o022 != 0 || (p == file && st.Mode&unix.S_IFMT != unix.S_IFREG) {
			return nil, fmt.Errorf("%s: not root's alone (uid %d, mode %o)", p, st.Uid, st.Mode)
		}
	}
	return os.ReadFile(file)
}

// writeNew writes b to the file name in dir, which must not exist yet.
func writeNew(dir *os.File, name string, b []byte) error {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	_, err = f.Write(b)
	return errors.Join(err, f.Close())
}

// isInit reports whether pid runs stage1's InitMain (not yet systemd).
func isInit(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.HasSuffix(exe, "/skiff/run")
}

// learnFilter reads the filters nspawn installed in the pod's init, which
// waits on the FIFO until run lets it go, and keeps them under key with
// the list of nspawn's mapped files. It always lets the init go.
func learnFilter(log *slog.Logger, nspawn, init int, key string, done <-chan struct{}) {
	deadline := time.Now().Add(learnWait)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	wait := func() bool {
		select {
		case <-done:
			return false
		case <-tick.C:
			return time.Now().Before(deadline)
		}
	}
	defer func() {
		dir, err := skiffDir()
		if err != nil {
			return
		}
		defer dir.Close()
		// Opening the FIFO for writing fails until the init has it open for
		// reading; the close is the init's signal to go on. An init that
		// moved on already is left alone.
		for isInit(init) {
			if fd, err := unix.Openat(int(dir.Fd()), podLearn, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
				return
			}
			if !wait() {
				return
			}
		}
	}()
	// nspawn installs its filters before it execs the init: once the init
	// is this program, they are all there.
	for !isInit(init) {
		if !wait() {
			return
		}
	}
	fs, err := launch.Filters(init)
	switch {
	case err != nil:
	case initOf(nspawn) != init:
		err = errors.New("the pod's init is gone") // what was read may be another process's
	case len(fs) == 0:
		err = errors.New("nspawn installed none")
	}
	var libs []string
	if err == nil {
		libs, err = mappedFiles(nspawn)
	}
	if err == nil {
		err = saveFilter(key, libs, fs)
	}
	if err != nil {
		log.Debug("nspawn's filter: not learned", "err", err)
		return
	}
	log.Debug("nspawn's filter: learned", "filters", len(fs), "key", key)
}

// mappedFiles lists the files process pid has mapped.
func mappedFiles(pid int) ([]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var files []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 6 && path.IsAbs(fields[5]) && !slices.Contains(files, fields[5]) {
			files = append(files, fields[5])
		}
	}
	return files, sc.Err()
}

func saveFilter(key string, libs []string, fs []launch.Filter) error {
	lh, err := libHash(libs)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := launch.WriteFilters(&b, fs); err != nil {
		return err
	}
	if err := os.MkdirAll(filterDir, 0o700); err != nil {
		return err
	}
	return errors.Join(safefile.WriteFile(filepath.Join(filterDir, key+"."+lh), b.Bytes(), 0o600, true),
		safefile.WriteFile(filepath.Join(filterDir, key+".libs"), []byte(strings.Join(libs, "\n")+"\n"), 0o600, true))
}

// InitMain is the pod's first program: nspawn runs it as
// /usr/lib/systemd/systemd. It installs the learned filter when run gave
// it one (and must: nspawn compiled none), or waits while run learns the
// filter nspawn gave it, then execs the pod's systemd with its arguments.
// A systemd re-exec comes here again and goes straight on.
func InitMain([]string) int {
	// Until systemd has its own handlers, a signal must do what it does to
	// a PID 1 without handlers: nothing (the Go runtime's would exit).
	signal.Notify(make(chan os.Signal, 1))
	runtime.LockOSThread() // the exec happens on this thread, with its filters
	if err := initFilter(); err != nil {
		fmt.Fprintf(os.Stderr, "skiff pod init: %v\n", err)
		return 1
	}
	// argv as nspawn gave it: systemd is called /usr/lib/systemd/systemd.
	err := syscall.Exec(PodSystemd, os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "skiff pod init: exec %s: %v\n", PodSystemd, err)
	return 1
}

func initFilter() error {
	sum, required := os.LookupEnv(filterEnv)
	os.Unsetenv(filterEnv)
	file, fifo := "/skiff/"+podFilter, "/skiff/"+podLearn
	if required {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("nspawn's filter: %w", err)
		}
		os.Remove(file)
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			return fmt.Errorf("nspawn's filter: %s is not the one run gave", file)
		}
		fs, err := launch.ReadFilters(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("nspawn's filter: %w", err)
		}
		return launch.LoadFilters(fs)
	}
	f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer f.Close()
	defer os.Remove(fifo)
	// POLLHUP once run has opened and closed the other end.
	fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}}
	for deadline := time.Now().Add(learnWait); time.Now().Before(deadline); {
		n, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n > 0 {
			break
		}
	}
	io.Copy(io.Discard, f)
	return nil
}
