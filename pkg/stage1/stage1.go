// Package stage1 is stage0's side of the stage1 ABI (docs/stage1-abi.md):
// it finds the stage1 image a pod asks for and invokes its entrypoints. It
// knows nothing about any particular stage1.
package stage1

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/strictjson"
)

// Invocation is how stage0 calls one entrypoint of a pod's stage1.
type Invocation struct {
	Pod   *pod.Pod
	Tree  string // the stage1 image's rendered tree in the store (has rootfs/)
	Debug bool
}

// command returns the path, argv and environment of entrypoint ep called
// with args (from pkg/pod's codecs).
func (in Invocation) command(ep string, args []string) (string, []string, []string, error) {
	s1, err := pod.ReadStage1(in.Pod.Path())
	if err != nil {
		return "", nil, nil, err
	}
	rel, err := s1.Entrypoint(ep)
	if err != nil {
		return "", nil, nil, err
	}
	// Entrypoints run from the store's read-only tree, never from the pod's
	// writable copy, so nothing a pod wrote is ever executed by stage0.
	path := filepath.Join(in.Tree, "rootfs", filepath.Clean("/"+rel))
	env := os.Environ()
	if in.Debug {
		env = append(env, pod.EnvDebug+"=1")
	}
	return path, append([]string{path}, args...), env, nil
}

// RunOptions are the flags of the run entrypoint.
type RunOptions struct {
	Net         string
	NetNS       string // interface version 2: the pod's attached network namespace
	Hostname    string
	Interactive bool
	Mutable     bool // interface version 3: an app sandbox
	// PrivateUsers is the pod's uid range, UID:COUNT, for a stage1 with
	// pod.FeaturePrivateUsers.
	PrivateUsers string
	// IPC "parent" keeps the pod in the host's IPC namespace, for a
	// stage1 with pod.FeatureIPCParent.
	IPC string
	// NetWait, for a stage1 with pod.FeatureNetWait and with NetNS, is
	// the socket on which stage0 reports the namespace's attach; Exec
	// passes it on.
	NetWait *os.File
}

// Exec replaces the calling process with the run entrypoint. The pod's
// lock is inherited: it must be held. It returns only on failure.
func (in Invocation) Exec(o RunOptions) error {
	lock := in.Pod.LockFile()
	if lock == nil {
		return fmt.Errorf("run pod %s: %w: lock not held", in.Pod.UUID, pod.ErrState)
	}
	args := pod.RunArgs{Debug: in.Debug, Net: o.Net, NetNS: o.NetNS, Hostname: o.Hostname, Interactive: o.Interactive, Mutable: o.Mutable, PrivateUsers: o.PrivateUsers, IPC: o.IPC, UUID: in.Pod.UUID}
	if o.NetWait != nil {
		args.NetWait = int(o.NetWait.Fd())
		if _, err := fcntl(args.NetWait, syscall.F_SETFD, 0); err != nil {
			return fmt.Errorf("run pod %s: pass --net-wait: %w", in.Pod.UUID, err)
		}
	}
	path, argv, env, err := in.command(pod.EntrypointRun, args.Argv())
	if err != nil {
		return err
	}
	fd := int(lock.Fd())
	if _, err := fcntl(fd, syscall.F_SETFD, 0); err != nil {
		return fmt.Errorf("run pod %s: pass lock: %w", in.Pod.UUID, err)
	}
	env = append(env, pod.EnvLockFD+"="+strconv.Itoa(fd))
	if err := os.Chdir(in.Pod.Path()); err != nil {
		return fmt.Errorf("run pod %s: %w", in.Pod.UUID, err)
	}
	if err := syscall.Exec(path, argv, env); err != nil {
		return fmt.Errorf("run pod %s: exec stage1 %s: %w", in.Pod.UUID, path, err)
	}
	return nil
}

// EnterOptions are enter's flags: for skiff debug (pod.FeatureDebug),
// and a terminal for the command (pod.FeatureTTY).
type EnterOptions struct {
	MountImage string // a host directory mounted read-only at pod.DebugMountPoint for CMD
	CapAdd     string // capabilities CMD gets beyond the app's, comma-separated
	TTY        bool   // CMD on a pseudo-terminal of its own
}

