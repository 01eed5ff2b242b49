package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/netns"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/stage1"
)

// Host-wide places of pod networks (docs/networking.md). Both live in /run,
// which a reboot clears together with the links and iptables rules they
// account for; the leases are host-wide because the bridge is.
const (
	netnsDir = "/run/skiff/netns"    // one namespace file per pod, by UUID
	ipamDir  = "/run/skiff/networks" // host-local leases of the built-in network
	// netDirName is the directory of named networks in --local-config.
	netDirName = "net.d"
	// maxResolvConf bounds the host's resolv.conf copied into a pod.
	maxResolvConf = 64 << 10
	// resolvedConf lists systemd-resolved's upstream servers.
	resolvedConf = "/run/systemd/resolve/resolv.conf"
)

// netFlags are the pod flags that shape its network.
type netFlags struct {
	publish, ports                     []string
	dns, dnsSearch, dnsOpts, hostsEntr []string
}

// netRequested reports whether any flag needs a pod network.
func (n netFlags) requested() bool {
	return len(n.publish)+len(n.ports)+len(n.dns)+len(n.dnsSearch)+len(n.dnsOpts)+len(n.hostsEntr) > 0
}

// checkNet checks --net's syntax: host, none, or networks by name.
func checkNet(s string, n netFlags) error {
	switch s {
	case "host", "none":
		if n.requested() {
			return usagef("--net=%s: --publish, --port, --dns and --hosts-entry need a pod network", s)
		}
		return nil
	}
	for _, name := range strings.Split(s, ",") {
		if name == "" || name == "host" || name == "none" || strings.ContainsAny(name, "/: \t\n") {
			return usagef("--net=%s: want host, none, or network names separated by commas", s)
		}
	}
	return nil
}

func netnsPath(uuid string) string { return filepath.Join(netnsDir, uuid) }

// attachNet gives a locked pod the network it asks for and returns the
// stage1's run options for it. With a stage1 of interface version 2, stage0
// itself makes the pod's network namespace and attaches it to its CNI
// networks (so a bad network, a taken port or an exhausted range fails
// before any stage1 runs), caches the results in the pod dir, and writes
// the pod's resolv.conf and hosts lines there. On error nothing is left
// attached.
func attachNet(ctx context.Context, g *globals, p *pod.Pod, f *podFlags, hostname string) (stage1.RunOptions, error) {
	o := stage1.RunOptions{Net: f.net, Hostname: hostname, Interactive: f.interactive}
	if f.net == "host" || f.net == "none" {
		return o, nil
	}
	s1, err := pod.ReadStage1(p.Path())
	if err != nil {
		return o, err
	}
	if s1.Version < 2 {
		if f.net == "default" && !f.netFlags.requested() {
			return o, nil // the stage1's own default (stage1-kvm: loopback only)
		}
		return o, fmt.Errorf("--net=%s: stage1 %s implements interface version %d, which has no pod networks", f.net, s1.Name, s1.Version)
	}
	nets, err := resolveNets(g, f.net)
	if err != nil {
		return o, err
	}
	ports, err := f.netFlags.portMappings(p)
	if err != nil {
		return o, err
	}
	resolv, err := f.netFlags.resolvConf()
	if err != nil {
		return o, err
	}
	hosts, err := f.netFlags.hostsEntries()
	if err != nil {
		return o, err
	}
	start := time.Now()
	// A published port is checked and taken under one host-wide lock.
	if len(ports) > 0 {
		unlock, err := lockPublish()
		if err != nil {
			return o, err
		}
		defer unlock()
		if err := checkPodPorts(g, p.UUID, ports); err != nil {
			return o, err
		}
	}
	path := netnsPath(p.UUID)
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return o, fmt.Errorf("network setup: %w", err)
	}
	if err := netns.Create(path); err != nil {
		return o, fmt.Errorf("network setup: %w", err)
	}
	res, err := cni.New(nil, g.log).Setup(ctx, cni.Pod{
		ID: p.UUID, NetNS: path, CacheDir: p.File(pod.NetDir), Networks: nets, Ports: ports,
	})
	if err == nil {
		for _, r := range res {
			for _, ip := range r.IPs {
				hosts = fmt.Sprintf("%s\t%s\n", ip.Addr(), hostname) + hosts
			}
		}
		err = errors.Join(
			safefile.WriteFile(p.File(pod.NetResolvConf), []byte(resolv), 0o644, true),
			safefile.WriteFile(p.File(pod.NetHosts), []byte(hosts), 0o644, true))
	}
	if err != nil {
		if strings.Contains(err.Error(), "no IP addresses available") {
			err = fmt.Errorf("%w (exited pods hold their addresses until `skiff gc` releases them)", err)
		}
		return o, errors.Join(err, detachNet(g, p))
	}
	g.log.Debug("network attached", "pod", p.UUID, "netns", path, "took", time.Since(start))
	o.Net, o.NetNS = "", path
	return o, nil
}

