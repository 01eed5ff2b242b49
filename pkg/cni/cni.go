// Package cni attaches a pod's network namespace to CNI networks with the
// real plugin binaries (libcni; Debian's containernetworking-plugins), and
// detaches it again from nothing but what Setup cached in a directory the
// caller gives (the pod's own dir), so cleanup works after any crash.
//
// Networks are .conflist files validated by Load, plus the built-in
// "default" network (DefaultNetwork). Port mappings are podman's form
// (ParsePort) and go to the first network through the portmap plugin.
package cni

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/skiffpod/skiff/pkg/netns"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// An Attacher connects a pod's network namespace to networks (Setup) and
// disconnects it (Teardown). The pod is named by its cache dir: everything
// Teardown needs is written there by Setup, before each network is added.
// Calls for one cache dir must not run concurrently (the pod lock orders
// them).
type Attacher interface {
	Setup(ctx context.Context, p Pod) ([]Result, error)
	Teardown(ctx context.Context, cacheDir string) error
}

var _ Attacher = (*Plugins)(nil)

// Pod says what Setup attaches.
type Pod struct {
	ID       string     // pod UUID; the CNI container ID
	NetNS    string     // path of the pod's network namespace file
	CacheDir string     // dir for attachment records and CNI results (in the pod dir)
	Networks []*Network // attached in order as eth0, eth1, ...
	Ports    []PortMapping
}

// A Result is what one network gave the pod.
type Result struct {
	Network   string
	Interface string // inside the pod
	IPs       []netip.Prefix
	Gateway   netip.Addr
	Routes    []Route
	DNS       DNS
}

// A Route inside the pod; GW zero means the interface's gateway.
type Route struct {
	Dst netip.Prefix
	GW  netip.Addr
}

// DNS is what the network suggests for the pod's resolv.conf.
type DNS struct {
	Nameservers []string
	Domain      string
	Search      []string
	Options     []string
}

// Plugins runs CNI plugin binaries found in Dirs. It holds no state of its
// own and is safe for concurrent use on different pods.
type Plugins struct {
	dirs []string
	log  *slog.Logger
}

// New returns Plugins looking for binaries in dirs (PluginDir if empty),
// logging to log (nothing if nil).
func New(dirs []string, log *slog.Logger) *Plugins {
	if len(dirs) == 0 {
		dirs = []string{PluginDir}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Plugins{dirs: dirs, log: log}
}

// attachment is the record Setup writes before adding a network: all a DEL
// needs. The CNI result itself is cached next to it by libcni (results/).
type attachment struct {
	PodID   string          `json:"podID"`
	NetNS   string          `json:"netns"`
	IfName  string          `json:"ifName"`
	Network string          `json:"network"`
	Config  json.RawMessage `json:"config"`
	Ports   []PortMapping   `json:"ports,omitempty"`
	// Result is the last plugin's ADD result, kept as soon as it returns:
	// the prevResult for DEL if libcni never got to cache the whole chain's.
	Result json.RawMessage `json:"result,omitempty"`
}

// records lists the attachment records in dir, in the order they were
// added. A missing dir has none.
func records(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []string
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, "attach-") && strings.HasSuffix(n, ".json") {
			recs = append(recs, filepath.Join(dir, n))
		}
	}
	return recs, nil // ReadDir sorts by name: attach-000-…, attach-001-…
}

// readRecord reads one attachment record.
func readRecord(file string) (attachment, error) {
	var a attachment
	b, err := readConf(file)
	if err == nil {
		err = json.Unmarshal(b, &a)
	}
	return a, err
}

