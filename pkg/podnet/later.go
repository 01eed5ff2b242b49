package podnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
)

// removeWait bounds how long Serve waits, after a failed attach, for the
// stage1 to let go of the pod so that it can remove it; a pod it could
// not remove is left exited, for gc.
const removeWait = 2 * time.Minute

// Serve is the process that attaches a pod's network while its stage1
// starts (pod.FeatureNetWait; docs/networking.md, "The attach overlaps
// the stage1's start"). It reads Begin's job as the first line of c, the
// socket whose other end the stage1 holds (pod.RunArgs.NetWait), runs
// Finish and answers "ok\n", or "fail\n" and then, once the stage1 has
// stopped the pod and let go of its lock, removes the pod with remove (by
// UUID; an error wrapping pod.ErrLocked means not yet). It returns
// Finish's error; the stage1 exits once c is closed.
func (h Host) Serve(ctx context.Context, c io.ReadWriter, remove func(uuid string) error) error {
	job, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("network setup: read job: %w", err)
	}
	p, err := h.Finish(ctx, job)
	if err == nil {
		if _, err := io.WriteString(c, "ok\n"); err != nil {
			// The stage1 is gone: gc detaches the exited pod.
			return fmt.Errorf("network setup: report to stage1: %w", err)
		}
		return nil
	}
	if _, werr := io.WriteString(c, "fail\n"); werr != nil || p == nil {
		return err
	}
	for deadline := time.Now().Add(removeWait); ; time.Sleep(2 * time.Millisecond) {
		rerr := remove(p.UUID)
		if !errors.Is(rerr, pod.ErrLocked) || time.Now().After(deadline) {
			if rerr != nil {
				h.Log.Warn("remove pod whose network failed", "pod", p.UUID, "err", rerr)
			}
			return err
		}
	}
}
