package stage1kit

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// The lock fd and the pid file, relative to the pod directory (every
// entrypoint's working directory).

// KeepLock checks the lock fd inherited from stage0 and keeps it from
// leaking into the pod: a directory fd on the host is a way out of any root.
func KeepLock() error {
	fd, err := strconv.Atoi(os.Getenv(pod.EnvLockFD))
	if err != nil {
		return fmt.Errorf("run: %w: %s=%q", pod.ErrUsage, pod.EnvLockFD, os.Getenv(pod.EnvLockFD))
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return fmt.Errorf("run: lock fd %d: %w", fd, err)
	}
	unix.CloseOnExec(fd)
	return nil
}

// StartTimeout is how long stop and enter wait for a pod that is locked
// (running, for stage0) but that run has not started yet.
const StartTimeout = 10 * time.Second

// ReadPid returns the pid run recorded (WritePid), waiting up to
// StartTimeout for it to be recorded. The caller checks that the process
// is still the pod's: a stale pid may have been reused.
func ReadPid() (int, error) {
	b, err := safefile.ReadFileAt(".", pod.PidFile, pod.MaxStateFileSize)
	for deadline := time.Now().Add(StartTimeout); errors.Is(err, os.ErrNotExist) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		b, err = safefile.ReadFileAt(".", pod.PidFile, pod.MaxStateFileSize)
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	return pid, nil
}

// WritePid records the pod's pid (see docs/stage1-abi.md) in the pod
// directory, atomically: stop and enter may read it at any time.
func WritePid(pid int) error {
	tmp := pod.PidFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("record pod pid: %w", err)
	}
	if err := os.Rename(tmp, pod.PidFile); err != nil {
		return fmt.Errorf("record pod pid: %w", err)
	}
	return nil
}