// Setup adds the pod to each network in order. Port mappings are checked
// and then published on the first network. If any step fails, everything
// already added is deleted again and the error says which network failed.
func (c *Plugins) Setup(ctx context.Context, p Pod) ([]Result, error) {
	if len(p.Networks) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(p.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("network setup: %w", err)
	}
	if old, err := records(p.CacheDir); err != nil || len(old) > 0 {
		return nil, fmt.Errorf("network setup %s: %w", p.CacheDir, cmp.Or(err, ErrAttached))
	}
	if err := CheckPorts(p.Ports); err != nil {
		return nil, fmt.Errorf("network setup: %w", err)
	}
	for _, n := range p.Networks {
		if n == nil || n.list == nil {
			return nil, fmt.Errorf("network setup: %w: a network not from Load or DefaultNetwork", ErrConfig)
		}
	}
	// The host rules are checked (and added when missing) beside the
	// plugins: the pod's apps start only after Setup returns.
	rules := make(chan error, 1)
	go func() { rules <- ensureRules(p.Networks) }()
	var results []Result
	var err error
	for i, n := range p.Networks {
		var r Result
		if r, err = c.add(ctx, p, i, n); err != nil {
			break
		}
		forgetNeighbours(c.log, r.IPs)
		results = append(results, r)
	}
	if rerr := <-rules; err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		err = fmt.Errorf("network setup: %w", err)
		// Roll back even when ctx was what ended the setup.
		if terr := c.Teardown(context.WithoutCancel(ctx), p.CacheDir); terr != nil {
			err = errors.Join(err, fmt.Errorf("roll back: %w", terr))
		}
		return nil, err
	}
	return results, nil
}

