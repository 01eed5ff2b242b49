package cni

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/netns"
)

// skiff's own bridge networks (the built-in default and those `skiff
// network create` writes, unchanged) are added in-process: what the bridge
// and host-local plugins would do, done here with netlink, leaving the
// same state on the host and on disk (the veth, the bridge with its
// gateway address, the lease file in host-local's format and directory,
// under its lock). The two plugin binaries' fork, exec and work were most
// of what the private network cost a pod's start (docs/networking.md,
// "In-process attach"). DEL still runs the real plugins, which find the
// veth by name in the namespace and the lease by pod ID, so teardown after
// a crash is unchanged, and a pod that publishes ports, or a network whose
// conflist differs in anything, runs the plugins for ADD too.

// inprocBridge is the part of a bridge network's conflist an in-process
// ADD needs.
type inprocBridge struct {
	bridge  string
	subnet  netip.Prefix // IPv4
	dataDir string       // host-local's dataDir: leases in dataDir/<network>
}

// inprocConf returns how to add n in-process, nil when its conflist is
// not exactly what BridgeNetwork writes for its own bridge, subnet and
// leases directory.
func inprocConf(name string, b []byte, n *Network) *inprocBridge {
	if !n.networkRules || len(n.Subnets) != 1 || !n.Subnets[0].Addr().Is4() || len(n.list.Plugins) != 2 {
		return nil
	}
	var pc struct {
		Bridge string `json:"bridge"`
		IPAM   struct {
			DataDir string `json:"dataDir"`
		} `json:"ipam"`
	}
	if json.Unmarshal(n.list.Plugins[0].Bytes, &pc) != nil || pc.Bridge == "" || !filepath.IsAbs(pc.IPAM.DataDir) {
		return nil
	}
	want, err := bridgeConflist(name, pc.Bridge, n.Subnets[0].String(), pc.IPAM.DataDir)
	if err != nil {
		return nil
	}
	var got, same any
	if json.Unmarshal(b, &got) != nil || json.Unmarshal(want, &same) != nil || !reflect.DeepEqual(got, same) {
		return nil
	}
	return &inprocBridge{bridge: pc.Bridge, subnet: n.Subnets[0], dataDir: pc.IPAM.DataDir}
}

// add attaches the namespace at nsPath to the bridge as ifName, with an
// address leased for podID, and returns the result the bridge plugin
// would print. What it made before failing is found and removed by the
// plugins' DEL (the lease by pod ID, the veth by its name in the
// namespace).
func (c *inprocBridge) add(ctx context.Context, network, podID, nsPath, ifName string) (*types100.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	gw := c.subnet.Addr().Next()
	addr, err := c.lease(network, podID, ifName, gw)
	if err != nil {
		return nil, err
	}
	ns, err := netns.Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	br, err := c.ensureBridge()
	if err != nil {
		return nil, err
	}
	host, err := makeVeth(ns, ifName, br)
	if err != nil {
		return nil, err
	}
	prefix := netip.PrefixFrom(addr, c.subnet.Bits())
	var mac net.HardwareAddr
	if err := netns.DoFile(ns, func() error {
		var err error
		mac, err = configure(ifName, prefix, gw)
		return err
	}); err != nil {
		return nil, err
	}
	if err := c.ensureGateway(br, netip.PrefixFrom(gw, c.subnet.Bits())); err != nil {
		return nil, err
	}
	idx := 2
	return &types100.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*types100.Interface{
			{Name: c.bridge, Mac: br.Attrs().HardwareAddr.String()},
			{Name: host.Attrs().Name, Mac: host.Attrs().HardwareAddr.String()},
			{Name: ifName, Mac: mac.String(), Sandbox: nsPath},
		},
		IPs:    []*types100.IPConfig{{Interface: &idx, Address: ipNet(prefix), Gateway: net.IP(gw.AsSlice())}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}},
	}, nil
}

func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// lease reserves the next free address of the subnet for podID, as
// host-local does: under the flock of dataDir/network/lock, round robin
// from the address in last_reserved_ip.0, a file named by the address
// holding "podID\r\nifName", the gateway never given.
func (c *inprocBridge) lease(network, podID, ifName string, gw netip.Addr) (netip.Addr, error) {
	dir := filepath.Join(c.dataDir, network)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return netip.Addr{}, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return netip.Addr{}, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return netip.Addr{}, err
	}
	first := c.subnet.Addr().Next()
	last := lastAddr(c.subnet).Prev() // not the broadcast address
	lastFile := filepath.Join(dir, "last_reserved_ip.0")
	cur := last // the first candidate is then the range's start
	if b, err := os.ReadFile(lastFile); err == nil {
		if a, err := netip.ParseAddr(strings.TrimSpace(string(b))); err == nil && a.Compare(first) >= 0 && a.Compare(last) <= 0 {
			cur = a
		}
	}
	for start := cur; ; {
		if cur = cur.Next(); cur.Compare(last) > 0 {
			cur = first
		}
		if cur != gw {
			f, err := os.OpenFile(filepath.Join(dir, cur.String()), os.O_RDWR|os.O_EXCL|os.O_CREATE, 0o644)
			if err == nil {
				_, err = f.WriteString(podID + "\r\n" + ifName)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(f.Name())
					return netip.Addr{}, err
				}
				return cur, os.WriteFile(lastFile, []byte(cur.String()), 0o644)
			}
			if !errors.Is(err, os.ErrExist) {
				return netip.Addr{}, err
			}
		}
		if cur == start {
			return netip.Addr{}, fmt.Errorf("failed to allocate for range 0: no IP addresses available in range set: %s-%s", first, last)
		}
	}
}

