//go:build e2e

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// skiff debug (docs/debug.md): tools from the default tools image
// (bin/debug-tools.aci, linked beside the test's skiff as make install puts
// it beside /usr/bin/skiff's images) run inside a redis microcontainer that
// skiff build made and that has no shell, with no more than the app holds,
// on both stage1s; afterwards the app's mounts and PID are as before.
func TestDebug(t *testing.T) {
	if _, err := os.Stat(filepath.Join(binDir, "debug-tools.aci")); err != nil {
		t.Fatalf("bin/debug-tools.aci missing: run `make build` (%v)", err)
	}
	e := newEnv(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "redis.yaml"), []byte(redisSpec), 0o644)
	redis := filepath.Join(dir, "redis.aci")
	e.mustRun("build", "-f", filepath.Join(dir, "redis.yaml"), "-o", "aci:"+redis)
	for _, s1 := range []string{"ns", "kvm"} {
		t.Run(s1, func(t *testing.T) { debugPod(t, e.with(t), s1, redis) })
	}
}

func debugPod(t *testing.T, e *env, s1, redis string) {
	save := filepath.Join(t.TempDir(), "uuid")
	c, log := e.start("--insecure-options=image", "run", "--stage1="+s1, "--net=none", "--uuid-file-save="+save, redis)
	var uuid string
	waitFor(t, "the pod to start", 3*time.Minute, func() bool {
		b, _ := os.ReadFile(save)
		uuid = strings.TrimSpace(string(b))
		return uuid != "" && c.ProcessState == nil && e.status(uuid).State == "running"
	})
	debug := func(t *testing.T, args ...string) (string, string, int) {
		t.Helper()
		return e.with(t).run(append([]string{"debug", uuid}, args...)...)
	}
	mustDebug := func(t *testing.T, args ...string) string {
		t.Helper()
		out, errs, code := debug(t, args...)
		if code != 0 {
			t.Fatalf("skiff debug %s: exit %d\n%s%s\npod:\n%s", strings.Join(args, " "), code, out, errs, log)
		}
		return out
	}
	// redis-server's pid in the pod, once it runs; on stage1-ns also on
	// the host, where the app's mounts can be read directly.
	var pid int
	waitFor(t, "redis-server", 2*time.Minute, func() bool {
		out, _, code := debug(t, "--", "ps")
		pid = redisPid(out)
		return code == 0 && pid != 0
	})
	appMounts := func() string {
		return mustDebug(t, "--", "cat", fmt.Sprintf("/proc/%d/mountinfo", pid))
	}
	mountsBefore := appMounts()
	hostBefore := mountsUnder(e.dir)
	var hostPid int
	if s1 == "ns" {
		hostPid = descendant(e.status(uuid).Pid, "redis-server")
		if _, err := os.Lstat(fmt.Sprintf("/proc/%d/root/bin/sh", hostPid)); err == nil {
			t.Fatalf("the redis image has /bin/sh: not a microcontainer")
		}
	}
	if out, _, _ := debug(t, "--", "sh", "-c", "ls /bin/sh /usr/bin/redis-server 2>&1"); !strings.Contains(out, "/bin/sh: No such file") {
		t.Errorf("the app has a /bin/sh, or its tree is not visible:\n%s", out)
	}

	t.Run("ps and ss", func(t *testing.T) {
		ps := mustDebug(t, "--", "ps")
		if !regexp.MustCompile(`(?m)^\s*\d+\s+\S+\s+/usr/bin/redis-server`).MatchString(ps) {
			t.Errorf("ps does not list redis-server:\n%s", ps)
		}
		ss := mustDebug(t, "--", "ss", "-ltn")
		if !regexp.MustCompile(`(?m)^LISTEN .*:6379\s`).MatchString(ss) {
			t.Errorf("ss -ltn does not show redis listening on 6379:\n%s", ss)
		}
		// busybox applets linked in usr/local/bin run without a shell.
		if id := mustDebug(t, "--", "id"); !strings.HasPrefix(id, "uid=") {
			t.Errorf("id: %q", id)
		}
		// The default command is a shell; netcat talks to redis.
		if _, errs, code := debug(t); code != 0 {
			t.Errorf("skiff debug without a command (sh, stdin empty): exit %d: %s", code, errs)
		}
		if pong := mustDebug(t, "--", "sh", "-c", `printf 'PING\r\n' | nc -w 2 127.0.0.1 6379`); !strings.Contains(pong, "+PONG") {
			t.Errorf("nc to redis: %q", pong)
		}
	})

	t.Run("mounted for the command alone", func(t *testing.T) {
		// Its own mount table has the tools, the app's has not, while it runs.
		out := mustDebug(t, "--", "sh", "-c", fmt.Sprintf("grep -c skiff-debug /proc/self/mountinfo; grep -c skiff-debug /proc/%d/mountinfo; true", pid))
		if out != "1\n0\n" {
			t.Errorf("tools mounts in the command's and in the app's mount table: %q, want 1 and 0", out)
		}
		if s1 != "ns" {
			return
		}
		c, out2 := e.with(t).start("debug", uuid, "--", "sh", "-c", "echo started; sleep 3")
		waitFor(t, "debug to start", time.Minute, func() bool { return strings.Contains(out2.String(), "started") })
		if m := readFile(t, fmt.Sprintf("/proc/%d/mountinfo", hostPid)); strings.Contains(m, "skiff-debug") {
			t.Errorf("while debug runs, the tools are mounted in the app's namespace:\n%s", m)
		}
		if err := c.Wait(); err != nil {
			t.Errorf("debug: %v\n%s", err, out2)
		}
	})

	t.Run("two at once", func(t *testing.T) {
		// The session that made the mount point ends first: the other
		// must keep its tools.
		// On stage1-kvm the second starts once the first has ended (qemu's
		// control socket takes one client at a time); it used to be lost.
		first, out1 := e.with(t).start("debug", uuid, "--", "sh", "-c", "echo started; sleep 2")
		waitFor(t, "the first debug to start", time.Minute, func() bool { return strings.Contains(out1.String(), "started") })
		second, out2 := e.with(t).start("debug", uuid, "--", "sh", "-c", "echo started; sleep 5; ls /dev/.skiff-debug/bin/busybox")
		waitFor(t, "the second debug to start", time.Minute, func() bool { return strings.Contains(out2.String(), "started") })
		if err := first.Wait(); err != nil {
			t.Errorf("first debug: %v\n%s", err, out1)
		}
		if err := second.Wait(); err != nil || !strings.Contains(out2.String(), "/dev/.skiff-debug/bin/busybox\n") {
			t.Errorf("the second session lost its tools when the first ended: %v\n%s", err, out2)
		}
	})

	t.Run("no more than the app", func(t *testing.T) {
		want := statusLines(mustDebug(t, "--", "cat", fmt.Sprintf("/proc/%d/status", pid)))
		if s1 == "ns" {
			want = procStatus(t, hostPid)
		}
		got := statusLines(mustDebug(t, "--", "cat", "/proc/self/status"))
		for _, k := range []string{"Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"} {
			if got[k] != want[k] {
				t.Errorf("%s: debug has %q, the app %q", k, got[k], want[k])
			}
		}
		_, errs, code := debug(t, "--", "strace", "-p", strconv.Itoa(pid))
		if code == 0 || !strings.Contains(errs, "Operation not permitted") {
			t.Errorf("strace without --cap-add: exit %d, %q; want refused", code, errs)
		}
	})

	t.Run("cap-add SYS_PTRACE for strace", func(t *testing.T) {
		// strace runs in the background while its maps are read: every
		// library it loaded comes from the tools image, none from the app.
		script := fmt.Sprintf(`strace -f -p %d -e trace=epoll_wait -o /dev/null 2>/dev/null & `+
			`sleep 1; cat /proc/$!/maps; kill $!; wait; timeout -s INT 2 strace -p %d -e trace=epoll_wait`, pid, pid)
		out, errs, code := debug(t, "--cap-add=SYS_PTRACE", "--", "sh", "-c", script)
		if !strings.Contains(errs, "epoll_wait(") {
			t.Errorf("strace --cap-add=SYS_PTRACE: exit %d, no epoll_wait of redis in:\n%s", code, errs)
		}
		if !strings.Contains(errs, "CAP_SYS_PTRACE") || !strings.Contains(errs, "warning") {
			t.Errorf("the opt-in is not logged:\n%s", errs)
		}
		libs := 0
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) < 6 || !strings.Contains(f[5], ".so") {
				continue
			}
			libs++
			if !strings.HasPrefix(f[5], "/dev/.skiff-debug/") {
				t.Errorf("strace mapped %s, not from the tools image", f[5])
			}
		}
		if libs < 2 {
			t.Errorf("strace's maps show %d libraries:\n%s", libs, out)
		}
	})

	t.Run("any image as tools", func(t *testing.T) {
		// The tools image by ID and by name from the store, and as an OCI
		// layout (skiff build of the same tree, one layer, merged once).
		e := e.with(t)
		tools := filepath.Join(binDir, "debug-tools.aci")
		id := strings.TrimSpace(e.mustRun("--insecure-options=image", "fetch", "--full", tools))
		var name string
		for _, l := range strings.Split(e.mustRun("image", "list", "--no-legend", "--full"), "\n") {
			if f := strings.Split(l, "\t"); len(f) > 2 && f[0] == id {
				name = f[2]
			}
		}
		layout := filepath.Join(t.TempDir(), "tools")
		e.mustRun("build", "--base", id, "--exec", "/bin/busybox sh", "-o", "oci:"+layout+":1")
		for _, ref := range []string{id, name, "oci:" + layout + ":1"} {
			if ps := mustDebug(t, "--insecure-options=image", "--image", ref, "--", "ps"); !strings.Contains(ps, "/usr/bin/redis-server") {
				t.Errorf("--image %s: ps does not list redis-server:\n%s", ref, ps)
			}
		}
		// Verified as for run: an OCI layout by tag is refused without
		// --insecure-options=image, and nothing is stored.
		_, errs, code := debug(t, "--image", "oci:"+layout+":1", "--", "ps")
		if code != 254 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "--insecure-options=image") {
			t.Errorf("an unsigned OCI tools image: exit %d, %q; want 254 and one line naming --insecure-options=image", code, errs)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		junk := filepath.Join(t.TempDir(), "junk.aci")
		os.WriteFile(junk, []byte("not an image\n"), 0o644)
		imagesBefore := e.mustRun("image", "list")
		for _, tt := range []struct {
			name string
			args []string
			want string
		}{
			{"tools image not an image", []string{"debug", uuid, "--image", junk, "--", "ps"}, "not a tools image"},
			{"tools image with dependencies", []string{"debug", uuid, "--image", image(t, "probe-layered.aci"), "--", "ps"}, "must stand alone"},
			{"tools image an archive that is not one", []string{"--insecure-options=image", "debug", uuid, "--image", "docker-archive:" + junk, "--", "ps"}, "tools image docker-archive:"},
			{"no such app", []string{"debug", uuid, "--app", "nope", "--", "ps"}, `no such running app: "nope"`},
			{"no such pod", []string{"debug", "00000000-0000-0000-0000-000000000000", "--", "ps"}, "pod does not exist"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				out, errs, code := e.with(t).run(tt.args...)
				if code != 254 || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "skiff: ") || !strings.Contains(errs, tt.want) {
					t.Errorf("exit %d, stdout %q, stderr %q; want 254 and one line with %q", code, out, errs, tt.want)
				}
			})
		}
		if after := e.mustRun("image", "list"); after != imagesBefore {
			t.Errorf("the refused images reached the store:\n%s\nwas:\n%s", after, imagesBefore)
		}
	})

	// Nothing stays: the app's mounts, its PID, the host's mounts.
	if got := redisPid(mustDebug(t, "--", "ps")); got != pid {
		t.Errorf("redis-server is pid %d in the pod, was %d: the app restarted", got, pid)
	}
	if after := appMounts(); after != mountsBefore {
		t.Errorf("the app's mounts changed:\nbefore:\n%s\nafter:\n%s", mountsBefore, after)
	}
	if after := mountsUnder(e.dir); strings.Join(after, "\n") != strings.Join(hostBefore, "\n") {
		t.Errorf("host mounts under the data dir changed: %v, were %v", after, hostBefore)
	}
	// stage1-kvm binds the tools into the shared tree for the guest: gone.
	if s1 == "kvm" {
		ents, err := os.ReadDir(filepath.Join(e.dir, "pods", "run", uuid, "stage1", "rootfs", "skiff", "debug"))
		if err != nil || len(ents) != 0 {
			t.Errorf("the shared tree's skiff/debug: %v, %v; want it there and empty", ents, err)
		}
	}
	if s1 == "ns" {
		if got := descendant(e.status(uuid).Pid, "redis-server"); got != hostPid {
			t.Errorf("redis-server is pid %d, was %d: the app restarted", got, hostPid)
		}
		if _, err := os.Lstat(fmt.Sprintf("/proc/%d/root/dev/.skiff-debug", hostPid)); err == nil {
			t.Errorf("/dev/.skiff-debug is left in the app")
		}
	}

	e.mustRun("stop", uuid)
	c.Wait()
	_, errs, code := e.run("debug", uuid, "--", "ps")
	if code != 254 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "it is exited") {
		t.Errorf("debug of an exited pod: exit %d, %q; want 254 and one line", code, errs)
	}
}

// descendant returns the host pid of the first descendant of pid whose
// comm is comm, or 0.
func descendant(pid int, comm string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		c, _ := strconv.Atoi(f)
		if got, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); strings.TrimSpace(string(got)) == comm {
			return c
		}
		if d := descendant(c, comm); d != 0 {
			return d
		}
	}
	return 0
}

func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	return statusLines(readFile(t, fmt.Sprintf("/proc/%d/status", pid)))
}

// statusLines parses /proc/PID/status; Seccomp_filters is left out, as the
// count differs by the filters stage2 loads (docs/seccomp.md).
func statusLines(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

// redisPid returns redis-server's pid in the pod from ps's output, or 0.
func redisPid(ps string) int {
	m := regexp.MustCompile(`(?m)^\s*(\d+)\s+\S+\s+/usr/bin/redis-server`).FindStringSubmatch(ps)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
