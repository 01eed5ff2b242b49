package launch

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// restrict turns the calling thread into the spec's process: rlimits, OOM
// score, bounding set, user and groups, capabilities, no_new_privs. The
// thread must be locked (runtime.LockOSThread) and must be the one that
// execs: capabilities and no_new_privs are per thread.
func restrict(p *specs.Process) error {
	for _, r := range p.Rlimits {
		res, ok := rlimits[r.Type]
		if !ok {
			return fmt.Errorf("set rlimit %s: %w", r.Type, ErrUnsupported)
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("set rlimit %s: %w", r.Type, err)
		}
	}
	if p.OOMScoreAdj != nil {
		got, err := setOOMScore(*p.OOMScoreAdj)
		if err != nil {
			return err
		}
		if got != *p.OOMScoreAdj {
			// The app's stderr: the pod's journal and skiff run's terminal.
			fmt.Fprintf(os.Stderr, "stage2: oom score %d: this host does not let the pod lower its OOM score (no CAP_SYS_RESOURCE), kept at %d\n", *p.OOMScoreAdj, got)
		}
	}

	c := p.Capabilities
	if c == nil {
		c = &specs.LinuxCapabilities{}
	}
	bounding, err := capSet(c.Bounding)
	if err != nil {
		return err
	}
	last, err := capability.LastCap()
	if err != nil {
		return fmt.Errorf("read last capability: %w", err)
	}
	for cp := capability.Cap(0); cp <= last; cp++ {
		if bounding[cp] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(cp), 0, 0, 0); err != nil {
			return fmt.Errorf("drop %s from bounding set: %w", cp, err)
		}
	}

	// Keep the permitted set across setuid so capset can pick from it.
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities: %w", err)
	}
	u := p.User
	gids := make([]int, len(u.AdditionalGids))
	for i, g := range u.AdditionalGids {
		gids[i] = int(g)
	}
	// Since go1.16 these change every thread of the process.
	if err := syscall.Setgroups(gids); err != nil {
		return fmt.Errorf("set groups: %w", err)
	}
	if err := syscall.Setgid(int(u.GID)); err != nil {
		return fmt.Errorf("set gid %d: %w", u.GID, err)
	}
	if err := syscall.Setuid(int(u.UID)); err != nil {
		return fmt.Errorf("set uid %d: %w", u.UID, err)
	}

	caps, err := capability.NewPid2(0)
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	if err := caps.Load(); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	want, err := capSet(c.Permitted)
	if err != nil {
		return err
	}
	for cp := range want {
		if !caps.Get(capability.PERMITTED, cp) {
			return fmt.Errorf("set capabilities: CAP_%s: %w", strings.ToUpper(cp.String()), ErrCapNotHeld)
		}
	}
	caps.Clear(capability.CAPS | capability.AMBS)
	for which, names := range map[capability.CapType][]string{
		capability.EFFECTIVE: c.Effective, capability.PERMITTED: c.Permitted,
		capability.INHERITABLE: c.Inheritable, capability.AMBIENT: c.Ambient,
	} {
		set, err := capSet(names)
		if err != nil {
			return err
		}
		for cp := range set {
			caps.Set(which, cp)
		}
	}
	if err := caps.Apply(capability.CAPS | capability.AMBS); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	return nil
}

const oomScoreFile = "/proc/self/oom_score_adj"

// setOOMScore sets the calling process's OOM score adjustment to want and
// returns what it is set to. Lowering the score below what it was needs
// CAP_SYS_RESOURCE, which some hosts withhold even from root (a container
// host such as the build machines); the score is then clamped to the
// lowest the process may set, its current one, as containerd's
// restrict_oom_score_adj does.
func setOOMScore(want int) (int, error) {
	err := os.WriteFile(oomScoreFile, []byte(strconv.Itoa(want)), 0)
	if err == nil {
		return want, nil
	}
	if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
		return 0, fmt.Errorf("set oom score: %w", err)
	}
	b, rerr := os.ReadFile(oomScoreFile)
	if rerr != nil {
		return 0, fmt.Errorf("set oom score: %w", errors.Join(err, rerr))
	}
	cur, rerr := strconv.Atoi(strings.TrimSpace(string(b)))
	if rerr != nil || want >= cur {
		return 0, fmt.Errorf("set oom score %d: %w", want, err)
	}
	return cur, nil
}

var capByName = func() map[string]capability.Cap {
	m := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		m["CAP_"+strings.ToUpper(c.String())] = c
	}
	return m
}()

func capSet(names []string) (map[capability.Cap]bool, error) {
	set := map[capability.Cap]bool{}
	for _, n := range names {
		c, ok := capByName[n]
		if !ok {
			return nil, fmt.Errorf("capability %q: %w", n, ErrUnsupported)
		}
		set[c] = true
	}
	return set, nil
}

var rlimits = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}