// volatile reports whether the leases are on a tmpfs (/run): like the
// links and rules of the attachment, gone with a reboot.
func (c *inprocBridge) volatile() bool {
	var st unix.Statfs_t
	return unix.Statfs(c.dataDir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

// lastAddr is the last address of p (its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// ensureBridge makes the bridge if it is missing (as the bridge plugin:
// no router advertisements accepted on it) and brings it up.
func (c *inprocBridge) ensureBridge() (netlink.Link, error) {
	br, err := netlink.LinkByName(c.bridge)
	if err != nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = c.bridge
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, syscall.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", c.bridge, err)
		}
		os.WriteFile("/proc/sys/net/ipv6/conf/"+c.bridge+"/accept_ra", []byte("0"), 0o644)
		if br, err = netlink.LinkByName(c.bridge); err != nil {
			return nil, fmt.Errorf("bridge %s: %w", c.bridge, err)
		}
	}
	if br.Type() != "bridge" {
		return nil, fmt.Errorf("%s is a %s, not a bridge", c.bridge, br.Type())
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(br); err != nil {
			return nil, fmt.Errorf("bridge %s up: %w", c.bridge, err)
		}
	}
	return br, nil
}

// ensureGateway puts the gateway address on the bridge (then pinning the
// bridge's MAC, which would otherwise follow its ports) and turns on IPv4
// forwarding, as the bridge plugin's isGateway does.
func (c *inprocBridge) ensureGateway(br netlink.Link, gw netip.Prefix) error {
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", c.bridge, err)
	}
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == gw.String() {
			have = true
		} else if a.IPNet.Contains(gw.Addr().AsSlice()) {
			return fmt.Errorf("%q already has an IP address different from %s", c.bridge, gw)
		}
	}
	if !have {
		n := ipNet(gw)
		if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: &n}); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("bridge %s: add %s: %w", c.bridge, gw, err)
		}
		if err := netlink.LinkSetHardwareAddr(br, br.Attrs().HardwareAddr); err != nil {
			return fmt.Errorf("bridge %s: %w", c.bridge, err)
		}
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil || strings.TrimSpace(string(b)) != "1" {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable ip_forward: %w", err)
		}
	}
	return nil
}

// makeVeth makes a veth pair, ifName in the namespace ns and a random
// veth name on the host, the host end a hairpin port of br, up.
func makeVeth(ns *os.File, ifName string, br netlink.Link) (netlink.Link, error) {
	for range 10 {
		var r [4]byte
		rand.Read(r[:])
		attrs := netlink.NewLinkAttrs()
		attrs.Name = "veth" + hex.EncodeToString(r[:])
		err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: ifName, PeerNamespace: netlink.NsFd(int(ns.Fd()))})
		if errors.Is(err, syscall.EEXIST) {
			continue // that host name is taken: another
		}
		if err != nil {
			return nil, fmt.Errorf("create veth: %w", err)
		}
		host, err := netlink.LinkByName(attrs.Name)
		if err == nil {
			err = netlink.LinkSetMaster(host, br)
		}
		if err == nil {
			err = netlink.LinkSetHairpin(host, true)
		}
		if err == nil {
			err = netlink.LinkSetUp(host)
		}
		if err != nil {
			return nil, fmt.Errorf("veth %s: %w", attrs.Name, err)
		}
		return host, nil
	}
	return nil, errors.New("create veth: no free name")
}

// configure, run in the pod's namespace, gives ifName its address, brings
// it up, routes everything through gw and announces the address with a
// gratuitous ARP (an address given again must not wait for neighbours'
// stale entries). It returns ifName's MAC.
func configure(ifName string, addr netip.Prefix, gw netip.Addr) (net.HardwareAddr, error) {
	link, err := netlink.LinkByName(ifName)
	if err != nil {
		return nil, err
	}
	n := ipNet(addr)
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: &n}); err != nil {
		return nil, fmt.Errorf("add %s to %s: %w", addr, ifName, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("%s up: %w", ifName, err)
	}
	// A default route another network of the pod added first wins, as
	// with the plugins.
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: gw.AsSlice()}); err != nil && !errors.Is(err, syscall.EEXIST) {
		return nil, fmt.Errorf("default route via %s: %w", gw, err)
	}
	mac := link.Attrs().HardwareAddr
	garp(link.Attrs().Index, mac, addr.Addr()) // best effort, as the plugin's
	return mac, nil
}

// garp broadcasts a gratuitous ARP request for ip from mac on the link.
func garp(index int, mac net.HardwareAddr, ip netip.Addr) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return
	}
	defer unix.Close(fd)
	bcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	a := ip.As4()
	frame := append(append(append([]byte{}, bcast...), mac...), 0x08, 0x06, // ethernet: broadcast from mac, ARP
		0, 1, 0x08, 0x00, 6, 4, 0, 1) // ethernet/IPv4, a request
	frame = append(append(append(append(frame, mac...), a[:]...), bcast...), a[:]...)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: index, Halen: 6}
	copy(sa.Addr[:], bcast)
	unix.Sendto(fd, frame, 0, sa)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
