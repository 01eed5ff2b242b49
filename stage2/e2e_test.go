//go:build e2e

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/launch"
	"golang.org/x/sys/unix"
)

var stage2Bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stage2-e2e-")
	if err != nil {
		panic(err)
	}
	stage2Bin = filepath.Join(dir, "stage2")
	build := exec.Command("go", "build", "-o", stage2Bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build stage2: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount namespaces, pivot_root, setuid): run `sudo go test -tags e2e ./stage2/`")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox: apt-get install -y busybox-static")
	}
}

// bundle builds a busybox app rootfs and its spec under a fresh directory.
func bundle(t *testing.T, app, extra string, hostile bool) (dir string, s *specs.Spec) {
	t.Helper()
	dir = t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "srv", "data", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(rootfs, "bin/busybox"), string(bb), 0o755)
	for _, tool := range []string{"sh", "id", "cat", "grep", "wc", "touch", "mkdir", "pwd", "echo", "test", "hostname", "sleep", "ls", "unshare", "true"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", tool)); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(rootfs, "etc/passwd"), "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n", 0o644)
	write(t, filepath.Join(rootfs, "etc/group"), "root:x:0:\naudio:x:29:app\napp:x:1000:\n", 0o644)
	if hostile {
		if err := os.Symlink("/etc", filepath.Join(rootfs, "proc")); err != nil {
			t.Fatal(err)
		}
	}
	vols := filepath.Join(dir, "volumes")
	write(t, filepath.Join(vols, "data", "hello"), "hello from volume\n", 0o644)

	var ra schema.RuntimeApp
	doc := `{"name":"probe","image":{"id":"sha512-0123456789abcdef0123456789abcdef"},"app":` + app + extra + `}`
	if err := json.Unmarshal([]byte(doc), &ra); err != nil {
		t.Fatalf("runtime app %s: %v", doc, err)
	}
	pm := &schema.PodManifest{Apps: schema.AppList{ra}}
	if err := json.Unmarshal([]byte(`[{"name":"data","kind":"host","source":"/x"}]`), &pm.Volumes); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	s, err = appspec.Build(pm, &ra, &schema.ImageManifest{}, root, appspec.Options{Hostname: "pod-e2e", VolumesDir: vols})
	if err != nil {
		t.Fatal(err)
	}
	return dir, s
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// capHex renders a capability set as /proc/self/status shows it.
func capHex(names []string) string {
	var mask uint64
	for _, n := range names {
		for _, c := range capability.ListKnown() {
			if "CAP_"+strings.ToUpper(c.String()) == n {
				mask |= 1 << uint(c)
			}
		}
	}
	return fmt.Sprintf("%016x", mask)
}

// probe is the app: it reports what it sees, one fact per line.
const probe = `
id
grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status
test -e /proc/kcore && echo kcore=$(wc -c </proc/kcore) || echo kcore=0
echo masked timer_list=$(wc -c </proc/timer_list) firmware=$(ls /sys/firmware | wc -l)
grep -q ' /proc/sys ro[, ]' /proc/self/mountinfo && echo procsys=ro
echo pwd=$(pwd) foo=$FOO app=$AC_APP_NAME path=$PATH
echo args="$*"
echo hostname=$(hostname) etc=$(cat /etc/hostname)
cat /data/hello
touch /rootfile 2>/dev/null && echo root=rw || echo root=ro
touch /data/x 2>/dev/null && echo data=rw || echo data=ro
mkdir /tmp/d 2>/dev/null && echo mkdir=ok || echo mkdir=denied
unshare -U true 2>/dev/null && echo userns=ok || echo userns=denied
`

func app(user, group, isolators string) string {
	return fmt.Sprintf(`{"exec":["/bin/sh","-c",%q,"sh","a1","a 2"],"user":%q,"group":%q,
		"workingDirectory":"/srv","environment":[{"name":"FOO","value":"bar"}],
		"mountPoints":[{"name":"data","path":"/data","readOnly":%v}],"isolators":[%s]}`,
		probe, user, group, user != "0", isolators)
}

// allowList runs busybox APPLET... with only the calls `busybox echo` makes.
const allowList = `{"exec":["/bin/busybox",%s],"user":"0","group":"0","isolators":[
	{"name":"os/linux/seccomp-retain-set","value":{"set":["execve","brk","mprotect","arch_prctl","set_tid_address",
	"set_robust_list","rseq","prlimit64","getrandom","readlink","getuid","prctl","write","exit_group"]}}]}`

func TestRun(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		app     string
		extra   string
		hostile bool
		mutate  func(*specs.Spec)
		cmd     []string // run in the app's place (an event handler)
		want    []string
		wantErr string // how the app must fail, if it must
	}{
		{
			name: "root with defaults",
			app:  app("0", "0", ""),
			want: []string{
				"uid=0(root) gid=0(root)",
				"CapEff:\t" + capHex(appspec.DefaultCaps), "CapBnd:\t" + capHex(appspec.DefaultCaps),
				"CapAmb:\t0000000000000000", "NoNewPrivs:\t0", "Seccomp:\t2", "userns=denied",
				"kcore=0", "masked timer_list=0 firmware=0", "procsys=ro",
				"pwd=/srv foo=bar app=probe path=" + appspec.DefaultPath,
				"args=a1 a 2", "hostname=pod-e2e etc=pod-e2e", "hello from volume",
				"root=rw", "data=rw", "mkdir=ok",
			},
		},
		{
			name: "user, retain set, seccomp, read-only root",
			app: app("app", "app",
				`{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_NET_BIND_SERVICE"]}},
				 {"name":"os/linux/seccomp-remove-set","value":{"set":["mkdir","mkdirat"],"errno":"EACCES"}}`),
			extra: `,"readOnlyRootFS":true`,
			want: []string{
				"uid=1000(app) gid=1000(app) groups=29(audio)",
				"CapEff:\t0000000000000400", "CapBnd:\t0000000000000400", "CapAmb:\t0000000000000400",
				"NoNewPrivs:\t1", "Seccomp:\t2",
				"root=ro", "data=ro", "mkdir=denied", "hello from volume",
			},
		},
		{
			name: "seccomp allow-list lets the app run",
			app:  fmt.Sprintf(allowList, `"echo","hi"`),
			want: []string{"hi"},
		},
		{
			// An event handler: the app's root, user and restrictions,
			// another command.
			name: "command in the app's place",
			app:  app("app", "app", `{"name":"os/linux/seccomp-remove-set","value":{"set":["mkdir","mkdirat"],"errno":"EACCES"}}`),
			cmd:  []string{"/bin/sh", "-c", `echo handler pwd=$(pwd) foo=$FOO; id; cat /data/hello; mkdir /tmp/h 2>/dev/null || echo mkdir=denied`},
			want: []string{"handler pwd=/srv foo=bar", "uid=1000(app) gid=1000(app)", "hello from volume", "mkdir=denied"},
		},
		{
			name:    "seccomp allow-list kills",
			app:     fmt.Sprintf(allowList, `"cat","/etc/passwd"`),
			wantErr: "bad system call",
		},
		{
			// The image's /proc is a symlink to /etc: procfs must land on
			// the image's own /etc, never on the stage1's.
			name:    "hostile proc symlink",
			app:     `{"exec":["/bin/sh","-c","test -e /etc/self/status && echo confined; test -e /proc/self/status && echo procok"],"user":"0","group":"0"}`,
			hostile: true,
			mutate: func(s *specs.Spec) {
				var keep []specs.Mount
				for _, m := range s.Mounts {
					if !strings.HasPrefix(m.Destination, "/etc/") {
						keep = append(keep, m)
					}
				}
				s.Mounts = keep
			},
			want: []string{"confined", "procok"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, s := bundle(t, tt.app, tt.extra, tt.hostile)
			if tt.mutate != nil {
				tt.mutate(s)
			}
			if err := appspec.Write(dir, s); err != nil {
				t.Fatal(err)
			}
			before := mountsAt(dir)
			out, err := stage2(t, append([]string{"run", "--bundle=" + dir, "--"}, tt.cmd...)...).CombinedOutput()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("stage2 run: err = %v, want %q\n%s", err, tt.wantErr, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("stage2 run: %v\n%s", err, out)
			}
			for _, w := range tt.want {
				if !bytes.Contains(out, []byte(w+"\n")) && !bytes.Contains(out, []byte(w+" ")) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if after := mountsAt(dir); !slices.Equal(before, after) {
				t.Errorf("host mounts below the bundle changed: %q, then %q", before, after)
			}
		})
	}
}

// TestExec enters a running app the way stage1's enter does (nsenter into
// its namespaces and root, stage2 and the bundle passed as fds) and checks
// that the command gets the app's restrictions.
func TestExec(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter from util-linux")
	}
	isolators := `{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_KILL"]}},
		{"name":"os/linux/seccomp-remove-set","value":{"set":["mkdir","mkdirat"]}}`
	appJSON := fmt.Sprintf(`{"exec":["/bin/sleep","60"],"user":"app","group":"app","workingDirectory":"/srv",
		"environment":[{"name":"FOO","value":"bar"}],"mountPoints":[{"name":"data","path":"/data"}],"isolators":[%s]}`, isolators)
	dir, s := bundle(t, appJSON, "", false)
	if err := appspec.Write(dir, s); err != nil {
		t.Fatal(err)
	}
	app := stage2(t, "run", "--bundle="+dir)
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Process.Kill(); app.Wait() })
	// Wait until stage2 has become the app.
	pid := app.Process.Pid
	for i := 0; ; i++ {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if strings.HasSuffix(exe, "/busybox") {
			break
		}
		if i == 100 {
			t.Fatalf("app did not start (exe %q)", exe)
		}
		time.Sleep(50 * time.Millisecond)
	}

	bin, err := os.Open(stage2Bin)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	bdir, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer bdir.Close()
	// An inherited filter (what enter reads from the pod's init): one
	// that allows everything, loaded before the app's own.
	filters, err := os.CreateTemp(t.TempDir(), "filters")
	if err != nil {
		t.Fatal(err)
	}
	defer filters.Close()
	if err := launch.WriteFilters(filters, []launch.Filter{{{Code: 0x06, K: unix.SECCOMP_RET_ALLOW}}}); err != nil {
		t.Fatal(err)
	}
	script := `id; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status; echo pwd=$(pwd) foo=$FOO; mkdir /tmp/e 2>/dev/null && echo mkdir=ok || echo mkdir=denied`
	enter := exec.Command("nsenter", "-t", fmt.Sprint(pid), "-m", "-p", "-u", "-i", "-r", "-w", "--",
		"/proc/self/fd/3", "exec", "--bundle=/proc/self/fd/4", "--filters=/proc/self/fd/5", "--", "/bin/sh", "-c", script)
	enter.ExtraFiles = []*os.File{bin, bdir, filters}
	out, err := enter.CombinedOutput()
	if err != nil {
		t.Fatalf("stage2 exec: %v\n%s", err, out)
	}
	for _, w := range []string{"uid=1000(app) gid=1000(app)", "CapEff:\t0000000000000020", "CapBnd:\t0000000000000020",
		"NoNewPrivs:\t1", "Seccomp:\t2", "Seccomp_filters:\t2", "pwd=/srv foo=bar", "mkdir=denied"} {
		if !bytes.Contains(out, []byte(w)) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// stage2 returns a stage2 command in fresh pid, uts and ipc namespaces,
// as a stage1 would start it.
func stage2(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(stage2Bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC}
	return cmd
}

// mountsAt lists the host's mounts at or below dir: what a stage2 leaking
// its app's mounts to the host would add (other tests' pods mount and
// unmount elsewhere meanwhile).
func mountsAt(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}
