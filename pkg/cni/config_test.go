package cni

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakePluginDir holds empty executables named like plugins: Load only
// checks that a plugin binary exists, it never runs one.
func fakePluginDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func conflist(name, subnet string) string {
	return `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[{"type":"bridge","bridge":"b-` + name +
		`","ipam":{"type":"host-local","ranges":[[{"subnet":"` + subnet + `"}]]}},{"type":"portmap"}]}`
}

func TestLoad(t *testing.T) {
	plugins := []string{fakePluginDir(t, "bridge", "host-local", "portmap", "firewall")}
	def, err := DefaultNetwork(DefaultBridge, DefaultSubnet, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		files map[string]string
		nets  []string // networks loaded, sorted
		err   string   // in the error, with the bad file's name; "" for none
	}{
		{"empty dir", nil, []string{"default"}, ""},
		{"dir with glob characters", map[string]string{"[a].conflist": conflist("a", "10.99.0.0/24")}, []string{"a", "default"}, ""},
		{"one good", map[string]string{"a.conflist": conflist("a", "10.99.0.0/24")}, []string{"a", "default"}, ""},
		{"other extensions ignored", map[string]string{"a.conf": "junk", "a.json": "junk"}, []string{"default"}, ""},
		{"not JSON", map[string]string{"bad.conflist": `{"name": "bad",`}, []string{"default"}, "not valid JSON"},
		{"duplicate key", map[string]string{"bad.conflist": `{"cniVersion":"1.0.0","name":"x","name":"y","plugins":[{"type":"bridge"}]}`}, []string{"default"}, `duplicate key "name"`},
		{"nested duplicate key", map[string]string{"bad.conflist": `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge","ipam":{"type":"host-local","type":"dhcp"}}]}`}, []string{"default"}, `duplicate key "plugins[0].ipam.type"`},
		{"missing plugin", map[string]string{"bad.conflist": `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"macvlan"}]}`}, []string{"default"}, `plugin "macvlan" not found`},
		{"missing ipam plugin", map[string]string{"bad.conflist": `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge","ipam":{"type":"dhcp"}}]}`}, []string{"default"}, `plugin "dhcp" not found`},
		{"plugin name with a slash", map[string]string{"bad.conflist": `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"../../bin/sh"}]}`}, []string{"default"}, `not found`},
		{"no plugins", map[string]string{"bad.conflist": `{"cniVersion":"1.0.0","name":"x"}`}, []string{"default"}, "no plugins"},
		{"no name", map[string]string{"bad.conflist": `{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}`}, []string{"default"}, "no name"},
		{"bad name", map[string]string{"bad.conflist": `{"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"bridge"}]}`}, []string{"default"}, "network name"},
		{"reserved name", map[string]string{"bad.conflist": conflist("host", "10.99.0.0/24")}, []string{"default"}, "reserved"},
		{"malformed subnet", map[string]string{"bad.conflist": conflist("x", "10.99.0.0/33")}, []string{"default"}, `subnet "10.99.0.0/33"`},
		{"not a subnet", map[string]string{"bad.conflist": conflist("x", "banana")}, []string{"default"}, `subnet "banana"`},
		{"host bits", map[string]string{"bad.conflist": conflist("x", "10.99.0.1/24")}, []string{"default"}, "host bits"},
		{"too small", map[string]string{"bad.conflist": conflist("x", "10.99.0.0/31")}, []string{"default"}, "no room"},
		{"overlaps default", map[string]string{"bad.conflist": conflist("x", "172.16.0.0/16")}, []string{"default"}, "overlaps the built-in network"},
		{"overlaps another file", map[string]string{"a.conflist": conflist("a", "10.99.0.0/16"), "b.conflist": conflist("b", "10.99.3.0/24")}, []string{"a", "default"}, `overlaps network "a"`},
		{"same name twice", map[string]string{"a.conflist": conflist("a", "10.99.0.0/24"), "b.conflist": conflist("a", "10.98.0.0/24")}, []string{"a", "default"}, "also defined in"},
		{"default replaced", map[string]string{"d.conflist": conflist("default", "10.99.0.0/24")}, []string{"default"}, ""},
		{"network rules not a bool", map[string]string{"bad.conflist": `{"cniVersion":"1.0.0","name":"x","skiffNetworkRules":"yes","plugins":[{"type":"bridge"}]}`}, []string{"default"}, "skiffNetworkRules: want true or false"},
		{"network rules without a bridge", map[string]string{"bad.conflist": `{"cniVersion":"1.0.0","name":"x","skiffNetworkRules":true,"plugins":[{"type":"portmap"}]}`}, []string{"default"}, "needs a bridge plugin"},
		{"one bad, one good", map[string]string{"a.conflist": conflist("a", "10.99.0.0/24"), "bad.conflist": "["}, []string{"a", "default"}, "not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "net.d[*]")
			os.Mkdir(dir, 0o755)
			bad := ""
			for f, body := range c.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(f, "b") {
					bad = filepath.Join(dir, f)
				}
			}
			nets, err := Load(dir, plugins, def)
			var got []string
			for n := range nets {
				got = append(got, n)
			}
			if strings.Join(slices.Sorted(slices.Values(got)), ",") != strings.Join(c.nets, ",") {
				t.Errorf("networks %v, want %v", slices.Sorted(slices.Values(got)), c.nets)
			}
			if c.err == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.err) ||
				(bad != "" && !strings.Contains(err.Error(), bad)) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Load error %q; want one line with ErrConfig, the file %s and %q", err, bad, c.err)
			}
		})
	}
}

func TestLoadRefusesSymlinkAndHuge(t *testing.T) {
	plugins := []string{fakePluginDir(t, "bridge", "host-local", "portmap")}
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "real")
	os.WriteFile(target, []byte(conflist("a", "10.99.0.0/24")), 0o644)
	os.Symlink(target, filepath.Join(dir, "link.conflist"))
	os.WriteFile(filepath.Join(dir, "huge.conflist"), make([]byte, maxConfSize+1), 0o644)
	nets, err := Load(dir, plugins, nil)
	if len(nets) != 0 || err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load: %v, %v; want both files refused", nets, err)
	}
}
