package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/safefile"
)

// Phase is a pod's state as `skiff status` and `skiff list` report it: the
// directory it lives in, told apart by whether its lock is held.
type Phase string

const (
	PhaseEmbryo         Phase = "embryo"
	PhasePreparing      Phase = "preparing"       // in prepare/, locked
	PhaseAbortedPrepare Phase = "aborted-prepare" // in prepare/, not locked: its preparer died
	PhasePrepared       Phase = "prepared"
	PhaseRunning        Phase = "running" // in run/, locked by stage1
	PhaseExited         Phase = "exited"  // in run/, not locked
	PhaseExitedGarbage  Phase = "exited-garbage"
	PhaseGarbage        Phase = "garbage"
)

// Size limits for reading the pod's files: a pod (or a compromised stage1)
// can write them, so a FIFO, a symlink or a huge file there must make a
// read fail fast, never hang or balloon it.
const (
	MaxStateFileSize = 4096    // pid, ppid, app statuses, marks
	MaxManifestSize  = 1 << 20 // the pod and image manifests
)

// ReadFile reads name, relative to the pod directory, as a file the pod
// may have planted: regular, at most limit bytes, no symlink followed at
// or below the pod directory.
func (p *Pod) ReadFile(name string, limit int64) ([]byte, error) {
	return safefile.ReadFileAt(p.Path(), name, limit)
}

// Status is what `skiff status` and `skiff list` report about a pod.
type Status struct {
	UUID    string         `json:"uuid"`
	State   Phase          `json:"state"`
	Pid     int            `json:"pid,omitempty"`
	Apps    map[string]int `json:"apps,omitempty"` // exit statuses of apps that ended
	AppList []string       `json:"appNames,omitempty"`
	Images  []string       `json:"imageIDs,omitempty"` // the image ID of each app of AppList, in order
	Created time.Time      `json:"createdAt"`
	Started time.Time      `json:"startedAt,omitzero"`   // when it moved to run; zero before
	Names   []string       `json:"imageNames,omitempty"` // the image name of each app of AppList, in order
	Ready   bool           `json:"ready,omitempty"`
	// PrivateUsers is the pod's host uid range, UID:COUNT, when it has a
	// user namespace of its own (--private-users).
	PrivateUsers string `json:"privateUsers,omitempty"`
	// Networked says the pod has stage0's network cache (NetDir), which
	// the caller reads if it shows networks: probed on the descriptor
	// status holds, a lookup of one name, where most pods have none.
	Networked bool `json:"-"`
}

// Status reads the pod's state and what stage1 wrote.
func (p *Pod) Status() (Status, error) { return p.status(true) }

// Brief is Status without what `skiff list`'s table does not show: the
// pid, the ready mark, the apps' exit statuses and the uid range. Listing
// reads every pod, so each file left unread counts a thousandfold.
func (p *Pod) Brief() (Status, error) { return p.status(false) }

