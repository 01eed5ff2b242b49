//go:build e2e

package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/skiffpod/skiff/pkg/netns"
)

// These tests attach real network namespaces to a real bridge with
// Debian's CNI plugins and iptables: they need root and the packages from
// `make deps`, and run under `make test` (build tag e2e). Traffic stays
// between the test's namespaces and the host's own addresses.

var (
	// hostBefore is the host as the test binary found it; restored at exit.
	hostBefore snapshot
	ipForward  []byte
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Getenv("SKIFF_CNI_TEARDOWN") != "" {
		// The "fresh process" of TestCrashTeardown: nothing but the cache dir.
		err := New(nil, slog.New(slog.DiscardHandler)).Teardown(context.Background(), os.Getenv("SKIFF_CNI_TEARDOWN"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	if os.Geteuid() == 0 {
		hostBefore = takeSnapshot("")
		ipForward, _ = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		defer restoreHost()
	}
	return m.Run()
}

// testPodPrefix starts the ID of every pod of this test binary.
var testPodPrefix = fmt.Sprintf("cnitest-%d-", os.Getpid())

func requireNet(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and bridges: run as root (make test)")
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "firewall"} {
		if _, err := os.Stat(filepath.Join(PluginDir, p)); err != nil {
			t.Fatalf("CNI plugin %s missing (%v): run `make deps` (containernetworking-plugins)", p, err)
		}
	}
	if _, err := exec.LookPath("iptables-save"); err != nil {
		t.Fatalf("iptables-save missing: run `make deps` (iptables)")
	}
}

// snapshot is the host state a pod must not leave behind.
type snapshot struct {
	links    []string // link names
	iptables []string // iptables-save without counters and comments
	leases   []string // host-local lease files (named by address)
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

func takeSnapshot(ipamDir string) snapshot {
	var s snapshot
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		s.links = append(s.links, i.Name)
	}
	out, _ := exec.Command("iptables-save").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			s.iptables = append(s.iptables, counters.ReplaceAllString(l, ""))
		}
	}
	if ipamDir != "" {
		filepath.WalkDir(ipamDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				// Only the test's pods' (others' come and go on a
				// shared host).
				b, _ := os.ReadFile(p)
				if _, perr := netip.ParseAddr(d.Name()); perr == nil && strings.HasPrefix(string(b), testPodPrefix) {
					s.leases = append(s.leases, p)
				}
			}
			return nil
		})
	}
	return s
}

// diff lists what is in s but not in o, and what is in o but not in s.
func (s snapshot) diff(o snapshot) (gone, added []string) {
	minus := func(a, b []string) (r []string) {
		for _, x := range a {
			if !slices.Contains(b, x) {
				r = append(r, x)
			}
		}
		return r
	}
	all := func(s snapshot) []string {
		var r []string
		for _, l := range s.links {
			r = append(r, "link "+l)
		}
		r = append(r, s.iptables...)
		for _, l := range s.leases {
			r = append(r, "lease "+l)
		}
		return r
	}
	return minus(all(s), all(o)), minus(all(o), all(s))
}

// expectSame fails unless the host returns to before (interfaces of a
// removed namespace go away asynchronously: wait a little).
func expectSame(t *testing.T, before snapshot, ipamDir string) {
	t.Helper()
	var gone, added []string
	for end := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		gone, added = before.diff(takeSnapshot(ipamDir))
		if len(gone)+len(added) == 0 || time.Now().After(end) {
			break
		}
	}
	for _, l := range gone {
		t.Errorf("gone after teardown: %s", l)
	}
	for _, l := range added {
		t.Errorf("left after teardown: %s", l)
	}
}

