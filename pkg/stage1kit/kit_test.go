package stage1kit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

// The entrypoints are tested as a stage1 is run: the test binary, called
// again with envMain set, is a stage1 whose isolator is fake, and the
// test checks its exit status, stdout and stderr.
const envMain = "STAGE1KIT_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envMain) == "1" {
		os.Args[0] = os.Getenv("STAGE1KIT_TEST_ARGV0")
		os.Exit(Main(Stage1{Name: "stage1-fake", Isolator: fake{}, Entrypoints: map[string]func([]string) int{
			"extra": func(args []string) int { fmt.Println("extra", args); return 3 },
		}}, os.Args))
	}
	os.Exit(m.Run())
}

// fake is an isolator that says on stdout what it was asked; its pod ends
// at once, its apps' statuses are what the test put in the pod directory.
type fake struct{}

func (fake) Boot(log *slog.Logger, a pod.RunArgs) (Pod, []podunit.App, error) {
	fmt.Println("boot", a.UUID, a.Net)
	if a.Net == "none" {
		return nil, nil, errors.New("no network, no pod")
	}
	return endedPod{}, []podunit.App{{Name: "a"}, {Name: "b"}}, nil
}

func (fake) Enter(log *slog.Logger, a pod.EnterArgs) (int, error) {
	fmt.Println("enter", a.App, a.Cmd)
	return len(a.Cmd), nil
}

func (fake) Stop(log *slog.Logger, a pod.StopArgs) error {
	fmt.Println("stop", a.Force)
	return nil
}

func (fake) GC(log *slog.Logger, a pod.GCArgs) error {
	fmt.Println("gc", a.UUID)
	return fmt.Errorf("gc: %w: sure", pod.ErrNotRunning)
}

type endedPod struct{}

func (endedPod) Wait() error     { return nil }
func (endedPod) Poweroff() error { return nil }
func (endedPod) Kill()           {}

const uuid = "00000000-0000-4000-8000-000000000000"

// stage1 runs the fake stage1 as entrypoint ep in dir, with the lock fd
// when lock.
func stage1(t *testing.T, dir string, lock bool, ep string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), envMain+"=1", "STAGE1KIT_TEST_ARGV0=/some/where/"+ep, "NOTIFY_SOCKET=")
	c.Dir = dir
	if lock {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c.ExtraFiles = []*os.File{f}
		c.Env = append(c.Env, pod.EnvLockFD+"=3")
	}
	var out, errs bytes.Buffer
	c.Stdout, c.Stderr = &out, &errs
	err := c.Run()
	if c.ProcessState == nil {
		t.Fatalf("%s: %v", ep, err)
	}
	return c.ProcessState.ExitCode(), out.String(), errs.String()
}

// TestEntrypoints checks dispatch, argument parsing and exit statuses,
// and the conformance rule that an unknown flag is a usage error: exit
// pod.ExitFailure, one line on stderr naming the flag, the isolator not
// called.
func TestEntrypoints(t *testing.T) {
	tests := []struct {
		name       string
		ep         string
		args       []string
		lock       bool
		statuses   map[string]string // app -> status file; "failed" -> the failed app
		wantCode   int
		wantOut    string // stdout, exactly
		wantErr    string // in stderr
		wantOneErr bool   // stderr is one line
	}{
		{"run unknown flag", "run", []string{"--no-such-flag", uuid}, true, nil, pod.ExitFailure, "", "no-such-flag", true},
		{"enter unknown flag", "enter", []string{"--app=x", "--no-such-flag", uuid, "--", "true"}, false, nil, pod.ExitFailure, "", "no-such-flag", true},
		{"stop unknown flag", "stop", []string{"--no-such-flag", uuid}, false, nil, pod.ExitFailure, "", "no-such-flag", true},
		{"gc unknown flag", "gc", []string{"--no-such-flag", uuid}, false, nil, pod.ExitFailure, "", "no-such-flag", true},
		{"run no uuid", "run", nil, true, nil, pod.ExitFailure, "", "no pod uuid", true},
		{"unknown entrypoint", "frobnicate", []string{uuid}, false, nil, pod.ExitFailure, "", `called as "frobnicate"`, true},
		{"extra entrypoint", "extra", []string{"x"}, false, nil, 3, "extra [x]\n", "", false},
		{"enter", "enter", []string{"--app=web", uuid, "--", "ls", "-l"}, false, nil, 2, "enter web [ls -l]\n", "", false},
		{"stop", "stop", []string{"--force", uuid}, false, nil, 0, "stop true\n", "", false},
		{"gc fails", "gc", []string{uuid}, false, nil, pod.ExitFailure, "gc " + uuid + "\n", "pod is not running", false},
		{"run without lock fd", "run", []string{uuid}, false, nil, pod.ExitFailure, "", pod.EnvLockFD, false},
		{"run boot fails", "run", []string{"--net=none", uuid}, true, nil, pod.ExitFailure, "boot " + uuid + " none\n", "no network, no pod", false},
		{"run all succeed", "run", []string{uuid}, true, map[string]string{"a": "0", "b": "0"}, 0, "boot " + uuid + " \n", "", false},
		{"run first failed app decides", "run", []string{uuid}, true, map[string]string{"a": "0", "b": "7", "failed": "b"}, 7, "boot " + uuid + " \n", "", false},
		{"run app without status", "run", []string{uuid}, true, map[string]string{"a": "0"}, pod.ExitFailure, "boot " + uuid + " \n", "app b has no exit status", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.statuses != nil {
				status := filepath.Join(dir, pod.AppStatusDir)
				if err := os.MkdirAll(status, 0o755); err != nil {
					t.Fatal(err)
				}
				for app, s := range tt.statuses {
					p := filepath.Join(status, app)
					if app == "failed" {
						p = filepath.Join(dir, pod.Stage1Rootfs, podunit.FailedFile)
					}
					if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			code, out, errs := stage1(t, dir, tt.lock, tt.ep, tt.args...)
			if code != tt.wantCode || out != tt.wantOut || !strings.Contains(errs, tt.wantErr) ||
				(tt.wantOneErr && strings.Count(strings.TrimSpace(errs), "\n") > 0) {
				t.Errorf("%s %q: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr with %q (one line: %v)",
					tt.ep, tt.args, code, out, errs, tt.wantCode, tt.wantOut, tt.wantErr, tt.wantOneErr)
			}
		})
	}
}

// testPod is a pod the test ends; it records what the loop asked of it.
type testPod struct {
	ended       chan struct{}
	poweroffErr error

	mu        sync.Mutex
	poweroffs int
	kills     int
}

func newTestPod() *testPod { return &testPod{ended: make(chan struct{})} }

func (p *testPod) Wait() error {
	<-p.ended
	return errors.New("ended")
}

func (p *testPod) Poweroff() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.poweroffs++
	return p.poweroffErr
}

