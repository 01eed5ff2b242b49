package nspawn

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/seccompcopy"
)

// nspawn compiles its system-call filter (libseccomp, for three
// architectures) on every start: about half of a bare nspawn's time. A pod
// whose nspawn already ran once on this host with the same binary and the
// same filter-shaping options gets that filter from the first pod instead:
// nspawn runs with SYSTEMD_SECCOMP=0, and the pod's init (this program as
// /usr/lib/systemd/systemd, InitMain) installs the very programs nspawn
// installed before, then execs systemd. The first pod of a shape is
// learned from: its init waits on a FIFO while run reads nspawn's filters
// from it with ptrace (docs/stage1-ns.md, "nspawn's filter, learned once").
const (
	// filterDir holds the learned filters, one file per key; on /run, so a
	// reboot (and with it any nspawn upgrade) starts afresh.
	filterDir = "/run/skiff/nspawn-seccomp"
	// podFilter is the stage1 rootfs's copy of the filters for its init.
	podFilter = "skiff/nspawn-seccomp"
	// podLearn is the FIFO the init waits on while run reads its filters.
	podLearn = "skiff/nspawn-seccomp.learn"
	// PodSystemd is where the stage1-ns image puts the pod's systemd.
	PodSystemd = "/skiff/systemd"
	// learnWait bounds the init's wait for run (a run that died).
	learnWait = 30 * time.Second
)

// filterKey names the filter nspawn at bin compiles for a pod started with
// args: the binary's identity and every argument but those that only name
// this pod's things (its directory, machine, binds, hostname, namespaces'
// paths, the init's arguments), which do not shape the filter.
func filterKey(bin string, args []string) (string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00%d.%d\x00%d.%d\x00", path, st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
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

// filterPlan is what a run does about nspawn's filter.
type filterPlan struct {
	cached bool   // the init installs the learned filter; nspawn compiles none
	learn  string // the cache file to learn into from this pod's init, if any
}

// planFilter looks the pod's filter up and prepares the stage1 rootfs for
// its init: the learned filters, or the FIFO to learn them through. Any
// failure leaves nspawn to compile the filter, as before.
func planFilter(log *slog.Logger, bin string, args []string) filterPlan {
	os.Remove(filepath.Join(pod.Stage1Rootfs, podFilter))
	os.Remove(filepath.Join(pod.Stage1Rootfs, podLearn))
	key, err := filterKey(bin, args)
	if err != nil {
		log.Debug("nspawn's filter: not cached", "err", err)
		return filterPlan{}
	}
	file := filepath.Join(filterDir, key)
	if b, err := readCached(file); err == nil {
		if err := writeNew(filepath.Join(pod.Stage1Rootfs, podFilter), b); err == nil {
			return filterPlan{cached: true}
		}
		log.Debug("nspawn's filter: cannot hand it to the pod", "err", err)
		os.Remove(filepath.Join(pod.Stage1Rootfs, podFilter))
		return filterPlan{}
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Warn("nspawn's filter: ignoring the learned copy", "err", err)
	}
	if err := unix.Mkfifo(filepath.Join(pod.Stage1Rootfs, podLearn), 0o644); err != nil {
		log.Debug("nspawn's filter: cannot learn it", "err", err)
		return filterPlan{}
	}
	return filterPlan{learn: file}
}

// readCached reads a learned filter file, trusting it only where no one
// but root could have written it: a root-owned directory and file, neither
// writable by others. It returns the file's bytes once they decode.
func readCached(file string) ([]byte, error) {
	for _, p := range []string{filepath.Dir(filepath.Dir(file)), filepath.Dir(file), file} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		if st.Uid != 0 || st.Mode&0o022 != 0 || (p == file && st.Mode&unix.S_IFMT != unix.S_IFREG) {
			return nil, fmt.Errorf("%s: not root's alone (uid %d, mode %o)", p, st.Uid, st.Mode)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if _, err := seccompcopy.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return b, nil
}

// learnFilter reads the filters nspawn installed in the pod's init, which
// waits on the FIFO until run lets it go, and keeps them in file. It always
// lets the init go.
func learnFilter(log *slog.Logger, nspawn, init int, file string, done <-chan struct{}) {
	fifo := filepath.Join(pod.Stage1Rootfs, podLearn)
	defer func() {
		// Opening the FIFO for writing fails until the init has it open for
		// reading; the close is the init's signal to go on.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(learnWait); time.Now().Before(deadline); {
			if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	// nspawn installs its filters before it execs the init: once the init
	// is this program, they are all there.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", init)); strings.HasSuffix(exe, "/skiff/run") {
			break
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
	fs, err := seccompcopy.Read(init)
	switch {
	case err != nil:
	case initOf(nspawn) != init:
		err = errors.New("the pod's init is gone") // what was read may be another process's
	case len(fs) == 0:
		err = errors.New("nspawn installed none")
	}
	if err == nil {
		err = saveFilter(file, seccompcopy.Marshal(fs))
	}
	if err != nil {
		log.Debug("nspawn's filter: not learned", "err", err)
		return
	}
	log.Debug("nspawn's filter: learned", "filters", len(fs), "file", file)
}

// writeNew writes b to a file that must not exist yet.
func writeNew(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return errors.Join(err, f.Close())
}

func saveFilter(file string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	return safefile.WriteFile(file, b, 0o600, true)
}

// InitMain is the pod's first program: nspawn runs it as
// /usr/lib/systemd/systemd. It installs the learned filter when run gave
// it one, or waits while run learns the filter nspawn gave it, sets
// journald's flushed flag in the /run nspawn mounted, then execs the pod's
// systemd with its arguments.
func InitMain([]string) int {
	err := podunit.SetJournalFlushed("/")
	if err == nil {
		err = initFilter()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "skiff pod init: %v\n", err)
		return 1
	}
	// argv as nspawn gave it: systemd is called /usr/lib/systemd/systemd.
	err = syscall.Exec(PodSystemd, os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "skiff pod init: exec %s: %v\n", PodSystemd, err)
	return 1
}

func initFilter() error {
	if b, err := os.ReadFile("/" + podFilter); err == nil {
		fs, err := seccompcopy.Unmarshal(b)
		if err != nil {
			return err
		}
		runtime.LockOSThread() // the exec happens on this thread, with its filter
		return seccompcopy.Install(fs)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile("/"+podLearn, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer f.Close()
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
	return nil
}
