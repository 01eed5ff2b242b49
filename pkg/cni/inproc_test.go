package cni

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInprocConf: only a conflist exactly as BridgeNetwork writes it (for
// any name, bridge, IPv4 subnet and leases dir) is added in-process.
func TestInprocConf(t *testing.T) {
	own, err := bridgeConflist("web", "skiff-web", "172.16.40.0/24", "/run/skiff/networks")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string { return strings.Replace(string(own), old, new, 1) }
	for _, c := range []struct {
		name string
		conf string
		want bool
	}{
		{"BridgeNetwork's", string(own), true},
		{"compact, other key order", `{"name":"web","cniVersion":"1.0.0","skiffNetworkRules":true,"plugins":[{"type":"bridge","bridge":"skiff-web","isGateway":true,"hairpinMode":true,"ipam":{"type":"host-local","dataDir":"/run/skiff/networks","ranges":[[{"subnet":"172.16.40.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},{"type":"portmap","capabilities":{"portMappings":true}}]}`, true},
		{"no network rules", edit(`"skiffNetworkRules": true`, `"skiffNetworkRules": false`), false},
		{"no hairpin", edit(`"hairpinMode": true`, `"hairpinMode": false`), false},
		{"ipMasq", edit(`"hairpinMode": true`, `"hairpinMode": true, "ipMasq": true`), false},
		{"another route", edit(`"dst": "0.0.0.0/0"`, `"dst": "10.0.0.0/8"`), false},
		{"a gateway", edit(`"subnet": "172.16.40.0/24"`, `"subnet": "172.16.40.0/24", "gateway": "172.16.40.9"`), false},
		{"relative dataDir", edit(`"dataDir": "/run/skiff/networks"`, `"dataDir": "run"`), false},
		{"another plugin", edit(`"type": "portmap"`, `"type": "portmap"}, {"type": "firewall"`), false},
		{"another ipam", edit(`"type": "host-local"`, `"type": "static"`), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, err := parse([]byte(c.conf), nil)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := n.inproc != nil; got != c.want {
				t.Errorf("in-process %v, want %v", got, c.want)
			}
		})
	}
	def, err := DefaultNetwork(DefaultBridge, DefaultSubnet, "/run/x")
	if err != nil || def.inproc == nil || def.inproc.bridge != DefaultBridge || def.inproc.subnet.String() != DefaultSubnet || def.inproc.dataDir != "/run/x" {
		t.Errorf("default network: %+v, %v; want added in-process", def, err)
	}
}

// TestLease: addresses as host-local gives them (round robin after
// last_reserved_ip.0, never the gateway or the broadcast address, in files
// named by the address holding "ID\r\nIF"), and its message when none is
// left.
func TestLease(t *testing.T) {
	for _, c := range []struct {
		name   string
		subnet string
		last   string   // last_reserved_ip.0, "" for none
		taken  []string // leases already there
		want   string   // the address given, or "error: ..."
	}{
		{"first", "172.16.40.0/24", "", nil, "172.16.40.2"},
		{"after the last", "172.16.40.0/24", "172.16.40.7", nil, "172.16.40.8"},
		{"skips taken", "172.16.40.0/24", "172.16.40.7", []string{"172.16.40.8", "172.16.40.9"}, "172.16.40.10"},
		{"wraps, skips the gateway", "172.16.40.0/24", "172.16.40.254", nil, "172.16.40.2"},
		{"last outside the range", "172.16.40.0/24", "10.0.0.1", nil, "172.16.40.2"},
		{"last garbage", "172.16.40.0/24", "x", nil, "172.16.40.2"},
		{"a /30", "172.16.40.0/30", "", nil, "172.16.40.2"},
		{"a /30 full", "172.16.40.0/30", "172.16.40.2", []string{"172.16.40.2"}, "error: failed to allocate for range 0: no IP addresses available in range set: 172.16.40.1-172.16.40.2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dataDir := t.TempDir()
			dir := filepath.Join(dataDir, "web")
			os.MkdirAll(dir, 0o755)
			if c.last != "" {
				os.WriteFile(filepath.Join(dir, "last_reserved_ip.0"), []byte(c.last), 0o644)
			}
			for _, a := range c.taken {
				os.WriteFile(filepath.Join(dir, a), []byte("other\r\neth0"), 0o644)
			}
			b := &inprocBridge{bridge: "b", subnet: netip.MustParsePrefix(c.subnet), dataDir: dataDir}
			got, err := b.lease("web", "pod-1", "eth1", b.subnet.Addr().Next())
			if want, isErr := strings.CutPrefix(c.want, "error: "); isErr {
				if err == nil || err.Error() != want {
					t.Errorf("got %v, %v; want the error %q", got, err, want)
				}
				return
			}
			if err != nil || got.String() != c.want {
				t.Fatalf("got %v, %v; want %s", got, err, c.want)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, c.want)); string(b) != "pod-1\r\neth1" {
				t.Errorf("lease holds %q, want host-local's \"pod-1\\r\\neth1\"", b)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "last_reserved_ip.0")); string(b) != c.want {
				t.Errorf("last_reserved_ip.0 holds %q, want %s", b, c.want)
			}
		})
	}
}

// TestTeardownEmptyRecord: an empty record (a host crash tore a record
// that was not synced) is forgotten, not an error for ever.
func TestTeardownEmptyRecord(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "attach-000-default.json")
	os.WriteFile(empty, nil, 0o600)
	if err := New(nil, nil).Teardown(t.Context(), dir); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("empty record left: %v", err)
	}
	os.WriteFile(empty, []byte("{"), 0o600)
	if err := New(nil, nil).Teardown(t.Context(), dir); err == nil {
		t.Error("a record that is not JSON: no error")
	}
}

// An attachment record is written again as each step of the ADD returns:
// also unsynced (an in-process attachment whose leases are on a tmpfs),
// where it used to be refused as already there (the sync flag was passed
// as WriteFile's overwrite).
func TestWriteRecordTwice(t *testing.T) {
	for _, sync := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "attach-000-default.json")
		for i, v := range []string{"first", "second"} {
			if err := writeRecord(path, v, sync); err != nil {
				t.Fatalf("sync %v, write %d: %v", sync, i, err)
			}
		}
		if b, _ := os.ReadFile(path); string(b) != `"second"` {
			t.Errorf("sync %v: record %s, want the second", sync, b)
		}
	}
}