// restoreHost removes what the networks' first use set up on the host and
// pods never remove (the skiff* bridges, the plugins' CNI-* chains) and puts
// ip_forward back. It touches nothing else, whoever added it.
func restoreHost() {
	now := takeSnapshot("")
	_, all := hostBefore.diff(now)
	var added []string
	for _, l := range all {
		if strings.Contains(l, "CNI-") || strings.Contains(l, `--comment "skiff`) || strings.HasPrefix(l, "link skiff") {
			added = append(added, l)
		}
	}
	table := ""
	var chains [][2]string
	for _, l := range now.iptables {
		if strings.HasPrefix(l, "*") {
			table = l[1:]
		}
		if !slices.Contains(added, l) {
			continue
		}
		switch {
		case strings.HasPrefix(l, "-A "):
			// iptables-save quotes its rules as a shell would.
			exec.Command("sh", "-c", "iptables -t "+table+" -D "+l[3:]).Run()
		case strings.HasPrefix(l, ":"):
			chains = append(chains, [2]string{table, strings.Fields(l[1:])[0]})
		}
	}
	for _, c := range chains {
		exec.Command("iptables", "-t", c[0], "-F", c[1]).Run()
	}
	for _, c := range chains {
		exec.Command("iptables", "-t", c[0], "-X", c[1]).Run()
	}
	for _, l := range added {
		if name, ok := strings.CutPrefix(l, "link "); ok {
			exec.Command("ip", "link", "del", name).Run()
		}
	}
	if ipForward != nil {
		os.WriteFile("/proc/sys/net/ipv4/ip_forward", ipForward, 0o644)
	}
}

// newPod makes a network namespace and a cache dir for one pod and tears
// both down when the test ends, whatever happened.
func newPod(t *testing.T, p *Plugins, nets ...*Network) Pod {
	t.Helper()
	dir := t.TempDir()
	id := fmt.Sprintf("%s%08x", testPodPrefix, time.Now().UnixNano()&0xffffffff)
	pod := Pod{ID: id, NetNS: filepath.Join(dir, "netns"), CacheDir: filepath.Join(dir, "net"), Networks: nets}
	if err := netns.Create(pod.NetNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Teardown(context.Background(), pod.CacheDir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		netns.Remove(pod.NetNS)
	})
	return pod
}

func testPlugins(t *testing.T) *Plugins {
	return New(nil, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func defaultNet(t *testing.T) (*Network, string) {
	t.Helper()
	// The host's leases, as skiff's: a test pod on skiff0 never takes the
	// address of a pod that runs there.
	n, err := DefaultNetwork(DefaultBridge, DefaultSubnet, LeaseDir)
	if err != nil {
		t.Fatal(err)
	}
	return n, LeaseDir
}

// warmed is set once a pod was set up and torn down on the default network.
var warmed sync.Once

// warm makes sure the default network's host-wide parts (bridge, top-level
// chains, also portmap's), which outlive pods, exist: it sets up and tears
// down one pod, once per test binary. It returns the state every later
// teardown must return to.
func warm(t *testing.T, p *Plugins, n *Network, ipam string) snapshot {
	t.Helper()
	warmed.Do(func() {
		pod := newPod(t, p, n)
		pod.Ports = []PortMapping{{HostPort: freePort(t), PodPort: 80, Protocol: "tcp"}}
		if _, err := p.Setup(context.Background(), pod); err != nil {
			t.Fatalf("setup: %v", err)
		}
		if err := p.Teardown(context.Background(), pod.CacheDir); err != nil {
			t.Fatalf("teardown: %v", err)
		}
	})
	return takeSnapshot(ipam)
}

// serve accepts connections on l and answers each with reply.
func serve(t *testing.T, l net.Listener, reply string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, reply)
			c.Close()
		}
	}()
}

