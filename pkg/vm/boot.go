package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The environment variables that override a Config's boot limits (see
// docs/stage1-kvm.md): Go durations such as "20s" or "5m".
const (
	EnvBootTimeout = "SKIFF_KVM_BOOT_TIMEOUT" // Config.BootTimeout
	EnvBootStall   = "SKIFF_KVM_BOOT_STALL"   // Config.BootStall
)

// progressPoll is how often a booting guest's progress is sampled.
const progressPoll = 250 * time.Millisecond

// limitsFromEnv sets the boot limits c leaves zero from the environment.
func (c *Config) limitsFromEnv() error {
	for _, l := range []struct {
		env string
		d   *time.Duration
	}{{EnvBootTimeout, &c.BootTimeout}, {EnvBootStall, &c.BootStall}} {
		v := os.Getenv(l.env)
		if v == "" || *l.d != 0 {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: %s=%q: want a positive duration such as 30s", ErrBadConfig, l.env, v)
		}
		*l.d = d
	}
	return nil
}

// progress is what a booting guest has done so far, as seen from the host.
type progress struct {
	console int64         // bytes of console output
	busy    time.Duration // qemu's threads on a CPU or waiting for one
	known   bool          // busy could be read
}

// sampleProgress reads the console's size and, from schedstat, how long
// qemu's threads have run or waited to run. A guest that boots, however
// slowly on a busy host, keeps qemu running or runnable; one hung with its
// vCPU halted leaves qemu asleep.
func sampleProgress(pid int, console string) progress {
	var p progress
	if fi, err := os.Stat(console); err == nil {
		p.console = fi.Size()
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return p
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return p
		}
		run, err1 := strconv.ParseInt(f[0], 10, 64)
		wait, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return p
		}
		p.busy += time.Duration(run + wait)
	}
	p.known = true
	return p
}

// movedSince reports whether the guest made progress since prev, over an
// interval of wall time: console output, or qemu busy for a tenth of it.
// When qemu's activity cannot be read, it counts as progress (only the
// overall BootTimeout then applies).
func (p progress) movedSince(prev progress, interval time.Duration) bool {
	return p.console != prev.console || !p.known || !prev.known || p.busy-prev.busy >= interval/10
}

// watchBoot kills qemu when its guest makes no progress for cfg.BootStall,
// until stop is closed; it reports whether it did.
func (vm *VM) watchBoot(cfg Config, stop <-chan struct{}) <-chan bool {
	stalled := make(chan bool, 1)
	go func() {
		t := time.NewTicker(progressPoll)
		defer t.Stop()
		last, moved := sampleProgress(vm.cmd.Process.Pid, cfg.ConsoleLog), time.Now()
		for {
			select {
			case <-stop:
				stalled <- false
				return
			case <-vm.done:
				stalled <- false
				return
			case now := <-t.C:
				cur := sampleProgress(vm.cmd.Process.Pid, cfg.ConsoleLog)
				if cur.movedSince(last, progressPoll) {
					moved = now
				}
				last = cur
				if now.Sub(moved) >= cfg.BootStall {
					vm.Kill()
					stalled <- true
					return
				}
			}
		}
	}()
	return stalled
}
