package cni

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParsePort(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	cases := []struct {
		in   string
		want PortMapping
		err  string // "" for success
	}{
		{"8080:80", PortMapping{HostPort: 8080, PodPort: 80, Protocol: "tcp"}, ""},
		{"8080:80/udp", PortMapping{HostPort: 8080, PodPort: 80, Protocol: "udp"}, ""},
		{"127.0.0.1:8080:80/tcp", PortMapping{HostIP: lo, HostPort: 8080, PodPort: 80, Protocol: "tcp"}, ""},
		{"[::1]:53:53/udp", PortMapping{HostIP: netip.MustParseAddr("::1"), HostPort: 53, PodPort: 53, Protocol: "udp"}, ""},
		{"65535:1", PortMapping{HostPort: 65535, PodPort: 1, Protocol: "tcp"}, ""},
		{"80", PortMapping{}, "want [HOSTIP:]HOSTPORT:PORT"},
		{"", PortMapping{}, "want [HOSTIP:]HOSTPORT:PORT"},
		{"0:80", PortMapping{}, "host port"},
		{"8080:0", PortMapping{}, "pod port"},
		{"65536:80", PortMapping{}, "host port"},
		{"+80:80", PortMapping{}, "host port"},
		{"-1:80", PortMapping{}, "host port"},
		{"8080:80/sctp", PortMapping{}, `protocol "sctp"`},
		{"8080:80/", PortMapping{}, "protocol"},
		{"8080:80/tcp/udp", PortMapping{}, "protocol"},
		{"localhost:8080:80", PortMapping{}, "not an IP address"},
		{"::1:53:53", PortMapping{}, "brackets"},
		{"[fe80::1%eth0]:53:53", PortMapping{}, "not an IP address"},
		{"1.2.3.4:x:80", PortMapping{}, "host port"},
		{":8080:80", PortMapping{}, "not an IP address"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParsePort(c.in)
			if c.err == "" {
				if err != nil || got != c.want {
					t.Fatalf("ParsePort(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
				}
				if again, err := ParsePort(got.String()); err != nil || again != got {
					t.Errorf("round trip %q: %+v, %v", got.String(), again, err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrPort) || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), c.in) {
				t.Fatalf("ParsePort(%q) error %v; want ErrPort naming the input and %q", c.in, err, c.err)
			}
		})
	}
}

func TestCheckPortsTwice(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	cases := []struct {
		name  string
		ports []PortMapping
		clash bool
	}{
		{"same port, both protocols", []PortMapping{{HostPort: 1, PodPort: 1, Protocol: "tcp"}, {HostPort: 1, PodPort: 2, Protocol: "udp"}}, false},
		{"same port twice", []PortMapping{{HostPort: 1, PodPort: 1, Protocol: "tcp"}, {HostPort: 1, PodPort: 2, Protocol: "tcp"}}, true},
		{"all addresses and one", []PortMapping{{HostIP: lo, HostPort: 1, PodPort: 1, Protocol: "tcp"}, {HostPort: 1, PodPort: 2, Protocol: "tcp"}}, true},
		{"same address", []PortMapping{{HostIP: lo, HostPort: 1, PodPort: 1, Protocol: "udp"}, {HostIP: lo, HostPort: 1, PodPort: 1, Protocol: "udp"}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckPorts(c.ports)
			if got := errors.Is(err, ErrPort) && strings.Contains(err.Error(), "twice"); got != c.clash {
				t.Errorf("CheckPorts: %v; want a clash: %v", err, c.clash)
			}
		})
	}
}
