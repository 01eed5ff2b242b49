package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/moby/sys/capability"
	"github.com/moby/sys/mountinfo"
)

type options struct {
	env                                            envFlag
	user, caps, nnp, seccomp, memlimit, cwd        bool
	cpushares                                      bool
	hostname, pid, args, mounts, listenFDs, notify bool
	readFile, writeFile, content, masked, stat     string
	httpGet, serve                                 string
	sleep                                          time.Duration
	exit, forkBomb                                 int
	trySyscalls                                    bool
}

// envFlag is -print-env: alone it means every variable, with a value one name.
type envFlag struct {
	set   bool
	names []string
}

func (e *envFlag) String() string   { return strings.Join(e.names, ",") }
func (e *envFlag) IsBoolFlag() bool { return true }

func (e *envFlag) Set(v string) error {
	e.set = true
	if v != "true" {
		e.names = append(e.names, v)
	}
	return nil
}

// syncWriter lets HTTP handlers report while the main flow also writes.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	f := flag.NewFlagSet("probe", flag.ContinueOnError)
	f.SetOutput(stderr)
	f.Var(&o.env, "print-env", "print all environment variables, or `NAME` only")
	f.BoolVar(&o.user, "print-user", false, "print uid, gid, groups and their names")
	f.BoolVar(&o.caps, "print-caps", false, "print capability sets")
	f.BoolVar(&o.nnp, "print-nnp", false, "print NoNewPrivs")
	f.BoolVar(&o.seccomp, "print-seccomp", false, "print the seccomp mode")
	f.BoolVar(&o.memlimit, "print-memlimit", false, "print the cgroup memory limit")
	f.BoolVar(&o.cpushares, "print-cpushares", false, "print the cgroup CPU weight (v1 cpu.shares, else v2 cpu.weight)")
	f.BoolVar(&o.cwd, "print-cwd", false, "print the working directory")
	f.BoolVar(&o.hostname, "print-hostname", false, "print the hostname")
	f.BoolVar(&o.pid, "print-pid", false, "print pid and parent pid")
	f.BoolVar(&o.args, "print-args", false, "print the arguments after --")
	f.StringVar(&o.readFile, "read-file", "", "print the content of `PATH`")
	f.StringVar(&o.writeFile, "write-file", "", "write -content to `PATH`")
	f.StringVar(&o.content, "content", "", "content for -write-file")
	f.StringVar(&o.masked, "check-masked", "", "report whether `PATH` is readable, empty, writable")
	f.StringVar(&o.stat, "stat", "", "print type, mode and owner of `PATH`")
	f.BoolVar(&o.mounts, "print-mounts", false, "print the mount table")
	f.BoolVar(&o.listenFDs, "listen-fds", false, "serve HTTP on sockets passed by LISTEN_FDS")
	f.StringVar(&o.serve, "serve", "", "serve HTTP on TCP `ADDR`")
	f.BoolVar(&o.notify, "notify-ready", false, "send READY=1 to NOTIFY_SOCKET")
	f.StringVar(&o.httpGet, "http-get", "", "GET `URL` and print status and body")
	f.DurationVar(&o.sleep, "sleep", 0, "wait before exiting")
	f.IntVar(&o.exit, "exit", 0, "exit status on success")
	f.BoolVar(&o.trySyscalls, "try-syscalls", false, "try the calls a default seccomp profile refuses")
	f.IntVar(&o.forkBomb, "fork-bomb", 0, "fork up to `N` waiting children, report how many, kill them")
	if err := f.Parse(args); err != nil {
		return 2
	}
	if err := probe(&o, f.Args(), &syncWriter{w: stdout}); err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 1
	}
	return o.exit
}