// detachNet tears down what attachNet made for the pod, from the pod dir
// alone: CNI DEL with the cached results, then the namespace file. It can
// be repeated; a pod that never had a network has nothing to do.
func detachNet(g *globals, p *pod.Pod) error {
	if err := cni.New(nil, g.log).Teardown(context.Background(), p.File(pod.NetDir)); err != nil {
		return err
	}
	if err := netns.Remove(netnsPath(p.UUID)); err != nil {
		return fmt.Errorf("network teardown: %w", err)
	}
	return nil
}

// resolveNets finds the networks --net names: the built-in default and the
// .conflist files of --local-config/net.d.
func resolveNets(g *globals, names string) ([]*cni.Network, error) {
	def, err := cni.DefaultNetwork(cni.DefaultBridge, cni.DefaultSubnet, ipamDir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(g.localConfig, netDirName)
	all, lerr := cni.Load(dir, []string{cni.PluginDir}, def)
	var nets []*cni.Network
	for _, name := range strings.Split(names, ",") {
		n := all[name]
		if n == nil {
			err := fmt.Errorf("--net: unknown network %q (no %s/*.conflist defines it)", name, dir)
			if lerr != nil {
				err = fmt.Errorf("%w; %s", err, strings.ReplaceAll(lerr.Error(), "\n", "; "))
			}
			return nil, err
		}
		if slices.Contains(nets, n) {
			return nil, usagef("--net=%s: network %q given twice", names, name)
		}
		nets = append(nets, n)
	}
	if lerr != nil {
		g.log.Debug("network configs", "err", lerr) // shown when a pod asks for a network a bad file would define
	}
	return nets, nil
}

// portMappings parses --publish and resolves --port NAME:[HOSTIP:]HOSTPORT
// against the appc ports of the pod's apps.
func (n netFlags) portMappings(p *pod.Pod) ([]cni.PortMapping, error) {
	if len(n.publish)+len(n.ports) == 0 {
		return nil, nil
	}
	b, err := p.ReadFile(pod.ManifestFile, pod.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	pm, err := pod.ParseManifest(b)
	if err != nil {
		return nil, err
	}
	var known []types.Port
	for _, ra := range pm.Apps {
		if ra.App != nil {
			known = append(known, ra.App.Ports...)
		}
	}
	var ms []cni.PortMapping
	for _, s := range n.publish {
		m, err := cni.ParsePort(s)
		if err != nil {
			return nil, usagef("--publish=%s: %v", s, err)
		}
		// A port the apps declare only with the other protocol would
		// be published to nothing.
		same := func(k types.Port) bool { return k.Port == uint(m.PodPort) }
		if slices.ContainsFunc(known, same) && !slices.ContainsFunc(known, func(k types.Port) bool { return same(k) && k.Protocol == m.Protocol }) {
			k := known[slices.IndexFunc(known, same)]
			return nil, usagef("--publish=%s: the pod's port %d is %s (%s), not %s", s, m.PodPort, k.Protocol, k.Name, m.Protocol)
		}
		ms = append(ms, m)
	}
	for _, s := range n.ports {
		name, host, ok := strings.Cut(s, ":")
		i := slices.IndexFunc(known, func(k types.Port) bool { return k.Name.String() == name })
		if !ok || i < 0 {
			var names []string
			for _, k := range known {
				names = append(names, k.Name.String())
			}
			return nil, usagef("--port=%s: want NAME:[HOSTIP:]HOSTPORT with NAME one of the apps' ports (%s)", s, strings.Join(names, ", "))
		}
		k := known[i]
		if k.Protocol != "tcp" && k.Protocol != "udp" {
			return nil, usagef("--port=%s: port %s has protocol %q: only tcp and udp can be published", s, name, k.Protocol)
		}
		m, err := cni.ParsePort(fmt.Sprintf("%s:%d/%s", host, k.Port, k.Protocol))
		if err != nil {
			return nil, usagef("--port=%s: %v", s, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// checkPodPorts refuses a host port that another pod publishes: that is
// an iptables rule, not a socket cni.CheckPorts would find. Pods of this
// data dir are found by their records (also an exited pod not yet torn
// down), anyone else by portmap's rules.
func checkPodPorts(g *globals, self string, ms []cni.PortMapping) error {
	if len(ms) == 0 {
		return nil
	}
	pods, err := pod.List(g.dir)
	if err != nil {
		return err
	}
	dnat := hostDNAT()
	for _, m := range ms {
		if id, ok := dnat[fmt.Sprintf("%s/%d", m.Protocol, m.HostPort)]; ok && id != self {
			return fmt.Errorf("network setup: publish %s: %w (published for %s)", m, cni.ErrPortTaken, id)
		}
	}
	for _, o := range pods {
		if o.UUID == self {
			continue
		}
		_, theirs, err := cni.Cached(o.File(pod.NetDir))
		if err != nil {
			continue // gone, or being torn down
		}
		for _, m := range ms {
			for _, t := range theirs {
				if m.HostPort == t.HostPort && m.Protocol == t.Protocol &&
					(!m.HostIP.IsValid() || !t.HostIP.IsValid() || m.HostIP == t.HostIP) {
					return fmt.Errorf("network setup: publish %s: %w (pod %s publishes %s)", m, cni.ErrPortTaken, o.UUID, t)
				}
			}
		}
	}
	return nil
}

// publishLock serialises publishing host ports on this host.
const publishLock = "/run/skiff/publish.lock"

// lockPublish takes publishLock (waiting for it) and returns its release.
func lockPublish() (func(), error) {
	if err := os.MkdirAll(filepath.Dir(publishLock), 0o755); err != nil {
		return nil, fmt.Errorf("network setup: %w", err)
	}
	f, err := os.OpenFile(publishLock, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network setup: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("network setup: lock %s: %w", publishLock, err)
	}
	return func() { f.Close() }, nil
}

var dnatRule = regexp.MustCompile(`-p (tcp|udp) .*id: \\"([^\\]*)\\".*--dports ([0-9,]+)`)

// hostDNAT returns the host ports portmap publishes for anyone on this
// host (other data dirs, other CNI users): "tcp/8080" -> container ID.
func hostDNAT() map[string]string {
	out, err := exec.Command("iptables", "-w", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT").Output()
	if err != nil {
		return nil // no chain: nothing published yet
	}
	return parseDNAT(string(out))
}

func parseDNAT(rules string) map[string]string {
	taken := map[string]string{}
	for _, m := range dnatRule.FindAllStringSubmatch(rules, -1) {
		for _, port := range strings.Split(m[3], ",") {
			taken[m[1]+"/"+port] = m[2]
		}
	}
	return taken
}

// resolvConf returns the pod's resolv.conf: the --dns flags', or the
// host's (--dns=host, the default).
func (n netFlags) resolvConf() (string, error) {
	if len(n.dns) == 0 || slices.Equal(n.dns, []string{"host"}) {
		if len(n.dnsSearch)+len(n.dnsOpts) == 0 {
			b, err := safefile.ReadFile("/etc/resolv.conf", maxResolvConf)
			if errors.Is(err, os.ErrNotExist) {
				return "", nil
			}
			if err != nil {
				return "", fmt.Errorf("--dns=host: %w", err)
			}
			// systemd-resolved's upstream servers, for a host whose own
			// file names only its stub on loopback.
			up, _ := safefile.ReadFile(resolvedConf, maxResolvConf)
			return podResolvConf(string(b), string(up)), nil
		}
	}
	var b strings.Builder
	for _, s := range n.dns {
		if s == "host" {
			return "", usagef("--dns=host cannot be combined with other --dns, --dns-search or --dns-opt flags")
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return "", usagef("--dns=%s: not an IP address", s)
		}
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	for _, l := range []struct {
		key, flag string
		vals      []string
	}{{"search", "--dns-search", n.dnsSearch}, {"options", "--dns-opt", n.dnsOpts}} {
		if len(l.vals) == 0 {
			continue
		}
		for _, v := range l.vals {
			if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) {
				return "", usagef("%s=%q: want a word of printable characters", l.flag, v)
			}
		}
		fmt.Fprintf(&b, "%s %s\n", l.key, strings.Join(l.vals, " "))
	}
	return b.String(), nil
}

// podResolvConf turns the host's resolv.conf into the pod's: a nameserver
// on loopback is the host's own and unreachable from the pod's namespace,
// so such lines are left out; when that leaves none, resolved (the upstream
// servers of systemd-resolved, if the host runs it) is used instead.
func podResolvConf(host, resolved string) string {
	var b strings.Builder
	servers, dropped := 0, 0
	for l := range strings.Lines(host) {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.IsLoopback() {
				dropped++
				continue
			}
			servers++
		}
		b.WriteString(l)
	}
	if dropped > 0 && servers == 0 && resolved != "" {
		return resolved
	}
	return b.String()
}

// hostsEntries returns the /etc/hosts lines of --hosts-entry IP=NAME.
func (n netFlags) hostsEntries() (string, error) {
	var b strings.Builder
	for _, e := range n.hostsEntr {
		ip, name, _ := strings.Cut(e, "=")
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return "", usagef("--hosts-entry=%s: want IP=NAME", e)
		}
		if err := checkHostname(name); err != nil {
			return "", usagef("--hosts-entry=%s: %v", e, err)
		}
		fmt.Fprintf(&b, "%s\t%s\n", a, name)
	}
	return b.String(), nil
}

// podStatus is what status and list show: the pod's status and its
// networks, from the attachment records in its dir.
type podStatus struct {
	pod.Status
	Networks []netStatus       `json:"networks,omitempty"`
	Ports    []cni.PortMapping `json:"ports,omitempty"`
}

// netStatus is one network a pod is attached to.
type netStatus struct {
	Network   string         `json:"network"`
	Interface string         `json:"interface"`
	IPs       []netip.Prefix `json:"ips"`
}

func withNet(p *pod.Pod, st pod.Status) podStatus {
	ps := podStatus{Status: st}
	res, ports, err := cni.Cached(p.File(pod.NetDir))
	if err != nil {
		return ps // removed or torn down while we looked
	}
	for _, r := range res {
		ps.Networks = append(ps.Networks, netStatus{Network: r.Network, Interface: r.Interface, IPs: r.IPs})
	}
	ps.Ports = ports
	return ps
}

// addresses lists the pod's addresses, without prefix lengths.
func (ps podStatus) addresses() []string {
	var a []string
	for _, n := range ps.Networks {
		for _, ip := range n.IPs {
			a = append(a, ip.Addr().String())
		}
	}
	return a
}
