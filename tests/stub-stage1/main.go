// Command stub-stage1 is the smallest stage1 there is: no isolation at all,
// each app is chroot'ed into its rootfs and run as a child. It exists to
// prove that stage0 talks to a stage1 only through docs/stage1-abi.md, and
// to test stage0 without namespaces. One binary serves every entrypoint,
// chosen by its first argument.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1/stage1test"
)

// main dispatches on the name it was called by (the image has run, enter,
// stop and gc as symlinks to one binary), or on its first argument.
func main() {
	args := os.Args[1:]
	switch name := filepath.Base(os.Args[0]); name {
	case "run", "enter", "stop", "gc":
		args = append([]string{name}, args...)
	}
	os.Exit(run(args))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "stub-stage1: want run, enter, stop or gc")
		return pod.ExitFailure
	}
	var code int
	var err error
	switch args[0] {
	case "run":
		code, err = runPod(args[1:])
	case "enter":
		code, err = enter(args[1:])
	case "stop":
		err = stop(args[1:])
	case "gc":
		err = gc(args[1:])
	default:
		err = fmt.Errorf("unknown entrypoint %q", args[0])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stub-stage1 %s: %v\n", args[0], err)
		return pod.ExitFailure
	}
	return code
}

func manifest() (*schema.PodManifest, error) {
	b, err := os.ReadFile(pod.ManifestFile)
	if err != nil {
		return nil, err
	}
	return pod.ParseManifest(b)
}

func runPod(args []string) (int, error) {
	var a pod.RunArgs
	if err := a.Parse(args); err != nil {
		return 0, err
	}
	// The lock fd must be inherited and kept: check it is a real open fd.
	fd, err := strconv.Atoi(os.Getenv(pod.EnvLockFD))
	if err != nil {
		return 0, fmt.Errorf("%s not set", pod.EnvLockFD)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("lock fd %d: %w", fd, err)
	}
	// Keep the lock here only: an app outliving a killed stage1 must not
	// keep the pod "running".
	syscall.CloseOnExec(fd)
	pm, err := manifest()
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(pod.PidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(pod.AppStatusDir, 0o755); err != nil {
		return 0, err
	}
	var (
		mu        sync.Mutex
		firstFail int
		cmds      []*exec.Cmd
		wg        sync.WaitGroup
	)
	for _, ra := range pm.Apps {
		name := ra.Name.String()
		c := exec.Command(ra.App.Exec[0], ra.App.Exec[1:]...)
		c.Env = appEnv(ra)
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
		c.SysProcAttr = &syscall.SysProcAttr{Chroot: pod.AppRootfs(name), Pdeathsig: syscall.SIGKILL}
		c.Dir = "/"
		if err := c.Start(); err != nil {
			return 0, fmt.Errorf("start app %s: %w", name, err)
		}
		cmds = append(cmds, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Wait()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					code = 128 + int(ws.Signal())
				}
			}
			os.WriteFile(pod.AppStatusDir+"/"+name, []byte(strconv.Itoa(code)), 0o644)
			mu.Lock()
			defer mu.Unlock()
			if code != 0 && firstFail == 0 {
				firstFail = code
				for _, o := range cmds {
					o.Process.Signal(syscall.SIGTERM)
				}
			}
		}()
	}
	os.WriteFile(pod.ReadyFile, nil, 0o644)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cmds {
			c.Process.Signal(syscall.SIGTERM)
		}
	}()
	wg.Wait()
	return firstFail, nil
}

// appEnv is the app's environment by appc's rules (no isolation: that is
// all the stub gives an app besides its root).
func appEnv(ra schema.RuntimeApp) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, e := range ra.App.Environment {
		env = append(env, e.Name+"="+e.Value)
	}
	return append(env, "AC_APP_NAME="+ra.Name.String())
}

func enter(args []string) (int, error) {
	var a pod.EnterArgs
	if err := a.Parse(args); err != nil {
		return 0, err
	}
	if len(a.Cmd) == 0 {
		return 0, fmt.Errorf("enter: %w: no command", pod.ErrUsage)
	}
	cmd := a.Cmd
	pm, err := manifest()
	if err != nil {
		return 0, err
	}
	c := exec.Command(cmd[0], cmd[1:]...)
	for _, ra := range pm.Apps {
		if ra.Name.String() == a.App {
			c.Env = appEnv(ra)
		}
	}
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Chroot: pod.AppRootfs(a.App)}
	c.Dir = "/"
	err = c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}

func stop(args []string) error {
	var a pod.StopArgs
	if err := a.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(pod.PidFile)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		return err
	}
	sig := syscall.SIGTERM
	if a.Force {
		sig = syscall.SIGKILL
	}
	return syscall.Kill(pid, sig)
}

func gc(args []string) error {
	var a pod.GCArgs
	if err := a.Parse(args); err != nil {
		return err
	}
	if log := os.Getenv(stage1test.EnvGCLog); log != "" {
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := fmt.Fprintln(f, a.UUID); err != nil {
			return err
		}
	}
	// Record the call so the conformance suite can see gc ran with the
	// pod directory as cwd.
	return os.WriteFile("stub-gc-ran", nil, 0o644)
}