// withoutPortmap returns list without its portmap plugins: with no port
// to publish, portmap has nothing to do but costs a run (and another at
// teardown).
func withoutPortmap(list *libcni.NetworkConfigList) (*libcni.NetworkConfigList, error) {
	if !slices.ContainsFunc(list.Plugins, func(p *libcni.PluginConfig) bool { return p.Network.Type == "portmap" }) {
		return list, nil
	}
	var conf map[string]any
	if err := json.Unmarshal(list.Bytes, &conf); err != nil {
		return nil, err
	}
	plugins, _ := conf["plugins"].([]any)
	plugins = slices.DeleteFunc(plugins, func(p any) bool {
		m, _ := p.(map[string]any)
		return m["type"] == "portmap"
	})
	if len(plugins) == 0 {
		return list, nil // portmap alone: let it say what it makes of that
	}
	conf["plugins"] = plugins
	b, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

func (c *Plugins) add(ctx context.Context, p Pod, i int, n *Network) (Result, error) {
	list := n.list
	a := attachment{PodID: p.ID, NetNS: p.NetNS, IfName: fmt.Sprintf("eth%d", i), Network: n.Name}
	if i == 0 && len(p.Ports) > 0 {
		a.Ports = p.Ports
	} else {
		var err error
		if list, err = withoutPortmap(list); err != nil {
			return Result{}, fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	a.Config = list.Bytes // what DEL runs is what ADD ran
	k := c.newKeeper(filepath.Join(p.CacheDir, fmt.Sprintf("attach-%03d-%s.json", i, n.Name)), &a)
	inproc := n.inproc != nil && len(a.Ports) == 0
	// An in-process attachment whose leases are on a tmpfs is all in the
	// kernel and in memory: what a power loss could tear in its record, the
	// reboot clears on the host too (Teardown forgets an empty record), so
	// its record is not synced (1–70 ms of a pod's start on a loaded host).
	sync := !inproc || !n.inproc.volatile()
	if err := writeRecord(k.file, a, sync); err != nil {
		return Result{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	if inproc {
		c.log.Debug("add in-process", "network", n.Name, "pod", p.ID, "if", a.IfName)
		res, err := n.inproc.add(ctx, n.Name, p.ID, p.NetNS, a.IfName)
		if err == nil {
			if a.Result, err = json.Marshal(res); err == nil {
				err = writeRecord(k.file, a, sync)
			}
		}
		if err != nil {
			return Result{}, fmt.Errorf("network %s: %w", n.Name, err)
		}
		return convert(n.Name, a.IfName, res)
	}
	c.log.Debug("cni add", "network", n.Name, "pod", p.ID, "if", a.IfName)
	cfg := libcni.NewCNIConfigWithCacheDir(c.dirs, p.CacheDir, k)
	res, err := cfg.AddNetworkList(ctx, list, a.runtime(p.CacheDir))
	if err != nil {
		return Result{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	r, err := convert(n.Name, a.IfName, res)
	if err != nil {
		return Result{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	return r, nil
}

func (a attachment) runtime(cacheDir string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: a.PodID, NetNS: a.NetNS, IfName: a.IfName, CacheDir: cacheDir}
	if len(a.Ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": capability(a.Ports)}
	}
	return rt
}

// Teardown deletes every attachment recorded in cacheDir, last first, with
// the cached CNI result as prevResult. A record is removed once its DEL
// succeeded, so Teardown can be repeated until it returns nil; an empty or
// missing cacheDir is nothing to do.
func (c *Plugins) Teardown(ctx context.Context, cacheDir string) error {
	recs, err := records(cacheDir)
	if err != nil {
		return fmt.Errorf("network teardown: %w", err)
	}
	var errs []error
	for _, f := range slices.Backward(recs) {
		err := c.del(ctx, cacheDir, f)
		var gone pluginGone
		if fi, serr := os.Stat(f); serr == nil && fi.Size() == 0 {
			// Only a crash of the host between the rename and the data
			// reaching the disk leaves an empty record: one not synced,
			// whose attachment the reboot cleared.
			c.log.Warn(fmt.Sprintf("network teardown: %s is empty (the host crashed after it was written): forgetting it", f))
			err = os.Remove(f)
		} else if errors.As(err, &gone) {
			// DEL cannot run, now or ever: forgetting the attachment is
			// what lets the pod be collected at all.
			c.log.Warn(fmt.Sprintf("network teardown: %v: forgetting the pod's attachment (what the plugin made for it on the host, such as its address lease and rules, is left)", gone))
			err = os.Remove(f)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("network teardown %s: %w", filepath.Base(f), err))
		}
	}
	return errors.Join(errs...)
}

// pluginGone: a plugin an attachment was made with is no longer installed.
type pluginGone struct{ network, plugin, dirs string }

func (e pluginGone) Error() string {
	return fmt.Sprintf("plugin %q of network %s is gone from %s", e.plugin, e.network, e.dirs)
}

// missingPlugin returns the first plugin of list (or its IPAM) that is
// not installed, as a pluginGone; nil if all are.
func (c *Plugins) missingPlugin(list *libcni.NetworkConfigList) error {
	for _, p := range list.Plugins {
		var pc pluginConf
		if json.Unmarshal(p.Bytes, &pc) != nil {
			continue // DEL says what is wrong with it
		}
		for _, typ := range []string{pc.Type, pc.IPAM.Type} {
			if _, err := invoke.FindInPath(typ, c.dirs); typ != "" && err != nil {
				return pluginGone{list.Name, typ, strings.Join(c.dirs, ":")}
			}
		}
	}
	return nil
}

func (c *Plugins) del(ctx context.Context, cacheDir, file string) error {
	a, err := readRecord(file)
	if err != nil {
		return err
	}
	list, err := libcni.NetworkConfFromBytes(a.Config)
	if err != nil {
		return err
	}
	if err := c.missingPlugin(list); err != nil {
		return err
	}
	rt := a.runtime(cacheDir)
	// A namespace already gone took its interfaces with it; the plugins
	// still release addresses and host rules without one. (A placeholder
	// that never became a namespace counts as gone.)
	if netns.Check(a.NetNS) != nil {
		rt.NetNS = ""
	}
	c.log.Debug("cni del", "network", a.Network, "pod", a.PodID, "if", a.IfName, "netns", rt.NetNS)
	cfg := libcni.NewCNIConfigWithCacheDir(c.dirs, cacheDir, c.newKeeper(file, &a))
	if err := cfg.DelNetworkList(ctx, list, rt); err != nil {
		return err
	}
	return os.Remove(file)
}

// keeper runs plugins as libcni does by default, and also keeps each ADD's
// result in the attachment record the moment the plugin returns it, and
// gives it to a DEL that has no prevResult (libcni had not cached the
// chain's result when the adding process died). Without it the firewall
// plugin, which finds its rules by the pod's addresses, would leak them.
type keeper struct {
	invoke.DefaultExec
	file string
	a    *attachment
}

// newKeeper runs plugins with their stderr going to the debug log (their
// errors come back in the result on stdout).
func (c *Plugins) newKeeper(file string, a *attachment) *keeper {
	stderr := logWriter{c.log, a.Network}
	return &keeper{invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: stderr}, PluginDecoder: version.PluginDecoder{}}, file, a}
}

type logWriter struct {
	log     *slog.Logger
	network string
}

func (w logWriter) Write(b []byte) (int, error) {
	w.log.Debug("cni plugin", "network", w.network, "stderr", strings.TrimSpace(string(b)))
	return len(b), nil
}

func (k *keeper) ExecPlugin(ctx context.Context, path string, stdin []byte, env []string) ([]byte, error) {
	switch {
	case slices.Contains(env, "CNI_COMMAND=DEL") && k.a.Result != nil:
		var conf map[string]any
		if err := json.Unmarshal(stdin, &conf); err == nil && conf["prevResult"] == nil {
			conf["prevResult"] = k.a.Result
			if b, err := json.Marshal(conf); err == nil {
				stdin = b
			}
		}
	case slices.Contains(env, "CNI_COMMAND=ADD"):
		out, err := k.DefaultExec.ExecPlugin(ctx, path, stdin, env)
		if err == nil && json.Valid(out) {
			k.a.Result = out
			err = writeRecord(k.file, k.a, true)
		}
		return out, err
	}
	return k.DefaultExec.ExecPlugin(ctx, path, stdin, env)
}

// Cached returns what Setup recorded in cacheDir: each network's result and
// the host ports published, for `status`, `list` and the host-port check
// against other pods. A network whose ADD never returned has no result.
func Cached(cacheDir string) ([]Result, []PortMapping, error) {
	recs, err := records(cacheDir)
	if err != nil {
		return nil, nil, fmt.Errorf("read network cache: %w", err)
	}
	var results []Result
	var ports []PortMapping
	for _, f := range recs {
		a, err := readRecord(f)
		if err != nil {
			return nil, nil, fmt.Errorf("read network cache %s: %w", f, err)
		}
		ports = append(ports, a.Ports...)
		if a.Result == nil {
			continue
		}
		res, err := types100.NewResult(a.Result)
		if err == nil {
			var r Result
			if r, err = convert(a.Network, a.IfName, res); err == nil {
				results = append(results, r)
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read network cache %s: %w", f, err)
		}
	}
	return results, ports, nil
}

// writeRecord writes v as JSON to path (replacing it) through a temporary
// file, so a crash of the process leaves either no record or a whole one;
// synced, also a crash of the host.
func writeRecord(path string, v any, sync bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if !sync {
		return safefile.WriteUnsynced(path, b, 0o600)
	}
	return safefile.WriteFile(path, b, 0o600, true)
}

// convert turns a plugin's result into a Result for the pod's interface.
func convert(network, ifName string, res types.Result) (Result, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return Result{}, err
	}
	out := Result{Network: network, Interface: ifName, DNS: DNS{
		Nameservers: r.DNS.Nameservers, Domain: r.DNS.Domain, Search: r.DNS.Search, Options: r.DNS.Options,
	}}
	for _, ip := range r.IPs {
		// Only addresses on an interface inside the pod (plugins also
		// report the host side of a veth or the bridge).
		if ip.Interface != nil && (*ip.Interface < 0 || *ip.Interface >= len(r.Interfaces) || r.Interfaces[*ip.Interface].Sandbox == "") {
			continue
		}
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		bits, _ := ip.Address.Mask.Size()
		out.IPs = append(out.IPs, netip.PrefixFrom(a.Unmap(), bits))
		if g, ok := netip.AddrFromSlice(ip.Gateway); ok && !out.Gateway.IsValid() {
			out.Gateway = g.Unmap()
		}
	}
	for _, rt := range r.Routes {
		a, _ := netip.AddrFromSlice(rt.Dst.IP)
		bits, _ := rt.Dst.Mask.Size()
		g, _ := netip.AddrFromSlice(rt.GW)
		out.Routes = append(out.Routes, Route{Dst: netip.PrefixFrom(a.Unmap(), bits), GW: g.Unmap()})
	}
	return out, nil
}
