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

	"github.com/appc/spec/schema/types"

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
}

// Status reads the pod's state and what stage1 wrote.
func (p *Pod) Status() (Status, error) {
	st := Status{UUID: p.UUID, State: Phase(p.State)} // the same word, but for prepare and run
	fi, err := os.Stat(p.Path())
	if err != nil {
		return st, p.notExist(err)
	}
	// The time stage0 recorded; pods made before it did have their
	// directory's mtime instead.
	if st.Created = p.stampTime(CreatedFile); st.Created.IsZero() {
		st.Created = fi.ModTime()
	}
	st.Started = p.stampTime(StartedFile)
	st.AppList, st.Images, st.Names = p.apps()
	if b, err := p.ReadFile(PrivateUsersFile, MaxStateFileSize); err == nil {
		if r := strings.TrimSpace(string(b)); strings.Trim(r, "0123456789:") == "" {
			st.PrivateUsers = r
		}
	}
	switch p.State {
	case Embryo, Prepared:
		return st, nil // never ran: nothing more to read
	case Preparing:
		// Only a pod being prepared or run can be in use: the lock is
		// probed for those alone (list reads hundreds of pods).
		locked, err := p.IsLocked()
		st.State = PhasePreparing
		if !locked {
			st.State = PhaseAbortedPrepare
		}
		return st, err
	case Running:
		locked, err := p.IsLocked()
		if err != nil {
			return st, err
		}
		st.State = PhaseExited
		if locked {
			st.State = PhaseRunning
		}
		st.Pid, _ = p.Pid()
		_, err = os.Lstat(p.File(ReadyFile))
		st.Ready = err == nil
	}
	st.Apps, err = p.AppExitStatuses()
	return st, err
}

// apps reads the names of the pod's apps and their image IDs from its
// manifest, and nothing else of it: a status shows those, and a full parse
// and validation of the manifest is most of what listing many pods costs.
// Both are validated as the full parse would (ACName, Hash); an unreadable
// or invalid manifest gives none.
func (p *Pod) apps() (names, images, imageNames []string) {
	b, err := p.ReadFile(ManifestFile, MaxManifestSize)
	if err != nil {
		return nil, nil, nil
	}
	var m struct {
		Apps []struct {
			Name  types.ACName `json:"name"`
			Image struct {
				ID   types.Hash          `json:"id"`
				Name *types.ACIdentifier `json:"name"`
			} `json:"image"`
		} `json:"apps"`
	}
	if json.Unmarshal(b, &m) != nil {
		return nil, nil, nil
	}
	for _, a := range m.Apps {
		names = append(names, a.Name.String())
		id, name := "", ""
		if !a.Image.ID.Empty() {
			id = a.Image.ID.String()
			// appc checks only the algorithm: the value is printed too.
			if strings.Trim(a.Image.ID.Val, "0123456789abcdef") != "" {
				return nil, nil, nil
			}
		}
		if a.Image.Name != nil {
			name = a.Image.Name.String()
		}
		images = append(images, id)
		imageNames = append(imageNames, name)
	}
	return names, images, imageNames
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
	ents, err := os.ReadDir(p.File(AppStatusDir))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		// Members of the skiff group may list pods but not enter stage1/.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read app statuses of pod %s: %w", p.UUID, err)
	}
	out := map[string]int{}
	for _, e := range ents {
		n, err := p.readInt(AppStatusDir + "/" + e.Name())
		if err == nil {
			out[e.Name()] = n
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