func (p *testPod) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kills++
}

func (p *testPod) counts() (poweroffs, kills int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.poweroffs, p.kills
}

// notifySocket listens where sd_notify writes (NOTIFY_SOCKET) and returns
// what it receives.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	msgs := make(chan string, 10)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return msgs
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestLoop(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name          string
		signals       int
		poweroffErr   error
		ready         bool
		wantPoweroffs int
		wantKills     int
		wantNotify    []string
		net           error // sent on the net channel when not nil
	}{
		{"ends by itself", 0, nil, false, 0, 0, nil, nil},
		{"ready", 0, nil, true, 0, 0, []string{"READY=1"}, nil},
		{"signal: clean poweroff", 1, nil, false, 1, 0, []string{"STOPPING=1"}, nil},
		{"second signal kills", 2, nil, false, 1, 1, []string{"STOPPING=1"}, nil},
		{"poweroff fails: kill", 1, errors.New("no agent"), false, 1, 1, []string{"STOPPING=1"}, nil},
		{"network failed: clean poweroff", 0, nil, false, 1, 0, []string{"STOPPING=1"}, errNetFailed},
		{"network failed, then a signal kills", 1, nil, false, 1, 1, []string{"STOPPING=1"}, errNetFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			notes := notifySocket(t)
			ready := filepath.Join(t.TempDir(), "ready")
			p := newTestPod()
			p.poweroffErr = tt.poweroffErr
			sigs := make(chan os.Signal)
			ended := make(chan error, 1)
			net := make(chan error, 1)
			go func() { ended <- loop(log, p, sigs, true, ready, net) }()
			if tt.net != nil {
				net <- tt.net
				eventually(t, "poweroff", func() bool { n, _ := p.counts(); return n == 1 })
			}
			if tt.ready {
				if err := os.WriteFile(ready, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if got := <-notes; got != "READY=1" {
					t.Errorf("notified %q, want READY=1", got)
				}
				tt.wantNotify = tt.wantNotify[1:]
			}
			for i := 0; i < tt.signals; i++ {
				sigs <- syscall.SIGTERM
				if i == 0 && tt.net == nil {
					eventually(t, "poweroff", func() bool { n, _ := p.counts(); return n == 1 })
				}
			}
			eventually(t, "kills", func() bool { _, k := p.counts(); return k == tt.wantKills })
			close(p.ended)
			if err := <-ended; err == nil || err.Error() != "ended" {
				t.Errorf("loop = %v, want Wait's error", err)
			}
			if n, k := p.counts(); n != tt.wantPoweroffs || k != tt.wantKills {
				t.Errorf("poweroffs %d, kills %d; want %d, %d", n, k, tt.wantPoweroffs, tt.wantKills)
			}
			for _, want := range tt.wantNotify {
				select {
				case got := <-notes:
					if got != want {
						t.Errorf("notified %q, want %q", got, want)
					}
				case <-time.After(5 * time.Second):
					t.Errorf("no %q notification", want)
				}
			}
			select {
			case got := <-notes:
				t.Errorf("notified %q too", got)
			case <-time.After(3 * readyPoll):
			}
		})
	}
}
