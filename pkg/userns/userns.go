// Package userns gives pods private user namespaces: a host-wide allocator
// of uid ranges, so no two pods (of any data dir) share one, and the user
// namespace a range describes, for idmapped mounts (docs/user-namespaces.md).
package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// BlockSize is the size of every range the allocator hands out: a whole
// 16-bit uid space, as podman and systemd-nspawn give a container.
const BlockSize = 65536

// ErrExhausted means every block of the allocator is in use.
var ErrExhausted = errors.New("no free uid range")

// Range is a pod's uids on the host: pod uid (and gid) n is host uid Base+n,
// for n < Size.
type Range struct {
	Base, Size uint32
}

// String returns the range as UID:COUNT, systemd-nspawn's --private-users form.
func (r Range) String() string { return fmt.Sprintf("%d:%d", r.Base, r.Size) }

// Parse parses UID:COUNT.
func Parse(s string) (Range, error) {
	b, n, ok := strings.Cut(strings.TrimSpace(s), ":")
	base, err1 := strconv.ParseUint(b, 10, 32)
	size, err2 := strconv.ParseUint(n, 10, 32)
	if !ok || err1 != nil || err2 != nil || size == 0 || base == 0 || base+size > 1<<32-1 {
		return Range{}, fmt.Errorf("parse uid range %q: want UID:COUNT, UID > 0, COUNT > 0", s)
	}
	return Range{Base: uint32(base), Size: uint32(size)}, nil
}

// Registry is a host-wide record of the ranges in use: a file per block
// in Dir, named by its first uid and holding its owner, written under an
// exclusive lock of Dir/lock. Blocks are BlockSize uids from First.
type Registry struct {
	Dir    string
	First  uint32
	Blocks int
	// InUse reports whether owner still holds r; an entry whose owner no
	// longer does (its pod was deleted without a release, its data dir
	// removed) is free. Nil: every entry is in use until released.
	InUse func(owner string, r Range) bool
}

// Default is the host's registry: /run/skiff/userns (cleared at boot, when
// pods re-claim theirs), 4096 blocks from 0x10000000 (uids 268435456 to
// 536870911), above the ids of users and of systemd's dynamic users.
func Default(inUse func(string, Range) bool) *Registry {
	return &Registry{Dir: "/run/skiff/userns", First: 0x10000000, Blocks: 4096, InUse: inUse}
}

func (g *Registry) lock() (func(), error) {
	// The parent (/run/skiff) is shared with other records; the registry is root's.
	if err := os.MkdirAll(filepath.Dir(g.Dir), 0o755); err != nil {
		return nil, fmt.Errorf("uid ranges: %w", err)
	}
	if err := os.Mkdir(g.Dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("uid ranges: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(g.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("uid ranges: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("uid ranges: lock: %w", err)
	}
	return func() { f.Close() }, nil
}

func (g *Registry) entry(r Range) string {
	return filepath.Join(g.Dir, strconv.FormatUint(uint64(r.Base), 10))
}

// holder returns the owner of r's entry, "" when r is free.
func (g *Registry) holder(r Range) (string, error) {
	b, err := os.ReadFile(g.entry(r))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("uid ranges: %w", err)
	}
	owner := string(b)
	if g.InUse != nil && !g.InUse(owner, r) {
		return "", nil
	}
	return owner, nil
}

func (g *Registry) write(owner string, r Range) error {
	tmp := g.entry(r) + ".new"
	if err := os.WriteFile(tmp, []byte(owner), 0o600); err != nil {
		return fmt.Errorf("uid ranges: %w", err)
	}
	if err := os.Rename(tmp, g.entry(r)); err != nil {
		return fmt.Errorf("uid ranges: %w", err)
	}
	return nil
}

// Allocate finds a free block, records owner as its holder and returns it.
// A block without an entry is taken first; only when every block has one
// are the owners asked whether they still hold theirs. record, if not nil,
// runs under the lock before the entry is written (the owner's own record
// of the range, so InUse never sees an entry whose owner does not know it
// yet); if it fails, nothing is allocated.
func (g *Registry) Allocate(owner string, record func(Range) error) (Range, error) {
	unlock, err := g.lock()
	if err != nil {
		return Range{}, err
	}
	defer unlock()
	ents, err := os.ReadDir(g.Dir)
	if err != nil {
		return Range{}, fmt.Errorf("uid ranges: %w", err)
	}
	taken := map[string]bool{}
	for _, e := range ents {
		taken[e.Name()] = true
	}
	take := func(r Range) (Range, error) {
		if record != nil {
			if err := record(r); err != nil {
				return Range{}, err
			}
		}
		return r, g.write(owner, r)
	}
	block := func(i int) Range { return Range{Base: g.First + uint32(i)*BlockSize, Size: BlockSize} }
	for i := range g.Blocks {
		if r := block(i); !taken[filepath.Base(g.entry(r))] {
			return take(r)
		}
	}
	for i := range g.Blocks {
		h, err := g.holder(block(i))
		if err != nil {
			return Range{}, err
		}
		if h == "" {
			return take(block(i))
		}
	}
	return Range{}, fmt.Errorf("uid ranges: %w (%d blocks in use)", ErrExhausted, g.Blocks)
}

// Claim records owner as the holder of r again (after a reboot cleared the
// registry); it fails if another owner holds it.
func (g *Registry) Claim(owner string, r Range) error {
	if r.Size != BlockSize || r.Base < g.First || (r.Base-g.First)%BlockSize != 0 || int((r.Base-g.First)/BlockSize) >= g.Blocks {
		return fmt.Errorf("uid ranges: %s is not a block of this registry", r)
	}
	unlock, err := g.lock()
	if err != nil {
		return err
	}
	defer unlock()
	switch h, err := g.holder(r); {
	case err != nil:
		return err
	case h == owner:
		return nil
	case h != "":
		return fmt.Errorf("uid ranges: %s is held by %s", r, h)
	}
	return g.write(owner, r)
}

// Release frees r if owner holds it.
func (g *Registry) Release(owner string, r Range) error {
	unlock, err := g.lock()
	if err != nil {
		return err
	}
	defer unlock()
	b, err := os.ReadFile(g.entry(r))
	if errors.Is(err, os.ErrNotExist) || (err == nil && string(b) != owner) {
		return nil
	}
	if err == nil {
		err = os.Remove(g.entry(r))
	}
	if err != nil {
		return fmt.Errorf("uid ranges: release %s: %w", r, err)
	}
	return nil
}

// NS returns a user namespace that maps uid and gid 0.. to r, for
// mount_setattr(MOUNT_ATTR_IDMAP). The kernel keeps the namespace alive
// as long as the file (or a mount idmapped with it) is.
func (r Range) NS() (*os.File, error) {
	// A child created in the namespace, stopped by ptrace before it runs
	// anything: the namespace is set up by the time Start returns.
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(r.Base), Size: int(r.Size)}}
	cmd := exec.Command("/proc/self/exe")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m, Ptrace: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("user namespace %s: %w", r, err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		return nil, fmt.Errorf("user namespace %s: %w", r, err)
	}
	return f, nil
}
