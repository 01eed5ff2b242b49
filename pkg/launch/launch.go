// Package launch is stage2: it turns an OCI runtime-spec document (as
// written by pkg/appspec) into a running app inside a pod whose pid, net,
// ipc and uts namespaces stage1 already set up.
//
// Run gives the app its own mount namespace and root, every mount in it a
// slave of the pod's except those of the shared mounts (shared.go): it
// binds the rootfs onto itself, performs the spec's mounts inside it (resolving every
// target with RESOLVE_IN_ROOT, see mount.go), binds device nodes, pivots
// into it, masks and write-protects /proc and /sys paths, and makes the
// root read-only if asked. Run and Exec then apply the process's
// restrictions in this order — rlimits, OOM score, bounding set, groups,
// gid, uid, capabilities, no_new_privs, working directory, seccomp (first
// instead, without no_new_privs: see Exec) — and execve the program, found
// through the app's own PATH inside its root.
//
// Everything happens on the calling OS thread, which the caller must have
// locked (runtime.LockOSThread, best from an init function): the mount
// namespace, capabilities, no_new_privs and seccomp are per thread, and
// execve carries that thread's state into the app.
package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
)

// Run sets up the root of the app described by s, whose bundle directory
// is bundle, and execs the app, or argv in its place when argv is not
// empty (the app's event handlers run so). It returns only on failure.
func Run(bundle string, s *specs.Spec, argv []string) error {
	rootfs := s.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	shared, err := cloneShared(rootfs, s.Annotations[pod.AnnotationSharedMounts])
	if err != nil {
		return err
	}
	defer closeAll(shared)
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	// Nothing we mount may reach the stage1; its unmounts still reach us.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make mounts slave: %w", err)
	}
	// pivot_root needs the new root to be a mount point.
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s: %w", rootfs, err)
	}
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	if err := attachShared(root, shared); err != nil {
		return err
	}
	for _, m := range s.Mounts {
		if err := mount(root, bundle, m); err != nil {
			return err
		}
	}
	if s.Linux != nil {
		if err := bindDevices(root, s.Linux.Devices); err != nil {
			return err
		}
	}
	if err := mtab(root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one;
	// detaching it leaves the app's root alone in the namespace.
	if err := unix.Fchdir(root); err != nil {
		return fmt.Errorf("enter rootfs: %w", err)
	}
	unix.Close(root)
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	root, err = unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open new root: %w", err)
	}
	defer unix.Close(root)
	if s.Linux != nil {
		if err := mask(root, s.Linux.MaskedPaths); err != nil {
			return err
		}
		if err := readonly(root, s.Linux.ReadonlyPaths); err != nil {
			return err
		}
	}
	if err := allowSetuid(root, s); err != nil {
		return err
	}
	if s.Root.Readonly {
		// Not recursive: volumes and /proc keep their own modes.
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(root, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return fmt.Errorf("make root read-only: %w", err)
		}
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	return Exec(s, argv, nil)
}

// allowSetuid lifts the nosuid that the host-side mount of the app's root
// carries (pkg/mount), in the app's own mount namespace only, so setuid
// programs in the pod work as users expect; with no_new_privs they could
// not gain anything, so the root stays nosuid. In a pod with a user
// namespace the kernel locks the flag (EPERM) and nosuid stays.
func allowSetuid(root int, s *specs.Spec) error {
	if s.Process != nil && s.Process.NoNewPrivileges {
		return nil
	}
	attr := unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_NOSUID}
	err := unix.MountSetattr(root, "", unix.AT_EMPTY_PATH, &attr)
	if err != nil && err != unix.EPERM {
		return fmt.Errorf("allow setuid in the app's root: %w", err)
	}
	return nil
}

// Exec applies the process restrictions of s to the calling thread and
// execs argv, or the spec's own args when argv is empty. The caller is
// already inside the app's namespaces and root (stage1's enter put it
// there). inherited are the filters the app inherited from its stage1
// (see Filters), loaded first, while stage2 still holds every privilege,
// as the app got them. It returns only on failure.
//
// The spec's filter is loaded last, after the working directory is set
// and inherited fds are closed, when no_new_privs allows it. Without
// no_new_privs (the default profile: setuid binaries keep working) the
// kernel lets only CAP_SYS_ADMIN load a filter, so it is loaded before the
// capabilities are dropped, as runc does; stage2's own calls from there to
// execve are all ones a deny-list profile allows.
func Exec(s *specs.Spec, argv []string, inherited []Filter) error {
	p := s.Process
	if p == nil {
		return fmt.Errorf("exec: %w: no process", ErrUnsupported)
	}
	if len(argv) == 0 {
		argv = p.Args
	}
	var prog Filter
	if s.Linux != nil && s.Linux.Seccomp != nil {
		var err error
		if prog, err = Compile(s.Linux.Seccomp); err != nil {
			return err
		}
	}
	if err := LoadFilters(inherited); err != nil {
		return err
	}
	early := prog != nil && !p.NoNewPrivileges
	if early {
		if err := loadFilter(prog); err != nil {
			return err
		}
	}
	if err := restrict(p); err != nil {
		return err
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("chdir %s: %w", cwd, err)
	}
	path, err := lookPath(argv[0], p.Env)
	if err != nil {
		return err
	}
	// Whatever the caller inherited (stage1's pod dir, the bundle fd of
	// enter) must not reach the app, except sockets systemd passed for
	// socket activation. Before seccomp, which may forbid close_range.
	env, keep := activation(p.Env)
	if err := unix.CloseRange(uint(3+keep), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close inherited fds: %w", err)
	}
	if prog != nil && !early {
		if err := loadFilter(prog); err != nil {
			return err
		}
	}
	err = syscall.Exec(path, argv, env)
	return fmt.Errorf("exec %s: %w", path, err)
}

// activation passes systemd's socket activation and readiness protocol
// through to the app: the variables systemd gave stage2 (whose pid the app
// keeps across exec) are added to the app's environment, and the number of
// passed fds (from 3 on) is returned so they stay open.
func activation(env []string) ([]string, int) {
	out := env
	keep := 0
	if n, err := strconv.Atoi(os.Getenv("LISTEN_FDS")); err == nil && n > 0 &&
		os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) {
		keep = n
		out = append(out, "LISTEN_FDS="+strconv.Itoa(n), "LISTEN_PID="+strconv.Itoa(os.Getpid()))
		if names, ok := os.LookupEnv("LISTEN_FDNAMES"); ok {
			out = append(out, "LISTEN_FDNAMES="+names)
		}
	}
	if ns, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
		out = append(out, "NOTIFY_SOCKET="+ns)
	}
	return out, keep
}

// lookPath finds file as execve would after a shell's PATH search, using
// the app's PATH, not stage2's.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	path := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %s: %w in PATH %q", file, ErrNotFound, path)
}
