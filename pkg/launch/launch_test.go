package launch

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TestTarget checks that mount points are resolved and created inside the
// root whatever symlinks the image holds.
func TestTarget(t *testing.T) {
	rootfs := t.TempDir()
	outside := t.TempDir()
	// The image has its own copy of the host path the symlink names.
	for _, d := range []string{"etc", "var", outside} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, to := range map[string]string{
		"proc":    "/etc",                    // absolute: means rootfs/etc
		"sys":     "../../../../../" + "var", // climbs above the root: clamped
		"escape":  outside,                   // absolute path of a real host dir
		"var/run": "/run-in-root",            // dangling inside the root
	} {
		if err := os.Symlink(to, filepath.Join(rootfs, link)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)

	tests := []struct {
		path    string
		dir     bool
		want    string // path the handle must name, relative to rootfs
		wantErr bool
	}{
		{path: "/proc", dir: true, want: "etc"},
		{path: "/sys/fs/cgroup", dir: true, want: "var/fs/cgroup"},
		{path: "/escape/x", dir: true, want: filepath.Join(outside, "x")},
		{path: "/dev/pts", dir: true, want: "dev/pts"},
		{path: "/etc/hosts", dir: false, want: "etc/hosts"},
		{path: "/var/run/x", dir: true, wantErr: true}, // mkdir below a dangling symlink
		{path: "/etc/resolv.conf", dir: false, want: "etc/resolv.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			fd, err := target(root, tt.path, tt.dir)
			if tt.wantErr {
				if err == nil {
					unix.Close(fd)
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			got, _ := os.Readlink(fdPath(fd))
			if want := filepath.Join(rootfs, tt.want); got != want {
				t.Errorf("handle names %s, want %s", got, want)
			}
			var st unix.Stat_t
			unix.Fstat(fd, &st)
			if isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR; isDir != tt.dir {
				t.Errorf("is dir = %v, want %v", isDir, tt.dir)
			}
		})
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("created %v outside the root", ents)
	}
}

func TestParseOptions(t *testing.T) {
	flags, data := parseOptions([]string{"nosuid", "rbind", "ro", "mode=755", "newinstance"})
	if want := uintptr(unix.MS_NOSUID | unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY); flags != want {
		t.Errorf("flags = %#x, want %#x", flags, want)
	}
	if data != "mode=755,newinstance" {
		t.Errorf("data = %q", data)
	}
}

// TestFilter runs the assembled seccomp program in x/net/bpf's VM.
func TestFilter(t *testing.T) {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Skip(err)
	}
	eacces := uint(unix.EACCES)
	deny := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eacces}}}
	allow := &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"read", "write"}, Action: specs.ActAllow}}}
	nr := func(n string) uint32 { return uint32(info.SyscallNames[n]) }
	tests := []struct {
		name string
		sc   *specs.LinuxSeccomp
		arch uint32
		nr   uint32
		want uint32
	}{
		{"deny-list blocks", deny, uint32(info.ID), nr("mkdirat"), unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES)},
		{"deny-list allows others", deny, uint32(info.ID), nr("openat"), unix.SECCOMP_RET_ALLOW},
		{"foreign arch killed", deny, 0x40000003, nr("mkdirat"), unix.SECCOMP_RET_KILL_PROCESS},
		{"allow-list allows", allow, uint32(info.ID), nr("write"), unix.SECCOMP_RET_ALLOW},
		{"allow-list lets stage2 exec", allow, uint32(info.ID), nr("execve"), unix.SECCOMP_RET_ALLOW},
		{"allow-list kills others", allow, uint32(info.ID), nr("openat"), unix.SECCOMP_RET_KILL_PROCESS},
	}
	if info == arch.X86_64 {
		tests = append(tests, struct {
			name string
			sc   *specs.LinuxSeccomp
			arch uint32
			nr   uint32
			want uint32
		}{"x32 refused", deny, uint32(info.ID), 0x40000000 | nr("openat"), unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := Compile(tt.sc)
			if err != nil {
				t.Fatal(err)
			}
			insts := make([]bpf.Instruction, len(prog))
			for i, f := range prog {
				insts[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}.Disassemble()
			}
			vm, err := bpf.NewVM(insts)
			if err != nil {
				t.Fatal(err)
			}
			// struct seccomp_data; x/net/bpf's VM loads words big-endian
			// where the kernel loads them in host order.
			data := make([]byte, 64)
			binary.BigEndian.PutUint32(data[0:], tt.nr)
			binary.BigEndian.PutUint32(data[4:], tt.arch)
			got, err := vm.Run(data)
			if err != nil {
				t.Fatal(err)
			}
			if uint32(got) != tt.want {
				t.Errorf("action = %#x, want %#x", got, tt.want)
			}
		})
	}
	if _, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"no_such_call"}, Action: specs.ActErrno}}}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown syscall: err = %v", err)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tool"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "data"), nil, 0o644)
	env := []string{"PATH=/nonexistent:" + dir}
	if got, err := lookPath("tool", env); err != nil || got != filepath.Join(dir, "tool") {
		t.Errorf("lookPath(tool) = %q, %v", got, err)
	}
	if _, err := lookPath("data", env); !errors.Is(err, ErrNotFound) {
		t.Errorf("lookPath(data) err = %v, want ErrNotFound", err)
	}
	if got, _ := lookPath("/bin/x", nil); got != "/bin/x" {
		t.Errorf("lookPath(/bin/x) = %q", got)
	}
}

