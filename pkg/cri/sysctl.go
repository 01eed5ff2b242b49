package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/netns"
)

// sysctlNS names the namespace a pod sysctl lives in: "ipc" (System V IPC
// and POSIX message queues) or "net"; "" for one that would reach the
// host, which a pod may not set.
func sysctlNS(key string) string {
	switch {
	case key == "kernel.sem", strings.HasPrefix(key, "kernel.shm"), strings.HasPrefix(key, "kernel.msg"),
		strings.HasPrefix(key, "fs.mqueue."):
		return "ipc"
	case strings.HasPrefix(key, "net."):
		return "net"
	}
	return ""
}

// checkSysctls refuses sysctls a sandbox cannot have: a host-wide one,
// a network one in the host's network, any for a VM (its kernel is the
// guest's, not yet reached).
func checkSysctls(cfg map[string]string, stage1 string, hostNet bool) error {
	for k := range cfg {
		ns := sysctlNS(k)
		switch {
		case strings.Contains(k, "..") || strings.ContainsAny(k, "/\x00"):
			return fmt.Errorf("sysctl %q: %w: malformed", k, errInvalid)
		case stage1 == "kvm":
			return fmt.Errorf("sysctl %q: %w: not supported with the kvm handler (docs/kubernetes.md)", k, errInvalid)
		case ns == "":
			return fmt.Errorf("sysctl %q: %w: not namespaced, it would change the host", k, errInvalid)
		case ns == "net" && hostNet:
			return fmt.Errorf("sysctl %q: %w: the pod uses the host's network", k, errInvalid)
		}
	}
	return nil
}

// applySysctls sets cfg in the namespaces of the pod whose init is pid
// (IPC) and of sandbox id (its network namespace), before any container
// starts.
func applySysctls(cfg map[string]string, pid int, id string) error {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		write := func() error {
			return os.WriteFile(filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/")), []byte(cfg[k]), 0)
		}
		var err error
		if sysctlNS(k) == "net" {
			err = netns.Do(filepath.Join("/run/skiff/netns", id), write)
		} else {
			err = inIPC(pid, write)
		}
		if err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, cfg[k], err)
		}
	}
	return nil
}

// inIPC runs fn on a thread that joined pid's IPC namespace; the thread is
// thrown away afterwards.
func inIPC(pid int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/ipc", pid))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWIPC); err != nil {
			errc <- fmt.Errorf("enter ipc namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
