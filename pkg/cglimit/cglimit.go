// Package cglimit writes memory and CPU limits into cgroups: the v1
// memory and cpu controllers' files, in the order the kernel accepts them,
// or cgroup v2's memory.max and cpu.max.
package cglimit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Limits are memory and CPU limits; a zero field is left as it is.
type Limits struct {
	Memory    int64 // bytes
	CPUQuota  int64 // µs of CPU time per CPUPeriod
	CPUPeriod int64 // µs; with CPUQuota
	CPUShares int64 // v1 cpu.shares (v2: converted to cpu.weight)
}

// ErrNoController means the cgroup has no file for a limit asked for.
var ErrNoController = errors.New("no such controller in the cgroup")

// WriteV1 writes l's limits of v1 controller ctrl ("memory" or "cpu") into
// the cgroup at dir. Memory also limits memory+swap where the kernel
// accounts swap, or the limit would leak into swap; whichever of the two
// must change first for the kernel to accept the pair (memsw may not be
// below memory) is written first.
func WriteV1(dir, ctrl string, l Limits) error {
	switch {
	case ctrl == "memory" && l.Memory > 0:
		mem, memsw := filepath.Join(dir, "memory.limit_in_bytes"), filepath.Join(dir, "memory.memsw.limit_in_bytes")
		if _, err := os.Stat(memsw); err != nil {
			return write(mem, l.Memory)
		}
		if err := write(mem, l.Memory); err != nil {
			if !errors.Is(err, unix.EINVAL) {
				return err
			}
			// Raised above memsw: raise memsw first.
			if err := write(memsw, l.Memory); err != nil {
				return err
			}
			return write(mem, l.Memory)
		}
		return write(memsw, l.Memory)
	case ctrl == "cpu":
		if l.CPUShares > 0 {
			if err := write(filepath.Join(dir, "cpu.shares"), l.CPUShares); err != nil {
				return err
			}
		}
		if l.CPUQuota > 0 && l.CPUPeriod > 0 {
			// The kernel checks the quota against the period.
			if err := write(filepath.Join(dir, "cpu.cfs_period_us"), l.CPUPeriod); err != nil {
				return err
			}
			return write(filepath.Join(dir, "cpu.cfs_quota_us"), l.CPUQuota)
		}
	}
	return nil
}

// Apply sets l on the cgroups process pid is in, as the host's
// /proc/<pid>/cgroup names them below root (/sys/fs/cgroup): in the v1
// memory and cpu hierarchies where the host has them, else in its cgroup
// v2 group. own(ctrl, path) must say whether the group at path is the
// process's own: a limit on a group it shares would limit the others too,
// and is refused.
func Apply(root string, pid int, own func(ctrl, path string) bool, l Limits) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return fmt.Errorf("limit: %w", err)
	}
	groups := parseProcCgroup(string(b))
	var v1 []string
	for _, ctrl := range []string{"memory", "cpu"} {
		if _, ok := groups[ctrl]; ok {
			v1 = append(v1, ctrl)
		}
	}
	if len(v1) == 0 {
		path, ok := groups[""]
		if !ok || !own("", path) {
			return fmt.Errorf("limit: the process has no cgroup of its own")
		}
		return WriteV2(filepath.Join(root, path), l)
	}
	for _, ctrl := range v1 {
		if ctrl == "memory" && l.Memory == 0 || ctrl == "cpu" && l.CPUShares == 0 && l.CPUQuota == 0 {
			continue // nothing to set there
		}
		path := groups[ctrl]
		if !own(ctrl, path) {
			return fmt.Errorf("limit %s: the process has no %s cgroup of its own (%s)", ctrl, ctrl, path)
		}
		if err := WriteV1(filepath.Join(root, ctrl, path), ctrl, l); err != nil {
			return err
		}
	}
	return nil
}

// parseProcCgroup maps each controller of /proc/<pid>/cgroup to its path
// ("" for the v2 hierarchy; co-mounted controllers under each name).
func parseProcCgroup(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			out[c] = f[2]
		}
	}
	return out
}

// WriteV2 writes l into the cgroup v2 group at dir (memory.max, cpu.max);
// ErrNoController when the group's parent did not enable a controller.
func WriteV2(dir string, l Limits) error {
	if l.Memory > 0 {
		if err := writeIn(dir, "memory.max", strconv.FormatInt(l.Memory, 10)); err != nil {
			return err
		}
	}
	if l.CPUShares > 0 {
		// Kubernetes' conversion of shares [2, 262144] to weight [1, 10000].
		w := 1 + (min(max(l.CPUShares, 2), 262144)-2)*9999/262142
		if err := writeIn(dir, "cpu.weight", strconv.FormatInt(w, 10)); err != nil {
			return err
		}
	}
	if l.CPUQuota > 0 && l.CPUPeriod > 0 {
		if err := writeIn(dir, "cpu.max", fmt.Sprintf("%d %d", l.CPUQuota, l.CPUPeriod)); err != nil {
			return err
		}
	}
	return nil
}

func writeIn(dir, name, v string) error {
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("limit %s: %w", p, ErrNoController)
	}
	if err := os.WriteFile(p, []byte(v), 0); err != nil {
		return fmt.Errorf("limit: %w", err)
	}
	return nil
}

func write(path string, v int64) error {
	if err := os.WriteFile(path, []byte(strconv.FormatInt(v, 10)), 0); err != nil {
		return fmt.Errorf("limit: %w", err)
	}
	return nil
}
