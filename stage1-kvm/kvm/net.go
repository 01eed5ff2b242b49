package kvm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/netns"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// guestNet is the pod network as the guest gets it: a tap in the pod's
// network namespace, joined to the CNI veth eth0 there by tc redirects
// both ways (Kata's tc mode), so frames pass unchanged between the
// bridge and the guest's virtio-net device, which gets eth0's MAC. eth0
// keeps its address in the namespace (the bridge plugin's teardown finds
// its rules by it), but the redirect steals every frame before the
// namespace's own stack could answer one.
type guestNet struct {
	tap     *os.File // for qemu's -netdev tap,fd=
	mac     string
	cmdline string // skiff.net=ADDR/PREFIX[,GW] for the guest init
}

// joinTap makes the tap in the namespace at path and reads eth0's MAC,
// address and default gateway.
func joinTap(path string) (guestNet, error) {
	var g guestNet
	err := netns.Do(path, func() error {
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return fmt.Errorf("eth0: %w", err)
		}
		addrs, err := netlink.AddrList(eth, netlink.FAMILY_V4)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("eth0 has no IPv4 address: %w", cmpErr(err, errors.New("none")))
		}
		g.mac = eth.Attrs().HardwareAddr.String()
		g.cmdline = "skiff.net=" + addrs[0].IPNet.String()
		routes, err := netlink.RouteList(eth, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("eth0 routes: %w", err)
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw != nil {
				g.cmdline += "," + r.Gw.String()
				break
			}
		}
		if g.tap, err = openTap("tap0"); err != nil {
			return err
		}
		tap, err := netlink.LinkByName("tap0")
		if err == nil {
			err = netlink.LinkSetMTU(tap, eth.Attrs().MTU)
		}
		if err == nil {
			err = netlink.LinkSetUp(tap)
		}
		if err == nil {
			err = errors.Join(redirect(eth, tap), redirect(tap, eth))
		}
		return err
	})
	if err != nil {
		if g.tap != nil {
			g.tap.Close()
		}
		return guestNet{}, fmt.Errorf("join the pod network to the guest: %w", err)
	}
	return g, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// openTap creates tap device name in the calling thread's network
// namespace. It is not persistent: it goes with the last fd (qemu's).
func openTap(name string) (*os.File, error) {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open tap: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(int(f.Fd()), unix.TUNSETIFF, ifr)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create tap %s: %w", name, err)
	}
	return f, nil
}

// redirect sends every frame arriving on from out of to.
func redirect(from, to netlink.Link) error {
	q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: from.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS,
	}}
	if err := netlink.QdiscAdd(q); err != nil {
		return fmt.Errorf("ingress qdisc on %s: %w", from.Attrs().Name, err)
	}
	f := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: from.Attrs().Index, Parent: netlink.MakeHandle(0xffff, 0), Protocol: unix.ETH_P_ALL,
		},
		Actions: []netlink.Action{&netlink.MirredAction{
			ActionAttrs:  netlink.ActionAttrs{Action: netlink.TC_ACT_STOLEN},
			MirredAction: netlink.TCA_EGRESS_REDIR,
			Ifindex:      to.Attrs().Index,
		}},
	}
	if err := netlink.FilterAdd(f); err != nil {
		return fmt.Errorf("redirect %s to %s: %w", from.Attrs().Name, to.Attrs().Name, err)
	}
	return nil
}

// maxResolvConf bounds the resolv.conf stage0 wrote.
const maxResolvConf = 64 << 10

// copyResolvConf makes the resolv.conf stage0 wrote for the pod the
// guest's /etc/resolv.conf, which stage2 binds into the apps.
func copyResolvConf() error {
	b, err := safefile.ReadFile(pod.NetResolvConf, maxResolvConf)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = safefile.WriteFile(filepath.Join(pod.Stage1Rootfs, "etc/resolv.conf"), b, 0o644, true)
	}
	if err != nil {
		return fmt.Errorf("pod resolv.conf: %w", err)
	}
	return nil
}