// Enter runs CMD inside app of the running pod and returns its exit
// status. Options need a stage1 that supports their feature.
func (in Invocation) Enter(app string, cmd []string, o EnterOptions) (int, error) {
	if o.MountImage != "" || o.CapAdd != "" {
		if err := in.supports(pod.FeatureDebug, "debug"); err != nil {
			return 0, err
		}
	}
	if o.TTY {
		if err := in.supports(pod.FeatureTTY, "enter with a terminal"); err != nil {
			return 0, err
		}
	}
	args := pod.EnterArgs{Debug: in.Debug, App: app, MountImage: o.MountImage, CapAdd: o.CapAdd, TTY: o.TTY, UUID: in.Pod.UUID, Cmd: cmd}
	return in.call(pod.EntrypointEnter, args.Argv())
}

// Attach connects the caller's stdio to app's main process (created with
// pod.AnnotationStdin), the caller's stdin only with stdin, until the app
// ends or, with stdin, the caller's stdin does. It needs a stage1 with
// pod.FeatureAttach.
func (in Invocation) Attach(app string, stdin bool) (int, error) {
	if err := in.supports(pod.FeatureAttach, "attach"); err != nil {
		return 0, err
	}
	args := pod.EnterArgs{Debug: in.Debug, App: app, Attach: true, Stdin: stdin, UUID: in.Pod.UUID}
	return in.call(pod.EntrypointEnter, args.Argv())
}

// maxStats bounds what enter --stats may write.
const maxStats = 4 << 10

// Stats returns app's resource use as the stage1 reads it (enter --stats,
// pod.FeatureStats); it gives up after timeout (a stage1 may serve one
// request at a time).
func (in Invocation) Stats(app string, timeout time.Duration) (pod.AppStats, error) {
	var st pod.AppStats
	if err := in.supports(pod.FeatureStats, "stats"); err != nil {
		return st, err
	}
	out, err := in.enterOutput(pod.EnterArgs{Debug: in.Debug, App: app, Stats: true, UUID: in.Pod.UUID}, timeout)
	if err == nil && len(out) > maxStats {
		err = fmt.Errorf("stage1 wrote %d bytes", len(out))
	}
	if err == nil {
		err = strictjson.Unmarshal(out, &st)
	}
	if err != nil {
		return st, fmt.Errorf("stats of %s: %w", app, err)
	}
	return st, nil
}

// SetResources sets running app's limits to r through the stage1 (enter
// --resources, pod.FeatureResources), for a stage1 whose apps' cgroups
// the host cannot write; it gives up after timeout.
func (in Invocation) SetResources(app string, r pod.AppResources, timeout time.Duration) error {
	if err := in.supports(pod.FeatureResources, "resources"); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err == nil {
		_, err = in.enterOutput(pod.EnterArgs{Debug: in.Debug, App: app, Resources: string(b), UUID: in.Pod.UUID}, timeout)
	}
	if err != nil {
		return fmt.Errorf("resources of %s: %w", app, err)
	}
	return nil
}

// enterOutput runs enter with args, gives up after timeout, and returns
// what it wrote on stdout; its failure is an error that ends with the
// last line it wrote on stderr.
func (in Invocation) enterOutput(args pod.EnterArgs, timeout time.Duration) ([]byte, error) {
	path, argv, env, err := in.command(pod.EntrypointEnter, args.Argv())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, path, argv[1:]...)
	c.Dir, c.Env = in.Pod.Path(), env
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		return nil, fmt.Errorf("stage1: %w: %s", err, lines[len(lines)-1])
	}
	return stdout.Bytes(), nil
}

