// Package pod owns the on-disk layout of skiff pods, their states and their
// locks, and the constants of the stage1 ABI.
//
// A pod lives in DIR/pods/<state>/<uuid>. A state change is a rename(2) of
// that directory; "in use" (preparing or running) means some process holds
// the exclusive flock(2) on the directory itself. Only root can open a pod
// dir (0710 root:skiff), so only root can lock it; members of the skiff
// group learn whether a pod is in use from /proc/locks. docs/pod-lifecycle.md
// has the table of states and transitions.
package pod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/perm"
)

// State is the directory a pod lives in.
type State string

const (
	Embryo        State = "embryo"         // created, nothing written yet
	Preparing     State = "prepare"        // stage0 is rendering images into it
	Prepared      State = "prepared"       // ready for run-prepared
	Running       State = "run"            // stage1 was started; locked while it runs
	ExitedGarbage State = "exited-garbage" // exited and marked by gc; removed after the grace period
	Garbage       State = "garbage"        // aborted prepare or removed pod; removed by gc
)

// States lists every state in lifecycle order.
var States = []State{Embryo, Preparing, Prepared, Running, ExitedGarbage, Garbage}

// transitions lists the allowed renames.
var transitions = map[State][]State{
	Embryo:        {Preparing, Garbage},
	Preparing:     {Prepared, Running, Garbage},
	Prepared:      {Running, Garbage},
	Running:       {ExitedGarbage},
	ExitedGarbage: {Garbage},
}

// Pod is one pod directory. A Pod value is not safe for concurrent use; the
// flock it may hold is what coordinates processes.
type Pod struct {
	UUID    string
	State   State
	dataDir string
	lock    *os.File // open directory fd while the lock is held
}

// PodsDir returns the directory that holds every pod state.
func PodsDir(dataDir string) string { return filepath.Join(dataDir, "pods") }

// Path returns the pod directory.
func (p *Pod) Path() string { return filepath.Join(PodsDir(p.dataDir), string(p.State), p.UUID) }

// File returns the path of a file named by one of the ABI constants.
func (p *Pod) File(rel string) string { return filepath.Join(p.Path(), rel) }

// MachineName is the name the pod registers with systemd-machined.
func MachineName(uuid string) string { return "skiff-" + uuid }

// MachineID is the pod's machine-id: the uuid without dashes.
func MachineID(uuid string) string { return strings.ReplaceAll(uuid, "-", "") }

// Create makes a new embryo pod, locked by the caller.
func Create(dataDir string) (*Pod, error) {
	p := &Pod{UUID: uuid.NewString(), State: Embryo, dataDir: dataDir}
	if err := perm.MkdirShared(PodsDir(dataDir)); err != nil {
		return nil, fmt.Errorf("create pods dir: %w", err)
	}
	for _, s := range States {
		if err := perm.MkdirShared(filepath.Join(PodsDir(dataDir), string(s))); err != nil {
			return nil, fmt.Errorf("create pods dir: %w", err)
		}
	}
	if err := os.Mkdir(p.Path(), 0o700); err != nil {
		return nil, fmt.Errorf("create pod: %w", err)
	}
	if err := perm.Searchable(p.Path()); err != nil {
		return nil, fmt.Errorf("create pod: %w", err)
	}
	if err := p.TryLock(); err != nil {
		return nil, err
	}
	if err := p.stamp(CreatedFile); err != nil {
		p.Unlock()
		os.RemoveAll(p.Path())
		return nil, fmt.Errorf("create pod: %w", err)
	}
	return p, nil
}

// Load finds the pod whose uuid is id or starts with it.
func Load(dataDir, id string) (*Pod, error) {
	if id == "" {
		return nil, fmt.Errorf("load pod: %w: empty uuid", ErrNotExist)
	}
	// A pod renamed between the reads of two state dirs can be missed by
	// one listing; a second look finds it.
	for try := 0; ; try++ {
		p, err := load(dataDir, id)
		if err == nil || !errors.Is(err, ErrNotExist) || try == 2 {
			return p, err
		}
	}
}