func probe(o *options, args []string, w io.Writer) error {
	// Registered first so a stop request during setup is reported, not fatal.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	steps := []struct {
		on bool
		do func() error
	}{
		{o.env.set, func() error { return printEnv(w, o.env.names) }},
		{o.user, func() error { return printUser(w) }},
		{o.caps, func() error { return printStatus(w, "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb") }},
		{o.nnp, func() error { return printStatus(w, "NoNewPrivs") }},
		{o.seccomp, func() error { return printSeccomp(w) }},
		{o.memlimit, func() error { return printLimit(w, "MEMLIMIT", "memory", "memory.limit_in_bytes", "memory.max") }},
		{o.cpushares, func() error { return printLimit(w, "CPUSHARES", "cpu", "cpu.shares", "cpu.weight") }},
		{o.cwd, func() error { return printf(w, "CWD", os.Getwd) }},
		{o.hostname, func() error { return printf(w, "HOSTNAME", os.Hostname) }},
		{o.pid, func() error { _, err := fmt.Fprintf(w, "PID=%d\nPPID=%d\n", os.Getpid(), os.Getppid()); return err }},
		{o.args, func() error { return printArgs(w, args) }},
		{o.writeFile != "", func() error { return writeFile(w, o.writeFile, o.content) }},
		{o.readFile != "", func() error { return readFile(w, o.readFile) }},
		{o.masked != "", func() error { return checkMasked(w, o.masked) }},
		{o.stat != "", func() error { return statPath(w, o.stat) }},
		{o.mounts, func() error { return printMounts(w) }},
		{o.listenFDs, func() error { return serveListenFDs(w) }},
		{o.serve != "", func() error { return serveAddr(w, o.serve) }},
		{o.notify, func() error { return notifyReady(w) }},
		{o.httpGet != "", func() error { return httpGet(w, o.httpGet) }},
		{o.trySyscalls, func() error { return trySyscalls(w) }},
		{o.forkBomb > 0, func() error { return forkBomb(w, o.forkBomb) }},
	}
	for _, s := range steps {
		if !s.on {
			continue
		}
		if err := s.do(); err != nil {
			return err
		}
	}

	if o.sleep == 0 && !o.listenFDs && o.serve == "" {
		return nil
	}
	var timeout <-chan time.Time // nil, so serving waits for a signal only
	if o.sleep > 0 {
		timeout = time.After(o.sleep)
	}
	select {
	case <-timeout:
	case sig := <-sigs:
		fmt.Fprintf(w, "SIGNAL=%v\n", sig)
	}
	return nil
}

func printf(w io.Writer, key string, get func() (string, error)) error {
	v, err := get()
	if err != nil {
		return fmt.Errorf("print %s: %w", strings.ToLower(key), err)
	}
	_, err = fmt.Fprintf(w, "%s=%s\n", key, v)
	return err
}