func TestActivation(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	tests := []struct {
		name     string
		set      map[string]string
		wantKeep int
		wantEnv  []string
	}{
		{"none", nil, 0, []string{"A=1"}},
		{"fds for us", map[string]string{"LISTEN_FDS": "2", "LISTEN_PID": me, "LISTEN_FDNAMES": "a:b"}, 2,
			[]string{"A=1", "LISTEN_FDS=2", "LISTEN_PID=" + me, "LISTEN_FDNAMES=a:b"}},
		{"fds for another pid", map[string]string{"LISTEN_FDS": "2", "LISTEN_PID": "1"}, 0, []string{"A=1"}},
		{"notify", map[string]string{"NOTIFY_SOCKET": "/run/n"}, 0, []string{"A=1", "NOTIFY_SOCKET=/run/n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tt.set {
				t.Setenv(k, v)
			}
			env, keep := activation([]string{"A=1"})
			if keep != tt.wantKeep || !slices.Equal(env, tt.wantEnv) {
				t.Errorf("activation = %q, %d; want %q, %d", env, keep, tt.wantEnv, tt.wantKeep)
			}
		})
	}
}

// TestSetOOMScore: raising the score always works; lowering it works where
// the process may (CAP_SYS_RESOURCE) and is clamped to the current score
// where it may not, without an error. It raises this test process's score.
func TestSetOOMScore(t *testing.T) {
	read := func() int {
		b, err := os.ReadFile(oomScoreFile)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(string(b[:len(b)-1]))
		return n
	}
	up := min(read()+1, 1000)
	if got, err := setOOMScore(up); err != nil || got != up || read() != up {
		t.Fatalf("setOOMScore(%d) = %d, %v; score now %d", up, got, err, read())
	}
	down := up - 500
	got, err := setOOMScore(down)
	if err != nil {
		t.Fatalf("setOOMScore(%d): %v, want it set or clamped", down, err)
	}
	if got != down && got != up {
		t.Errorf("setOOMScore(%d) = %d, want %d or, clamped, %d", down, got, down, up)
	}
	if read() != got {
		t.Errorf("score is %d, setOOMScore said %d", read(), got)
	}
	if _, err := setOOMScore(5000); err == nil {
		t.Errorf("setOOMScore(5000): no error for a score out of range")
	}
}

// TestMtab: /etc/mtab becomes a symlink to /proc/self/mounts where the
// image has none (also with no /etc, or /etc a symlink within the root);
// an image's own, even dangling, is kept.
func TestMtab(t *testing.T) {
	tests := []struct {
		name  string
		setup func(rootfs string) error
		want  string // readlink of rootfs/etc/mtab ("" for a regular file)
		where string // where mtab must be, relative to rootfs
	}{
		{"no etc", func(string) error { return nil }, "../proc/self/mounts", "etc/mtab"},
		{"etc without mtab", func(r string) error { return os.Mkdir(filepath.Join(r, "etc"), 0o755) }, "../proc/self/mounts", "etc/mtab"},
		{"etc a symlink", func(r string) error {
			os.Mkdir(filepath.Join(r, "real"), 0o755)
			return os.Symlink("/real", filepath.Join(r, "etc"))
		}, "../proc/self/mounts", "real/mtab"},
		{"image's own file", func(r string) error {
			os.Mkdir(filepath.Join(r, "etc"), 0o755)
			return os.WriteFile(filepath.Join(r, "etc/mtab"), []byte("x"), 0o644)
		}, "", "etc/mtab"},
		{"image's dangling symlink", func(r string) error {
			os.Mkdir(filepath.Join(r, "etc"), 0o755)
			return os.Symlink("/nowhere", filepath.Join(r, "etc/mtab"))
		}, "/nowhere", "etc/mtab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rootfs := t.TempDir()
			if err := tt.setup(rootfs); err != nil {
				t.Fatal(err)
			}
			root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(root)
			if err := mtab(root); err != nil {
				t.Fatal(err)
			}
			got, _ := os.Readlink(filepath.Join(rootfs, tt.where))
			if got != tt.want {
				t.Errorf("%s -> %q, want %q", tt.where, got, tt.want)
			}
		})
	}
}
