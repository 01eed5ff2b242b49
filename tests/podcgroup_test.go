//go:build e2e

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPodOwnCgroup: without systemd as the host's PID 1 (nspawn then runs
// with --keep-unit), each stage1-ns pod still gets cgroups of its own in
// the hierarchies its systemd uses. Before, every pod's systemd lived in
// one shared /payload and created, joined and removed the same
// <app>.service cgroups as the other pods' (apps failing with 219/CGROUP).
func TestPodOwnCgroup(t *testing.T) {
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("the host runs systemd: machined gives each pod a scope")
	}
	e := newEnv(t)
	seen := map[string]string{}
	for range 2 {
		uuid := server(t, e)
		for _, l := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/cgroup", e.status(uuid).Pid)), "\n") {
			f := strings.SplitN(l, ":", 3)
			if len(f) != 3 || (f[1] != "" && f[1] != "name=systemd") {
				continue
			}
			if !strings.Contains(f[2], uuid) {
				t.Errorf("pod %s: its init is in %q cgroup %s, not one of its own", uuid, f[1], f[2])
			}
			if other, ok := seen[f[1]+f[2]]; ok {
				t.Errorf("pods %s and %s share the %q cgroup %s", other, uuid, f[1], f[2])
			}
			seen[f[1]+f[2]] = uuid
		}
	}
}

// TestPodPartlyKilled: a pod whose nspawn alone is killed does not live on
// under the host's PID 1 (run kills what is left), and one whose run and
// nspawn are killed is killed by gc; either way gc leaves no cgroup.
func TestPodPartlyKilled(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name  string
		kill  int  // processes to kill, from nspawn up: 1 nspawn, 2 nspawn and run
		forGC bool // the pod's processes are gone only after gc
	}{
		{"nspawn", 1, false},
		{"run and nspawn", 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			uuid := server(t, e)
			init := e.status(uuid).Pid
			procs := inPidNS(t, init)
			nspawn := parentOf(t, init)
			if tt.kill == 2 {
				syscall.Kill(parentOf(t, nspawn), syscall.SIGKILL)
			}
			syscall.Kill(nspawn, syscall.SIGKILL)
			waitFor(t, "the pod to count as exited", time.Minute, func() bool { return e.status(uuid).State == "exited" })
			if tt.forGC {
				e.mustRun("gc", "--grace-period=0")
			}
			waitFor(t, fmt.Sprintf("the pod's processes %v to be gone", procs), 30*time.Second, func() bool {
				for _, p := range procs {
					if alive(p) {
						return false
					}
				}
				return true
			})
			e.mustRun("gc", "--grace-period=0")
			left, _ := filepath.Glob("/sys/fs/cgroup/*/skiff/" + uuid)
			if len(left) > 0 {
				t.Errorf("gc left the pod's cgroups: %v", left)
			}
		})
	}
}

// inPidNS lists the processes in the pid namespace of process pid.
func inPidNS(t *testing.T, pid int) []int {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		var p int
		if _, err := fmt.Sscan(d.Name(), &p); err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p)); err == nil && l == ns {
			out = append(out, p)
		}
	}
	if len(out) < 2 {
		t.Fatalf("pod of init %d: only %v in its pid namespace", pid, out)
	}
	return out
}

// alive reports whether pid is a process that has not exited.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