// listenIn listens on addr inside the pod's namespace.
func listenIn(t *testing.T, pod Pod, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := netns.Do(pod.NetNS, func() (err error) { l, err = net.Listen("tcp4", addr); return err })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fetch dials addr (inside pod's namespace unless pod.NetNS is "") and
// returns what the server says.
func fetch(pod Pod, addr string) (string, error) {
	var out []byte
	get := func() error {
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		out, err = io.ReadAll(c)
		return err
	}
	var err error
	if pod.NetNS == "" {
		err = get()
	} else {
		err = netns.Do(pod.NetNS, get)
	}
	return string(out), err
}

func TestPodsReachEachOtherAndHost(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	n, ipam := defaultNet(t)
	before := warm(t, p, n, ipam)
	ctx := context.Background()
	a, b := newPod(t, p, n), newPod(t, p, n)
	ra, err := p.Setup(ctx, a)
	if err != nil {
		t.Fatalf("setup a: %v", err)
	}
	rb, err := p.Setup(ctx, b)
	if err != nil {
		t.Fatalf("setup b: %v", err)
	}
	subnet := netip.MustParsePrefix(DefaultSubnet)
	for _, r := range append(ra, rb...) {
		if len(r.IPs) != 1 || !subnet.Contains(r.IPs[0].Addr()) || r.Interface != "eth0" || r.Gateway != netip.MustParseAddr("172.16.28.1") {
			t.Fatalf("result %+v: want one address in %s on eth0, gateway 172.16.28.1", r, subnet)
		}
	}
	if ra[0].IPs[0] == rb[0].IPs[0] {
		t.Fatalf("both pods got %s", ra[0].IPs[0])
	}
	if want := (Route{Dst: netip.MustParsePrefix("0.0.0.0/0")}); !slices.Contains(ra[0].Routes, want) {
		t.Errorf("routes %v: want %v", ra[0].Routes, want)
	}
	if cached, ports, err := Cached(a.CacheDir); err != nil || !reflect.DeepEqual(cached, ra) || len(ports) != 0 {
		t.Errorf("Cached = %+v, %v, %v; want %+v and no ports", cached, ports, err, ra)
	}
	serve(t, listenIn(t, a, ":8080"), "from a")
	if got, err := fetch(b, netip.AddrPortFrom(ra[0].IPs[0].Addr(), 8080).String()); err != nil || got != "from a" {
		t.Errorf("pod b -> pod a: %q, %v; want %q", got, err, "from a")
	}
	hl, err := net.Listen("tcp4", ra[0].Gateway.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, hl, "from host")
	for _, pod := range []Pod{a, b} {
		if got, err := fetch(pod, hl.Addr().String()); err != nil || got != "from host" {
			t.Errorf("pod -> host bridge address %s: %q, %v", hl.Addr(), got, err)
		}
	}
	if len(takeSnapshot(ipam).leases) != 2 {
		t.Errorf("want 2 leases while both pods run: %v", takeSnapshot(ipam).leases)
	}
	for _, pod := range []Pod{a, b} {
		if err := p.Teardown(ctx, pod.CacheDir); err != nil {
			t.Fatalf("teardown: %v", err)
		}
		if err := p.Teardown(ctx, pod.CacheDir); err != nil {
			t.Fatalf("second teardown: %v", err)
		}
	}
	expectSame(t, before, ipam)
}

// TestConcurrentPods: pods set up and torn down at the same time get
// distinct addresses and leave nothing behind.
func TestConcurrentPods(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	n, ipam := defaultNet(t)
	before := warm(t, p, n, ipam)
	pods := make([]Pod, 6)
	for i := range pods {
		pods[i] = newPod(t, p, n)
		pods[i].Ports = []PortMapping{{HostPort: freePort(t), PodPort: 80, Protocol: "tcp"}}
	}
	errs := make(chan error, len(pods))
	addrs := make(chan netip.Prefix, len(pods))
	for _, pod := range pods {
		go func() {
			r, err := p.Setup(context.Background(), pod)
			if err == nil {
				addrs <- r[0].IPs[0]
			}
			errs <- err
		}()
	}
	seen := map[netip.Prefix]bool{}
	for range pods {
		if err := <-errs; err != nil {
			t.Errorf("setup: %v", err)
			continue
		}
		a := <-addrs
		if seen[a] {
			t.Errorf("address %s given twice", a)
		}
		seen[a] = true
	}
	for _, pod := range pods {
		go func() { errs <- p.Teardown(context.Background(), pod.CacheDir) }()
	}
	for range pods {
		if err := <-errs; err != nil {
			t.Errorf("teardown: %v", err)
		}
	}
	expectSame(t, before, ipam)
}

// udpAsk sends msg to addr from the host and returns the reply.
func udpAsk(addr, msg string) (string, error) {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// freePort returns a TCP port nothing on the host listens on now.
func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func TestPublishedPorts(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	n, ipam := defaultNet(t)
	before := warm(t, p, n, ipam)
	ctx := context.Background()
	pod := newPod(t, p, n)
	lo, all, udp := freePort(t), freePort(t), freePort(t)
	pod.Ports = []PortMapping{
		{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: lo, PodPort: 80, Protocol: "tcp"},
		{HostPort: all, PodPort: 80, Protocol: "tcp"},
		{HostPort: udp, PodPort: 53, Protocol: "udp"},
	}
	r, err := p.Setup(ctx, pod)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if _, ports, err := Cached(pod.CacheDir); err != nil || !reflect.DeepEqual(ports, pod.Ports) {
		t.Errorf("cached ports %v, %v; want %v", ports, err, pod.Ports)
	}
	serve(t, listenIn(t, pod, ":80"), "web")
	var uc net.PacketConn
	if err := netns.Do(pod.NetNS, func() (err error) { uc, err = net.ListenPacket("udp4", ":53"); return err }); err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := uc.ReadFrom(buf)
			if err != nil {
				return
			}
			uc.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	host := Pod{}
	if got, err := udpAsk(fmt.Sprintf("127.0.0.1:%d", udp), "hi"); err != nil || got != "echo hi" {
		t.Errorf("host -> 127.0.0.1:%d/udp: %q, %v; want %q", udp, got, err, "echo hi")
	}
	for _, addr := range []string{
		fmt.Sprintf("127.0.0.1:%d", lo),
		fmt.Sprintf("127.0.0.1:%d", all),
		fmt.Sprintf("%s:%d", r[0].Gateway, all), // the host's bridge address
	} {
		if got, err := fetch(host, addr); err != nil || got != "web" {
			t.Errorf("host -> %s: %q, %v; want %q", addr, got, err, "web")
		}
	}
	if got, err := fetch(host, fmt.Sprintf("%s:%d", r[0].Gateway, lo)); err == nil {
		t.Errorf("a port published on 127.0.0.1 answered on the bridge address: %q", got)
	}
	// Other pods, and the pod itself (hairpin), reach it through the host's
	// bridge address too.
	other := newPod(t, p, n)
	if _, err := p.Setup(ctx, other); err != nil {
		t.Fatalf("setup other pod: %v", err)
	}
	for _, from := range []Pod{other, pod} {
		addr := fmt.Sprintf("%s:%d", r[0].Gateway, all)
		if got, err := fetch(from, addr); err != nil || got != "web" {
			t.Errorf("pod %s -> %s: %q, %v; want %q", from.ID, addr, got, err, "web")
		}
	}
	if err := p.Teardown(ctx, other.CacheDir); err != nil {
		t.Fatalf("teardown other pod: %v", err)
	}
	if err := p.Teardown(ctx, pod.CacheDir); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	expectSame(t, before, ipam)
}

func TestPortTaken(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	n, ipam := defaultNet(t)
	before := warm(t, p, n, ipam)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := uint16(l.Addr().(*net.TCPAddr).Port)
	pod := newPod(t, p, n)
	pod.Ports = []PortMapping{{HostPort: taken, PodPort: 80, Protocol: "tcp"}}
	_, err = p.Setup(context.Background(), pod)
	if !errors.Is(err, ErrPortTaken) || !strings.Contains(err.Error(), fmt.Sprint(taken)) {
		t.Fatalf("setup with host port %d taken: %v; want ErrPortTaken naming the port", taken, err)
	}
	t.Logf("refused: %v", err)
	expectSame(t, before, ipam)
}

// TestSetupCanceled: a setup ended by its context still rolls back.
func TestSetupCanceled(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	n, ipam := defaultNet(t)
	before := warm(t, p, n, ipam)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pod := newPod(t, p, n)
	if _, err := p.Setup(ctx, pod); err == nil || strings.Contains(err.Error(), "roll back") {
		t.Fatalf("setup with a canceled context: %v; want an error and no failed rollback", err)
	}
	if recs, _ := records(pod.CacheDir); len(recs) != 0 {
		t.Errorf("records left: %v", recs)
	}
	expectSame(t, before, ipam)
}

// TestCrashTeardown: a pod set up by one process is torn down by another
// that has nothing but the cache dir (stage1 crashed; gc cleans up). The
// namespace file is still there: only gc removes it, after Teardown
// (docs/networking.md says why the order matters).
//
// "before the result was cached" is a crash after the plugins added the pod
// but before libcni wrote their result: the DELs run without prevResult.
func TestCrashTeardown(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	n, ipam := defaultNet(t)
	before := warm(t, p, n, ipam)
	for _, uncached := range []bool{false, true} {
		t.Run(fmt.Sprintf("before the result was cached %v", uncached), func(t *testing.T) {
			pod := newPod(t, p, n)
			pod.Ports = []PortMapping{{HostPort: freePort(t), PodPort: 80, Protocol: "tcp"}}
			if _, err := p.Setup(context.Background(), pod); err != nil {
				t.Fatalf("setup: %v", err)
			}
			if gone, added := before.diff(takeSnapshot(ipam)); len(added) < 3 || len(gone) != 0 {
				t.Fatalf("setup changed too little to test teardown: gone %q, added %q", gone, added)
			}
			if uncached {
				res, _ := filepath.Glob(filepath.Join(pod.CacheDir, "results", "*"))
				if len(res) != 1 {
					t.Fatalf("want one cached result, have %v", res)
				}
				os.Remove(res[0])
			}
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "SKIFF_CNI_TEARDOWN="+pod.CacheDir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("teardown in a fresh process: %v\n%s", err, out)
			}
			expectSame(t, before, ipam)
			if left, _ := os.ReadDir(pod.CacheDir); len(left) > 1 {
				t.Errorf("cache dir after teardown: %v", left)
			}
		})
	}
}

// TestRangeExhausted: a network with room for one pod refuses the second
// with the plugin's reason and leaves nothing of it behind.
func TestRangeExhausted(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	ipam := t.TempDir()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"tiny","plugins":[
		{"type":"bridge","bridge":"skifftest1","isGateway":true,
		 "ipam":{"type":"host-local","ranges":[[{"subnet":"172.16.29.0/30"}]],"dataDir":%q}},
		{"type":"firewall"}]}`, ipam)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tiny.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	nets, err := Load(dir, []string{PluginDir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := nets["tiny"]
	ctx := context.Background()
	first := newPod(t, p, n)
	if _, err := p.Setup(ctx, first); err != nil {
		t.Fatalf("setup first pod: %v", err)
	}
	def, defIPAM := defaultNet(t)
	warm(t, p, def, defIPAM)
	before := takeSnapshot(ipam)
	// Alone, and after the default network was added (rolled back too).
	for _, nets := range [][]*Network{{n}, {def, n}} {
		second := newPod(t, p, nets...)
		_, err = p.Setup(ctx, second)
		if err == nil || !strings.Contains(err.Error(), "network tiny") || !strings.Contains(err.Error(), "no IP addresses available") {
			t.Fatalf("setup of a second pod in a /30: %v; want the network named and no addresses left", err)
		}
		t.Logf("refused: %v", err)
		if strings.Contains(err.Error(), "roll back") {
			t.Errorf("rollback failed: %v", err)
		}
		expectSame(t, before, ipam)
		if leases := takeSnapshot(defIPAM).leases; len(leases) != 0 {
			t.Errorf("default network leases left: %v", leases)
		}
		if recs, _ := records(second.CacheDir); len(recs) != 0 {
			t.Errorf("records left after a rolled-back setup: %v", recs)
		}
	}
}

// TestTeardownPluginGone: a pod attached with a plugin that was uninstalled
// since can still be torn down: its attachment is forgotten with a warning
// naming the plugin (DEL can never run), instead of failing for ever.
func TestTeardownPluginGone(t *testing.T) {
	requireNet(t)
	dirs := []string{t.TempDir()}
	for _, b := range []string{"bridge", "host-local"} {
		if out, err := exec.Command("cp", filepath.Join(PluginDir, b), dirs[0]).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v: %s", b, err, out)
		}
	}
	var logged strings.Builder
	p := New(dirs, slog.New(slog.NewTextHandler(&logged, nil)))
	ipam := t.TempDir()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"gone","plugins":[
		{"type":"bridge","bridge":"skifftest2",
		 "ipam":{"type":"host-local","ranges":[[{"subnet":"172.16.30.0/29"}]],"dataDir":%q}}]}`, ipam)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gone.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	nets, err := Load(dir, dirs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", "skifftest2").Run() })
	pod := newPod(t, p, nets["gone"])
	if _, err := p.Setup(context.Background(), pod); err != nil {
		t.Fatalf("setup: %v", err)
	}
	if err := os.Remove(filepath.Join(dirs[0], "bridge")); err != nil {
		t.Fatal(err)
	}
	if err := p.Teardown(context.Background(), pod.CacheDir); err != nil {
		t.Fatalf("teardown with the plugin gone: %v", err)
	}
	if recs, _ := records(pod.CacheDir); len(recs) != 0 {
		t.Errorf("records left: %v", recs)
	}
	if !strings.Contains(logged.String(), `plugin \"bridge\" of network gone is gone`) {
		t.Errorf("no warning naming the plugin: %s", logged.String())
	}
}

// TestInprocAttach: a network made like the built-in one is added
// in-process (no plugin runs for ADD) and leaves what the bridge and
// host-local plugins would: a veth whose host end is a hairpin port of the
// bridge, the gateway on the bridge, host-local's lease files; the
// plugins' DEL removes all of it; a full range is refused with
// host-local's message and rolled back. A pod publishing ports still runs
// the plugins.
func TestInprocAttach(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	ipam := t.TempDir()
	n, err := BridgeNetwork("inproc", "skifftest3", "172.16.31.0/29", ipam)
	if err != nil || n.inproc == nil {
		t.Fatalf("BridgeNetwork: %+v, %v; want a network added in-process", n, err)
	}
	ctx := context.Background()
	leaseDir := filepath.Join(ipam, "inproc")
	leases := func() []string {
		var out []string
		ents, _ := os.ReadDir(leaseDir)
		for _, e := range ents {
			if _, err := netip.ParseAddr(e.Name()); err == nil { // not lock, last_reserved_ip.0
				out = append(out, e.Name())
			}
		}
		return out
	}
	// A /29 has five addresses for pods (.1 is the gateway, .7 broadcast).
	var pods []Pod
	var hostVeths []string
	for i := range 5 {
		pod := newPod(t, p, n)
		r, err := p.Setup(ctx, pod)
		if err != nil {
			t.Fatalf("setup pod %d: %v", i, err)
		}
		if len(r) != 1 || len(r[0].IPs) != 1 || r[0].Gateway != netip.MustParseAddr("172.16.31.1") || r[0].Interface != "eth0" {
			t.Fatalf("result %+v", r)
		}
		lease, err := os.ReadFile(filepath.Join(leaseDir, r[0].IPs[0].Addr().String()))
		if err != nil || string(lease) != pod.ID+"\r\neth0" {
			t.Errorf("lease of %s: %q, %v; want host-local's %q", r[0].IPs[0], lease, err, pod.ID+"\r\neth0")
		}
		recs, _ := records(pod.CacheDir)
		a, _ := readRecord(recs[0])
		var res struct {
			Interfaces []struct{ Name, Sandbox string }
		}
		json.Unmarshal(a.Result, &res)
		if len(res.Interfaces) != 3 || res.Interfaces[0].Name != "skifftest3" || res.Interfaces[2].Sandbox != pod.NetNS {
			t.Fatalf("recorded result %s", a.Result)
		}
		host := res.Interfaces[1].Name
		out, _ := exec.Command("ip", "-d", "link", "show", host).Output()
		if !strings.Contains(string(out), "master skifftest3") || !strings.Contains(string(out), "hairpin on") {
			t.Errorf("host end %s: want a hairpin port of skifftest3:\n%s", host, out)
		}
		pods, hostVeths = append(pods, pod), append(hostVeths, host)
	}
	if out, _ := exec.Command("ip", "-4", "addr", "show", "skifftest3").Output(); !strings.Contains(string(out), "172.16.31.1/29") {
		t.Errorf("bridge without the gateway address:\n%s", out)
	}
	r0, _, _ := Cached(pods[0].CacheDir)
	serve(t, listenIn(t, pods[0], ":8080"), "from 0")
	if got, err := fetch(pods[4], netip.AddrPortFrom(r0[0].IPs[0].Addr(), 8080).String()); err != nil || got != "from 0" {
		t.Errorf("pod 4 -> pod 0: %q, %v", got, err)
	}
	hl, err := net.Listen("tcp4", "172.16.31.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, hl, "from host")
	if got, err := fetch(pods[2], hl.Addr().String()); err != nil || got != "from host" {
		t.Errorf("pod -> host bridge address: %q, %v", got, err)
	}
	// The range is full: refused, rolled back (no lease, no veth, no record).
	links := func() int { l, _ := net.Interfaces(); return len(l) }
	before, nLeases := links(), len(leases())
	full := newPod(t, p, n)
	if _, err := p.Setup(ctx, full); err == nil || !strings.Contains(err.Error(), "network inproc: failed to allocate for range 0: no IP addresses available in range set: 172.16.31.1-172.16.31.6") {
		t.Errorf("setup in a full range: %v", err)
	}
	if recs, _ := records(full.CacheDir); len(recs) != 0 || len(leases()) != nLeases || links() != before {
		t.Errorf("a refused setup left records %v, leases %v", recs, leases())
	}
	// The plugins' DEL takes back what the in-process ADD made.
	for _, pod := range pods {
		if err := p.Teardown(ctx, pod.CacheDir); err != nil {
			t.Fatalf("teardown: %v", err)
		}
	}
	if l := leases(); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	for _, v := range hostVeths {
		if _, err := net.InterfaceByName(v); err == nil {
			t.Errorf("veth %s left", v)
		}
	}
	// On two such networks: both attached; the first network's default
	// route wins (as with the plugins, the second's is no error).
	def, defIPAM := defaultNet(t)
	warm(t, p, def, defIPAM)
	two := newPod(t, p, n, def)
	if r, err := p.Setup(ctx, two); err != nil || len(r) != 2 || r[1].Interface != "eth1" {
		t.Errorf("setup on two in-process networks: %+v, %v", r, err)
	}
	var routes []netlink.Route
	netns.Do(two.NetNS, func() (err error) { routes, err = netlink.RouteList(nil, netlink.FAMILY_V4); return err })
	for _, rt := range routes {
		if rt.Dst == nil || rt.Dst.String() == "0.0.0.0/0" {
			if rt.Gw.String() != "172.16.31.1" {
				t.Errorf("default route via %s, want the first network's gateway 172.16.31.1", rt.Gw)
			}
		}
	}
	// Ports: the plugins (portmap needs the chain's result), as before.
	pod := newPod(t, p, n)
	pod.Ports = []PortMapping{{HostPort: freePort(t), PodPort: 80, Protocol: "tcp"}}
	if _, err := p.Setup(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("iptables-save", "-t", "nat").Output(); !strings.Contains(string(out), pod.ID) {
		t.Errorf("no portmap rule for a pod publishing a port")
	}
}

// TestRuleCommentsAsSaved: the comments read from nftables over netlink
// are those iptables-save prints.
func TestRuleCommentsAsSaved(t *testing.T) {
	requireNet(t)
	if !iptablesNFT() {
		t.Skip("iptables is not the nf_tables one: comments are read with iptables-save")
	}
	p := testPlugins(t)
	n, ipam := defaultNet(t)
	warm(t, p, n, ipam) // skiff's rules and portmap's are there
	nft, err := nftComments()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := savedComments()
	if err != nil {
		t.Fatal(err)
	}
	// iptables-save escapes a comment's quotes, which savedComments does
	// not undo (skiff's comments have none).
	for _, m := range []map[string]bool{nft, saved} {
		maps.DeleteFunc(m, func(k string, _ bool) bool { return strings.ContainsAny(k, `"\`) })
	}
	if !reflect.DeepEqual(nft, saved) || !nft["filter "+loopbackGuard.comment] {
		t.Errorf("netlink: %v\niptables-save: %v", nft, saved)
	}
}

// TestRulesRepaired: a host rule removed since (a flushed ruleset) is
// found missing by the rules check and added again by the next pod's
// setup, once.
func TestRulesRepaired(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	n, ipam := defaultNet(t)
	warm(t, p, n, ipam)
	if out, err := exec.Command("iptables", loopbackGuard.args("-D")...).CombinedOutput(); err != nil {
		t.Fatalf("remove the loopback guard: %v\n%s", err, out)
	}
	pod := newPod(t, p, n)
	if _, err := p.Setup(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("iptables-save", "-t", "filter").Output()
	if c := strings.Count(string(out), loopbackGuard.comment); c != 1 {
		t.Errorf("the loopback guard is there %d times after the next setup, want once:\n%s", c, out)
	}
}

// TestRuleCommentsWhileChanging: rules read while others change the
// ruleset (a dump the kernel marks interrupted is read again, or by
// iptables-save) still find the rules that are there, with no error.
func TestRuleCommentsWhileChanging(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	n, ipam := defaultNet(t)
	warm(t, p, n, ipam)
	const chain = "SKIFF-TEST-CHURN"
	exec.Command("iptables", "-w", "-N", chain).Run()
	defer func() {
		exec.Command("iptables", "-w", "-F", chain).Run()
		exec.Command("iptables", "-w", "-X", chain).Run()
	}()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			exec.Command("iptables", "-w", "-A", chain, "-j", "RETURN").Run()
			exec.Command("iptables", "-w", "-D", chain, "-j", "RETURN").Run()
		}
	}()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		missing, err := missingRules([]hostRule{loopbackGuard})
		if err != nil || len(missing) != 0 {
			t.Errorf("rules read while the ruleset changes: missing %v, %v", missing, err)
			break
		}
	}
	close(stop)
	<-done
}

// TestReusedAddressFromHost: a pod given an address an earlier pod had
// answers the host at once, though the host's neighbour entry for that
// address still names the earlier pod's MAC as reachable (the state a
// pod's teardown and the next pod's setup within half a minute leave; the
// new pod's announcement, the plugin's arp_notify or the in-process
// gratuitous ARP, did not correct it).
func TestReusedAddressFromHost(t *testing.T) {
	requireNet(t)
	p := testPlugins(t)
	n, err := BridgeNetwork("reuse", "skifftest4", "172.16.32.0/29", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 6 { // more pods than the /29 holds: addresses given again
		pod := newPod(t, p, n)
		viaPlugins := i%2 == 1
		if viaPlugins { // a published port: the plugins' ADD
			pod.Ports = []PortMapping{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: freePort(t), PodPort: 80, Protocol: "tcp"}}
		}
		if i > 0 {
			// What an earlier pod on each address left: an entry the
			// host believes, for a MAC that is gone.
			br, err := netlink.LinkByName("skifftest4")
			if err != nil {
				t.Fatal(err)
			}
			for a := netip.MustParseAddr("172.16.32.2"); a.Compare(netip.MustParseAddr("172.16.32.6")) <= 0; a = a.Next() {
				stale := &netlink.Neigh{LinkIndex: br.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_REACHABLE,
					IP: a.AsSlice(), HardwareAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, byte(i)}}
				if err := netlink.NeighSet(stale); err != nil {
					t.Fatal(err)
				}
			}
		}
		r, err := p.Setup(ctx, pod)
		if err != nil {
			t.Fatalf("setup pod %d: %v", i, err)
		}
		l := listenIn(t, pod, ":80")
		serve(t, l, "web")
		addrs := []string{netip.AddrPortFrom(r[0].IPs[0].Addr(), 80).String()}
		if viaPlugins {
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", pod.Ports[0].HostPort))
		}
		for _, addr := range addrs {
			if got, err := fetch(Pod{}, addr); err != nil || got != "web" {
				out, _ := exec.Command("ip", "neigh", "show", "dev", "skifftest4").Output()
				t.Errorf("pod %d (plugins %v): host -> %s (%s): %q, %v; neighbours:\n%s", i, viaPlugins, addr, r[0].IPs[0], got, err, out)
			}
		}
		l.Close()
		if err := p.Teardown(ctx, pod.CacheDir); err != nil {
			t.Fatal(err)
		}
	}
}
