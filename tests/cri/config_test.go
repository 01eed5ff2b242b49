package cri

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/registries"
)

func TestRegistriesConf(t *testing.T) {
	c, err := registries.Parse([]byte(RegistriesConf("127.0.0.1:5000")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ image, host, repo string }{
		{"registry.k8s.io/e2e-test-images/busybox:1.29-2", "127.0.0.1:5000", "e2e-test-images/busybox"},
		{"gcr.io/k8s-staging-cri-tools/test-image-tag:test", "127.0.0.1:5000", "k8s-staging-cri-tools/test-image-tag"},
		{"k8s.gcr.io/pause:3.9", "127.0.0.1:5000", "pause"},
		{"docker.io/library/busybox:latest", "127.0.0.1:5000", "library/busybox"},
	} {
		ref, err := imageref.Parse("docker://" + tc.image)
		if err != nil {
			t.Fatal(err)
		}
		eps, err := c.Endpoints(ref)
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) != 2 || eps[0].Host != tc.host || eps[0].Repository != tc.repo || !eps[0].Insecure || !eps[0].Mirror {
			t.Errorf("%s: endpoints %+v, want the insecure mirror %s/%s first", tc.image, eps, tc.host, tc.repo)
		}
	}
}

func TestContainerdConfig(t *testing.T) {
	c := Containerd{Dir: "/tmp/x", Runc: "/cache/runc", CNIBin: "/usr/lib/cni", Registry: "127.0.0.1:5000"}
	var cfg map[string]any
	if _, err := toml.Decode(c.Config(), &cfg); err != nil {
		t.Fatalf("config.toml: %v\n%s", err, c.Config())
	}
	if cfg["version"] != int64(3) {
		t.Errorf("version = %v, want 3", cfg["version"])
	}
	files := c.Files()
	for _, r := range Mirrored {
		h := files["certs.d/"+r+"/hosts.toml"]
		var hosts map[string]any
		if _, err := toml.Decode(h, &hosts); err != nil {
			t.Fatalf("%s hosts.toml: %v", r, err)
		}
		if !strings.Contains(h, `[host."http://127.0.0.1:5000"]`) {
			t.Errorf("%s hosts.toml has no mirror host:\n%s", r, h)
		}
	}
	var conflist struct {
		Plugins []struct{ Type string }
	}
	if err := json.Unmarshal([]byte(files["cni/10-critest.conflist"]), &conflist); err != nil {
		t.Fatal(err)
	}
	if len(conflist.Plugins) != 2 || conflist.Plugins[0].Type != "bridge" || conflist.Plugins[1].Type != "portmap" {
		t.Errorf("conflist plugins = %+v, want bridge, portmap", conflist.Plugins)
	}
}

func TestKubeletConfig(t *testing.T) {
	k := Kubelet{Dir: "/tmp/k", Endpoint: "unix:///tmp/c.sock", Port: 10250, Healthz: 10248}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(k.Config()), &cfg); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"kind": "KubeletConfiguration", "failCgroupV1": false, "cgroupDriver": "cgroupfs", "cgroupsPerQOS": false,
		"failSwapOn": false, "oomScoreAdj": float64(0), "staticPodPath": "/tmp/k/manifests",
		"containerRuntimeEndpoint": "unix:///tmp/c.sock", "address": "127.0.0.1", "port": float64(10250),
	} {
		if cfg[key] != want {
			t.Errorf("%s = %#v, want %#v", key, cfg[key], want)
		}
	}
	if e, ok := cfg["enforceNodeAllocatable"].([]any); !ok || len(e) != 0 {
		t.Errorf("enforceNodeAllocatable = %#v, want []", cfg["enforceNodeAllocatable"])
	}
	if !strings.Contains(strings.Join(k.Args(), " "), "--root-dir=/tmp/k/root") {
		t.Errorf("args %q: want the root dir below Dir", k.Args())
	}
}
