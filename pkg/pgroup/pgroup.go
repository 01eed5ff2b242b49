// Package pgroup waits for a process group to be gone: a command killed
// in a pod is gone only once every process of its group is reaped.
package pgroup

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Gone waits up to d until no process of process group pgid is left,
// zombies included: a command killed in a pod is reparented to the pod's
// init, which reaps it a moment later, and until then a pgrep in the pod
// still finds it. It reports whether the group is gone.
func Gone(pgid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if !Exists(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Exists reports whether a process of group pgid exists.
func Exists(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if g, ok := statPgrp(b); ok && g == pgid {
			return true
		}
	}
	return false
}

// statPgrp reads the process group from a /proc/PID/stat line: the
// fields after the command (in parentheses, which may hold spaces) are
// state, ppid, pgrp.
func statPgrp(stat []byte) (int, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 3 {
		return 0, false
	}
	n, err := strconv.Atoi(string(f[2]))
	return n, err == nil
}
