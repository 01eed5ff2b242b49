package cni

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/skiffpod/skiff/pkg/strictjson"
)

// Defaults of the built-in network. 172.16.28.0/24 is rkt's default range:
// private (RFC 1918), and clear of podman's 10.88.0.0/16 and docker's
// 172.17.0.0/16.
const (
	DefaultName   = "default"
	DefaultBridge = "skiff0"
	DefaultSubnet = "172.16.28.0/24"
	// LeaseDir holds the host-local leases of skiff's bridge networks, in
	// LeaseDir/NETWORK: host-wide, as the bridges are, so pods of two data
	// dirs on one bridge never get the same address; in /run, which a
	// reboot clears with the links the leases account for.
	LeaseDir = "/run/skiff/networks"
	// PluginDir is where Debian's containernetworking-plugins installs.
	PluginDir = "/usr/lib/cni"
	// maxConfSize bounds a conflist read from disk.
	maxConfSize = 1 << 20
)

// A Network is one validated CNI network configuration list.
type Network struct {
	Name    string
	File    string // where it was loaded from; "" for the built-in default
	Subnets []netip.Prefix
	list    *libcni.NetworkConfigList
	// networkRules: the conflist asks for network-wide host rules.
	networkRules bool
	// inproc: the conflist is BridgeNetwork's, added in-process
	// (inproc.go); nil for any other.
	inproc *inprocBridge
}

// DefaultNetwork returns the built-in network: a bridge with host-local
// addresses from subnet (leases under ipamDir), a default route through the
// bridge, port mappings (portmap), and network-wide host rules (hostRules:
// masquerade for outbound traffic, forward accepts) instead of the bridge
// plugin's ipMasq and the firewall plugin, which cost iptables runs per pod.
func DefaultNetwork(bridge, subnet, ipamDir string) (*Network, error) {
	return BridgeNetwork(DefaultName, bridge, subnet, ipamDir)
}

// BridgeNetwork returns a network named name made like the built-in one
// (`skiff network create`).
func BridgeNetwork(name, bridge, subnet, ipamDir string) (*Network, error) {
	b, err := bridgeConflist(name, bridge, subnet, ipamDir)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	n, err := parse(b, nil)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	return n, nil
}

// bridgeConflist is the conflist of BridgeNetwork.
func bridgeConflist(name, bridge, subnet, ipamDir string) ([]byte, error) {
	conf := map[string]any{
		"cniVersion":    "1.0.0",
		"name":          name,
		NetworkRulesKey: true,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": bridge, "isGateway": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": subnet}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": ipamDir,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// Bytes returns the network's configuration list, as loaded.
func (n *Network) Bytes() []byte { return n.list.Bytes }

// Bridge returns the bridge its bridge plugin makes, "" if none.
func (n *Network) Bridge() string {
	for _, p := range n.list.Plugins {
		if p.Network.Type == "bridge" {
			var c struct {
				Bridge string `json:"bridge"`
			}
			if json.Unmarshal(p.Bytes, &c) == nil {
				return cmp.Or(c.Bridge, "cni0") // the plugin's default
			}
		}
	}
	return ""
}

// Load reads every *.conflist in dir (a missing dir holds none), validates
// each, and returns the networks by name, with def (the built-in default
// network, if not nil) unless a file defines a network of that name. Bad
// files are left out and reported in the error, one line each naming the
// file; the networks that are good are returned all the same.
func Load(dir string, pluginDirs []string, def *Network) (map[string]*Network, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load networks %s: %w", dir, err)
	}
	var files []string // ReadDir sorts by name
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".conflist") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	nets := map[string]*Network{}
	var errs []error
	for _, f := range files {
		n, err := loadFile(f, pluginDirs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if o := nets[n.Name]; o != nil {
			errs = append(errs, fmt.Errorf("network config %s: %w: network %q is also defined in %s", f, ErrConfig, n.Name, o.File))
			continue
		}
		if o := overlapping(n, nets); o != nil {
			errs = append(errs, fmt.Errorf("network config %s: %w: subnet overlaps network %q (%s)", f, ErrConfig, o.Name, o.File))
			continue
		}
		nets[n.Name] = n
	}
	if def != nil && nets[def.Name] == nil {
		if o := overlapping(def, nets); o != nil {
			errs = append(errs, fmt.Errorf("network config %s: %w: subnet overlaps the built-in network %q (%s)", o.File, ErrConfig, def.Name, def.Subnets[0]))
			delete(nets, o.Name)
		}
		nets[def.Name] = def
	}
	return nets, errors.Join(errs...)
}