// PortForward connects conn to port on the pod's loopback through the
// stage1 (enter --port-forward, pod.FeaturePortForward) until the pod's
// side of the connection ends or ctx does.
func (in Invocation) PortForward(ctx context.Context, port uint16, conn io.ReadWriter) error {
	if err := in.supports(pod.FeaturePortForward, "port forward"); err != nil {
		return err
	}
	args := pod.EnterArgs{Debug: in.Debug, PortForward: uint(port), UUID: in.Pod.UUID}
	path, argv, env, err := in.command(pod.EntrypointEnter, args.Argv())
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	c := exec.CommandContext(ctx, path, argv[1:]...)
	c.Dir, c.Env = in.Pod.Path(), env
	c.Stdout, c.Stderr = conn, &stderr
	w, err := c.StdinPipe()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("port forward %d: %w", port, err)
	}
	go func() {
		io.Copy(w, conn)
		w.Close()
	}()
	if err := c.Wait(); err != nil {
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		return fmt.Errorf("port forward %d: stage1: %w: %s", port, err, lines[len(lines)-1])
	}
	return nil
}

// supports fails with pod.ErrUnsupported, naming what, unless the pod's
// stage1 offers feature.
func (in Invocation) supports(feature, what string) error {
	s1, err := pod.ReadStage1(in.Pod.Path())
	if err != nil {
		return err
	}
	if !s1.Supports(feature) {
		return fmt.Errorf("stage1 %s: %w: %s (its manifest has no feature %s)", s1.Name, pod.ErrUnsupported, what, feature)
	}
	return nil
}

// App runs app entrypoint ep (pod.AppEntrypoints) for app of the running
// pod. Its failure is an error that ends with the last line the
// entrypoint wrote on stderr.
func (in Invocation) App(ep, app string) error {
	args := pod.AppArgs{Debug: in.Debug, App: app, UUID: in.Pod.UUID}
	path, argv, env, err := in.command(ep, args.Argv())
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	c := exec.Command(path, argv[1:]...)
	c.Dir, c.Env = in.Pod.Path(), env
	c.Stdout, c.Stderr = &stderr, &stderr
	if in.Debug {
		c.Stderr = io.MultiWriter(&stderr, os.Stderr)
	}
	if err := c.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		return fmt.Errorf("%s %s: stage1: %w: %s", ep, app, err, lines[len(lines)-1])
	}
	return nil
}

// Stop asks the pod to shut down, or kills it with force.
func (in Invocation) Stop(force bool) error {
	s1, err := pod.ReadStage1(in.Pod.Path())
	if err != nil {
		return err
	}
	if !s1.Supports(pod.EntrypointStop) {
		return in.signal(force)
	}
	args := pod.StopArgs{Debug: in.Debug, Force: force, UUID: in.Pod.UUID}
	code, err := in.call(pod.EntrypointStop, args.Argv())
	if err == nil && code != 0 {
		err = fmt.Errorf("stop pod %s: stage1 stop exited %d", in.Pod.UUID, code)
	}
	return err
}

// signal is the ABI's fallback for a stage1 without a stop entrypoint.
func (in Invocation) signal(force bool) error {
	pid, err := in.Pod.Pid()
	if err != nil {
		return fmt.Errorf("stop pod %s: %w", in.Pod.UUID, err)
	}
	sig := syscall.SIGTERM
	if force {
		sig = syscall.SIGKILL
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("stop pod %s: %w", in.Pod.UUID, err)
	}
	return nil
}

// GC lets the stage1 release what it holds for an exited pod. A stage1
// without a gc entrypoint has nothing to release.
func (in Invocation) GC() error {
	s1, err := pod.ReadStage1(in.Pod.Path())
	if errors.Is(err, os.ErrNotExist) {
		return nil // aborted before stage1 was written
	}
	if err != nil {
		return err
	}
	if !s1.Supports(pod.EntrypointGC) {
		return nil
	}
	args := pod.GCArgs{Debug: in.Debug, UUID: in.Pod.UUID}
	code, err := in.call(pod.EntrypointGC, args.Argv())
	if err == nil && code != 0 {
		err = fmt.Errorf("gc pod %s: stage1 gc exited %d", in.Pod.UUID, code)
	}
	return err
}

func (in Invocation) call(ep string, args []string) (int, error) {
	path, argv, env, err := in.command(ep, args)
	if err != nil {
		return 0, err
	}
	c := exec.Command(path, argv[1:]...)
	c.Dir = in.Pod.Path()
	c.Env = env
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s pod %s: %w", ep, in.Pod.UUID, err)
	}
	return 0, nil
}

func fcntl(fd, cmd, arg int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
