package podnet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/pod"
)

// portMappings parses --publish and resolves --port NAME:[HOSTIP:]HOSTPORT
// and the pod manifest's own ports (--pod-manifest's) against the appc
// ports of the pod's apps.
func (n Request) portMappings(p *pod.Pod) ([]cni.PortMapping, error) {
	b, err := p.ReadFile(pod.ManifestFile, pod.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	pm, err := pod.ParseManifest(b)
	if err != nil {
		return nil, err
	}
	for _, ep := range pm.Ports {
		host := ""
		if ep.HostIP != nil {
			host = ep.HostIP.String() + ":"
		}
		n.Ports = append(n.Ports, fmt.Sprintf("%s:%s%d", ep.Name, host, ep.HostPort))
	}
	if len(n.Publish)+len(n.Ports) == 0 {
		return nil, nil
	}
	var known []types.Port
	for _, ra := range pm.Apps {
		if ra.App != nil {
			known = append(known, ra.App.Ports...)
		}
	}
	var ms []cni.PortMapping
	for _, s := range n.Publish {
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
	for _, s := range n.Ports {
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
func (h Host) checkPodPorts(self string, ms []cni.PortMapping) error {
	if len(ms) == 0 {
		return nil
	}
	pods, err := pod.List(h.Dir)
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

var dnatRule = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`-p (tcp|udp) .*id: \\"([^\\]*)\\".*--dports ([0-9,]+)`)
})

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
	for _, m := range dnatRule().FindAllStringSubmatch(rules, -1) {
		for _, port := range strings.Split(m[3], ",") {
			taken[m[1]+"/"+port] = m[2]
		}
	}
	return taken
}
