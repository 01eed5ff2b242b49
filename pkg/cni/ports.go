package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// A PortMapping publishes a pod port on the host (portmap's portMappings
// capability).
type PortMapping struct {
	HostIP   netip.Addr `json:"hostIP,omitzero"` // zero: every host address
	HostPort uint16     `json:"hostPort"`
	PodPort  uint16     `json:"podPort"`
	Protocol string     `json:"protocol"` // "tcp" or "udp"
}

func (p PortMapping) String() string {
	h := ""
	if p.HostIP.IsValid() {
		h = p.HostIP.String() + ":"
		if p.HostIP.Is6() {
			h = "[" + p.HostIP.String() + "]:"
		}
	}
	return fmt.Sprintf("%s%d:%d/%s", h, p.HostPort, p.PodPort, p.Protocol)
}

// ParsePort parses podman's `[HOSTIP:]HOSTPORT:PORT[/tcp|udp]` (an IPv6
// HOSTIP in brackets). The protocol defaults to tcp.
func ParsePort(s string) (PortMapping, error) {
	var m PortMapping
	rest, proto, hasProto := strings.Cut(s, "/")
	m.Protocol = "tcp"
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return m, fmt.Errorf("%w %q: protocol %q is not tcp or udp", ErrPort, s, proto)
		}
		m.Protocol = proto
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return m, fmt.Errorf("%w %q: want [HOSTIP:]HOSTPORT:PORT[/tcp|udp]", ErrPort, s)
	}
	host, pod := rest[:i], rest[i+1:]
	if j := strings.LastIndexByte(host, ':'); j >= 0 {
		ip := host[:j]
		host = host[j+1:]
		if strings.HasPrefix(ip, "[") && strings.HasSuffix(ip, "]") {
			ip = ip[1 : len(ip)-1]
		} else if strings.Contains(ip, ":") {
			return m, fmt.Errorf("%w %q: an IPv6 host address goes in brackets", ErrPort, s)
		}
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			return m, fmt.Errorf("%w %q: host address %q is not an IP address", ErrPort, s, ip)
		}
		m.HostIP = a
	}
	var err error
	if m.HostPort, err = port(host); err != nil {
		return m, fmt.Errorf("%w %q: host port %v", ErrPort, s, err)
	}
	if m.PodPort, err = port(pod); err != nil {
		return m, fmt.Errorf("%w %q: pod port %v", ErrPort, s, err)
	}
	return m, nil
}

func port(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("%q is not a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// CheckPorts reports mappings that publish the same host port twice and host
// ports some socket on the host already holds, by binding each one for a
// moment. (A port another pod publishes is a DNAT rule, not a socket: the
// caller checks those against the other pods' cached mappings.)
func CheckPorts(ports []PortMapping) error {
	for i, p := range ports {
		// Two mappings clash on the same port and protocol when either
		// binds every address or both bind the same one.
		for _, o := range ports[:i] {
			if o.HostPort == p.HostPort && o.Protocol == p.Protocol &&
				(!o.HostIP.IsValid() || !p.HostIP.IsValid() || o.HostIP == p.HostIP) {
				return fmt.Errorf("%w: %s and %s publish host port %d/%s twice", ErrPort, o, p, p.HostPort, p.Protocol)
			}
		}
	}
	for _, p := range ports {
		addr := ""
		if p.HostIP.IsValid() {
			addr = p.HostIP.String()
		}
		addr = net.JoinHostPort(addr, strconv.Itoa(int(p.HostPort)))
		var err error
		if p.Protocol == "udp" {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", addr); err == nil {
				c.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp", addr); err == nil {
				l.Close()
			}
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("publish %s: %w", p, ErrPortTaken)
		}
		if err != nil {
			return fmt.Errorf("publish %s: %w", p, err)
		}
	}
	return nil
}

// capability is portmap's form of the mappings.
func capability(ports []PortMapping) []map[string]any {
	out := make([]map[string]any, 0, len(ports))
	for _, p := range ports {
		m := map[string]any{"hostPort": int(p.HostPort), "containerPort": int(p.PodPort), "protocol": p.Protocol}
		if p.HostIP.IsValid() {
			m["hostIP"] = p.HostIP.String()
		}
		out = append(out, m)
	}
	return out
}
