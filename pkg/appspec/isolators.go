package appspec

import (
	"fmt"
	"slices"
	"strings"

	"github.com/appc/spec/schema/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultCaps is the capability set an app gets without a capabilities
// isolator: the set rkt and Docker grant.
var DefaultCaps = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
	"CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
}

// applyIsolators fills the parts of s that appc isolators decide. The
// process's user must already be set. allCaps and noSeccomp are
// --insecure-options=capabilities and seccomp: every capability this
// process holds (but the withheld ones), whatever the isolators say, and
// no seccomp filter at all.
func applyIsolators(s *specs.Spec, isolators types.Isolators, withheld []string, allCaps, noSeccomp bool) error {
	caps := slices.Clone(DefaultCaps)
	if allCaps {
		caps = HeldCaps()
	}
	caps = slices.DeleteFunc(caps, func(c string) bool { return slices.Contains(withheld, c) })
	retained := false
	for i := range isolators {
		iso := &isolators[i]
		switch v := iso.Value().(type) {
		case *types.LinuxCapabilitiesRetainSet:
			if !allCaps {
				caps, retained = capNames(v.Set()), true
			}
		case *types.LinuxCapabilitiesRevokeSet:
			if allCaps {
				break
			}
			drop := capNames(v.Set())
			caps = slices.DeleteFunc(caps, func(c string) bool { return slices.Contains(drop, c) })
		case *types.LinuxNoNewPrivileges:
			s.Process.NoNewPrivileges = s.Process.NoNewPrivileges || bool(*v)
		case *types.LinuxOOMScoreAdj:
			n := int(*v)
			s.Process.OOMScoreAdj = &n
		case *types.LinuxSeccompRetainSet:
			if noSeccomp {
				break
			}
			sc, err := seccomp(v, true)
			if err != nil {
				return err
			}
			s.Linux.Seccomp = sc
		case *types.LinuxSeccompRemoveSet:
			if noSeccomp {
				break
			}
			sc, err := seccomp(v, false)
			if err != nil {
				return err
			}
			s.Linux.Seccomp = sc
		case *types.ResourceMemory:
			if l := v.Limit(); l != nil {
				n := l.Value()
				resources(s).Memory = &specs.LinuxMemory{Limit: &n}
			}
		case *types.ResourceCPU:
			if l := v.Limit(); l != nil {
				const period = 100000 // µs, the kernel's default CFS period
				q, p := l.MilliValue()*period/1000, uint64(period)
				cpu(s).Quota, cpu(s).Period = &q, &p
			}
		case *types.LinuxCPUShares:
			n := uint64(*v)
			cpu(s).Shares = &n
		}
	}
	// As systemd's SystemCallFilter= (which rkt used) does, a seccomp
	// isolator implies no_new_privs: without it an unprivileged process may
	// not install the filter, and a setuid binary could escape it.
	if s.Linux.Seccomp != nil {
		s.Process.NoNewPrivileges = true
	}

	slices.Sort(caps)
	caps = slices.Compact(caps)
	// Without an isolator, the default profile, made for the capabilities
	// the app may hold. It does not imply no_new_privs: what it refuses,
	// it refuses to setuid binaries too, and they keep working in a pod.
	if s.Linux.Seccomp == nil && !noSeccomp {
		s.Linux.Seccomp = DefaultSeccomp(caps)
	}
	c := &specs.LinuxCapabilities{Bounding: caps}
	// Root keeps the set across execve through the bounding set. A non-root
	// user loses every capability at execve, as rkt's apps did, unless the
	// image asked for some explicitly with a retain set: those are raised
	// as ambient capabilities so they survive the exec.
	if s.Process.User.UID == 0 || retained {
		c.Effective, c.Permitted = caps, caps
	}
	if s.Process.User.UID != 0 && retained {
		c.Inheritable, c.Ambient = caps, caps
	}
	s.Process.Capabilities = c
	return nil
}

func capNames(set []types.LinuxCapability) []string {
	out := make([]string, 0, len(set))
	for _, c := range set {
		n := strings.ToUpper(string(c))
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		out = append(out, n)
	}
	return out
}

// seccomp translates an appc seccomp set. Without an errno, appc (like
// systemd) kills the process on a filtered call. A nil profile means the
// default one.
func seccomp(v types.LinuxSeccompSet, retain bool) (*specs.LinuxSeccomp, error) {
	deny := specs.ActKillProcess
	var errno *uint
	if e := string(v.Errno()); e != "" {
		n, err := errnoNumber(e)
		if err != nil {
			return nil, err
		}
		deny, errno = specs.ActErrno, &n
	}
	var names []string
	for _, e := range v.Set() {
		s := string(e)
		switch {
		// appc's well-known groups for "everything" and "nothing", as rkt
		// read them: a retain set of every call turns filtering off, a
		// remove set of none asks for the default profile (docs/seccomp.md).
		case retain && s == "@appc.io/all":
			return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}, nil
		case !retain && s == "@appc.io/empty":
			return nil, nil
		case strings.HasPrefix(s, "@"):
			calls, ok := seccompGroup(s)
			if !ok {
				return nil, fmt.Errorf("seccomp set %q: %w: %s", s, ErrIsolator, UnknownGroup)
			}
			names = append(names, known(slices.Clone(calls))...)
		default:
			names = append(names, s)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	sc := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	rule := specs.LinuxSyscall{Names: names, Action: deny, ErrnoRet: errno}
	if retain {
		sc.DefaultAction, sc.DefaultErrnoRet = deny, errno
		rule = specs.LinuxSyscall{Names: names, Action: specs.ActAllow}
	}
	sc.Syscalls = []specs.LinuxSyscall{rule}
	return sc, nil
}

// UnknownGroup says which seccomp groups there are.
const UnknownGroup = "unknown syscall group (want @appc.io/all, @appc.io/empty, @rkt/default-whitelist, @rkt/default-blacklist, @docker/default-whitelist or @docker/default-blacklist)"

// errnoAliases are errno names that share a number with another name.
var errnoAliases = map[string]unix.Errno{"ENOTSUP": unix.ENOTSUP, "EWOULDBLOCK": unix.EWOULDBLOCK, "EDEADLOCK": unix.EDEADLOCK}

func errnoNumber(name string) (uint, error) {
	if n, ok := errnoAliases[name]; ok {
		return uint(n), nil
	}
	for n := 1; n < 4096; n++ {
		if unix.ErrnoName(unix.Errno(n)) == name {
			return uint(n), nil
		}
	}
	return 0, fmt.Errorf("seccomp errno %q: %w: unknown errno", name, ErrIsolator)
}

func resources(s *specs.Spec) *specs.LinuxResources {
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	return s.Linux.Resources
}

func cpu(s *specs.Spec) *specs.LinuxCPU {
	r := resources(s)
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	return r.CPU
}
