package registries

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/skiffpod/skiff/pkg/imageref"
)

const sample = `
[aliases]
redis = "quay.io/team/redis"
"team/app" = "127.0.0.1:5000/apps/app"

[[registry]]
location = "registry.k8s.io"

[[registry.mirror]]
location = "127.0.0.1:5000"
insecure = true

[[registry.mirror]]
location = "mirror.example.com/k8s"
tls-verify = false

[[registry]]
location = "docker.io/library"
[[registry.mirror]]
location = "hub-mirror.example.com/lib"

[[registry]]
location = "index.docker.io"
insecure = true

[[registry]]
location = "localhost:5000"
insecure = true

[[registry]]
location = "self-signed.example.com"
tls-verify = false

[[registry]]
location = "evil.example.com"
blocked = true
`

func ref(t *testing.T, s string) imageref.Ref {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEndpoints(t *testing.T) {
	c, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ref  string
		want []Endpoint
		err  error
	}{
		{"docker://registry.k8s.io/pause:3.9", []Endpoint{
			{Host: "127.0.0.1:5000", Repository: "pause", Insecure: true, Mirror: true},
			{Host: "mirror.example.com", Repository: "k8s/pause", SkipVerify: true, Mirror: true},
			{Host: "registry.k8s.io", Repository: "pause"},
		}, nil},
		{"docker://registry.k8s.io/e2e/busybox@sha256:" + strings.Repeat("a", 64), []Endpoint{
			{Host: "127.0.0.1:5000", Repository: "e2e/busybox", Insecure: true, Mirror: true},
			{Host: "mirror.example.com", Repository: "k8s/e2e/busybox", SkipVerify: true, Mirror: true},
			{Host: "registry.k8s.io", Repository: "e2e/busybox"},
		}, nil},
		// The most specific location wins: docker.io/library over docker.io.
		{"docker://redis", []Endpoint{
			{Host: "hub-mirror.example.com", Repository: "lib/redis", Mirror: true},
			{Host: "docker.io", Repository: "library/redis"},
		}, nil},
		{"docker://team/app", []Endpoint{{Host: "docker.io", Repository: "team/app", Insecure: true}}, nil},
		{"docker://localhost:5000/a", []Endpoint{{Host: "localhost:5000", Repository: "a", Insecure: true}}, nil},
		// A location matches whole components only.
		{"docker://registry.k8s.io.evil.com/pause", []Endpoint{{Host: "registry.k8s.io.evil.com", Repository: "pause"}}, nil},
		{"docker://self-signed.example.com/x", []Endpoint{{Host: "self-signed.example.com", Repository: "x", SkipVerify: true}}, nil},
		{"docker://quay.io/x/y", []Endpoint{{Host: "quay.io", Repository: "x/y"}}, nil},
		{"docker://evil.example.com/x", nil, ErrBlocked},
	} {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := c.Endpoints(ref(t, tt.ref))
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestHost(t *testing.T) {
	c, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Endpoint{
		{Host: "127.0.0.1:5000", Insecure: true},
		{Host: "mirror.example.com", SkipVerify: true},
		{Host: "localhost:5000", Insecure: true},
		{Host: "docker.io", Insecure: true},
		{Host: "quay.io"},
	} {
		if got := c.Host(want.Host); got != want {
			t.Errorf("Host(%q) = %+v, want %+v", want.Host, got, want)
		}
	}
}

func TestExpand(t *testing.T) {
	c, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	d := "@sha256:" + strings.Repeat("b", 64)
	for _, tt := range []struct{ in, want string }{
		{"docker://redis", "docker://quay.io/team/redis"},
		{"docker://redis:7", "docker://quay.io/team/redis:7"},
		{"docker://redis" + d, "docker://quay.io/team/redis" + d},
		{"docker://team/app:1", "docker://127.0.0.1:5000/apps/app:1"},
		{"docker://docker.io/library/redis", "docker://docker.io/library/redis"}, // names its registry
		{"docker://library/redis", "docker://library/redis"},                     // as written, no alias
		{"docker://nginx", "docker://nginx"},
		{"redis", "redis"}, // a bare name is an appc name
		{"oci:/x:redis", "oci:/x:redis"},
	} {
		if got := c.Expand(tt.in); got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := (&Config{}).Expand("docker://redis"); got != "docker://redis" {
		t.Errorf("no aliases: %q", got)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tt := range []struct{ name, conf, says string }{
		{"not TOML", "[[registry]\n", "toml"},
		{"unknown top key", "unqualified-search-registries = [\"docker.io\"]\n", `unknown key "unqualified-search-registries"`},
		{"unknown registry key", "[[registry]]\nlocation = \"a.io\"\nprefix = \"a.io\"\n", `unknown key "registry.prefix"`},
		{"unknown mirror key", "[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"b.io\"\npull-from-mirror = \"all\"\n", `unknown key "registry.mirror.pull-from-mirror"`},
		{"bad type", "[[registry]]\nlocation = \"a.io\"\ninsecure = \"yes\"\n", "insecure"},
		{"missing location", "[[registry]]\ninsecure = true\n", "registry.location: empty"},
		{"location not a registry", "[[registry]]\nlocation = \"library/redis\"\n", "registry.location"},
		{"location with ..", "[[registry]]\nlocation = \"a.io/../b\"\n", "registry.location"},
		{"location with scheme", "[[registry]]\nlocation = \"https://a.io\"\n", "registry.location"},
		{"twice", "[[registry]]\nlocation = \"a.io\"\n[[registry]]\nlocation = \"a.io\"\n", "configured twice"},
		{"bad mirror", "[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"no registry\"\n", "registry.mirror.location"},
		{"alias of a qualified name", "[aliases]\n\"quay.io/x\" = \"quay.io/y/x\"\n", "not a short name"},
		{"alias with tag", "[aliases]\n\"x:1\" = \"quay.io/y/x\"\n", "not a short name"},
		{"alias to a short name", "[aliases]\nx = \"y/x\"\n", "not REGISTRY/NAME"},
		{"alias to a tag", "[aliases]\nx = \"quay.io/y/x:1\"\n", "not REGISTRY/NAME"},
		{"alias to upper case", "[aliases]\nx = \"quay.io/Y/x\"\n", "not REGISTRY/NAME"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.conf))
			if err == nil {
				t.Fatalf("no error, want one saying %q", tt.says)
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tt.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line wrapping ErrBadConfig saying %q", err, tt.says)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(filepath.Join(dir, "none.conf"))
	if err != nil || len(c.Registries) != 0 {
		t.Fatalf("missing file: %+v, %v", c, err)
	}
	bad := filepath.Join(dir, FileName)
	os.WriteFile(bad, []byte("[[registry]]\nlocation = \"a.io\"\nmirrors = 1\n"), 0o644)
	_, err = Load(bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "registry.mirrors") {
		t.Errorf("error %v: want the file and the key named", err)
	}
	os.Remove(bad)
	os.Symlink("/etc/passwd", bad)
	if _, err := Load(bad); err == nil {
		t.Errorf("a symlinked configuration was read")
	}
}
