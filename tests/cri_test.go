//go:build e2e

package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// crictlPath is where the suite keeps crictl v1.37.0, built once from the
// module proxy (the critest harness uses the same cache).
const crictlPath = "/var/cache/skiff-test/bin/crictl"

var crictlOnce struct {
	sync.Once
	err error
}

// crictl returns crictl's path, installing it on first use.
func crictl(t *testing.T) string {
	t.Helper()
	crictlOnce.Do(func() {
		if _, err := os.Stat(crictlPath); err == nil {
			return
		}
		c := exec.Command("go", "install", "sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0")
		c.Env = append(os.Environ(), "GOBIN="+filepath.Dir(crictlPath), "CGO_ENABLED=0", "PATH="+os.Getenv("PATH")+":/usr/local/go/bin")
		if out, err := c.CombinedOutput(); err != nil {
			crictlOnce.err = fmt.Errorf("go install crictl: %v\n%s", err, out)
		}
	})
	if crictlOnce.err != nil {
		t.Fatal(crictlOnce.err)
	}
	return crictlPath
}

// criServer is one `skiff cri` on a temporary socket over env e.
type criServer struct {
	t    *testing.T
	e    *env
	sock string
	cmd  *exec.Cmd
	out  *bytes.Buffer
}

func startCRI(t *testing.T, e *env, sock string) *criServer {
	t.Helper()
	c, out := e.start("--insecure-options=image,http", "cri", "--listen", sock)
	waitFor(t, "skiff cri to listen on "+sock, 30*time.Second, func() bool {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			conn.Close()
		}
		if c.ProcessState != nil {
			t.Fatalf("skiff cri ended: %s", out)
		}
		return err == nil
	})
	return &criServer{t: t, e: e, sock: sock, cmd: c, out: out}
}

// crictl runs crictl against the server; it returns stdout, stderr and
// whether it succeeded.
func (s *criServer) crictl(args ...string) (string, string, bool) {
	s.t.Helper()
	full := append([]string{"--runtime-endpoint=unix://" + s.sock, "--image-endpoint=unix://" + s.sock, "--timeout=3m"}, args...)
	c := exec.Command(crictl(s.t), full...)
	c.Env = append(os.Environ(), "CRI_CONFIG_FILE=/dev/null")
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	return strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()), err == nil
}

func (s *criServer) must(args ...string) string {
	s.t.Helper()
	out, errs, ok := s.crictl(args...)
	if !ok {
		s.t.Fatalf("crictl %s: %s\n%s\nserver log:\n%s", strings.Join(args, " "), errs, out, s.out)
	}
	return out
}

// fails runs a crictl command that must fail with gRPC code.
func (s *criServer) fails(code string, args ...string) string {
	s.t.Helper()
	out, errs, ok := s.crictl(args...)
	if ok || !strings.Contains(errs, "code = "+code) {
		s.t.Errorf("crictl %s: ok=%t, want code %s:\n%s\n%s", strings.Join(args, " "), ok, code, out, errs)
	}
	return errs
}

// client is a CRI runtime client on the server's socket, as critest's.
func (s *criServer) client() runtimeapi.RuntimeServiceClient {
	s.t.Helper()
	conn, err := grpc.NewClient("unix://"+s.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn)
}

// kill kills the server with SIGKILL, as a crash would.
func (s *criServer) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

// statValue reads a CRI stats value as crictl prints it ({"value": "N"}).
func statValue(v any) uint64 {
	m, _ := v.(map[string]any)
	var n uint64
	fmt.Sscan(fmt.Sprint(m["value"]), &n)
	return n
}

