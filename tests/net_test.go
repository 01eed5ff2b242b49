//go:build e2e

package tests

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
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

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/netns"
)

// Pod networks (docs/networking.md) on stage1-ns, and on stage1-kvm in
// TestNetKVM. Traffic goes only between pods and the host's own addresses.

const (
	bridgeAddr = "172.16.28.1" // the built-in network's gateway on skiff0
	leasesDir  = "/run/skiff/networks"
	netnsDir   = "/run/skiff/netns"
)

var iptCounters = regexp.MustCompile(`\[\d+:\d+\]`)

// netState is what pods may add to the host and must remove again: links,
// iptables rules (without counters), host-local leases, namespace files.
func netState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			fmt.Fprintln(&b, "link", strings.SplitN(f[1], "@", 2)[0])
		}
	}
	out, err = exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "#") {
			fmt.Fprintln(&b, iptCounters.ReplaceAllString(l, ""))
		}
	}
	filepath.WalkDir(leasesDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), "last_reserved_ip") {
			fmt.Fprintln(&b, "lease", p)
		}
		return nil
	})
	ents, _ := os.ReadDir(netnsDir)
	for _, d := range ents {
		fmt.Fprintln(&b, "netns", d.Name())
	}
	return b.String()
}

// noLeaks makes the host-wide parts of the default network exist (a first
// pod), records the host's network state, and checks at the end of the
// test, after every pod of e is gone, that it is the same again.
func noLeaks(t *testing.T, e *env) {
	t.Helper()
	e.mustRun("run", fmt.Sprintf("--publish=%d:80", freePort(t)), image(t, "busybox.aci"), "--exec=/bin/true")
	e.mustRun("gc", "--grace-period=0")
	before := netState(t)
	t.Cleanup(func() {
		e.cleanup()
		if after := netState(t); after != before {
			t.Errorf("host network state changed:\n%s", lineDiff(before, after))
		}
	})
}

func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var d []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			d = append(d, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			d = append(d, "+ "+l)
		}
	}
	return strings.Join(d, "\n")
}

// podStatus is the part of `skiff status --format=json` these tests read.
type podStatus struct {
	State    string `json:"state"`
	Pid      int    `json:"pid"`
	Networks []struct {
		Network   string   `json:"network"`
		Interface string   `json:"interface"`
		IPs       []string `json:"ips"`
	} `json:"networks"`
	Ports []struct {
		HostPort int `json:"hostPort"`
		PodPort  int `json:"podPort"`
	} `json:"ports"`
}

