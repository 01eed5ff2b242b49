// Package podnet gives a pod the network it asks for and takes it back:
// its network namespace, its CNI attachments and published ports, its
// resolv.conf and /etc/hosts lines (docs/networking.md). stage0 attaches
// a pod before it execs the stage1, so that every failure comes before any
// stage1 runs; gc and rm detach it, from the pod dir alone.
package podnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/netns"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// Host-wide places of pod networks (docs/networking.md). Both live in /run,
// which a reboot clears together with the links and iptables rules they
// account for; the leases are host-wide because the bridge is.
const (
	netnsDir = "/run/skiff/netns" // one namespace file per pod, by UUID
	IPAMDir  = cni.LeaseDir       // host-local leases of the built-in network (and of those `skiff network create` makes)
	// netDirName is the directory of named networks in --local-config.
	netDirName = "net.d"
	// maxResolvConf bounds the host's resolv.conf copied into a pod.
	maxResolvConf = 64 << 10
	// resolvedConf lists systemd-resolved's upstream servers.
	resolvedConf = "/run/systemd/resolve/resolv.conf"
)

// Request is what a pod asks of its network: skiff run's flags.
type Request struct {
	// Net is --net: "default", network names separated by commas,
	// "host" or "none".
	Net string
	// Publish is --publish ([HOSTIP:]HOSTPORT:PORT[/PROTO]), Ports --port
	// (NAME:[HOSTIP:]HOSTPORT).
	Publish, Ports []string
	// DNS, DNSSearch and DNSOpts make the pod's resolv.conf (DNS "host",
	// or none of the three: the host's).
	DNS, DNSSearch, DNSOpts []string
	// HostsEntries are IP=NAME lines of every app's /etc/hosts.
	HostsEntries []string
}

// Extra reports whether any flag besides --net needs a pod network.
func (r Request) Extra() bool {
	return len(r.Publish)+len(r.Ports)+len(r.DNS)+len(r.DNSSearch)+len(r.DNSOpts)+len(r.HostsEntries) > 0
}

// Check checks --net's syntax (host, none, or networks by name) and that
// the other flags go with it.
func (r Request) Check() error {
	switch r.Net {
	case "host", "none":
		if r.Extra() {
			return usagef("--net=%s: --publish, --port, --dns and --hosts-entry need a pod network", r.Net)
		}
		return nil
	}
	for _, name := range strings.Split(r.Net, ",") {
		if name == "" || name == "host" || name == "none" || strings.ContainsAny(name, "/: \t\n") {
			return usagef("--net=%s: want host, none, or network names separated by commas", r.Net)
		}
	}
	return nil
}

// UsageError is an error in the flags of a Request (stage0 exits 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usage marks the error as one of how skiff was called.
func (UsageError) Usage() bool { return true }

func usagef(format string, a ...any) error { return UsageError{fmt.Errorf(format, a...)} }

// Host is the pod networks of one data dir on this host.
type Host struct {
	Dir         string // the data dir, whose pods' published ports are taken
	LocalConfig string // --local-config, whose net.d names networks
	Log         *slog.Logger
}

func netnsPath(uuid string) string { return filepath.Join(netnsDir, uuid) }

// Attach gives a locked pod the network r asks for, hostname being the
// pod's, and returns the path of its network namespace, or "" when the
// stage1 makes the pod's network itself (host, none, or the default of a
// stage1 older than interface version 2). Attach makes the namespace,
// attaches it to its CNI networks (so a bad network, a taken port or an
// exhausted range fails before any stage1 runs), caches the results in the
// pod dir, and writes the pod's resolv.conf and hosts lines there. On
// error nothing is left attached.
func (h Host) Attach(ctx context.Context, p *pod.Pod, r Request, hostname string) (string, error) {
	pl, err := h.plan(p, r)
	if pl == nil || err != nil {
		return "", err
	}
	start := time.Now()
	// A published port is checked and taken under one host-wide lock.
	if len(pl.ports) > 0 {
		unlock, err := lockPublish()
		if err != nil {
			return "", err
		}
		defer unlock()
		if err := h.checkPodPorts(p.UUID, pl.ports); err != nil {
			return "", err
		}
	}
	path, err := h.begin(p, pl)
	if err != nil {
		return "", err
	}
	if err := h.add(ctx, p, pl, hostname); err != nil {
		return "", errors.Join(err, h.Detach(p))
	}
	h.Log.Debug("network attached", "pod", p.UUID, "netns", path, "took", time.Since(start))
	return path, nil
}