func printEnv(w io.Writer, names []string) error {
	if len(names) == 0 {
		env := os.Environ()
		slices.Sort(env)
		for _, e := range env {
			if _, err := fmt.Fprintln(w, e); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok {
			if _, err := fmt.Fprintf(w, "%s=%s\n", n, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func printUser(w io.Writer) error {
	groups, err := os.Getgroups()
	if err != nil {
		return fmt.Errorf("print user: %w", err)
	}
	gs := make([]string, len(groups))
	for i, g := range groups {
		gs[i] = strconv.Itoa(g)
	}
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	// A uid without a passwd entry is a valid answer, so names may be empty.
	var uname, gname string
	if u, err := user.LookupId(uid); err == nil {
		uname = u.Username
	}
	if g, err := user.LookupGroupId(gid); err == nil {
		gname = g.Name
	}
	_, err = fmt.Fprintf(w, "UID=%s\nGID=%s\nGROUPS=%s\nUSERNAME=%s\nGROUPNAME=%s\nEUID=%d\n",
		uid, gid, strings.Join(gs, ","), uname, gname, os.Geteuid())
	return err
}

// printStatus prints fields of /proc/self/status; capability masks also by name.
func printStatus(w io.Writer, fields ...string) error {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	status := parseStatus(string(data))
	for _, f := range fields {
		v, ok := status[f]
		if !ok {
			return fmt.Errorf("read status: no field %s", f)
		}
		key := strings.ToUpper(f)
		fmt.Fprintf(w, "%s=%s\n", key, v)
		if strings.HasPrefix(f, "Cap") {
			names, err := capNames(v)
			if err != nil {
				return fmt.Errorf("read status %s: %w", f, err)
			}
			fmt.Fprintf(w, "%s_NAMES=%s\n", key, strings.Join(names, ","))
		}
	}
	return nil
}

// printSeccomp prints the mode and, where the kernel shows it, the number
// of filters.
func printSeccomp(w io.Writer) error {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	st := parseStatus(string(data))
	fmt.Fprintf(w, "SECCOMP=%s\n", st["Seccomp"])
	if n, ok := st["Seccomp_filters"]; ok {
		fmt.Fprintf(w, "SECCOMP_FILTERS=%s\n", n)
	}
	return nil
}

func parseStatus(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// capNames names the bits of a hex mask; bits newer than our table stay numeric.
func capNames(hex string) ([]string, error) {
	mask, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return nil, fmt.Errorf("parse capability mask %q: %w", hex, err)
	}
	known := capability.ListKnown()
	var names []string
	for bit := range 64 {
		if mask&(1<<bit) == 0 {
			continue
		}
		if c := capability.Cap(bit); slices.Contains(known, c) {
			names = append(names, "CAP_"+strings.ToUpper(c.String()))
		} else {
			names = append(names, fmt.Sprintf("CAP_%d", bit))
		}
	}
	return names, nil
}

// printLimit prints the value of a cgroup file of controller ctrl as
// NAME= and the file as NAME_FILE=: v1File in the v1 hierarchy, else
// v2File in the unified one.
func printLimit(w io.Writer, name, ctrl, v1File, v2File string) error {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return fmt.Errorf("print %s: %w", ctrl, err)
	}
	for _, p := range limitFiles(string(data), ctrl, v1File, v2File) {
		v, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		_, err = fmt.Fprintf(w, "%s=%s\n%s_FILE=%s\n", name, strings.TrimSpace(string(v)), name, p)
		return err
	}
	return fmt.Errorf("print %s: no %s cgroup file for %q", name, ctrl, strings.TrimSpace(string(data)))
}

// limitFiles lists where a controller's file may be, most specific first:
// the cgroup's own path (no cgroup namespace) before the mount root
// (namespaced), v1 before v2 because on hybrid hosts the controllers are
// on v1.
func limitFiles(procCgroup, ctrl, v1File, v2File string) []string {
	var v1, v2 []string
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = append(v2, filepath.Join("/sys/fs/cgroup", parts[2], v2File), filepath.Join("/sys/fs/cgroup", v2File))
		case slices.Contains(strings.Split(parts[1], ","), ctrl):
			v1 = append(v1, filepath.Join("/sys/fs/cgroup", ctrl, parts[2], v1File),
				filepath.Join("/sys/fs/cgroup", ctrl, v1File))
		}
	}
	return slices.Compact(append(v1, v2...))
}

func printArgs(w io.Writer, args []string) error {
	fmt.Fprintf(w, "ARGC=%d\n", len(args))
	for _, a := range args {
		if _, err := fmt.Fprintf(w, "ARG=%s\n", a); err != nil {
			return err
		}
	}
	return nil
}

func readFile(w io.Writer, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read file: %w", err)
	}
	_, err = fmt.Fprintf(w, "READ_FILE=%s\n", strings.TrimSuffix(string(data), "\n"))
	return err
}

func writeFile(w io.Writer, path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	_, err := fmt.Fprintf(w, "WRITE_FILE=%s\n", path)
	return err
}

// checkMasked reports what an app can do with a path that the runtime may have
// masked (/dev/null bind or empty read-only tmpfs) without changing it.
func checkMasked(w io.Writer, path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, err = fmt.Fprintln(w, "MASKED_EXISTS=false")
		return err
	}
	if err != nil {
		return fmt.Errorf("check masked %q: %w", path, err)
	}
	var readable, empty, writable bool
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		readable, empty = err == nil, err == nil && len(entries) == 0
		if f, err := os.CreateTemp(path, ".probe-"); err == nil {
			writable = true
			f.Close()
			os.Remove(f.Name())
		}
	} else {
		if f, err := os.Open(path); err == nil {
			n, err := f.Read(make([]byte, 1)) // one byte: /proc/kcore must not be slurped
			readable, empty = err == nil || err == io.EOF, n == 0
			f.Close()
		}
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			writable = true
			f.Close()
		}
	}
	_, err = fmt.Fprintf(w, "MASKED_EXISTS=true\nMASKED_TYPE=%s\nMASKED_READABLE=%t\nMASKED_EMPTY=%t\nMASKED_WRITABLE=%t\n",
		fileType(fi.Mode()), readable, empty, writable)
	return err
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m.IsRegular():
		return "file"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeCharDevice != 0:
		return "chardev"
	case m&fs.ModeDevice != 0:
		return "blockdev"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "unknown"
}

