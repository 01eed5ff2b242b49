package launch

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// filtersChildEnv makes the test binary a process that loads two filters
// on every thread, says "ready" and waits to be read.
const filtersChildEnv = "LAUNCH_TEST_FILTERS_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(filtersChildEnv) == "1" {
		for _, f := range testFilters() {
			prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
			if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog))); e != 0 {
				os.Stdout.WriteString("load: " + e.Error() + "\n")
				os.Exit(1)
			}
		}
		os.Stdout.WriteString("ready\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testFilters() []Filter {
	var out []Filter
	for _, call := range []string{"mkdirat", "keyctl"} {
		f, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{call}, Action: specs.ActErrno}}})
		if err != nil {
			panic(err)
		}
		out = append(out, f)
	}
	return out
}

// TestFilters reads a process's filters back, oldest first, and none from
// a process that has none.
func TestFilters(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (ptrace, PTRACE_SECCOMP_GET_FILTER): run as root")
	}
	self, err := Filters(os.Getpid())
	if err != nil || len(self) != 0 {
		t.Fatalf("Filters(self) = %d filters, %v; want none", len(self), err)
	}
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), filtersChildEnv+"=1")
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "ready\n" {
		t.Fatalf("child: %q", l)
	}
	got, err := Filters(c.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := testFilters(); !reflect.DeepEqual(got, want) {
		t.Errorf("Filters = %d filters %v, want %d", len(got), got, len(want))
	}
	// Concurrent readers (enters) take turns.
	errs := make(chan error)
	for range 8 {
		go func() {
			got, err := Filters(c.Process.Pid)
			if err == nil && len(got) != 2 {
				err = fmt.Errorf("%d filters", len(got))
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Filters: %v", err)
		}
	}
	// The child goes on after the ptrace stop.
	if err := c.Process.Signal(unix.Signal(0)); err != nil {
		t.Errorf("child after Filters: %v", err)
	}
}
