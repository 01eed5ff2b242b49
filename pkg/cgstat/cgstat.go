// Package cgstat reads what a cgroup v2 group has used, for the CRI's
// stats: CPU time from cpu.stat (always there in v2), memory from
// memory.current and memory.stat where the memory controller is enabled,
// or else the resident memory of the group's processes (hosts whose v2
// hierarchy has no controllers, such as a hybrid cgroup v1 layout).
package cgstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// Usage is what a group has used.
type Usage struct {
	CPUNanos   uint64 // CPU time, all its processes, since the group was made
	WorkingSet uint64 // memory bytes: memory.current less inactive file pages, or the processes' resident set
	RSS        uint64 // anonymous memory bytes (memory.stat anon), or the processes' resident set
}

// Root is the mount point of the cgroup v2 hierarchy.
func Root() (string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup2"))
	if err != nil {
		return "", fmt.Errorf("cgroup2 mount: %w", err)
	}
	if len(ms) == 0 {
		return "", errors.New("cgroup2 mount: none")
	}
	return ms[0].Mountpoint, nil
}

// Of returns the cgroup v2 path (below Root) of process pid.
func Of(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", fmt.Errorf("cgroup of %d: %w", pid, err)
	}
	return parseProcCgroup(string(b))
}

func parseProcCgroup(s string) (string, error) {
	for _, l := range strings.Split(s, "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("cgroup: no cgroup v2 line")
}

// Read returns the usage of the group at dir (a directory of the cgroup2
// mount).
func Read(dir string) (Usage, error) {
	var u Usage
	st, err := readKV(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return u, fmt.Errorf("cgroup stats: %w", err)
	}
	u.CPUNanos = st["usage_usec"] * 1000
	if cur, err := os.ReadFile(filepath.Join(dir, "memory.current")); err == nil {
		n, _ := strconv.ParseUint(strings.TrimSpace(string(cur)), 10, 64)
		ms, _ := readKV(filepath.Join(dir, "memory.stat"))
		u.WorkingSet, u.RSS = n, ms["anon"]
		if in := ms["inactive_file"]; in < n {
			u.WorkingSet = n - in
		} else {
			u.WorkingSet = 0
		}
		return u, nil
	}
	rss, err := resident(dir)
	if err != nil {
		return u, fmt.Errorf("cgroup stats: %w", err)
	}
	u.WorkingSet, u.RSS = rss, rss
	return u, nil
}

// resident sums the resident set of every process in dir and below.
func resident(dir string) (uint64, error) {
	page := uint64(os.Getpagesize())
	var sum uint64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil // a group removed meanwhile
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, pid := range strings.Fields(string(b)) {
			statm, err := os.ReadFile("/proc/" + pid + "/statm")
			if err != nil {
				continue // gone
			}
			if f := strings.Fields(string(statm)); len(f) > 1 {
				n, _ := strconv.ParseUint(f[1], 10, 64)
				sum += n * page
			}
		}
		return nil
	})
	return sum, err
}

// readKV reads a flat keyed file ("key value" lines).
func readKV(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			m[k], _ = strconv.ParseUint(v, 10, 64)
		}
	}
	return m, nil
}

// DiskUsage returns the bytes and inodes used by the tree at dir, each
// file counted once (hard links) by its allocated blocks.
func DiskUsage(dir string) (bytes, inodes uint64, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		ino, blocks := statIno(fi)
		if seen[ino] {
			return nil
		}
		seen[ino] = true
		inodes++
		bytes += blocks * 512
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("disk usage: %w", err)
	}
	return bytes, inodes, nil
}
