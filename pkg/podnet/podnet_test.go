package podnet

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffpod/skiff/pkg/pod"
)

func TestCheckNet(t *testing.T) {
	tests := []struct {
		r  Request
		ok bool
	}{
		{Request{Net: "default"}, true},
		{Request{Net: "host"}, true},
		{Request{Net: "none"}, true},
		{Request{Net: "default,mynet", Publish: []string{"80:80"}}, true},
		{Request{Net: "host", Publish: []string{"80:80"}}, false},
		{Request{Net: "none", DNS: []string{"192.0.2.1"}}, false},
		{Request{Net: "a,,b"}, false},
		{Request{Net: "default,host"}, false},
		{Request{Net: "../x"}, false},
		{Request{Net: ""}, false},
	}
	for _, tt := range tests {
		err := tt.r.Check()
		if (err == nil) != tt.ok {
			t.Errorf("%+v.Check() = %v, want ok %v", tt.r, err, tt.ok)
		}
		var u UsageError
		if err != nil && !errors.As(err, &u) {
			t.Errorf("%+v.Check() = %v, not a UsageError", tt.r, err)
		}
	}
}

func TestResolvConf(t *testing.T) {
	tests := []struct {
		name  string
		flags Request
		want  string // "" for an error; "HOST" for the host's file
	}{
		{"default is the host's", Request{}, "HOST"},
		{"--dns=host", Request{DNS: []string{"host"}}, "HOST"},
		{"servers, search, options", Request{DNS: []string{"192.0.2.1", "2001:db8::1"}, DNSSearch: []string{"a.test", "b.test"}, DNSOpts: []string{"ndots:2"}},
			"nameserver 192.0.2.1\nnameserver 2001:db8::1\nsearch a.test b.test\noptions ndots:2\n"},
		{"search alone", Request{DNSSearch: []string{"a.test"}}, "search a.test\n"},
		{"not an address", Request{DNS: []string{"example.com"}}, ""},
		{"host and a server", Request{DNS: []string{"host", "192.0.2.1"}}, ""},
		{"host and search", Request{DNS: []string{"host"}, DNSSearch: []string{"a.test"}}, ""},
		{"newline in search", Request{DNSSearch: []string{"a\nnameserver 6.6.6.6"}}, ""},
		{"space in option", Request{DNSOpts: []string{"a b"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.flags.resolvConf()
			switch {
			case tt.want == "" && err == nil:
				t.Errorf("= %q, want an error", got)
			case tt.want != "" && err != nil:
				t.Errorf("error %v", err)
			case tt.want == "HOST":
				if host, _ := os.ReadFile("/etc/resolv.conf"); got != string(host) {
					t.Errorf("= %q, want the host's resolv.conf %q", got, host)
				}
			case tt.want != "" && got != tt.want:
				t.Errorf("= %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHostsEntries(t *testing.T) {
	tests := []struct {
		entries []string
		want    string // "" for an error
	}{
		{[]string{"192.0.2.7=db.example.test", "2001:db8::7=db6"}, "192.0.2.7\tdb.example.test\n2001:db8::7\tdb6\n"},
		{[]string{"db=192.0.2.7"}, ""},
		{[]string{"192.0.2.7"}, ""},
		{[]string{"192.0.2.7=a b"}, ""},
		{[]string{"192.0.2.7=a\n6.6.6.6 evil"}, ""},
	}
	for _, tt := range tests {
		got, err := Request{HostsEntries: tt.entries}.hostsEntries()
		if (err == nil) != (tt.want != "") || got != tt.want && err == nil {
			t.Errorf("hostsEntries(%q) = %q, %v; want %q", tt.entries, got, err, tt.want)
		}
	}
}

func TestPodResolvConf(t *testing.T) {
	tests := []struct{ name, host, resolved, want string }{
		{"kept", "nameserver 192.0.2.53\nsearch a.test\n", "", "nameserver 192.0.2.53\nsearch a.test\n"},
		{"loopback dropped", "nameserver 127.0.0.1\nnameserver 192.0.2.53\n", "nameserver 198.51.100.1\n", "nameserver 192.0.2.53\n"},
		{"resolved stub", "nameserver 127.0.0.53\noptions edns0\n", "nameserver 198.51.100.1\n", "nameserver 198.51.100.1\n"},
		{"stub without resolved", "nameserver ::1\nsearch a.test\n", "", "search a.test\n"},
	}
	for _, tt := range tests {
		if got := podResolvConf(tt.host, tt.resolved); got != tt.want {
			t.Errorf("%s: = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParseDNAT(t *testing.T) {
	rules := `-N CNI-HOSTPORT-DNAT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"default\" id: \"0c9b63d4\"" -m multiport --dports 43321,8080 -j CNI-DN-dc0ca40bd342d1e3130c0
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"lab\" id: \"7bce5047\"" -m multiport --dports 53 -j CNI-DN-e0ec1df085a78390f6693
`
	want := map[string]string{"tcp/43321": "0c9b63d4", "tcp/8080": "0c9b63d4", "udp/53": "7bce5047"}
	if got := parseDNAT(rules); !maps.Equal(got, want) {
		t.Errorf("parseDNAT = %v, want %v", got, want)
	}
}

// TestAttachVersion1: a stage1 of interface version 1 gets --net=default
// as before and no pod network; the network flags are refused for it.
func TestAttachVersion1(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "data"), 0o755)
	p, err := pod.Create(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Unlock()
	m := `{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/stage1-old",
		"annotations": [{"name": "skiff.dev/stage1/interface-version", "value": "1"}, {"name": "skiff.dev/stage1/run", "value": "/run"}]}`
	os.MkdirAll(p.File(pod.Stage1Dir), 0o755)
	if err := os.WriteFile(p.File(pod.Stage1Manifest), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	h := Host{Dir: filepath.Join(dir, "data"), LocalConfig: filepath.Join(dir, "config"), Log: slog.New(slog.DiscardHandler)}
	tests := []struct {
		r  Request
		ok bool
	}{
		{Request{Net: "default"}, true},
		{Request{Net: "none"}, true},
		{Request{Net: "default", Publish: []string{"8080:80"}}, false},
		{Request{Net: "lab"}, false},
	}
	for _, tt := range tests {
		netns, err := h.Attach(context.Background(), p, tt.r, "h")
		switch {
		case !tt.ok && (err == nil || !strings.Contains(err.Error(), "interface version 1")):
			t.Errorf("%+v: err = %v, want one naming interface version 1", tt.r, err)
		case tt.ok && (err != nil || netns != ""):
			t.Errorf("%+v: %q, %v; want no namespace: the stage1's own network", tt.r, netns, err)
		}
	}
}
