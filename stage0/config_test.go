package main

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/skiffpod/skiff/pkg/stage1"
)

// TestConfigPrint: one line per setting, defaults named, nothing secret.
func TestConfigPrint(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    configInfo
		want string
	}{
		{"empty", configInfo{Dir: "/var/lib/skiff", LocalConfig: "/etc/skiff", AuthFiles: []string{"/etc/skiff/auth.json"}},
			"dir /var/lib/skiff\nlocal-config /etc/skiff\ninsecure-options none\nauth-files /etc/skiff/auth.json\npolicy (default)\n"},
		{"everything", configInfo{
			Dir: "/d", LocalConfig: "/c", InsecureOptions: []string{"http", "tls"}, AuthFiles: []string{"/c/auth.json", "/root/.docker/config.json"},
			PolicyFile:  "/c/policy.json",
			TrustedKeys: []trustedKey{{"", "aa"}, {"example.com", "bb"}},
			Registries:  []registryInfo{{Location: "docker.io", Mirrors: []string{"127.0.0.1:5000"}}, {Location: "bad.example", Blocked: true, Insecure: true, NoVerify: true}},
			Aliases:     map[string]string{"redis": "docker.io/library/redis"},
			Networks:    []networkInfo{{Name: "default", Bridge: "skiff0", Subnets: []netip.Prefix{netip.MustParsePrefix("172.16.28.0/24")}}, {Name: "x", File: "/c/net.d/x.conflist"}},
			Stage1:      []stage1.Installed{{Name: "ns", Path: "/s/stage1-ns.aci", Image: "skiff.dev/stage1-ns", Version: "1", Interface: 2}, {Name: "bad", Path: "/s/stage1-bad.aci", Err: "no manifest"}},
		}, `dir /d
local-config /c
insecure-options http,tls
auth-files /c/auth.json /root/.docker/config.json
policy /c/policy.json
trusted-key (root) aa
trusted-key example.com bb
registry docker.io mirror=127.0.0.1:5000
registry bad.example insecure tls-verify=false blocked
alias redis=docker.io/library/redis
network default skiff0 172.16.28.0/24 (built-in)
network x - - /c/net.d/x.conflist
stage1 ns: skiff.dev/stage1-ns version 1, interface 2, /s/stage1-ns.aci
stage1 bad: /s/stage1-bad.aci (unusable: no manifest)
`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.c.print(&b); err != nil || b.String() != tt.want {
				t.Errorf("print = %v\n%s\nwant\n%s", err, b.String(), tt.want)
			}
		})
	}
}
