package cri

import (
	"fmt"
	"strings"
)

// Mirrored are the registries critest and the kubelet pull from by name; the
// tests point each at one local registry (a mirror keeps the image's path).
var Mirrored = []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io", "quay.io"}

// SandboxImage is the pause image containerd runs a pod sandbox from (its
// default in 2.4.2, named here so that images.sh and the config agree).
const SandboxImage = "registry.k8s.io/pause:3.10.2"

// Containerd is the reference runtime's setup: everything under Dir.
type Containerd struct {
	Dir      string // root, state, socket, CNI conf, registry hosts, all below
	Runc     string // the runc binary
	CNIBin   string // the CNI plugins' dir
	Registry string // HOST:PORT of the plain-http mirror of every Mirrored registry
}

// Socket is the CRI endpoint's path.
func (c Containerd) Socket() string { return c.Dir + "/containerd.sock" }

// Config is containerd's config.toml (version 3): runc with cgroupfs, the
// OOM score clamped (no CAP_SYS_RESOURCE on the test hosts), CNI from
// Dir/cni, registry hosts from Dir/certs.d, NRI off (it would open a socket
// in /var/run/nri), /opt/containerd moved under Dir.
func (c Containerd) Config() string {
	return fmt.Sprintf(`version = 3
root = "%[1]s/root"
state = "%[1]s/state"

[grpc]
  address = "%[1]s/containerd.sock"

[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.internal.v1.opt']
  path = "%[1]s/opt"

[plugins.'io.containerd.cri.v1.images']
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "%[4]s"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "%[1]s/certs.d"

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["%[3]s"]
    conf_dir = "%[1]s/cni"
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "%[2]s"
        SystemdCgroup = false

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, c.Dir, c.Runc, c.CNIBin, SandboxImage)
}

// Files are the files Config refers to, by path relative to Dir: a
// hosts.toml per Mirrored registry (plain http, pull and resolve) and the
// CNI network (BridgeConflist).
func (c Containerd) Files() map[string]string {
	f := map[string]string{"cni/10-critest.conflist": BridgeConflist("critest", "ctrd0", "10.99.0.0/24", c.Dir+"/ipam")}
	for _, r := range Mirrored {
		f["certs.d/"+r+"/hosts.toml"] = fmt.Sprintf("server = \"https://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", r, c.Registry)
	}
	return f
}

// BridgeConflist is a CNI network of the Debian plugins: a bridge with
// host-local addresses from subnet (leases under ipamDir, not in /var/lib/cni),
// masquerading, and portmap for hostPorts.
func BridgeConflist(name, bridge, subnet, ipamDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, name, bridge, subnet, ipamDir)
}

// RegistriesConf is skiff's <local-config>/registries.conf sending every
// Mirrored registry to the plain-http registry at addr first.
func RegistriesConf(addr string) string {
	var b strings.Builder
	for _, r := range Mirrored {
		fmt.Fprintf(&b, "[[registry]]\nlocation = %q\n\n[[registry.mirror]]\nlocation = %q\ninsecure = true\n\n", r, addr)
	}
	return b.String()
}