func (e *env) status(uuid string) podStatus {
	e.t.Helper()
	var st podStatus
	if err := json.Unmarshal([]byte(e.mustRun("status", "--format=json", uuid)), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// podIP returns the pod's address on its first network.
func (st podStatus) podIP(t *testing.T) string {
	t.Helper()
	if len(st.Networks) == 0 || len(st.Networks[0].IPs) == 0 {
		t.Fatalf("pod has no address: %+v", st)
	}
	ip, _, _ := strings.Cut(st.Networks[0].IPs[0], "/")
	return ip
}

// server starts a probe pod serving HTTP on :80 with podFlags and returns
// its uuid once it serves.
func server(t *testing.T, e *env, podFlags ...string) string {
	t.Helper()
	save := filepath.Join(t.TempDir(), "uuid")
	args := append([]string{"run", "--uuid-file-save=" + save}, podFlags...)
	c, out := e.start(append(args, image(t, "probe.aci"), "--", "-serve=:80", "-sleep=300s")...)
	waitFor(t, "the server pod", 2*time.Minute, func() bool {
		return strings.Contains(out.String(), "SERVING=") || c.ProcessState != nil
	})
	b, err := os.ReadFile(save)
	if err != nil || !strings.Contains(out.String(), "SERVING=") {
		t.Fatalf("server pod did not start: %v\n%s", err, out)
	}
	uuid := strings.TrimSpace(string(b))
	t.Cleanup(func() { e.run("stop", "--force", uuid) })
	return uuid
}

// get fetches http://addr/ from the host.
func get(t *testing.T, addr string) (string, error) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	r, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

// hostAddr is one of the host's own IPv4 addresses that is neither
// loopback nor on a pod bridge.
func hostAddr(t *testing.T) string {
	t.Helper()
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || strings.HasPrefix(i.Name, "skiff") || strings.HasPrefix(i.Name, "veth") {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	t.Fatal("the host has no IPv4 address besides loopback")
	return ""
}

// freePort returns a TCP port no host socket holds right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestNetDefault(t *testing.T) {
	e := newEnv(t)
	noLeaks(t, e)

	t.Run("address, routes, hosts, resolv.conf", func(t *testing.T) {
		out := e.mustRun("run", "--hostname=web", image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c",
			"ip -4 -o addr show eth0; ip route; cat /etc/hosts; echo ---; cat /etc/resolv.conf")
		mustContain(t, out, "inet 172.16.28.", "default via "+bridgeAddr)
		if !regexp.MustCompile(`172\.16\.28\.\d+\s+web`).MatchString(out) {
			t.Errorf("/etc/hosts does not name the pod's address:\n%s", out)
		}
		host, _ := os.ReadFile("/etc/resolv.conf")
		if l, _, _ := strings.Cut(strings.TrimSpace(string(host)), "\n"); l != "" {
			mustContain(t, out, l) // --dns=host is the default
		}
	})

	t.Run("dns and hosts flags", func(t *testing.T) {
		out := e.mustRun("run", "--dns=192.0.2.53", "--dns=192.0.2.54", "--dns-search=example.test", "--dns-opt=ndots:2",
			"--hosts-entry=192.0.2.7=db.example.test", image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c", "cat /etc/resolv.conf /etc/hosts")
		mustContain(t, out, "nameserver 192.0.2.53", "nameserver 192.0.2.54", "search example.test", "options ndots:2", "192.0.2.7\tdb.example.test")
		for _, bad := range [][]string{{"--dns=example.com"}, {"--dns=host", "--dns=192.0.2.1"}, {"--hosts-entry=db"}, {"--dns-opt=a b"}, {"--net=host", "--dns=192.0.2.1"}} {
			_, errs, code := e.run(append(append([]string{"run"}, bad...), image(t, "busybox.aci"))...)
			first, _, _ := strings.Cut(errs, "\n")
			if code != 2 || !strings.Contains(first, strings.SplitN(bad[len(bad)-1], "=", 2)[0]) {
				t.Errorf("%q: exit %d, want 2 and a line naming the flag: %q", bad, code, errs)
			}
		}
	})

	t.Run("pod to host", func(t *testing.T) {
		l, err := net.Listen("tcp4", bridgeAddr+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from the host\n") }))
		out, code := probeRun(t, e, "ns", nil, nil, "-http-get=http://"+l.Addr().String()+"/")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		mustContain(t, out, "hello from the host")
	})

	t.Run("published ports, two pods on port 80, pod to pod", func(t *testing.T) {
		p1, p2 := freePort(t), freePort(t)
		a := server(t, e, fmt.Sprintf("--publish=%d:80", p1))
		b := server(t, e, "-p", fmt.Sprintf("127.0.0.1:%d:80/tcp", p2))
		for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", p1), fmt.Sprintf("%s:%d", hostAddr(t), p1), fmt.Sprintf("127.0.0.1:%d", p2)} {
			if body, err := get(t, addr); err != nil || !strings.Contains(body, "hello from probe") {
				t.Errorf("GET %s from the host: %q, %v", addr, body, err)
			}
		}
		// Published on 127.0.0.1 only: not on the host's other addresses.
		if body, err := get(t, fmt.Sprintf("%s:%d", hostAddr(t), p2)); err == nil {
			t.Errorf("port published on 127.0.0.1 answers on %s: %q", hostAddr(t), body)
		}
		stA, stB := e.status(a), e.status(b)
		if len(stA.Ports) != 1 || stA.Ports[0].HostPort != p1 || stA.Ports[0].PodPort != 80 {
			t.Errorf("status ports = %+v", stA.Ports)
		}
		ipA, ipB := stA.podIP(t), stB.podIP(t)
		if ipA == ipB {
			t.Fatalf("two pods with address %s", ipA)
		}
		if list := e.mustRun("list"); !strings.Contains(list, "NETWORKS") || !strings.Contains(list, ipA) || !strings.Contains(list, ipB) {
			t.Errorf("list does not show the addresses:\n%s", list)
		}
		// Pod to pod, directly and through the other pod's published port.
		for _, url := range []string{"http://" + ipA + "/", "http://" + ipB + "/", fmt.Sprintf("http://%s:%d/", bridgeAddr, p1)} {
			out, code := probeRun(t, e, "ns", nil, nil, "-http-get="+url)
			if code != 0 || !strings.Contains(out, "hello from probe") {
				t.Errorf("GET %s from a pod: exit %d\n%s", url, code, out)
			}
		}
		// A host port another pod publishes is taken, also for a pod of
		// another data dir.
		for _, e := range []*env{e, newEnv(t)} {
			_, errs, code := e.run("run", fmt.Sprintf("--publish=%d:81", p1), image(t, "busybox.aci"))
			if code != 254 || !strings.Contains(errs, "host port already in use") || !strings.Contains(errs, a) {
				t.Errorf("port of another pod: exit %d: %s", code, errs)
			}
		}
		// Two data dirs, one bridge: the leases are host-wide, so a pod
		// of another data dir gets an address of its own, leased where
		// this data dir's are.
		other := newEnv(t)
		c := server(t, other)
		if ipC := other.status(c).podIP(t); ipC == ipA || ipC == ipB {
			t.Errorf("a pod of another data dir got %s, an address in use (%s, %s)", ipC, ipA, ipB)
		} else if b, err := os.ReadFile(filepath.Join(leasesDir, "default", ipC)); err != nil || !strings.HasPrefix(string(b), c) {
			t.Errorf("lease of %s: %q, %v; want the pod %s's", ipC, b, err, c)
		}
		other.mustRun("stop", c)
		// stop releases the address at once, before gc.
		e.mustRun("stop", a)
		if _, err := os.Stat(filepath.Join(leasesDir, "default", ipA)); !os.IsNotExist(err) {
			t.Errorf("lease %s still there after stop: %v", ipA, err)
		}
		if _, err := get(t, fmt.Sprintf("127.0.0.1:%d", p1)); err == nil {
			t.Errorf("port %d still answers after stop", p1)
		}
	})

	t.Run("appc port by name", func(t *testing.T) {
		p := freePort(t)
		save := filepath.Join(t.TempDir(), "uuid")
		e.start("run", "--uuid-file-save="+save, fmt.Sprintf("--port=redis:127.0.0.1:%d", p), image(t, "redis.aci"))
		var reply string
		waitFor(t, "redis through its published port", 30*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
			if err != nil {
				return false
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			io.WriteString(c, "PING\r\n")
			reply, _ = bufio.NewReader(c).ReadString('\n')
			return strings.HasPrefix(reply, "+PONG")
		})
		if b, err := os.ReadFile(save); err == nil {
			e.mustRun("stop", strings.TrimSpace(string(b)))
		}
		for _, bad := range []string{"nosuch:8080", "redis"} {
			_, errs, code := e.run("run", "--port="+bad, image(t, "redis.aci"))
			if code != 2 || !strings.Contains(errs, "--port="+bad) || !strings.Contains(errs, "redis") {
				t.Errorf("--port=%s: exit %d: %s", bad, code, errs)
			}
		}
	})

	t.Run("host port taken", func(t *testing.T) {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		before := netState(t)
		pods := e.mustRun("list", "--no-legend")
		_, errs, code := e.run("run", fmt.Sprintf("-p=%d:80", port), image(t, "busybox.aci"))
		if code != 254 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "host port already in use") {
			t.Errorf("exit %d, want 254 and one line: %q", code, errs)
		}
		if after := netState(t); after != before {
			t.Errorf("a refused pod left:\n%s", lineDiff(before, after))
		}
		if after := e.mustRun("list", "--no-legend"); after != pods {
			t.Errorf("a refused pod is left:\n%s", after)
		}
	})

	t.Run("run-prepared", func(t *testing.T) {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		taken := l.Addr().(*net.TCPAddr).Port
		uuid := strings.TrimSpace(e.mustRun("prepare", image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c", "cat /etc/hosts"))
		// Refused: the pod stays prepared, with nothing attached.
		if _, errs, code := e.run("run-prepared", fmt.Sprintf("--publish=%d:80", taken), uuid); code != 254 || !strings.Contains(errs, "host port already in use") {
			t.Errorf("run-prepared with a taken port: exit %d: %s", code, errs)
		}
		if st := e.status(uuid); st.State != "prepared" || len(st.Networks) != 0 {
			t.Errorf("after a refused run-prepared: %+v", st)
		}
		out := e.mustRun("run-prepared", "--hostname=later", "--hosts-entry=192.0.2.9=x.test", uuid)
		mustContain(t, out, "\tlater", "192.0.2.9\tx.test")
	})

	t.Run("unknown network", func(t *testing.T) {
		_, errs, code := e.run("run", "--net=default,nosuchnet", image(t, "busybox.aci"))
		if code != 254 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, `"nosuchnet"`) {
			t.Errorf("exit %d, want 254 and one line naming it: %q", code, errs)
		}
	})
}

// TestNetNamed: a network of <local-config>/net.d, two pods on it.
func TestNetNamed(t *testing.T) {
	e := newEnv(t)
	const bridge = "skiff-nettest"
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", bridge).Run()
		exec.Command("ip", "link", "del", bridge+"2").Run()
	})
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "nettest", "plugins": [
		{"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true,
		 "ipam": {"type": "host-local", "ranges": [[{"subnet": "172.16.31.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
		{"type": "firewall"}]}`, bridge, filepath.Join(t.TempDir(), "ipam"))
	if err := os.MkdirAll(filepath.Join(e.config, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.config, "net.d", "nettest.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// A broken file beside it is named when a pod asks for a network it
	// does not have, and does not stop the good one.
	os.WriteFile(filepath.Join(e.config, "net.d", "broken.conflist"), []byte("{"), 0o644)
	a := server(t, e, "--net=nettest")
	ip := e.status(a).podIP(t)
	if !strings.HasPrefix(ip, "172.16.31.") {
		t.Fatalf("pod on nettest has address %s", ip)
	}
	out, code := probeRun(t, e, "ns", []string{"--net=nettest,default"}, nil, "-http-get=http://"+ip+"/")
	if code != 0 || !strings.Contains(out, "hello from probe") {
		t.Errorf("pod to pod on nettest: exit %d\n%s", code, out)
	}
	_, errs, code := e.run("run", "--net=broken", image(t, "busybox.aci"))
	if code != 254 || !strings.Contains(errs, `"broken"`) || !strings.Contains(errs, "broken.conflist") {
		t.Errorf("--net=broken: exit %d: %s", code, errs)
	}

	// Too many pods for the range: one line, and the refused pod leaves
	// nothing (its default network, added first, is rolled back too).
	tiny := strings.NewReplacer(`"nettest"`, `"tiny"`, bridge, bridge+"2", "172.16.31.0/24", "172.16.32.4/30").Replace(conf)
	if err := os.WriteFile(filepath.Join(e.config, "net.d", "tiny.conflist"), []byte(tiny), 0o644); err != nil {
		t.Fatal(err)
	}
	server(t, e, "--net=tiny")
	before, pods := netState(t), e.mustRun("list", "--no-legend")
	_, errs, code = e.run("run", "--net=default,tiny", image(t, "busybox.aci"))
	if code != 254 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "network tiny") || !strings.Contains(errs, "no IP addresses available") {
		t.Errorf("range exhausted: exit %d: %q", code, errs)
	}
	if after := netState(t); after != before {
		t.Errorf("a refused pod left:\n%s", lineDiff(before, after))
	}
	if after := e.mustRun("list", "--no-legend"); after != pods {
		t.Errorf("a refused pod is left:\n%s", after)
	}
}

// TestNetLeaks: 100 ns pods and 20 KVM pods that exit, crash, are
// stopped, or are killed with SIGKILL (all of the stage1's processes, or
// only qemu) leave the host's links, iptables rules, leases and namespace
// files exactly as before once gc ran. (Not nspawn alone: the pod's
// systemd outlives it, see docs/networking.md.) Pods run a few at a time
// (KVM pods under TCG in small batches) to keep the test short.
func TestNetLeaks(t *testing.T) {
	e := newEnv(t)
	noLeaks(t, e)
	var mu sync.Mutex
	counts := map[string]int{}
	count := func(kind string) { mu.Lock(); counts[kind]++; mu.Unlock() }
	each := func(t *testing.T, stage1 string, n, parallel int, pod func(t *testing.T, e *env, i int)) {
		sem := make(chan struct{}, parallel)
		var wg sync.WaitGroup
		for i := range n {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				t.Run(fmt.Sprintf("%s-%03d", stage1, i), func(t *testing.T) { pod(t, e.with(t), i) })
			}()
		}
		wg.Wait()
	}
	// A port a pod publishes is an iptables rule, not a socket: freePort
	// could hand it out again while that pod runs.
	used := map[int]bool{}
	publish := func(t *testing.T) string {
		mu.Lock()
		defer mu.Unlock()
		for {
			if p := freePort(t); !used[p] {
				used[p] = true
				return fmt.Sprintf("%d:80", p)
			}
		}
	}
	start := time.Now()
	busybox := image(t, "busybox.aci")
	each(t, "ns", 100, 4, func(t *testing.T, e *env, i int) {
		port := publish(t)
		switch i % 4 {
		case 0: // exits
			if _, errs, code := runFor(e, 4*time.Minute, "run", "-p", port, busybox, "--exec=/bin/true"); code != 0 {
				t.Fatalf("a pod of /bin/true: exit %d: %s", code, errs)
			}
			count("ns exited")
		case 1: // the app crashes
			if _, errs, code := runFor(e, 4*time.Minute, "run", busybox, "--exec=/bin/sh", "--", "-c", "kill -SEGV $$"); code == 0 || code == -1 {
				t.Fatalf("a crashing app: exit %d: %s", code, errs)
			}
			count("ns crashed")
		case 2: // stopped
			e.mustRun("stop", server(t, e, "-p", port))
			count("ns stopped")
		case 3: // everything killed: init, nspawn, run
			uuid := server(t, e, "-p", port)
			killTree(t, e.status(uuid).Pid)
			waitFor(t, "the killed pod to count as exited", time.Minute, func() bool { return e.status(uuid).State == "exited" })
			count("ns killed (init, nspawn, run)")
		}
	})
	nsTook := time.Since(start)
	each(t, "kvm", 20, 4, func(t *testing.T, e *env, i int) {
		switch i % 4 {
		case 0:
			if _, errs, code := runFor(e, 4*time.Minute, "run", "--stage1=kvm", "-p", publish(t), busybox, "--exec=/bin/true"); code != 0 {
				t.Fatalf("a kvm pod of /bin/true: exit %d: %s", code, errs)
			}
			count("kvm exited")
		case 1:
			e.mustRun("stop", server(t, e, "--stage1=kvm"))
			count("kvm stopped")
		case 2, 3: // run and qemu killed; qemu alone
			uuid := server(t, e, "--stage1=kvm", "-p", publish(t))
			qemu := e.status(uuid).Pid
			if i%4 == 2 {
				syscall.Kill(parentOf(t, qemu), syscall.SIGKILL)
			}
			syscall.Kill(qemu, syscall.SIGKILL)
			waitFor(t, "the killed kvm pod to count as exited", time.Minute, func() bool { return e.status(uuid).State == "exited" })
			count(map[int]string{2: "kvm killed (run, qemu)", 3: "kvm qemu killed"}[i%4])
		}
	})
	e.mustRun("gc", "--grace-period=0")
	t.Logf("pods: %v; ns took %s, kvm %s", counts, nsTook.Round(time.Second), (time.Since(start) - nsTook).Round(time.Second))
}

// runFor runs skiff for at most d (a hung pod then fails the test, exit
// -1, instead of holding it for the harness's five minutes).
func runFor(e *env, d time.Duration, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return e.runCtx(ctx, nil, args...)
}

// parentOf returns pid's parent.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	var pp int
	fmt.Sscan(strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))[1], &pp)
	return pp
}

// killTree SIGKILLs the pod's init and every ancestor up to the stage1's
// run process (nspawn, run).
func killTree(t *testing.T, pid int) {
	t.Helper()
	pids := []int{pid}
	for p := pid; ; {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			break
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		var pp int
		fmt.Sscan(f[1], &pp)
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pp))
		if pp <= 1 || !slices.Contains([]string{"systemd-nspawn", "run"}, strings.TrimSpace(string(comm))) {
			break
		}
		pids, p = append(pids, pp), pp
	}
	if len(pids) < 3 {
		t.Fatalf("pod %d: found only %v of init, nspawn and run", pid, pids)
	}
	for _, p := range slices.Backward(pids) {
		syscall.Kill(p, syscall.SIGKILL)
	}
	waitFor(t, "the killed processes to be gone", 10*time.Second, func() bool {
		for _, p := range pids {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			if err == nil && !strings.Contains(string(b), ") Z ") {
				return false
			}
		}
		return true
	})
}

// TestNetKVM: a KVM pod on the same network, through a tap in its
// namespace joined to the CNI veth by tc redirects: reached from the host
// through a published port, reaching the host and an ns pod, with the
// pod's hosts and resolv.conf; one stopped and one killed with SIGKILL
// (run and qemu) leave nothing once gc ran. --net=host is a clear error.
func TestNetKVM(t *testing.T) {
	e := newEnv(t)
	noLeaks(t, e)
	port := freePort(t)
	a := server(t, e, "--stage1=kvm", "--hosts-entry=192.0.2.9=x.test", "-p", fmt.Sprintf("%d:80", port))
	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("%s:%d", hostAddr(t), port), e.status(a).podIP(t) + ":80"} {
		if body, err := get(t, addr); err != nil || !strings.Contains(body, "hello from probe") {
			t.Errorf("GET %s from the host: %q, %v", addr, body, err)
		}
	}
	// An ns pod reaches the KVM pod directly.
	out, code := probeRun(t, e, "ns", nil, nil, "-http-get=http://"+e.status(a).podIP(t)+"/")
	if code != 0 || !strings.Contains(out, "hello from probe") {
		t.Errorf("ns pod to kvm pod: exit %d\n%s", code, out)
	}
	// The KVM pod reaches the host; its hosts file names it and x.test.
	l, err := net.Listen("tcp4", bridgeAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from the host\n") }))
	out, code = probeRun(t, e, "kvm", []string{"--hostname=vm1", "--hosts-entry=192.0.2.9=x.test"}, nil,
		"-http-get=http://"+l.Addr().String()+"/", "-read-file=/etc/hosts")
	if code != 0 {
		t.Fatalf("kvm pod to host: exit %d\n%s", code, out)
	}
	mustContain(t, out, "hello from the host", "192.0.2.9\tx.test", "\tvm1")
	e.mustRun("stop", a)
	// Everything killed: the pid skiff reports is qemu's; its parent is run.
	b := server(t, e, "--stage1=kvm", "-p", fmt.Sprintf("%d:80", freePort(t)))
	qemu := e.status(b).Pid
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", qemu))
	var run int
	fmt.Sscan(strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))[1], &run)
	syscall.Kill(run, syscall.SIGKILL)
	syscall.Kill(qemu, syscall.SIGKILL)
	waitFor(t, "the killed kvm pod to count as exited", 30*time.Second, func() bool { return e.status(b).State == "exited" })
	e.mustRun("gc", "--grace-period=0")

	_, errs, code := e.run("run", "--stage1=kvm", "--net=host", image(t, "busybox.aci"), "--exec=/bin/true")
	if code != 254 || !strings.Contains(errs, "cannot share the host's network") {
		t.Errorf("kvm --net=host: exit %d: %s", code, errs)
	}
}

// TestNetHostLoopback: portmap turns on route_localnet on the bridge (for
// published ports on 127.0.0.1), which would let a pod with CAP_NET_RAW
// (a default capability) reach services bound to the host's loopback by
// sending a frame to 127.0.0.1 at the bridge's MAC (as CVE-2020-8558 for
// kube-proxy). The same frame to the bridge's own address is the control:
// it must arrive, the one to 127.0.0.1 must not.
func TestNetHostLoopback(t *testing.T) {
	e := newEnv(t)
	noLeaks(t, e)
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/conf/skiff0/route_localnet"); strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("route_localnet on skiff0 is %q: the premise of this test changed", b)
	}
	uuid := server(t, e, "-p", fmt.Sprintf("%d:80", freePort(t)))
	podIP := net.ParseIP(e.status(uuid).podIP(t)).To4()
	br, err := net.InterfaceByName("skiff0")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dst    string
		arrive bool
	}{{bridgeAddr, true}, {"127.0.0.1", false}} {
		c, err := net.ListenPacket("udp4", tt.dst+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		if err := netns.Do(filepath.Join(netnsDir, uuid), func() error {
			return sendUDPFrame(br.HardwareAddr, podIP, net.ParseIP(tt.dst).To4(), port, []byte("from the pod"))
		}); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		n, _, err := c.ReadFrom(buf)
		c.Close()
		if got := err == nil && string(buf[:n]) == "from the pod"; got != tt.arrive {
			t.Errorf("a pod's UDP frame to %s:%d arrived: %v, want %v (%v)", tt.dst, port, got, tt.arrive, err)
		}
	}
}

// sendUDPFrame sends, from eth0 of the current network namespace, an
// Ethernet frame to dstMAC carrying a UDP datagram src:40000 -> dst:port.
func sendUDPFrame(dstMAC net.HardwareAddr, src, dst net.IP, port int, payload []byte) error {
	eth, err := net.InterfaceByName("eth0")
	if err != nil {
		return err
	}
	ip := make([]byte, 20+8+len(payload))
	ip[0], ip[8], ip[9] = 0x45, 64, 17 // IPv4, 5 words; TTL; UDP
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[12:], src)
	copy(ip[16:], dst)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(ip[20:], 40000)
	binary.BigEndian.PutUint16(ip[22:], uint16(port))
	binary.BigEndian.PutUint16(ip[24:], uint16(8+len(payload))) // checksum 0: none
	copy(ip[28:], payload)
	frame := append(append(append([]byte{}, dstMAC...), eth.HardwareAddr...), 0x08, 0x00)
	frame = append(frame, ip...)
	const ethPIP = 0x0008 // htons(ETH_P_IP)
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, ethPIP)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	sa := &syscall.SockaddrLinklayer{Protocol: ethPIP, Ifindex: eth.Index, Halen: 6}
	copy(sa.Addr[:], dstMAC)
	return syscall.Sendto(fd, frame, 0, sa)
}

// TestNetworkCommand: skiff network create, list, inspect and rm, and a
// pod on a created network.
func TestNetworkCommand(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(func() { exec.Command("ip", "link", "del", "skiff-cmdtest").Run() })
	file := strings.TrimSpace(e.mustRun("network", "create", "cmdtest", "--subnet=172.16.41.0/24"))
	if file != filepath.Join(e.config, "net.d", "cmdtest.conflist") {
		t.Errorf("create printed %q", file)
	}
	for _, bad := range [][]string{
		{"create", "cmdtest", "--subnet=172.16.42.0/24"}, // exists
		{"create", "other", "--subnet=172.16.41.128/25"}, // overlaps
		{"create", "other", "--subnet=172.16.28.0/24"},   // overlaps the built-in network
		{"create", "other", "--subnet=172.16.42.1/24"},   // host bits
		{"create", "other"},                              // no subnet
		{"rm", "default"}, {"rm", "nosuch"}, {"inspect", "nosuch"},
	} {
		if _, errs, code := e.run(append([]string{"network"}, bad...)...); code == 0 || !strings.HasPrefix(errs, "skiff: ") {
			t.Errorf("network %q: exit %d: %s", bad, code, errs)
		}
	}
	list := e.mustRun("network", "list")
	mustContain(t, list, "default", "skiff0", "172.16.28.0/24", "cmdtest", "skiff-cmdtest", "172.16.41.0/24")
	mustContain(t, e.mustRun("network", "inspect", "cmdtest"), `"name": "cmdtest"`, `"bridge": "skiff-cmdtest"`)
	uuid := server(t, e, "--net=cmdtest")
	if ip := e.status(uuid).podIP(t); !strings.HasPrefix(ip, "172.16.41.") {
		t.Errorf("pod on cmdtest has %s", ip)
	}
	if _, errs, code := e.run("network", "rm", "cmdtest"); code == 0 || !strings.Contains(errs, uuid) {
		t.Errorf("rm of a network in use: exit %d: %s", code, errs)
	}
	rules := func() int {
		out, err := exec.Command("iptables-save").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(out), "skiff network cmdtest 172.16.41.0/24: ")
	}
	if n := rules(); n != 3 {
		t.Errorf("%d network-wide rules for cmdtest, want 3 (masquerade, forward from and to the pods)", n)
	}
	e.mustRun("stop", uuid)
	e.mustRun("network", "rm", "cmdtest")
	if _, err := net.InterfaceByName("skiff-cmdtest"); err == nil {
		t.Errorf("bridge skiff-cmdtest still there after network rm")
	}
	if n := rules(); n != 0 {
		t.Errorf("%d network-wide rules for cmdtest left after network rm", n)
	}
	if strings.Contains(e.mustRun("network", "list"), "cmdtest") {
		t.Errorf("cmdtest still listed")
	}
}

// TestNetBadInput: bad network input on both stage1s (refused in stage0,
// before any stage1 runs) — an unknown network, a conflist that is not
// JSON, names a missing plugin or overlaps the built-in subnet, a host port
// a socket holds, --publish with the protocol the app's port does not
// have, a range with no address left — and bad `network create` subnets:
// one line naming the cause, a non-zero exit, no pod, and no link, rule,
// lease or namespace file left.
func TestNetBadInput(t *testing.T) {
	e := newEnv(t)
	noLeaks(t, e)
	const bridge = "skiff-badin"
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	netd := filepath.Join(e.config, "net.d")
	if err := os.MkdirAll(netd, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, conf := range map[string]string{
		"notjson":  `{"cniVersion": "1.0.0", "name": "notjson", "plugins": [`,
		"noplugin": `{"cniVersion": "1.0.0", "name": "noplugin", "plugins": [{"type": "nosuchplugin"}]}`,
		"overlap": `{"cniVersion": "1.0.0", "name": "overlap", "plugins": [{"type": "bridge", "bridge": "skiff-overlap",
			"ipam": {"type": "host-local", "ranges": [[{"subnet": "172.16.28.128/25"}]]}}]}`,
		"tiny": fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "tiny", "plugins": [{"type": "bridge", "bridge": %q, "isGateway": true,
			"ipam": {"type": "host-local", "ranges": [[{"subnet": "172.16.33.0/30"}]], "dataDir": %q}}]}`, bridge, filepath.Join(t.TempDir(), "ipam")),
	} {
		if err := os.WriteFile(filepath.Join(netd, name+".conflist"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	held, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	server(t, e, "--net=tiny") // takes the /30's one address

	// refused runs skiff and checks that it failed with code in one line
	// holding every want, and left the host and the pod list as they were.
	refused := func(t *testing.T, code int, wants []string, args ...string) {
		t.Helper()
		before, pods := netState(t), e.mustRun("list", "--no-legend")
		_, errs, got := runFor(e, 2*time.Minute, args...) // accepted by mistake, a pod may run for ever
		// Warnings about other networks' files may come first.
		// and a usage error (exit 2) ends with cobra's pointer to --help.
		errs = regexp.MustCompile(`(?m)^skiff: warning: .*\n`).ReplaceAllString(errs, "")
		errs = strings.TrimSuffix(errs, "Run 'skiff --help' for usage.\n")
		if got != code || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("skiff %q: exit %d, want %d and one line: %q", args, got, code, errs)
		}
		for _, w := range wants {
			if !strings.Contains(errs, w) {
				t.Errorf("skiff %q: the error does not say %q: %q", args, w, errs)
			}
		}
		if after := netState(t); after != before {
			t.Errorf("skiff %q left:\n%s", args, lineDiff(before, after))
		}
		if after := e.mustRun("list", "--no-legend"); after != pods {
			t.Errorf("skiff %q left a pod:\n%s", args, after)
		}
	}
	busybox, redis := image(t, "busybox.aci"), image(t, "redis.aci")
	for _, stage1 := range []string{"ns", "kvm"} {
		t.Run(stage1, func(t *testing.T) {
			run := func(args ...string) []string {
				return append([]string{"run", "--stage1=" + stage1}, args...)
			}
			for _, c := range []struct {
				name  string
				code  int
				wants []string
				args  []string
			}{
				{"unknown network", 254, []string{`"nosuchnet"`}, run("--net=nosuchnet", busybox)},
				{"conflist not JSON", 254, []string{`"notjson"`, "notjson.conflist", "not valid JSON"}, run("--net=notjson", busybox)},
				{"missing plugin", 254, []string{`"noplugin"`, `plugin "nosuchplugin" not found`}, run("--net=noplugin", busybox)},
				{"overlapping subnet", 254, []string{`"overlap"`, "overlaps the built-in network"}, run("--net=overlap", busybox)},
				{"host port taken", 254, []string{"host port already in use", fmt.Sprint(held.Addr().(*net.TCPAddr).Port)},
					run(fmt.Sprintf("-p=%d:80", held.Addr().(*net.TCPAddr).Port), busybox)},
				{"publish with the other protocol", 2, []string{"--publish=", "6379 is tcp (redis), not udp"},
					run(fmt.Sprintf("--publish=%d:6379/udp", freePort(t)), redis)},
				{"range exhausted", 254, []string{"network tiny", "no IP addresses available", "skiff gc"}, run("--net=default,tiny", busybox)},
			} {
				t.Run(c.name, func(t *testing.T) { refused(t, c.code, c.wants, c.args...) })
			}
		})
	}

	t.Run("network create", func(t *testing.T) {
		for _, c := range []struct{ subnet, want string }{
			{"banana", `"banana"`},
			{"172.16.34.0/33", `"172.16.34.0/33"`},
			{"172.16.34.1/24", "host bits"},
			{"172.16.28.64/26", "overlaps network default"},
			{"172.16.33.0/29", "overlaps network tiny"},
		} {
			files, _ := os.ReadDir(netd)
			refused(t, map[bool]int{true: 2, false: 254}[strings.HasPrefix(c.want, `"`) || c.want == "host bits"],
				[]string{c.want}, "network", "create", "badnet", "--subnet="+c.subnet)
			if now, _ := os.ReadDir(netd); len(now) != len(files) {
				t.Errorf("network create --subnet=%s wrote a file", c.subnet)
			}
		}
	})
}

// TestNetAttachOverlap: on stage1-ns the pod starts while its network is
// attached (docs/networking.md, "The attach overlaps the stage1's start"),
// and its apps only once it is attached. With the lease lock of a network
// held, so that the attach waits, the pod's init already runs (stage0
// used to attach first: the pod stayed in prepare/ with no init), and its
// app, started after the lock is released, sees its address, route and
// hosts line at once. An attach that fails after the stage1 started (the
// in-process attach of a `skiff network create` network whose range is
// exhausted) fails the run in one line with 254 and leaves no pod, link,
// rule, lease or namespace file.
func TestNetAttachOverlap(t *testing.T) {
	e := newEnv(t)
	for name, subnet := range map[string]string{"ovl": "172.16.41.0/29", "ovltiny": "172.16.42.0/30"} {
		e.mustRun("network", "create", name, "--subnet="+subnet)
		t.Cleanup(func() { e.run("network", "rm", name) })
		// The bridge, rules and lease dir a network's first pod makes stay.
		e.mustRun("run", "--net="+name, image(t, "busybox.aci"), "--exec=/bin/true")
	}
	noLeaks(t, e)

	dir := filepath.Join(cni.LeaseDir, "ovl")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	save := filepath.Join(t.TempDir(), "uuid")
	c, out := e.start("run", "--uuid-file-save="+save, "--net=ovl", "--hostname=ovl", image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c",
		"date +%s; ip -4 -o addr show eth0; ip route; cat /etc/hosts")
	waitFor(t, "the pod's init while its attach waits", time.Minute, func() bool {
		b, _ := os.ReadFile(save)
		_, err := os.Stat(filepath.Join(e.dir, "pods", "run", strings.TrimSpace(string(b)), "pid"))
		return len(b) > 0 && err == nil || c.ProcessState != nil
	})
	time.Sleep(2 * time.Second)
	released := time.Now()
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if err := c.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	mustContain(t, out.String(), "inet 172.16.41.", "default via 172.16.41.1")
	if !regexp.MustCompile(`172\.16\.41\.\d+\s+ovl`).MatchString(out.String()) {
		t.Errorf("/etc/hosts does not name the pod's address:\n%s", out)
	}
	// Whole seconds: an app that ran at once, 2 s before, shows an
	// earlier second.
	m := regexp.MustCompile(`(?m)\b(\d{10})\s*$`).FindStringSubmatch(out.String())
	var started int64
	if m != nil {
		started, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if started < released.Unix() {
		t.Errorf("the app started at %d, before the attach could end (%d)\n%s", started, released.Unix(), out)
	}

	// An app sandbox (the CRI's) boots while it is attached too, and is
	// ready only once attached: an app added then sees its address.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	sbSave := filepath.Join(t.TempDir(), "uuid")
	sb, sbOut := e.start("app", "sandbox", "--uuid-file-save="+sbSave, "--net=ovl", "--hostname=ovlsb")
	var sbUUID string
	waitFor(t, "the sandbox's init while its attach waits", time.Minute, func() bool {
		b, _ := os.ReadFile(sbSave)
		sbUUID = strings.TrimSpace(string(b))
		_, err := os.Stat(filepath.Join(e.dir, "pods", "run", sbUUID, "pid"))
		return sbUUID != "" && err == nil || sb.ProcessState != nil
	})
	time.Sleep(2 * time.Second)
	if st := e.mustRun("status", "--format=json", sbUUID); strings.Contains(st, `"ready":true`) {
		t.Errorf("the sandbox is ready before its attach ended: %s", st)
	}
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	e.mustRun("status", "--wait-ready=60s", sbUUID)
	app := strings.TrimSpace(e.mustRun("app", "add", sbUUID, image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c",
		"ip -4 -o addr show eth0; cat /etc/hosts; exec sleep 100"))
	e.mustRun("app", "start", sbUUID, "--app="+app)
	var logs string
	waitFor(t, "the added app's output", 30*time.Second, func() bool {
		logs = e.mustRun("logs", "--app="+app, sbUUID)
		return strings.Contains(logs, "ovlsb")
	})
	mustContain(t, logs, "inet 172.16.41.")
	if !regexp.MustCompile(`172\.16\.41\.\d+\s+ovlsb`).MatchString(logs) {
		t.Errorf("the added app's /etc/hosts does not name the sandbox's address:\n%s", logs)
	}
	e.mustRun("stop", sbUUID)
	if err := sb.Wait(); err != nil {
		t.Errorf("app sandbox: %v\n%s", err, sbOut)
	}
	e.mustRun("rm", sbUUID)

	server(t, e, "--net=ovltiny") // the /30's one address
	before, pods := netState(t), e.mustRun("list", "--no-legend")
	// The refusal comes while the pod starts: a stop then once hung the
	// pod (its poweroff was lost). As a shell runs it, with stderr a file
	// that holds what was written when run ends, not when every writer has.
	for i := range 5 {
		code, errs := refused(t, e, "run", "--net=ovltiny", image(t, "busybox.aci"), "--exec=/bin/echo", "--", "not me")
		if code != 254 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "network ovltiny") || !strings.Contains(errs, "no IP addresses available") {
			t.Errorf("range exhausted (pod %d): exit %d: %q", i, code, errs)
		}
	}
	if code, errs := refused(t, e, "app", "sandbox", "--net=ovltiny"); code != 254 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "no IP addresses available") {
		t.Errorf("range exhausted, app sandbox: exit %d: %q", code, errs)
	}
	if after := netState(t); after != before {
		t.Errorf("a refused pod left:\n%s", lineDiff(before, after))
	}
	if after := e.mustRun("list", "--no-legend"); after != pods {
		t.Errorf("a refused pod is left:\n%s", after)
	}
}

// refused runs skiff with stderr a file, as `skiff run ... 2>err` in a
// shell does, and returns its status and what the file held when it ended.
func refused(t *testing.T, e *env, args ...string) (int, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, skiffBin, append([]string{"--dir=" + e.dir, "--local-config=" + e.config}, args...)...)
	c.Stderr = f
	err = c.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", args, err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%v did not end within 2 minutes: %s", args, b)
	}
	return c.ProcessState.ExitCode(), string(b)
}
