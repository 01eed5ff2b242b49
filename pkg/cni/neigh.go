package cni

import (
	"errors"
	"log/slog"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// forgetNeighbours deletes the host's neighbour (ARP, NDP) entries for a
// pod's new addresses. An address is given again, by the leases' round
// robin or by another lease dir on the same bridge; the host's entry for
// it still names the MAC of the pod that had it before and, confirmed by
// that pod's traffic, stays believed for up to 45 s (base_reachable_time
// 30 s, randomised), then costs 5 s of delay and 3 failed probes more. In
// that time the host's packets to the new pod, a published port's DNAT
// included, go to a MAC that is gone. Announcements did not help (the
// bridge plugin's arp_notify, the in-process gratuitous ARP): sent as the
// pod's end comes up, before the bridge's new port forwards. Without the
// entry the host asks again, and the pod answers.
func forgetNeighbours(log *slog.Logger, ips []netip.Prefix) {
	for _, p := range ips {
		a := p.Addr()
		family := netlink.FAMILY_V4
		if a.Is6() {
			family = netlink.FAMILY_V6
		}
		routes, err := netlink.RouteGet(a.AsSlice())
		if err != nil {
			log.Debug("forget neighbour: route", "addr", a, "err", err)
			continue
		}
		for _, r := range routes {
			err := netlink.NeighDel(&netlink.Neigh{LinkIndex: r.LinkIndex, Family: family, IP: a.AsSlice()})
			if err != nil && !errors.Is(err, syscall.ENOENT) {
				log.Debug("forget neighbour", "addr", a, "link", r.LinkIndex, "err", err)
			}
		}
	}
}