func load(dataDir, id string) (*Pod, error) {
	// A whole uuid is looked up where it can be, without listing every pod.
	if uuid.Validate(id) == nil && len(id) == 36 {
		for _, s := range States {
			p := &Pod{UUID: id, State: s, dataDir: dataDir}
			if fi, err := os.Lstat(p.Path()); err == nil && fi.IsDir() {
				return p, nil
			}
		}
	}
	all, err := List(dataDir)
	if err != nil {
		return nil, err
	}
	var found []*Pod
	for _, p := range all {
		if p.UUID == id {
			return p, nil
		}
		if strings.HasPrefix(p.UUID, id) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("load pod %s: %w", id, ErrNotExist)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("load pod %s: %w (%d pods match)", id, ErrAmbiguous, len(found))
}

// List returns every pod, in no particular state order but sorted by uuid.
func List(dataDir string) ([]*Pod, error) {
	var pods []*Pod
	seen := map[string]bool{}
	for _, s := range States {
		ents, err := os.ReadDir(filepath.Join(PodsDir(dataDir), string(s)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		for _, e := range ents {
			// A rename between two ReadDirs can show a pod twice; keep the first.
			if !e.IsDir() || uuid.Validate(e.Name()) != nil || seen[e.Name()] {
				continue
			}
			seen[e.Name()] = true
			pods = append(pods, &Pod{UUID: e.Name(), State: s, dataDir: dataDir})
		}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].UUID < pods[j].UUID })
	return pods, nil
}

// probeWait bounds how long TryLock waits for looks (shared holders) to
// end; a look lasts microseconds unless its process is stopped.
const probeWait = 10 * time.Second

// TryLock takes the pod's exclusive lock. It fails at once with ErrLocked
// when another process holds it exclusively (the pod is in use), and waits
// out looks: a Look (gc, status, list) must never make a command fail.
func (p *Pod) TryLock() error {
	if p.lock != nil {
		return nil
	}
	f, err := os.Open(p.Path())
	if err != nil {
		return p.notExist(err)
	}
	fd := int(f.Fd())
	for deadline := time.Now().Add(probeWait); ; {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			break
		}
		// Held: exclusively (in use), or only shared by looks?
		if err = unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
			break
		}
		unix.Flock(fd, unix.LOCK_UN)
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("lock pod %s: %w", p.UUID, ErrLocked)
		}
		return fmt.Errorf("lock pod %s: %w", p.UUID, err)
	}
	p.lock = f
	// The pod may have moved between List and Open: make sure we locked
	// the directory that is still at the path we think.
	if err := p.refresh(f); err != nil {
		p.Unlock()
		return err
	}
	return nil
}

