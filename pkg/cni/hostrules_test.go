package cni

import (
	"strings"
	"testing"
)

func TestHostRules(t *testing.T) {
	def, err := DefaultNetwork("br0", "172.16.28.0/24", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	plain, err := parse([]byte(conflist("a", "10.99.0.0/24")), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		n    *Network
		want []string // iptables argv after -w, one per rule
	}{
		{"built-in", def, []string{
			`-t nat -A POSTROUTING -s 172.16.28.0/24 ! -d 224.0.0.0/4 ! -o br0 -j MASQUERADE -m comment --comment skiff network default 172.16.28.0/24: masquerade`,
			`-t filter -I FORWARD -i br0 -s 172.16.28.0/24 -j ACCEPT -m comment --comment skiff network default 172.16.28.0/24: from pods`,
			`-t filter -I FORWARD -o br0 -d 172.16.28.0/24 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT -m comment --comment skiff network default 172.16.28.0/24: replies to pods`,
		}},
		{"a conflist without the key", plain, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, r := range c.n.hostRules() {
				got = append(got, strings.Join(r.args(r.add)[1:], " "))
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

func TestWithoutPortmap(t *testing.T) {
	cases := []struct {
		name, conf string
		want       []string // plugin types left
	}{
		{"built-in", "", []string{"bridge"}},
		{"no portmap", `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"},{"type":"firewall"}]}`, []string{"bridge", "firewall"}},
		{"portmap in the middle", `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"},{"type":"portmap"},{"type":"firewall"}]}`, []string{"bridge", "firewall"}},
		{"portmap alone stays", `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"portmap"}]}`, []string{"portmap"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var n *Network
			var err error
			if c.conf == "" {
				n, err = DefaultNetwork(DefaultBridge, DefaultSubnet, t.TempDir())
			} else {
				n, err = parse([]byte(c.conf), nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			l, err := withoutPortmap(n.list)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range l.Plugins {
				got = append(got, p.Network.Type)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("plugins %v, want %v", got, c.want)
			}
		})
	}
}