// Begin is the first half of Attach for a pod whose stage1 starts while
// its network is attached (pod.FeatureNetWait): it checks r, makes the
// namespace and writes the pod's resolv.conf, and returns the namespace's
// path and the job that Finish, in another process, takes. It returns ""
// and no job for a pod whose network is not attached in two halves: host,
// none, a stage1 that makes its own, and a pod that publishes ports
// (checked and taken under one lock with the attach). On error nothing is
// left.
func (h Host) Begin(p *pod.Pod, r Request, hostname string) (string, []byte, error) {
	pl, err := h.plan(p, r)
	if pl == nil || err != nil || len(pl.ports) > 0 {
		return "", nil, err
	}
	job, err := json.Marshal(finishJob{UUID: p.UUID, Request: r, Hostname: hostname})
	if err != nil {
		return "", nil, fmt.Errorf("network setup: %w", err)
	}
	path, err := h.begin(p, pl)
	if err != nil {
		return "", nil, err
	}
	return path, job, nil
}

// finishJob is what Finish is given: the pod, the request Begin checked,
// the pod's hostname.
type finishJob struct {
	UUID     string
	Request  Request
	Hostname string
}

// Finish is Attach's second half for a pod Begin made the namespace of:
// the CNI ADD, the results cached and the hosts lines written. It returns
// the pod (nil when the job names none). On error nothing is left
// attached; the namespace is left for Detach (the pod's removal).
func (h Host) Finish(ctx context.Context, job []byte) (*pod.Pod, error) {
	var j finishJob
	if err := json.Unmarshal(job, &j); err != nil {
		return nil, fmt.Errorf("network setup: %w", err)
	}
	p, err := pod.Load(h.Dir, j.UUID)
	if err != nil {
		return nil, fmt.Errorf("network setup: %w", err)
	}
	start := time.Now()
	pl, err := h.plan(p, j.Request)
	if err == nil && pl == nil {
		err = fmt.Errorf("network setup: pod %s asks for no network", p.UUID)
	}
	if err == nil {
		err = h.add(ctx, p, pl, j.Hostname)
	}
	if err != nil {
		// The namespace stays until the pod is removed: the stage1 may be
		// opening it.
		return p, err
	}
	h.Log.Debug("network attached", "pod", p.UUID, "netns", netnsPath(p.UUID), "took", time.Since(start))
	return p, nil
}

// plan is a pod's network request, checked.
type plan struct {
	nets          []*cni.Network
	ports         []cni.PortMapping
	resolv, hosts string // resolv.conf, --hosts-entry lines
}

// plan checks r for pod p; nil when the stage1 makes the pod's network.
func (h Host) plan(p *pod.Pod, r Request) (*plan, error) {
	if r.Net == "host" || r.Net == "none" {
		return nil, nil
	}
	s1, err := pod.ReadStage1(p.Path())
	if err != nil {
		return nil, err
	}
	if s1.Version < 2 {
		if r.Net == "default" && !r.Extra() {
			return nil, nil // the stage1's own default (stage1-kvm: loopback only)
		}
		return nil, fmt.Errorf("--net=%s: stage1 %s implements interface version %d, which has no pod networks", r.Net, s1.Name, s1.Version)
	}
	var pl plan
	if pl.nets, err = h.networks(r.Net); err != nil {
		return nil, err
	}
	if pl.ports, err = r.portMappings(p); err != nil {
		return nil, err
	}
	if pl.resolv, err = r.resolvConf(); err != nil {
		return nil, err
	}
	if pl.hosts, err = r.hostsEntries(); err != nil {
		return nil, err
	}
	return &pl, nil
}