func loadFile(path string, pluginDirs []string) (*Network, error) {
	b, err := readConf(path)
	if err == nil {
		var n *Network
		if n, err = parse(b, pluginDirs); err == nil {
			n.File = path
			return n, nil
		}
	}
	return nil, fmt.Errorf("network config %s: %w", path, err)
}

func readConf(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrConfig)
	}
	if fi.Size() > maxConfSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrConfig, maxConfSize)
	}
	return os.ReadFile(path)
}

// pluginConf is the part of a plugin's config that skiff checks.
type pluginConf struct {
	Type string `json:"type"`
	IPAM struct {
		Type   string `json:"type"`
		Subnet string `json:"subnet"`
		Ranges [][]struct {
			Subnet string `json:"subnet"`
		} `json:"ranges"`
	} `json:"ipam"`
}

// parse validates a conflist. With pluginDirs nil, plugin binaries are not
// looked up (the built-in network is checked when it is used).
func parse(b []byte, pluginDirs []string) (*Network, error) {
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		return nil, fmt.Errorf("%w: not valid JSON: %v", ErrConfig, err)
	}
	if err := strictjson.CheckKeys(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	list, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := utils.ValidateNetworkName(list.Name); err != nil {
		return nil, fmt.Errorf("%w: network name %q: %v", ErrConfig, list.Name, err.Msg)
	}
	if list.Name == "host" || list.Name == "none" {
		return nil, fmt.Errorf("%w: network name %q is reserved", ErrConfig, list.Name)
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("%w: no plugins", ErrConfig)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	n := &Network{Name: list.Name, list: list}
	if r, ok := top[NetworkRulesKey]; ok {
		if err := json.Unmarshal(r, &n.networkRules); err != nil {
			return nil, fmt.Errorf("%w: %s: want true or false", ErrConfig, NetworkRulesKey)
		}
		if n.networkRules && n.Bridge() == "" {
			return nil, fmt.Errorf("%w: %s needs a bridge plugin", ErrConfig, NetworkRulesKey)
		}
	}
	for i, p := range list.Plugins {
		var pc pluginConf
		if err := json.Unmarshal(p.Bytes, &pc); err != nil {
			return nil, fmt.Errorf("%w: plugin %d: %v", ErrConfig, i, err)
		}
		for _, typ := range []string{pc.Type, pc.IPAM.Type} {
			if typ == "" || pluginDirs == nil {
				continue
			}
			if _, err := invoke.FindInPath(typ, pluginDirs); err != nil {
				return nil, fmt.Errorf("%w: plugin %q not found in %s", ErrConfig, typ, strings.Join(pluginDirs, ":"))
			}
		}
		subnets := []string{}
		if pc.IPAM.Subnet != "" {
			subnets = append(subnets, pc.IPAM.Subnet)
		}
		for _, set := range pc.IPAM.Ranges {
			for _, r := range set {
				subnets = append(subnets, r.Subnet)
			}
		}
		for _, s := range subnets {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%w: subnet %q: not an address/prefix", ErrConfig, s)
			}
			if p != p.Masked() {
				return nil, fmt.Errorf("%w: subnet %q has host bits set (the network is %s)", ErrConfig, s, p.Masked())
			}
			if p.Addr().Is4() && p.Bits() > 30 || p.Addr().Is6() && p.Bits() > 126 {
				return nil, fmt.Errorf("%w: subnet %q has no room for a gateway and a pod", ErrConfig, s)
			}
			if o := overlapsAny(p, n.Subnets); o.IsValid() {
				return nil, fmt.Errorf("%w: subnet %s overlaps %s", ErrConfig, p, o)
			}
			n.Subnets = append(n.Subnets, p)
		}
	}
	n.inproc = inprocConf(list.Name, b, n)
	return n, nil
}

// overlapping returns a network in nets whose subnets overlap n's.
func overlapping(n *Network, nets map[string]*Network) *Network {
	for _, o := range nets {
		for _, p := range n.Subnets {
			if overlapsAny(p, o.Subnets).IsValid() {
				return o
			}
		}
	}
	return nil
}

func overlapsAny(p netip.Prefix, ps []netip.Prefix) netip.Prefix {
	for _, q := range ps {
		if p.Overlaps(q) {
			return q
		}
	}
	return netip.Prefix{}
}
