package nspawn

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

func TestNspawnArgs(t *testing.T) {
	tests := []struct {
		o    pod.RunArgs
		want []string
	}{
		{pod.RunArgs{UUID: "u", Net: "none"}, []string{"--private-network", "--console=read-only", "--quiet"}},
		{pod.RunArgs{UUID: "u", Hostname: "h", Interactive: true, Debug: true}, []string{"--hostname=h", "--console=interactive", "systemd.log_level=debug"}},
		{pod.RunArgs{UUID: "u", PrivateUsers: "268435456:65536"}, []string{"--private-users=268435456:65536", "--private-users-ownership=off"}},
	}
	for _, tt := range tests {
		args, err := nspawnArgs(tt.o, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			found := false
			for _, a := range args {
				found = found || a == w
			}
			if !found {
				t.Errorf("nspawnArgs(%+v) = %q, missing %q", tt.o, args, w)
			}
		}
	}
	if _, err := nspawnArgs(pod.RunArgs{Net: "bridge"}, nil); err == nil {
		t.Error("nspawnArgs accepted --net=bridge")
	}
}

// TestNspawnArgsNetNS: with --netns the pod joins the namespace and gets
// the resolv.conf stage0 wrote, when there is one.
func TestNspawnArgsNetNS(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	o := pod.RunArgs{UUID: "u", NetNS: "/run/skiff/netns/u"}
	args, err := nspawnArgs(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(args, "--network-namespace-path=/run/skiff/netns/u") || slices.Contains(args, "--private-network") || slices.Contains(args, "--resolv-conf=off") {
		t.Errorf("without net/resolv.conf: %q", args)
	}
	os.Mkdir(filepath.Join(dir, pod.NetDir), 0o700)
	os.WriteFile(filepath.Join(dir, pod.NetResolvConf), []byte("nameserver 192.0.2.1\n"), 0o644)
	if args, err = nspawnArgs(o, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(args, "--resolv-conf=off") || !slices.Contains(args, "--bind-ro="+filepath.Join(dir, pod.NetResolvConf)+":/etc/resolv.conf") {
		t.Errorf("with net/resolv.conf: %q", args)
	}
	// In a user namespace nspawn cannot join it: start runs nspawn in it.
	o.PrivateUsers = "268435456:65536"
	if args, err = nspawnArgs(o, nil); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--network-namespace-path") }) {
		t.Errorf("with --private-users: %q", args)
	}
}

func TestDropLine(t *testing.T) {
	const noise = "Attempted to remove disk file system under \"/run/systemd/nspawn/propagate/skiff-u\", and we can't allow that."
	tests := []struct {
		writes []string
		want   string
	}{
		{[]string{"a\n" + noise + "\nb\n"}, "a\nb\n"},
		{[]string{"a\nAttempted to remove", " disk file system under \"/run/systemd/nspawn/propagate/skiff-u\", and we can't allow that.\n"}, "a\n"},
		{[]string{"x" + noise + "\n"}, "x" + noise + "\n"}, // only the whole line
		{[]string{noise}, ""},
		{[]string{"no newline"}, "no newline"},
		{[]string{"a\n" + haltNoise + "\nb\n"}, "a\nb\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := &dropLine{w: &buf, lines: []string{fmt.Sprintf(propagateNoise, "skiff-u"), haltNoise}}
		for _, s := range tt.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tt.want {
			t.Errorf("dropLine(%q) = %q, want %q", tt.writes, buf.String(), tt.want)
		}
	}
}

// blockHelper makes the test binary, run with it set, a process whose
// main thread blocks SIGRTMIN+4, as systemd's does (init runs there).
const blockHelper = "SKIFF_TEST_BLOCK_POWEROFF"

func init() {
	if os.Getenv(blockHelper) == "" {
		return
	}
	var set unix.Sigset_t
	set.Val[0] = 1 << (podunit.SigPoweroff - 1)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		os.Exit(2)
	}
	time.Sleep(time.Minute)
	os.Exit(0)
}

func TestBlocks(t *testing.T) {
	start := func(name string, arg []string, env ...string) int {
		c := exec.Command(name, arg...)
		c.Env = append(os.Environ(), env...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c.Process.Pid
	}
	sleep := start("sleep", []string{"60"})
	blocker := start(os.Args[0], []string{"-test.run=^$"}, blockHelper+"=1")
	for deadline := time.Now().Add(10 * time.Second); !blocks(blocker, podunit.SigPoweroff) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // until its init has run
	}
	tests := []struct {
		name string
		pid  int
		want bool
	}{
		{"blocks it (systemd)", blocker, true},
		// The init in its execve of systemd: the handlers are about to go.
		{"go program (catches every signal, blocks none)", os.Getpid(), false},
		{"sleep (default actions)", sleep, false},
		{"no pid yet", 0, false},
	}
	for _, tt := range tests {
		if got := blocks(tt.pid, podunit.SigPoweroff); got != tt.want {
			t.Errorf("%s: blocks(%d, SIGRTMIN+4) = %v, want %v", tt.name, tt.pid, got, tt.want)
		}
	}
}

// TestNspawnEnv: only an app sandbox runs without nspawn's seccomp filter,
// whatever run inherited; the service manager's variables stay run's.
func TestNspawnEnv(t *testing.T) {
	inherited := []string{"PATH=/bin", "SYSTEMD_SECCOMP=0", "NOTIFY_SOCKET=/run/n", "LISTEN_FDS=1", "LISTEN_PID=7", "LISTEN_FDNAMES=x"}
	for _, tt := range []struct {
		name    string
		environ []string
		mutable bool
		want    []string
	}{
		{"plain pod keeps the filter", inherited, false, []string{"PATH=/bin"}},
		{"sandbox", inherited, true, []string{"PATH=/bin", "SYSTEMD_SECCOMP=0"}},
		{"sandbox, nothing inherited", nil, true, []string{"SYSTEMD_SECCOMP=0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := nspawnEnv(tt.environ, tt.mutable, ""); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