// Look takes the pod's lock shared, without waiting, to read the pod
// without disturbing its owner: it fails with ErrLocked while the pod is
// in use, and refreshes p.State. Call done when finished looking.
// Only root can look (gc does): others cannot open the pod dir.
func (p *Pod) Look() (done func(), err error) {
	f, err := os.Open(p.Path())
	if err != nil {
		return nil, p.notExist(err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		err = p.refresh(f)
	} else if errors.Is(err, unix.EWOULDBLOCK) {
		err = fmt.Errorf("look at pod %s: %w", p.UUID, ErrLocked)
	} else {
		err = fmt.Errorf("look at pod %s: %w", p.UUID, err)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// refresh re-reads the pod's state after its directory f was locked.
func (p *Pod) refresh(f *os.File) error {
	var st1 unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st1); err != nil {
		return fmt.Errorf("stat pod %s: %w", p.UUID, err)
	}
	for _, s := range States {
		var st2 unix.Stat_t
		path := filepath.Join(PodsDir(p.dataDir), string(s), p.UUID)
		if unix.Stat(path, &st2) == nil && st1.Ino == st2.Ino && st1.Dev == st2.Dev {
			p.State = s
			return nil
		}
	}
	return fmt.Errorf("lock pod %s: %w", p.UUID, ErrNotExist)
}

// IsLocked reports whether another process holds the pod's lock
// exclusively: whether the pod is in use. A process that may not open the
// pod dir reads /proc/locks instead.
func (p *Pod) IsLocked() (bool, error) {
	if p.lock != nil {
		return false, nil
	}
	// A bare descriptor: an os.File would cost list two more system
	// calls per pod (the poller's).
	fd, err := unix.Open(p.Path(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return p.heldExclusive()
	}
	if err != nil {
		return false, p.notExist(&os.PathError{Op: "open", Path: p.Path(), Err: err})
	}
	defer unix.Close(fd)
	return p.lockedFD(fd)
}

// lockedFD is IsLocked for the pod dir open as fd (not O_PATH). The
// shared lock it may take goes with fd's last close.
func (p *Pod) lockedFD(fd int) (bool, error) {
	if p.lock != nil {
		return false, nil
	}
	err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("probe lock of pod %s: %w", p.UUID, err)
	}
	return false, nil
}

// unlockedPoll is how often WaitUnlocked reads /proc/locks when it may
// not open the pod dir.
const unlockedPoll = 100 * time.Millisecond

// WaitUnlocked blocks until no process holds the pod's lock exclusively.
// A process that may not open the pod dir polls /proc/locks.
func (p *Pod) WaitUnlocked() error {
	f, err := os.Open(p.Path())
	if errors.Is(err, os.ErrPermission) {
		for {
			locked, err := p.heldExclusive()
			if err != nil || !locked {
				return err
			}
			time.Sleep(unlockedPoll)
		}
	}
	if err != nil {
		return p.notExist(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		return fmt.Errorf("wait for pod %s: %w", p.UUID, err)
	}
	return nil
}

// Unlock drops the lock, if held.
func (p *Pod) Unlock() {
	if p.lock != nil {
		p.lock.Close()
		p.lock = nil
	}
}

// LockFile returns the open, locked directory handle, to be inherited by
// stage1. It is nil unless the lock is held.
func (p *Pod) LockFile() *os.File { return p.lock }

// Transition renames the pod into state to. The caller must hold the lock,
// except for moves that only gc makes on unlocked pods.
func (p *Pod) Transition(to State) error {
	ok := false
	for _, s := range transitions[p.State] {
		ok = ok || s == to
	}
	if !ok {
		return fmt.Errorf("move pod %s from %s to %s: %w", p.UUID, p.State, to, ErrState)
	}
	from := p.Path()
	next := &Pod{UUID: p.UUID, State: to, dataDir: p.dataDir}
	if err := os.Rename(from, next.Path()); err != nil {
		return fmt.Errorf("move pod %s to %s: %w", p.UUID, to, p.notExist(err))
	}
	p.State = to
	switch to {
	case ExitedGarbage:
		if err := p.stamp(ExitedGarbageMark); err != nil {
			return fmt.Errorf("mark pod %s: %w", p.UUID, err)
		}
	case Running:
		if err := p.stamp(StartedFile); err != nil {
			return fmt.Errorf("start pod %s: %w", p.UUID, err)
		}
	}
	return nil
}

// stamp writes the time now into the pod's file name, in nanoseconds since
// the epoch, readable by the skiff group (list shows it), and makes it the
// file's mtime too: list reads that, one stat instead of a read.
func (p *Pod) stamp(name string) error {
	now := time.Now()
	if err := perm.WriteFile(p.File(name), []byte(strconv.FormatInt(now.UnixNano(), 10)), true); err != nil {
		return err
	}
	return os.Chtimes(p.File(name), now, now)
}

// stampTime reads a time stamp; the zero time when the file is missing
// or is not one (the pod could have planted it).
func (p *Pod) stampTime(name string) time.Time {
	return stampOf(p.ReadFile(name, MaxStateFileSize))
}

// MarkedAt returns when gc moved the pod to exited-garbage.
func (p *Pod) MarkedAt() (time.Time, error) {
	b, err := p.ReadFile(ExitedGarbageMark, MaxStateFileSize)
	if err != nil {
		fi, serr := os.Stat(p.Path())
		if serr != nil {
			return time.Time{}, p.notExist(serr)
		}
		return fi.ModTime(), nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("read gc mark of pod %s: %w", p.UUID, err)
	}
	return time.Unix(0, n), nil
}

func (p *Pod) notExist(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pod %s: %w", p.UUID, ErrNotExist)
	}
	return err
}

// Dir returns the data dir the pod belongs to.
func (p *Pod) Dir() string { return p.dataDir }

// ManifestLockFile is locked by whoever changes the apps of a running
// pod (its own lock is the stage1's while it runs).
const ManifestLockFile = "manifest.lock"

// LockManifest takes the lock on the pod's manifest, waiting for it: the
// app sandbox's commands change a running pod's apps under it. Call
// unlock when done.
func (p *Pod) LockManifest() (unlock func(), err error) {
	f, err := os.OpenFile(p.File(ManifestLockFile), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock manifest of pod %s: %w", p.UUID, p.notExist(err))
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock manifest of pod %s: %w", p.UUID, err)
	}
	return func() { f.Close() }, nil
}
