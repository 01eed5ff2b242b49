package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
)

// netConfig is skiff.net=ADDR/PREFIX[,GATEWAY]: the address stage1-kvm
// read from the pod's network namespace (the CNI result), for the guest's
// eth0, and its default route.
type netConfig struct {
	addr netip.Prefix
	gw   netip.Addr
}

func parseNet(s string) (netConfig, error) {
	var c netConfig
	a, gw, hasGW := strings.Cut(s, ",")
	var err error
	if c.addr, err = netip.ParsePrefix(a); err != nil {
		return c, fmt.Errorf("skiff.net=%s: %w", s, err)
	}
	if hasGW {
		if c.gw, err = netip.ParseAddr(gw); err != nil {
			return c, fmt.Errorf("skiff.net=%s: %w", s, err)
		}
	}
	return c, nil
}

// configureNet brings up lo and eth0 (the virtio-net device, probed
// asynchronously after its driver loaded) with c's address and route.
func configureNet(c netConfig) error {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	var eth netlink.Link
	if err := retry(func() (err error) { eth, err = netlink.LinkByName("eth0"); return err }); err != nil {
		return fmt.Errorf("configure network: eth0: %w", err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: c.addr.Addr().AsSlice(), Mask: net.CIDRMask(c.addr.Bits(), c.addr.Addr().BitLen())}}
	if err := netlink.AddrAdd(eth, addr); err != nil {
		return fmt.Errorf("configure network: address %s: %w", c.addr, err)
	}
	if err := netlink.LinkSetUp(eth); err != nil {
		return fmt.Errorf("configure network: eth0 up: %w", err)
	}
	if c.gw.IsValid() {
		r := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: c.gw.AsSlice()}
		if err := netlink.RouteAdd(r); err != nil {
			return fmt.Errorf("configure network: default route via %s: %w", c.gw, err)
		}
	}
	return nil
}