// begin makes the pod's namespace and writes its resolv.conf.
func (h Host) begin(p *pod.Pod, pl *plan) (string, error) {
	path := netnsPath(p.UUID)
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return "", fmt.Errorf("network setup: %w", err)
	}
	if err := netns.Create(path); err != nil {
		return "", fmt.Errorf("network setup: %w", err)
	}
	err := os.MkdirAll(p.File(pod.NetDir), 0o700) // as cni.Setup makes it
	if err == nil {
		// Not synced, nor hosts (add): both are written again at every
		// attach, and a host crash ends the pod they are for.
		err = safefile.WriteUnsynced(p.File(pod.NetResolvConf), []byte(pl.resolv), 0o644)
	}
	if err != nil {
		return "", errors.Join(fmt.Errorf("network setup: %w", err), h.Detach(p))
	}
	return path, nil
}

// add attaches the namespace begin made to the pod's networks and writes
// its hosts lines; on error it tears down what it attached (not the
// namespace).
func (h Host) add(ctx context.Context, p *pod.Pod, pl *plan, hostname string) error {
	res, err := cni.New(nil, h.Log).Setup(ctx, cni.Pod{
		ID: p.UUID, NetNS: netnsPath(p.UUID), CacheDir: p.File(pod.NetDir), Networks: pl.nets, Ports: pl.ports,
	})
	hosts := pl.hosts
	if err == nil {
		for _, r := range res {
			for _, ip := range r.IPs {
				hosts = fmt.Sprintf("%s\t%s\n", ip.Addr(), hostname) + hosts
			}
		}
		err = safefile.WriteUnsynced(p.File(pod.NetHosts), []byte(hosts), 0o644)
	}
	if err != nil {
		if strings.Contains(err.Error(), "no IP addresses available") {
			err = fmt.Errorf("%w (exited pods hold their addresses until `skiff gc` releases them)", err)
		}
		return errors.Join(err, cni.New(nil, h.Log).Teardown(context.Background(), p.File(pod.NetDir)))
	}
	return nil
}

// Detach tears down what Attach made for the pod, from the pod dir
// alone: CNI DEL with the cached results, then the namespace file. It can
// be repeated; a pod that never had a network has nothing to do.
func (h Host) Detach(p *pod.Pod) error {
	if err := cni.New(nil, h.Log).Teardown(context.Background(), p.File(pod.NetDir)); err != nil {
		return err
	}
	if err := netns.Remove(netnsPath(p.UUID)); err != nil {
		return fmt.Errorf("network teardown: %w", err)
	}
	return nil
}

// NetDir is where named networks are: LocalConfig/net.d.
func (h Host) NetDir() string { return filepath.Join(h.LocalConfig, netDirName) }

// Networks loads every network of this host: the built-in default and the
// .conflist files of NetDir, by name. bad joins the errors of the files
// that did not load (one line each); the others are still there.
func (h Host) Networks() (nets map[string]*cni.Network, bad, err error) {
	def, err := cni.DefaultNetwork(cni.DefaultBridge, cni.DefaultSubnet, IPAMDir)
	if err != nil {
		return nil, nil, err
	}
	nets, bad = cni.Load(h.NetDir(), []string{cni.PluginDir}, def)
	return nets, bad, nil
}

// networks finds the networks --net names: the built-in default and the
// .conflist files of --local-config/net.d.
func (h Host) networks(names string) ([]*cni.Network, error) {
	all, lerr, err := h.Networks()
	if err != nil {
		return nil, err
	}
	dir := h.NetDir()
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
		h.Log.Debug("network configs", "err", lerr) // shown when a pod asks for a network a bad file would define
	}
	return nets, nil
}
