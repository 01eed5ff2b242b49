package main

import (
	"net/netip"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/pod"
)

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
	if !st.Networked {
		return ps
	}
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

// netNames lists the pod's addresses as rkt's list: NETWORK:ip4=ADDRESS.
func (ps podStatus) netNames() []string {
	var a []string
	for _, n := range ps.Networks {
		for _, ip := range n.IPs {
			v := "ip4"
			if ip.Addr().Is6() {
				v = "ip6"
			}
			a = append(a, n.Network+":"+v+"="+ip.Addr().String())
		}
	}
	return a
}