func statPath(w io.Writer, path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	fmt.Fprintf(w, "STAT_TYPE=%s\nSTAT_MODE=%s\nSTAT_PERM=%04o\nSTAT_UID=%d\nSTAT_GID=%d\nSTAT_SIZE=%d\n",
		fileType(fi.Mode()), fi.Mode(), st.Mode&0o7777, st.Uid, st.Gid, fi.Size())
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(path)
		if err != nil {
			return fmt.Errorf("stat: %w", err)
		}
		fmt.Fprintf(w, "STAT_LINK=%s\n", target)
	}
	return nil
}

func printMounts(w io.Writer) error {
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return fmt.Errorf("print mounts: %w", err)
	}
	bw := bufio.NewWriter(w)
	for _, m := range mounts {
		fmt.Fprintf(bw, "MOUNT=%s %s %s %s\n", m.Mountpoint, m.FSType, m.Source, m.Options)
	}
	return bw.Flush()
}

func handler(w io.Writer) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "SERVED=%s %s FROM=%s\n", r.Method, r.URL.Path, r.RemoteAddr)
		io.WriteString(rw, "hello from probe\n")
	})
}

func serveListenFDs(w io.Writer) error {
	lns, err := activation.Listeners()
	if err != nil {
		return fmt.Errorf("listen fds: %w", err)
	}
	lns = slices.DeleteFunc(lns, func(l net.Listener) bool { return l == nil })
	if len(lns) == 0 {
		return errors.New("listen fds: no stream sockets passed (LISTEN_FDS, LISTEN_PID)")
	}
	fmt.Fprintf(w, "LISTENERS=%d\n", len(lns))
	for _, l := range lns {
		go http.Serve(l, handler(w))
	}
	return nil
}

func serveAddr(w io.Writer, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintf(w, "SERVING=%s\n", l.Addr())
	go http.Serve(l, handler(w))
	return nil
}

func notifyReady(w io.Writer) error {
	sent, err := daemon.SdNotify(false, daemon.SdNotifyReady)
	if err != nil {
		return fmt.Errorf("notify ready: %w", err)
	}
	if !sent {
		return errors.New("notify ready: NOTIFY_SOCKET is not set")
	}
	_, err = fmt.Fprintln(w, "NOTIFY_READY=1")
	return err
}

func httpGet(w io.Writer, url string) error {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("http get: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("http get %s: %w", url, err)
	}
	_, err = fmt.Fprintf(w, "HTTP_STATUS=%d\nHTTP_BODY=%s\n", resp.StatusCode, strings.TrimSuffix(string(body), "\n"))
	return err
}
