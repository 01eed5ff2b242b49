package seccompcopy

import (
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var allow = unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}

// logged is a filter that allows everything but getpgid, which fails with
// EPERM: something to see from outside.
var logged = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_GETPGID, Jt: 0, Jf: 1},
	{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
	allow,
}

func TestMarshal(t *testing.T) {
	fs := []Filter{{Prog: []unix.SockFilter{allow}}, {Flags: unix.SECCOMP_FILTER_FLAG_LOG, Prog: logged}}
	b := Marshal(fs)
	got, err := Unmarshal(b)
	if err != nil || !reflect.DeepEqual(got, fs) {
		t.Fatalf("Unmarshal(Marshal(fs)) = %v, %v; want %v", got, err, fs)
	}
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not a filter file"},
		{"other magic", []byte("skiff-seccomp-2\n\x01\x00\x00\x00"), "not a filter file"},
		{"no filters", append(append([]byte{}, magic...), 0, 0, 0, 0), "0 filters"},
		{"too many", append(append([]byte{}, magic...), 0xff, 0xff, 0, 0), "65535 filters"},
		{"truncated", b[:len(b)-3], "unexpected EOF"},
		{"trailing", append(append([]byte{}, b...), 0), "trailing bytes"},
		{"too long", append(append([]byte{}, magic...), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0), "65535 instructions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Unmarshal(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Unmarshal: %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestReadInstall installs two filters in a child, which then execs sleep;
// reads them back from the parent and checks they are the ones installed,
// in order, and that they act.
func TestReadInstall(t *testing.T) {
	if os.Getenv("SECCOMPCOPY_CHILD") == "1" {
		runtime.LockOSThread()
		if err := Install([]Filter{{Prog: []unix.SockFilter{allow}}, {Flags: unix.SECCOMP_FILTER_FLAG_LOG, Prog: logged}}); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		syscall.Exec("/bin/sleep", []string{"sleep", "10"}, nil)
		os.Exit(4)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN) to install filters without no_new_privs and to read them")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReadInstall$")
	cmd.Env = append(os.Environ(), "SECCOMPCOPY_CHILD=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		if strings.HasSuffix(exe, "/sleep") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child did not exec sleep (exe %q)", exe)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fs, err := Read(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	want := []Filter{{Prog: []unix.SockFilter{allow}}, {Flags: unix.SECCOMP_FILTER_FLAG_LOG, Prog: logged}}
	if !reflect.DeepEqual(fs, want) {
		t.Fatalf("Read = %+v, want %+v", fs, want)
	}
	// The child still runs after the read: detached, not killed.
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("child gone after Read: %v", err)
	}
	if _, err := Read(1 << 22); err == nil {
		t.Error("Read of a missing process succeeded")
	}
}