// status reads the pod's files through one handle on its directory, below
// which nothing is followed (safefile.ReadFileFD).
func (p *Pod) status(full bool) (Status, error) {
	st := Status{UUID: p.UUID, State: Phase(p.State)} // the same word, but for prepare and run
	path := p.Path()
	// A pod that can be in use is opened for reading, so that the same
	// descriptor probes its lock; the others, and any pod for members of
	// the skiff group (who may search a pod dir, not read it), O_PATH.
	mode := unix.O_PATH
	if p.State == Preparing || p.State == Running {
		mode = unix.O_RDONLY
	}
	d, err := unix.Open(path, mode|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EACCES) {
		mode = unix.O_PATH
		d, err = unix.Open(path, mode|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return st, p.notExist(&os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(d)
	locked := func() (bool, error) {
		if mode == unix.O_PATH {
			return p.IsLocked() // reads /proc/locks
		}
		return p.lockedFD(d)
	}
	read := func(name string, limit int64) ([]byte, error) {
		return safefile.ReadFileFD(d, path, name, limit)
	}
	var fi unix.Stat_t
	st.Networked = unix.Fstatat(d, NetDir, &fi, unix.AT_SYMLINK_NOFOLLOW) == nil
	rec, recorded := recordedApps(d, path)
	if recorded {
		st.AppList, st.Images, st.Names = rec.names, rec.images, rec.imageNames
	} else {
		st.AppList, st.Images, st.Names = apps(read(ManifestFile, MaxManifestSize))
	}
	// The time stage0 recorded; pods made before it did have their
	// directory's mtime instead.
	if st.Created = rec.created; !recorded {
		st.Created = stampOf(read(CreatedFile, MaxStateFileSize))
	}
	if st.Created.IsZero() {
		if err := unix.Fstat(d, &fi); err != nil {
			return st, fmt.Errorf("stat pod %s: %w", p.UUID, err)
		}
		st.Created = time.Unix(fi.Mtim.Unix())
	}
	if p.State == Running || p.State == ExitedGarbage || p.State == Garbage {
		st.Started = mtimeOf(d, StartedFile)
	}
	if full {
		if b, err := read(PrivateUsersFile, MaxStateFileSize); err == nil {
			if r := strings.TrimSpace(string(b)); strings.Trim(r, "0123456789:") == "" {
				st.PrivateUsers = r
			}
		}
	}
	switch p.State {
	case Embryo, Prepared:
		return st, nil // never ran: nothing more to read
	case Preparing:
		// Only a pod being prepared or run can be in use: the lock is
		// probed for those alone (list reads hundreds of pods).
		locked, err := locked()
		st.State = PhasePreparing
		if !locked {
			st.State = PhaseAbortedPrepare
		}
		return st, err
	case Running:
		locked, err := locked()
		if err != nil {
			return st, err
		}
		st.State = PhaseExited
		if locked {
			st.State = PhaseRunning
		}
		if !full {
			return st, nil
		}
		st.Pid, _ = p.Pid()
		_, err = os.Lstat(p.File(ReadyFile))
		st.Ready = err == nil
	}
	if !full {
		return st, nil
	}
	st.Apps, err = appStatuses(d, path)
	return st, err
}

// stampOf parses a time stamp stage0 wrote (nanoseconds since the
// epoch); the zero time when the file is missing or is not one (the pod
// could have planted it).
func stampOf(b []byte, err error) time.Time {
	if err != nil {
		return time.Time{}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// mtimeOf returns the mtime of the regular file name below the pod dir d,
// which stamp sets to the time it writes: one stat instead of an open, a
// read and a close (pods stamped by skiffs before it have the kernel's
// coarse time of the write: up to a clock tick, a few milliseconds, off
// the stamp). The zero time when there is no such file.
func mtimeOf(d int, name string) time.Time {
	var fi unix.Stat_t
	if unix.Fstatat(d, name, &fi, unix.AT_SYMLINK_NOFOLLOW) != nil || fi.Mode&unix.S_IFMT != unix.S_IFREG {
		return time.Time{}
	}
	return time.Unix(fi.Mtim.Unix())
}

// apps reads the names of the pod's apps and their image IDs from its
// manifest b, and nothing else of it: a status shows those, and a full
// parse and validation of the manifest is most of what listing many pods
// costs. They are validated as appc's types would (ACName, ACIdentifier,
// Hash), by hand: appc's regular expressions and nested decoding were a
// third of a list. An unreadable or invalid manifest gives none.
func apps(b []byte, err error) (names, images, imageNames []string) {
	if err != nil {
		return nil, nil, nil
	}
	var m struct {
		Apps []struct {
			Name  string `json:"name"`
			Image struct {
				ID   *string `json:"id"`
				Name *string `json:"name"`
			} `json:"image"`
		} `json:"apps"`
	}
	if json.Unmarshal(b, &m) != nil {
		return nil, nil, nil
	}
	for _, a := range m.Apps {
		if !validName(a.Name, "-") {
			return nil, nil, nil
		}
		id, name := "", ""
		if a.Image.ID != nil {
			// appc checks only the algorithm: the value is printed too.
			if !validHash(*a.Image.ID) {
				return nil, nil, nil
			}
			id = *a.Image.ID
		}
		if a.Image.Name != nil {
			if !validName(*a.Image.Name, "-._~/") {
				return nil, nil, nil
			}
			name = *a.Image.Name
		}
		names = append(names, a.Name)
		images = append(images, id)
		imageNames = append(imageNames, name)
	}
	return names, images, imageNames
}

// validName reports whether s is valid as appc's types check it: not
// empty, only [a-z0-9] and the separators seps, none of them first or
// last. seps "-" is an ACName, "-._~/" an ACIdentifier.
func validName(s, seps string) bool {
	if s == "" || strings.IndexByte(seps, s[0]) >= 0 || strings.IndexByte(seps, s[len(s)-1]) >= 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte(seps, c) >= 0) {
			return false
		}
	}
	return true
}

// Pid returns the host pid of the pod's init, from the pid file or, through
// the ppid file, as the only child of the process it names.
func (p *Pod) Pid() (int, error) {
	if n, err := p.readInt(PidFile); err == nil {
		return n, nil
	}
	ppid, err := p.readInt(PpidFile)
	if err != nil {
		return 0, fmt.Errorf("pod %s has no pid yet: %w", p.UUID, err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", ppid, ppid))
	if err != nil {
		return 0, fmt.Errorf("children of pod %s's ppid %d: %w", p.UUID, ppid, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		return 0, fmt.Errorf("pod %s: ppid %d has %d children, want 1", p.UUID, ppid, len(f))
	}
	return strconv.Atoi(f[0])
}

// AppExitStatuses returns the exit statuses stage1 recorded, by app name.
func (p *Pod) AppExitStatuses() (map[string]int, error) {
	path := p.Path()
	d, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, p.notExist(&os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(d)
	return appStatuses(d, path)
}

// appStatuses reads the app status directory below the pod directory
// podfd (named path), which the pod's stage1 writes: no symlink in it is
// followed, and a file that is not a number is left out.
func appStatuses(podfd int, path string) (map[string]int, error) {
	fd, err := safefile.OpenBeneath(podfd, AppStatusDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		// Members of the skiff group may list pods but not enter stage1/.
		return nil, nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOTDIR):
		// Planted by the pod: it recorded no status, and no listing fails.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read app statuses of %s: %w", path, err)
	}
	dir := os.NewFile(uintptr(fd), path+"/"+AppStatusDir)
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read app statuses of %s: %w", path, err)
	}
	out := map[string]int{}
	for _, name := range names {
		b, err := safefile.ReadFileFD(fd, dir.Name(), name, MaxStateFileSize)
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out[name] = n
		}
	}
	return out, nil
}

// SortedApps returns the app names of a status map in order.
func SortedApps(m map[string]int) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (p *Pod) readInt(name string) (int, error) {
	b, err := p.ReadFile(name, MaxStateFileSize)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
