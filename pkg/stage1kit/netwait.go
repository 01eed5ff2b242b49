package stage1kit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

// The outcomes of an attach that went wrong (pod.RunArgs.NetWait).
var (
	// errNetFailed: stage0 reported the attach failed and said why; it
	// removes the pod once run lets go of it.
	errNetFailed = errors.New("network attach failed")
	// errNetDied: the attach ended without a word (its process died).
	errNetDied = errors.New("network attach ended without a result")
)

// netWait is run's end of the socket of --net-wait.
type netWait struct {
	f *os.File
	r *bufio.Reader
}

func openNetWait(fd int) (*netWait, error) {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("run: --net-wait=%d: %w", fd, err)
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "net-wait")
	return &netWait{f: f, r: bufio.NewReader(f)}, nil
}

// wait reads stage0's word on the attach and, on "ok", lets the pod's
// apps start (podunit.NetReady).
func (n *netWait) wait(apps []podunit.App) error {
	l, err := n.r.ReadString('\n')
	switch {
	case l == "ok\n":
		return podunit.NetReady(apps)
	case l == "fail\n":
		return errNetFailed
	case err == nil || errors.Is(err, io.EOF):
		return fmt.Errorf("%w (%q)", errNetDied, l)
	}
	return fmt.Errorf("%w: %w", errNetDied, err)
}

// end waits until stage0's side is closed: the attach has ended (and,
// after a failure, the pod is removed). run never exits before, so that
// whoever waits for run to end (stop, gc) finds the attach over.
func (n *netWait) end() {
	io.Copy(io.Discard, n.r)
	n.f.Close()
}

// releaseLock lets go of the pod's lock before run exits, for stage0 to
// take it (KeepLock checked the fd).
func releaseLock() error {
	fd, _ := strconv.Atoi(os.Getenv(pod.EnvLockFD))
	if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
		return fmt.Errorf("run: unlock pod: %w", err)
	}
	return nil
}
