package prepare

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffpod/skiff/pkg/perm"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/userns"
)

// ErrPrivateUsers means a pod cannot have a user namespace of its own.
var ErrPrivateUsers = errors.New("--private-users unavailable")

// Ranges is the host-wide registry of pods' uid ranges. A range's owner is
// its pod's data dir and uuid; an entry whose pod no longer records the
// range is free (docs/user-namespaces.md).
var Ranges = userns.Default(podHolds)

func owner(p *pod.Pod) (string, error) {
	dir, err := filepath.Abs(p.Dir())
	if err != nil {
		return "", fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	return dir + "\n" + p.UUID, nil
}

// podHolds reports whether the pod named by owner records range r.
func podHolds(owner string, r userns.Range) bool {
	dir, uuid, ok := strings.Cut(owner, "\n")
	if !ok {
		return false
	}
	p, err := pod.Load(dir, uuid)
	if err != nil || p.UUID != uuid {
		return false
	}
	got, ok, err := PrivateUsers(p)
	return err == nil && ok && got == r
}

// PrivateUsers returns the uid range recorded in the pod, if it has one.
func PrivateUsers(p *pod.Pod) (userns.Range, bool, error) {
	b, err := safefile.ReadFileAt(p.Path(), pod.PrivateUsersFile, pod.MaxStateFileSize)
	if errors.Is(err, os.ErrNotExist) {
		return userns.Range{}, false, nil
	}
	if err != nil {
		return userns.Range{}, false, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	r, err := userns.Parse(string(b))
	if err != nil {
		return userns.Range{}, false, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	return r, true, nil
}

// allocateUsers gives pod p a range and records it in the pod.
func allocateUsers(p *pod.Pod) (userns.Range, error) {
	o, err := owner(p)
	if err != nil {
		return userns.Range{}, err
	}
	return Ranges.Allocate(o, func(r userns.Range) error {
		return perm.WriteFile(p.File(pod.PrivateUsersFile), []byte(r.String()+"\n"), true)
	})
}

// ReleasePrivateUsers frees the range of pod p, if it has one; gc calls
// it before deleting the pod.
func ReleasePrivateUsers(p *pod.Pod) error {
	r, ok, err := PrivateUsers(p)
	if err != nil || !ok {
		return err
	}
	o, err := owner(p)
	if err != nil {
		return err
	}
	return Ranges.Release(o, r)
}
