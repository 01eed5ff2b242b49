package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCapNames(t *testing.T) {
	tests := []struct {
		hex  string
		want []string
	}{
		{"0000000000000000", nil},
		{"0000000000000001", []string{"CAP_CHOWN"}},
		{"0000000000200400", []string{"CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"}},
		{"8000000000000000", []string{"CAP_63"}},
	}
	for _, tt := range tests {
		t.Run(tt.hex, func(t *testing.T) {
			got, err := capNames(tt.hex)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("capNames(%s) = %v, want %v", tt.hex, got, tt.want)
			}
		})
	}
	if _, err := capNames("xyz"); err == nil {
		t.Error("capNames(xyz): want error")
	}
}

func TestMemLimitFiles(t *testing.T) {
	tests := []struct {
		name, cgroup string
		want         []string
	}{
		{"v2", "0::/machine.slice/pod\n", []string{
			"/sys/fs/cgroup/machine.slice/pod/memory.max", "/sys/fs/cgroup/memory.max"}},
		{"v2 namespaced", "0::/\n", []string{"/sys/fs/cgroup/memory.max"}},
		{"hybrid", "12:cpu,cpuacct:/x\n4:memory:/pod\n0::/pod\n", []string{
			"/sys/fs/cgroup/memory/pod/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
			"/sys/fs/cgroup/pod/memory.max", "/sys/fs/cgroup/memory.max"}},
		{"no memory", "3:cpu:/\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := limitFiles(tt.cgroup, "memory", "memory.limit_in_bytes", "memory.max"); !slices.Equal(got, tt.want) {
				t.Errorf("limitFiles = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCPUSharesFiles(t *testing.T) {
	got := limitFiles("3:cpuacct:/a\n2:cpu:/b\n0::/c\n", "cpu", "cpu.shares", "cpu.weight")
	want := []string{"/sys/fs/cgroup/cpu/b/cpu.shares", "/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/c/cpu.weight", "/sys/fs/cgroup/cpu.weight"}
	if !slices.Equal(got, want) {
		t.Errorf("limitFiles = %q, want %q", got, want)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PROBE_TEST", "a=b")
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("LISTEN_FDS", "")
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hi\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // line starts that must appear in stdout
		wantErr  string   // substring of stderr
	}{
		{"env by name", []string{"-print-env=PROBE_TEST", "-print-env=PROBE_UNSET"}, 0, []string{"PROBE_TEST=a=b"}, ""},
		{"env all", []string{"-print-env"}, 0, []string{"PROBE_TEST=a=b"}, ""},
		{"args", []string{"-print-args", "--", "x y", "-z"}, 0, []string{"ARGC=2", "ARG=x y", "ARG=-z"}, ""},
		{"exit", []string{"-print-cwd", "-exit=7"}, 7, nil, ""},
		{"read", []string{"-read-file=" + filepath.Join(dir, "f")}, 0, []string{"READ_FILE=hi"}, ""},
		{"read missing", []string{"-read-file=" + filepath.Join(dir, "nope")}, 1, nil, "probe: read file: open"},
		{"write", []string{"-write-file=" + filepath.Join(dir, "w"), "-content=x", "-read-file=" + filepath.Join(dir, "w")},
			0, []string{"WRITE_FILE=" + filepath.Join(dir, "w")}, ""},
		{"stat", []string{"-stat=" + filepath.Join(dir, "f")}, 0, []string{"STAT_TYPE=file", "STAT_PERM=0640", "STAT_SIZE=3"}, ""},
		{"masked null", []string{"-check-masked=/dev/null"}, 0,
			[]string{"MASKED_TYPE=chardev", "MASKED_READABLE=true", "MASKED_EMPTY=true"}, ""},
		{"masked dir", []string{"-check-masked=" + dir}, 0,
			[]string{"MASKED_TYPE=dir", "MASKED_EMPTY=false", "MASKED_WRITABLE=true"}, ""},
		{"masked missing", []string{"-check-masked=" + filepath.Join(dir, "nope")}, 0, []string{"MASKED_EXISTS=false"}, ""},
		{"caps", []string{"-print-caps", "-print-nnp"}, 0, []string{"CAPEFF=", "CAPBND_NAMES=CAP_CHOWN,", "NONEWPRIVS="}, ""},
		{"bad flag", []string{"-no-such-flag"}, 2, nil, "flag provided but not defined"},
		{"notify without socket", []string{"-notify-ready"}, 1, nil, "NOTIFY_SOCKET is not set"},
		{"listen fds without fds", []string{"-listen-fds"}, 1, nil, "no stream sockets passed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.wantCode {
				t.Errorf("exit = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains("\n"+stdout.String(), "\n"+w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestServeAndGet(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-serve=" + addr, "-http-get=http://" + addr + "/x", "-sleep=1ms"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit = %d, stderr %q", code, stderr.String())
	}
	for _, w := range []string{"SERVING=" + addr + "\n", "SERVED=GET /x FROM=127.0.0.1:", "HTTP_STATUS=200\n", "HTTP_BODY=hello from probe\n"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
		}
	}
}

func TestNotifyReady(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-notify-ready"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit = %d, stderr %q", code, stderr.String())
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "READY=1" {
		t.Errorf("notify socket got %q, want READY=1", got)
	}
}

func TestForkBomb(t *testing.T) {
	var b bytes.Buffer
	if err := forkBomb(&b, 5); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "FORK_COUNT=5\nFORK_ERR=none\n" {
		t.Errorf("output = %q", got)
	}
}

func TestTrySyscalls(t *testing.T) {
	var b bytes.Buffer
	if err := trySyscalls(&b); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"TRY_USERNS=", "TRY_KEYCTL=", "TRY_ADD_KEY=", "TRY_VSOCK=", "TRY_MOUNT="} {
		if !strings.Contains(b.String(), k) {
			t.Errorf("no %s in %q", k, b.String())
		}
	}
}