// regexpCRILine is a full line of the CRI log format.
var regexpCRILine = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) stdout F hello from web$`)

// busyboxOCI pushes busybox (bin/images/busybox.aci's rootfs as one
// layer) to the test registry and returns its name, without transport.
func busyboxOCI(t *testing.T) string {
	t.Helper()
	addr, _, _ := registry(t)
	f, err := os.Open(image(t, "busybox.aci"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tr, tw := tar.NewReader(zr), tar.NewWriter(&layer)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name, ok := strings.CutPrefix(h.Name, "rootfs/")
		if !ok || name == "" {
			continue
		}
		h.Name = name
		if h.Typeflag == tar.TypeLink {
			h.Linkname = strings.TrimPrefix(h.Linkname, "rootfs/")
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.Close()
	dir := filepath.Join(t.TempDir(), "layout")
	ociLayout(t, dir, "1", [][]byte{layer.Bytes()}, map[string]any{
		"Cmd": []string{"/bin/sh"},
		"Env": []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
	})
	skopeo(t, "oci:"+dir+":1", "docker://"+addr+"/skiff/cri-busybox:1")
	return addr + "/skiff/cri-busybox:1"
}

// writeJSON writes v as JSON to a new file in dir and returns its path.
func writeJSONFile(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func podConfig(name, logDir string, hostPort int) map[string]any {
	c := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "default", "uid": name + "-uid", "attempt": 0},
		"log_directory": logDir,
		"labels":        map[string]string{"test": name},
	}
	if hostPort != 0 {
		c["port_mappings"] = []map[string]any{{"host_port": hostPort, "container_port": 8080, "protocol": 0}}
	}
	return c
}

// TestCRINS drives `skiff cri` with crictl on stage1-ns: a sandbox with a
// published host port, a container from an OCI image in a registry, its
// log, exec, then a SIGKILLed server and a new one that finds and stops
// everything; and the bad inputs with their gRPC codes.
func TestCRINS(t *testing.T) {
	img := busyboxOCI(t)
	e := newEnv(t)
	base := t.TempDir()
	sock := filepath.Join(base, "cri.sock")
	srv := startCRI(t, e, sock)

	// Images: pulled by the name the kubelet would use; listed and
	// inspected by the config digest.
	pulled := srv.must("pull", img)
	if !strings.Contains(pulled, "sha256:") {
		t.Fatalf("pull: %q, want an image ID sha256:...", pulled)
	}
	imgID := pulled[strings.Index(pulled, "sha256:"):]
	if out := srv.must("images", "-q", "--no-trunc"); !strings.Contains(out, imgID) {
		t.Errorf("images -q: %q, want %s", out, imgID)
	}

	logDir := filepath.Join(base, "logs")
	hostPort := freePort(t)
	webPod := podConfig("web", logDir, hostPort)
	// Namespaced sysctls: one of the pod's IPC namespace, one of its network.
	webPod["linux"] = map[string]any{"sysctls": map[string]string{"kernel.shm_rmid_forced": "1", "net.ipv4.tcp_keepalive_time": "321"}}
	podJSON := writeJSONFile(t, base, "pod.json", webPod)
	sb := srv.must("runp", podJSON)
	if out := srv.must("pods", "-q", "--no-trunc"); !strings.Contains(out, sb) {
		t.Fatalf("pods: %q, want %s", out, sb)
	}
	if out, _, _ := e.run("list", "--no-legend"); !strings.Contains(out, sb[:8]) {
		t.Errorf("skiff list does not show the sandbox %s:\n%s", sb, out)
	}

	hostDir, hostFile := filepath.Join(base, "data"), filepath.Join(base, "greeting")
	os.Mkdir(hostDir, 0o755)
	os.WriteFile(hostFile, []byte("hi from the host\n"), 0o644)
	ctrJSON := writeJSONFile(t, base, "ctr.json", map[string]any{
		"metadata": map[string]any{"name": "web"},
		"image":    map[string]any{"image": img},
		"command":  []string{"/bin/sh", "-c", "mkdir -p /www && echo served > /www/index.html && echo hello from web && echo oops on stderr >&2 && exec httpd -f -p 8080 -h /www"},
		"log_path": "web/0.log",
		"mounts": []map[string]any{
			{"container_path": "/data", "host_path": hostDir},
			{"container_path": "/etc/greeting", "host_path": hostFile, "readonly": true},
		},
	})
	ctr := srv.must("create", sb, ctrJSON, podJSON)
	if out := srv.must("ps", "-a", "-q", "--no-trunc"); !strings.Contains(out, ctr) {
		t.Fatalf("ps -a: %q, want %s", out, ctr)
	}
	srv.must("start", ctr)
	if out := srv.must("exec", "-s", ctr, "cat", "/proc/sys/kernel/shm_rmid_forced", "/proc/sys/net/ipv4/tcp_keepalive_time"); out != "1\n321" {
		t.Errorf("sysctls in the container: %q, want 1 and 321", out)
	}
	if out := srv.must("exec", "-s", ctr, "echo", "exec works"); out != "exec works" {
		t.Errorf("exec -s: %q", out)
	}
	if out := srv.must("exec", ctr, "cat", "/www/index.html"); out != "served" {
		t.Errorf("exec: %q", out)
	}
	// A sync exec past its timeout ends with DeadlineExceeded, at once.
	start := time.Now()
	srv.fails("DeadlineExceeded", "exec", "-s", "--timeout=1", ctr, "sleep", "60")
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("exec -s --timeout=1 took %s", d)
	}
	// ... and the command is gone once it answers: critest's check, a
	// pgrep right after, through the CRI client as critest calls it.
	cl := srv.client()
	if _, err := cl.ExecSync(context.Background(), &runtimeapi.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"sleep", "4321"}, Timeout: 1}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("ExecSync past its timeout: %v, want DeadlineExceeded", err)
	}
	if r, err := cl.ExecSync(context.Background(), &runtimeapi.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"sh", "-c", "pgrep sleep || true"}, Timeout: 30}); err != nil || len(bytes.TrimSpace(r.Stdout)) != 0 {
		t.Errorf("the timed-out command is still in the container: %v, pgrep: %q", err, r.GetStdout())
	}
	// Host mounts: listed in the status (critest checks that), a
	// directory written through, a file read-only.
	if out := srv.must("inspect", ctr); !strings.Contains(out, `"containerPath": "/etc/greeting"`) {
		t.Errorf("inspect: the mounts are not in the status:\n%s", out)
	}
	if out := srv.must("exec", "-s", ctr, "cat", "/etc/greeting"); out != "hi from the host" {
		t.Errorf("file mount: %q", out)
	}
	srv.must("exec", "-s", ctr, "sh", "-c", "echo written > /data/out")
	if b, err := os.ReadFile(filepath.Join(hostDir, "out")); err != nil || string(b) != "written\n" {
		t.Errorf("directory mount: host sees %q, %v", b, err)
	}
	if out, errs, ok := srv.crictl("exec", "-s", ctr, "sh", "-c", "echo x > /etc/greeting"); ok {
		t.Errorf("read-only file mount was written: %s %s", out, errs)
	}
	// Stats: the app unit's CPU time and memory, the writable layer (the
	// app's overlay upper dir, which holds /www/index.html); the sandbox's
	// stats list the container.
	var cs struct {
		Stats []map[string]map[string]any `json:"stats"`
	}
	if err := json.Unmarshal([]byte(srv.must("stats", "-o", "json", ctr)), &cs); err != nil || len(cs.Stats) != 1 {
		t.Fatalf("stats: %v %+v", err, cs)
	}
	for _, f := range []struct{ group, value string }{{"cpu", "usageCoreNanoSeconds"}, {"memory", "workingSetBytes"}, {"writableLayer", "usedBytes"}} {
		if v := statValue(cs.Stats[0][f.group][f.value]); v == 0 {
			t.Errorf("stats %s.%s = 0, want some: %+v", f.group, f.value, cs.Stats[0])
		}
	}
	if out := srv.must("statsp", "-o", "json", sb); !strings.Contains(out, ctr) || !strings.Contains(out, "usageCoreNanoSeconds") {
		t.Errorf("statsp: want the container %s and the pod's CPU:\n%s", ctr, out)
	}
	// pid: POD (crictl's default) shares the pod's PID namespace, whose
	// PID 1 is the pod's systemd; pid: CONTAINER (the kubelet's default)
	// gives the container its own, where PID 1 is the container's process.
	if out := srv.must("exec", "-s", ctr, "cat", "/proc/1/cmdline"); strings.Contains(out, "httpd") || out == "" {
		t.Errorf("pid POD: /proc/1/cmdline %q, want the pod's init", out)
	}
	ownJSON := writeJSONFile(t, base, "own.json", map[string]any{
		"metadata": map[string]any{"name": "own-pid"},
		"image":    map[string]any{"image": img},
		"command":  []string{"sleep", "1000"},
		"linux": map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"pid": 1}},
			"resources": map[string]any{"oom_score_adj": 300}},
		"log_path": "own/0.log",
	})
	own := srv.must("create", sb, ownJSON, podJSON)
	srv.must("start", own)
	if out := srv.must("exec", "-s", own, "cat", "/proc/1/cmdline"); out != "sleep\x001000\x00" && strings.ReplaceAll(out, "\x00", " ") != "sleep 1000 " {
		t.Errorf("pid CONTAINER: /proc/1/cmdline %q, want the container's sleep 1000", out)
	}
	// The container's OOM score: raised as asked.
	if out := srv.must("exec", "-s", own, "cat", "/proc/1/oom_score_adj"); out != "300" {
		t.Errorf("oom_score_adj 300: the container has %q", out)
	}
	srv.must("stop", own)
	srv.must("rm", own)
	// A capability the pod's defaults lack (CAP_NET_ADMIN, bit 12) added
	// to a container of a running sandbox, the others dropped (ALL): the
	// container holds it and nothing else.
	capJSON := writeJSONFile(t, base, "cap.json", map[string]any{
		"metadata": map[string]any{"name": "netadmin"},
		"image":    map[string]any{"image": img},
		"command":  []string{"sleep", "1000"},
		"linux": map[string]any{"security_context": map[string]any{"capabilities": map[string]any{"drop_capabilities": []string{"ALL"}, "add_capabilities": []string{"NET_ADMIN"}},
			"supplemental_groups": []int{1234}},
			"resources": map[string]any{"oom_score_adj": -900}},
		"log_path": "cap/0.log",
	})
	capCtr := srv.must("create", sb, capJSON, podJSON)
	srv.must("start", capCtr)
	var capEff uint64
	if out := srv.must("exec", "-s", capCtr, "grep", "CapEff", "/proc/self/status"); func() bool {
		_, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(out, "CapEff:")), "%x", &capEff)
		return err != nil
	}() || capEff != 1<<12 {
		t.Errorf("drop ALL, add NET_ADMIN: %q, want only bit 12 set", out)
	}
	if out := srv.must("exec", "-s", capCtr, "id", "-G"); !slices.Contains(strings.Fields(out), "1234") {
		t.Errorf("supplemental group 1234: id -G %q", out)
	}
	// A lower OOM score than the server's is clamped to it where the
	// host withholds CAP_SYS_RESOURCE (the test machines).
	wantOOM := "-900"
	if !holdsCap(t, 24) { // CAP_SYS_RESOURCE
		b, _ := os.ReadFile("/proc/self/oom_score_adj")
		if cur, _ := strconv.Atoi(strings.TrimSpace(string(b))); cur > -900 {
			wantOOM = strconv.Itoa(cur)
		}
	}
	if out := srv.must("exec", "-s", capCtr, "sh", "-c", "cat /proc/$(pidof sleep)/oom_score_adj"); out != wantOOM {
		t.Errorf("oom_score_adj -900: the container has %q, want %s", out, wantOOM)
	}
	srv.must("stop", capCtr)
	srv.must("rm", capCtr)
	// A read-only mount is read-only at its top only (as runc's): a
	// tmpfs mounted below the host path stays writable; and the host
	// can remove the host path while the container runs (critest's
	// cleanup: the copy is in the pod's mount namespace, not the host's).
	roDir := filepath.Join(base, "ro")
	os.MkdirAll(filepath.Join(roDir, "tmpfs"), 0o755)
	if err := unix.Mount("none", filepath.Join(roDir, "tmpfs"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(roDir, "tmpfs"), unix.MNT_DETACH) })
	roJSON := writeJSONFile(t, base, "ro.json", map[string]any{
		"metadata": map[string]any{"name": "ro"},
		"image":    map[string]any{"image": img},
		"command":  []string{"sleep", "1000"},
		"mounts":   []map[string]any{{"container_path": "/mnt", "host_path": roDir, "readonly": true}},
		"log_path": "ro/0.log",
	})
	ro := srv.must("create", sb, roJSON, podJSON)
	srv.must("start", ro)
	srv.must("exec", "-s", ro, "touch", "/mnt/tmpfs/file")
	if out, errs, ok := srv.crictl("exec", "-s", ro, "touch", "/mnt/file"); ok {
		t.Errorf("the read-only mount's top was written: %s %s", out, errs)
	}
	if err := unix.Unmount(filepath.Join(roDir, "tmpfs"), unix.MNT_DETACH); err != nil {
		t.Error(err)
	}
	if err := os.RemoveAll(roDir); err != nil {
		t.Errorf("the host path of a running container's mount cannot be removed: %v", err)
	}
	podNS := podMountNSPid(t, filepath.Join(e.dir, "pods", "run", sb))
	roMnt := "/opt/stage2/ro-" + ro[:8] + "/rootfs/mnt "
	if mi := readFile(t, "/proc/"+podNS+"/mountinfo"); !strings.Contains(mi, roMnt) {
		t.Errorf("the container's mount is not in the pod's mount table:\n%s", mi)
	}
	if mi := readFile(t, "/proc/self/mountinfo"); strings.Contains(mi, roMnt) {
		t.Errorf("the container's mount is on the host:\n%s", mi)
	}
	srv.must("stop", ro)
	srv.must("rm", ro)
	// ... and the copy goes with the container, in the pod too.
	if mi := readFile(t, "/proc/"+podNS+"/mountinfo"); strings.Contains(mi, "/opt/stage2/ro-") {
		t.Errorf("the removed container's mounts are left in the pod:\n%s", mi)
	}
	// A memory limit on an added app (on this hybrid host: a v1 memory
	// cgroup of its own): past it, the kernel kills it; exit 137, reason
	// OOMKilled (critest's Container OOM spec).
	oomJSON := writeJSONFile(t, base, "oom.json", map[string]any{
		"metadata": map[string]any{"name": "oom"},
		"image":    map[string]any{"image": img},
		"command":  []string{"sh", "-c", "dd if=/dev/zero of=/dev/null bs=20M"},
		"linux":    map[string]any{"resources": map[string]any{"memory_limit_in_bytes": 15 << 20, "memory_swap_limit_in_bytes": 15 << 20}},
		"log_path": "oom/0.log",
	})
	oom := srv.must("create", sb, oomJSON, podJSON)
	srv.must("start", oom)
	var oomSt struct {
		Status struct {
			State    string `json:"state"`
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"status"`
	}
	waitFor(t, "the OOM-killed container to exit", 60*time.Second, func() bool {
		json.Unmarshal([]byte(srv.must("inspect", oom)), &oomSt)
		return oomSt.Status.State == "CONTAINER_EXITED"
	})
	if oomSt.Status.ExitCode != 137 || oomSt.Status.Reason != "OOMKilled" {
		t.Errorf("memory hog: exit %d, reason %q; want 137, OOMKilled", oomSt.Status.ExitCode, oomSt.Status.Reason)
	}
	srv.must("rm", oom)
	// Resources of a running container: applied to its app's cgroups;
	// what cannot be applied is an error.
	srv.must("update", "--memory=67108864", "--cpu-quota=50000", "--cpu-period=100000", ctr)
	if v1 := "/sys/fs/cgroup/memory/skiff/" + sb; fileExists(v1) {
		app := "web-" + ctr[:8]
		for f, want := range map[string]string{
			"memory/skiff/" + sb + "/" + app + "/memory.limit_in_bytes": "67108864",
			"cpu/skiff/" + sb + "/" + app + "/cpu.cfs_quota_us":         "50000",
		} {
			if b, err := os.ReadFile("/sys/fs/cgroup/" + f); err != nil || strings.TrimSpace(string(b)) != want {
				t.Errorf("after crictl update: %s = %q, %v; want %s", f, b, err, want)
			}
		}
	} else {
		t.Logf("cgroup v1 memory hierarchy absent: the limits crictl update set are not read back")
	}
	srv.fails("InvalidArgument", "update", "--cpuset-cpus=0", ctr)
	waitFor(t, "the container's log line", 30*time.Second, func() bool {
		out, _, _ := srv.crictl("logs", ctr)
		return strings.Contains(out, "hello from web")
	})
	// stdout and stderr apart: stage2 gives each a journal stream.
	var raw []byte
	var err error
	for range 100 {
		raw, err = os.ReadFile(filepath.Join(logDir, "web/0.log"))
		if bytes.Contains(raw, []byte(" stderr F oops on stderr\n")) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil || !regexpCRILine.Match(raw) {
		t.Errorf("log file: %v\n%q, want CRI format lines", err, raw)
	}
	for _, want := range []string{" stdout F hello from web\n", " stderr F oops on stderr\n"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("log file: no line %q in\n%s", want, raw)
		}
	}
	get := func() string {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", hostPort))
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	waitFor(t, "the host port to answer", 30*time.Second, func() bool { return get() == "served" })

	// Bad input, each with its code, leaving nothing behind.
	before, _, _ := e.run("list", "--no-legend")
	badPod := writeJSONFile(t, base, "bad.json", podConfig("bad", logDir, 0))
	srv.fails("InvalidArgument", "runp", "--runtime=bogus", badPod)
	hostWide := podConfig("hostwide", logDir, 0)
	hostWide["linux"] = map[string]any{"sysctls": map[string]string{"kernel.panic": "1"}}
	srv.fails("InvalidArgument", "runp", writeJSONFile(t, base, "hostwide.json", hostWide))
	taken := writeJSONFile(t, base, "taken.json", podConfig("taken", logDir, hostPort))
	srv.fails("AlreadyExists", "runp", taken)
	srv.fails("NotFound", "create", "0123456789abcdef", ctrJSON, podJSON)
	srv.fails("NotFound", "pull", strings.Replace(img, "cri-busybox", "no-such-image", 1))
	if after, _, _ := e.run("list", "--no-legend"); after != before {
		t.Errorf("bad input left pods behind:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// A crash of the server leaves the pod running; a new server finds
	// the sandbox and the container and stops and removes them.
	srv.kill()
	if get() != "served" {
		t.Fatalf("the pod died with the server")
	}
	srv = startCRI(t, e, sock)
	if out := srv.must("pods", "--state=ready", "-q", "--no-trunc"); out != sb {
		t.Errorf("pods after restart: %q, want %s", out, sb)
	}
	if out := srv.must("ps", "--state=running", "-q", "--no-trunc"); out != ctr {
		t.Errorf("ps after restart: %q, want %s", out, ctr)
	}
	if out := srv.must("exec", "-s", ctr, "echo", "still here"); out != "still here" {
		t.Errorf("exec after restart: %q", out)
	}
	srv.must("stop", ctr)
	var st struct {
		Status struct {
			State    string `json:"state"`
			ExitCode int    `json:"exitCode"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(srv.must("inspect", "-o", "json", ctr)), &st); err != nil || st.Status.State != "CONTAINER_EXITED" {
		t.Errorf("inspect after stop: %+v %v", st, err)
	}
	srv.must("rm", ctr)
	srv.must("stopp", sb)
	srv.must("rmp", sb)
	if out := srv.must("pods", "-q"); out != "" {
		t.Errorf("pods after rmp: %q", out)
	}
	if out, _, _ := e.run("list", "--no-legend"); strings.Contains(out, sb[:8]) {
		t.Errorf("skiff list still shows the sandbox:\n%s", out)
	}
	srv.must("stopp", sb) // idempotent, as the CRI wants
	if ms := mountsUnder(e.dir); len(ms) > 0 {
		t.Errorf("mounts left under the data dir: %v", ms)
	}
	if b, _ := os.ReadFile(hostFile); string(b) != "hi from the host\n" {
		t.Errorf("host file changed: %q", b)
	}
}

// TestCRISecurityContext checks a container's security context on
// stage1-ns (critest's Security Context specs, and the refusals around
// them): seccomp unconfined (explicit or a nil profile) is no filter at
// all, RuntimeDefault skiff's profile, a Localhost profile that file's
// filter; readonly and masked paths; a privileged container, in a
// privileged sandbox only, with every capability, no filter and /sys
// writable.
func TestCRISecurityContext(t *testing.T) {
	img := busyboxOCI(t)
	e := newEnv(t)
	base := t.TempDir()
	srv := startCRI(t, e, filepath.Join(base, "cri.sock"))
	srv.must("pull", img)
	logDir := filepath.Join(base, "logs")
	chmod := filepath.Join(base, "block-chmod.json")
	hostname := filepath.Join(base, "block-hostname.json")
	os.WriteFile(chmod, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o600)
	os.WriteFile(hostname, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}`), 0o600)
	n := 0
	ctr := func(sb, podJSON string, sc map[string]any) (string, string, bool) {
		n++
		c := map[string]any{"metadata": map[string]any{"name": fmt.Sprintf("c%d", n)}, "image": map[string]any{"image": img},
			"command": []string{"sleep", "1000"}, "log_path": fmt.Sprintf("c%d.log", n)}
		if sc != nil {
			c["linux"] = map[string]any{"security_context": sc}
		}
		return srv.crictl("create", sb, writeJSONFile(t, base, fmt.Sprintf("c%d.json", n), c), podJSON)
	}
	run := func(sb, podJSON string, sc map[string]any) string {
		t.Helper()
		id, errs, ok := ctr(sb, podJSON, sc)
		if !ok {
			t.Fatalf("create %v: %s\nserver log:\n%s", sc, errs, srv.out)
		}
		srv.must("start", id)
		return id
	}
	seccompMode := func(id string) string {
		t.Helper()
		return strings.Join(strings.Fields(srv.must("exec", "-s", id, "grep", "Seccomp:", "/proc/self/status")), " ")
	}

	podJSON := writeJSONFile(t, base, "pod.json", podConfig("plain", logDir, 0))
	sb := srv.must("runp", podJSON)
	// A container that fails at once (critest's ReadOnlyRootfs spec; an
	// unconfined one starts quickly) started all the same: it exited 1.
	roJSON := writeJSONFile(t, base, "ro.json", map[string]any{"metadata": map[string]any{"name": "ro"}, "image": map[string]any{"image": img},
		"command": []string{"sh", "-c", "touch test.go && echo Found"}, "log_path": "ro.log",
		"linux": map[string]any{"security_context": map[string]any{"readonly_rootfs": true}}})
	ro := srv.must("create", sb, roJSON, podJSON)
	srv.must("start", ro)
	waitFor(t, "the read-only container to exit", 30*time.Second, func() bool {
		return strings.Contains(srv.must("inspect", ro), `"exitCode": 1,`)
	})
	localhost := func(path string) map[string]any {
		return map[string]any{"seccomp": map[string]any{"profile_type": 2, "localhost_ref": path}}
	}
	for _, tc := range []struct {
		name string
		sc   map[string]any
		want string
	}{
		{"no security context", nil, "Seccomp: 0"},
		{"unconfined", map[string]any{"seccomp": map[string]any{"profile_type": 1}}, "Seccomp: 0"},
		{"runtime default", map[string]any{"seccomp": map[string]any{"profile_type": 0}}, "Seccomp: 2"},
		{"localhost", localhost(chmod), "Seccomp: 2"},
	} {
		if got := seccompMode(run(sb, podJSON, tc.sc)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// The Localhost profile is the filter: chmod refused.
	id := run(sb, podJSON, localhost(chmod))
	if out, errs, ok := srv.crictl("exec", "-s", id, "chmod", "400", "/"); ok || !strings.Contains(out+errs, "Operation not permitted") {
		t.Errorf("chmod under the Localhost profile: ok=%t %s %s, want Operation not permitted", ok, out, errs)
	}
	// Read-only and masked paths, on top of skiff's own.
	id = run(sb, podJSON, map[string]any{"readonly_paths": []string{"/tmp"}, "masked_paths": []string{"/home/user"}})
	if out, errs, ok := srv.crictl("exec", "-s", id, "touch", "/tmp/test"); ok || !strings.Contains(out+errs, "Read-only file system") {
		t.Errorf("touch in a read-only path: ok=%t %s %s", ok, out, errs)
	}
	if out := srv.must("exec", "-s", id, "grep", " /home/user ", "/proc/mounts"); !strings.HasPrefix(out, "tmpfs /home/user tmpfs ro") {
		t.Errorf("masked /home/user: %q, want an empty read-only tmpfs", out)
	}
	if out, _, _ := srv.crictl("exec", "-s", id, "head", "-c4", "/proc/kcore"); strings.Contains(out, "ELF") {
		t.Errorf("skiff's masked /proc/kcore is readable: %q", out)
	}
	// Refused, with nothing left: a profile file that is not there or not
	// a profile, a privileged container in a sandbox that is not.
	os.WriteFile(filepath.Join(base, "text.json"), []byte("allow all"), 0o600)
	before := srv.must("ps", "-a", "-q")
	for _, sc := range []map[string]any{localhost(filepath.Join(base, "none.json")), localhost(filepath.Join(base, "text.json")), {"privileged": true}} {
		if _, errs, ok := ctr(sb, podJSON, sc); ok || !strings.Contains(errs, "code = InvalidArgument") {
			t.Errorf("create %v: ok=%t %s, want InvalidArgument", sc, ok, errs)
		}
	}
	if _, errs, _ := ctr(sb, podJSON, localhost(filepath.Join(base, "none.json"))); !strings.Contains(errs, "none.json") {
		t.Errorf("a missing profile: the error does not name it: %s", errs)
	}
	if after := srv.must("ps", "-a", "-q"); after != before {
		t.Errorf("refused containers left behind:\n%s\nwas:\n%s", after, before)
	}

	// Privileged: every capability, no filter even with a profile, /sys
	// writable, nothing masked; it may make a bridge and set the hostname.
	privPod := podConfig("priv", logDir, 0)
	privPod["linux"] = map[string]any{"security_context": map[string]any{"privileged": true}}
	privJSON := writeJSONFile(t, base, "priv.json", privPod)
	psb := srv.must("runp", privJSON)
	id = run(psb, privJSON, map[string]any{"privileged": true, "seccomp": map[string]any{"profile_type": 2, "localhost_ref": hostname}})
	if got := seccompMode(id); got != "Seccomp: 0" {
		t.Errorf("privileged: %q, want Seccomp: 0", got)
	}
	// Every capability is every one the host lets skiff hold.
	host := regexp.MustCompile(`CapBnd:\s*(\S+)`).FindStringSubmatch(func() string { b, _ := os.ReadFile("/proc/self/status"); return string(b) }())
	if out := srv.must("exec", "-s", id, "grep", "CapBnd", "/proc/self/status"); host == nil || !strings.HasSuffix(out, host[1]) {
		t.Errorf("privileged: %q, want every capability, %v", out, host)
	}
	srv.must("exec", "-s", id, "brctl", "addbr", "foobar")
	srv.must("exec", "-s", id, "hostname", "ANewHostName")
	if out := srv.must("exec", "-s", id, "grep", " /sys\\| /proc/sys ", "/proc/mounts"); !strings.Contains(out, " /sys sysfs rw") || strings.Contains(out, "/proc/sys") {
		t.Errorf("privileged: /sys not writable or /proc/sys read-only:\n%s", out)
	}
	// The host's devices (stage1-ns, in a privileged sandbox): /dev/kmsg
	// (1:11) and /dev/loop-control (10:237), usable.
	if out := srv.must("exec", "-s", id, "ls", "-l", "/dev/kmsg", "/dev/loop-control"); !strings.Contains(out, "1,  11") || !strings.Contains(out, "10, 237") {
		t.Errorf("privileged: the host's devices:\n%s", out)
	}
	if out := srv.must("exec", "-s", id, "dd", "if=/dev/kmsg", "bs=8192", "count=1"); out == "" {
		t.Error("privileged: read nothing from /dev/kmsg")
	}
	// Without privileged, the same container may not: no such nodes, and
	// one it makes itself is refused by the pod's device cgroup.
	id = run(psb, privJSON, nil)
	if out, errs, ok := srv.crictl("exec", "-s", id, "brctl", "addbr", "foobaz"); ok {
		t.Errorf("brctl addbr in an unprivileged container succeeded: %s %s", out, errs)
	}
	if out, errs, ok := srv.crictl("exec", "-s", id, "ls", "/dev/kmsg"); ok {
		t.Errorf("/dev/kmsg in an unprivileged container: %s %s", out, errs)
	}
	if out, errs, ok := srv.crictl("exec", "-s", id, "sh", "-c", "mknod /dev/k c 1 11 && dd if=/dev/k bs=8192 count=1"); ok || !strings.Contains(out+errs, "not permitted") {
		t.Errorf("reading a /dev/kmsg node an unprivileged container made: ok=%t %s %s, want Operation not permitted", ok, out, errs)
	}
	for _, s := range []string{sb, psb} {
		srv.must("stopp", s)
		srv.must("rmp", s)
	}
}

// TestCRIKVM runs a sandbox with the kvm runtime handler (stage1-kvm), a
// container in it and an exec, and removes them.
func TestCRIKVM(t *testing.T) {
	img := busyboxOCI(t)
	e := newEnv(t)
	base := t.TempDir()
	srv := startCRI(t, e, filepath.Join(base, "cri.sock"))
	logDir := filepath.Join(base, "logs")
	podJSON := writeJSONFile(t, base, "pod.json", podConfig("vm", logDir, 0))
	sb := srv.must("runp", "--runtime=kvm", podJSON)
	var ps struct {
		Status struct {
			RuntimeHandler string `json:"runtimeHandler"`
			State          string `json:"state"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(srv.must("inspectp", "-o", "json", sb)), &ps); err != nil || ps.Status.RuntimeHandler != "kvm" || ps.Status.State != "SANDBOX_READY" {
		t.Errorf("inspectp: %+v %v, want a ready kvm sandbox", ps, err)
	}
	ctrJSON := writeJSONFile(t, base, "ctr.json", map[string]any{
		"metadata": map[string]any{"name": "guest"},
		"image":    map[string]any{"image": img},
		"command": []string{"/bin/sh", "-c", "echo in the vm; echo forwarded into the vm > /tmp/index.html; " +
			"httpd -p 127.0.0.1:8080 -h /tmp; exec sleep 1000"},
		"log_path": "guest.log",
	})
	srv.must("pull", img)
	ctr := srv.must("create", sb, ctrJSON, podJSON)
	srv.must("start", ctr)
	if out := srv.must("exec", "-s", ctr, "uname", "-r"); out == "" || strings.Contains(out, "error") {
		t.Errorf("exec uname -r in the VM: %q", out)
	} else if host, _ := os.ReadFile("/proc/sys/kernel/osrelease"); strings.TrimSpace(string(host)) == out {
		t.Errorf("exec ran on the host's kernel %s, want the guest's", out)
	}
	// ExecSync past its timeout: the command in the guest is killed (the
	// server's SIGTERM to enter is passed on to the guest), and gone
	// before the answer, which is an error.
	if out, _, ok := srv.crictl("exec", "-s", "--timeout=2", ctr, "sleep", "61"); ok {
		t.Errorf("exec -s --timeout=2 sleep 61: no error (%q)", out)
	}
	if out := srv.must("exec", "-s", ctr, "ps"); strings.Contains(out, "sleep 61") {
		t.Errorf("the timed-out exec's command still runs in the guest:\n%s", out)
	}
	// Stats: the app's CPU and memory, which the guest's agent reads from
	// the guest's cgroups (enter --stats).
	var st struct {
		Stats []struct {
			CPU struct {
				Timestamp string `json:"timestamp"`
				Usage     struct {
					Value string `json:"value"`
				} `json:"usageCoreNanoSeconds"`
			} `json:"cpu"`
			Memory struct {
				Timestamp  string `json:"timestamp"`
				WorkingSet struct {
					Value string `json:"value"`
				} `json:"workingSetBytes"`
			} `json:"memory"`
		} `json:"stats"`
	}
	if out := srv.must("stats", "-o", "json", "--id", ctr); json.Unmarshal([]byte(out), &st) != nil || len(st.Stats) != 1 {
		t.Errorf("stats of the kvm container: %s, want one", out)
	} else if c := st.Stats[0]; c.CPU.Timestamp == "" || c.Memory.Timestamp == "" || c.CPU.Usage.Value == "" || c.CPU.Usage.Value == "0" ||
		c.Memory.WorkingSet.Value == "" || c.Memory.WorkingSet.Value == "0" {
		t.Errorf("stats of the kvm container: %s, want CPU and memory used, with timestamps", out)
	}
	// Resources of the running container: the guest's systemd owns its
	// cgroups, and gets them as the app unit's properties (enter --resources).
	srv.must("update", "--memory=67108864", "--cpu-quota=50000", "--cpu-period=100000", ctr)
	limits := srv.must("exec", "-s", ctr, "sh", "-c", "d=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); cat $d/memory.max $d/cpu.max")
	if want := "67108864\n50000 100000"; strings.TrimSpace(limits) != want {
		t.Errorf("the app's group in the guest after crictl update: %q, want %q", limits, want)
	}
	srv.fails("InvalidArgument", "update", "--cpuset-cpus=0", ctr)
	// port-forward: to a port that listens on the guest's loopback only
	// (stage1-kvm's enter --port-forward, through run's dial.sock).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pf := exec.Command(crictl(t), "--runtime-endpoint=unix://"+srv.sock, "port-forward", sb, fmt.Sprintf("%d:8080", local))
	pf.Env = []string{"CRI_CONFIG_FILE=/dev/null", "PATH=/usr/bin:/bin"}
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	var page string
	waitFor(t, "an answer through crictl port-forward", 60*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", local))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		page = string(b)
		return true
	})
	pf.Process.Kill()
	pf.Wait()
	if !strings.Contains(page, "forwarded into the vm") {
		t.Errorf("port-forward to 8080 in the guest: %q", page)
	}
	// exec -it: the terminal is the guest's, its size the test's, typed
	// input reaches it (stage1-kvm's enter --tty through the agent).
	c := exec.Command(crictl(t), "--runtime-endpoint=unix://"+srv.sock, "exec", "-it", ctr,
		"sh", "-c", `test -t 0 && test -t 1 && echo on-a-tty; stty size; echo ready; read x; echo "got $x"`)
	c.Env = []string{"CRI_CONFIG_FILE=/dev/null", "PATH=/usr/bin:/bin"}
	out, err := onTerminal(t, c, 27, 91, "ready", "typed\r")
	for _, want := range []string{"on-a-tty", "27 91", "got typed"} {
		if !strings.Contains(out, want) {
			t.Errorf("exec -it in the VM: output lacks %q (%v):\n%s", want, err, out)
		}
	}
	waitFor(t, "the container's log line", 60*time.Second, func() bool {
		out, _, _ := srv.crictl("logs", ctr)
		return strings.Contains(out, "in the vm")
	})
	// attach -i to a stdin_once shell in the guest: its relay there, the
	// agent connecting to it (stage1-kvm's enter --attach); stdout and
	// stderr apart, and the end of input ends the shell.
	shJSON := writeJSONFile(t, base, "sh.json", map[string]any{
		"metadata": map[string]any{"name": "sh"},
		"image":    map[string]any{"image": img},
		"command":  []string{"/bin/sh"},
		"stdin":    true, "stdin_once": true,
		"log_path": "sh.log",
	})
	sh := srv.must("create", sb, shJSON, podJSON)
	srv.must("start", sh)
	att := exec.Command(crictl(t), "--runtime-endpoint=unix://"+srv.sock, "attach", "-i", sh)
	att.Env = []string{"CRI_CONFIG_FILE=/dev/null"}
	att.Stdin = strings.NewReader("echo -n hello; echo oops >&2; echo\n")
	var aout, aerr bytes.Buffer
	att.Stdout, att.Stderr = &aout, &aerr
	if err := att.Run(); err != nil || aout.String() != "hello\n" || !strings.Contains(aerr.String(), "oops") {
		t.Errorf("attach -i in the VM: %v, stdout %q, stderr %q; want hello, oops", err, aout.String(), aerr.String())
	}
	waitFor(t, "the attached shell to exit", time.Minute, func() bool {
		out, _, _ := srv.crictl("inspect", "-o", "go-template", "--template", "{{.status.state}} {{.status.exitCode}}", sh)
		return out == "CONTAINER_EXITED 0"
	})
	srv.must("rm", sh)
	srv.must("stop", ctr)
	srv.must("rm", ctr)
	srv.must("stopp", sb)
	srv.must("rmp", sb)
	if out := srv.must("pods", "-q"); out != "" {
		t.Errorf("pods after rmp: %q", out)
	}
}

// holdsCap reports whether the test process holds capability bit in its
// effective set.
func holdsCap(t *testing.T, bit uint) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<bit) != 0
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// podMountNSPid is a process in the mount namespace of the pod at podDir:
// its pid file's process, or that one's child when the pid file names a
// process still in the host's namespace (nspawn).
func podMountNSPid(t *testing.T, podDir string) string {
	t.Helper()
	pid := strings.TrimSpace(readFile(t, filepath.Join(podDir, "pid")))
	self, _ := os.Readlink("/proc/self/ns/mnt")
	for range 3 {
		if ns, _ := os.Readlink("/proc/" + pid + "/ns/mnt"); ns != self {
			return pid
		}
		kids := strings.Fields(readFile(t, "/proc/"+pid+"/task/"+pid+"/children"))
		if len(kids) == 0 {
			break
		}
		pid = kids[0]
	}
	t.Fatalf("no process of pod %s in a mount namespace of its own", podDir)
	return ""
}
