package cri

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Kubelet is a standalone kubelet's setup (static pods, no API server).
type Kubelet struct {
	Dir      string // root dir, static pod manifests, pod logs, config: all below
	Endpoint string // the CRI runtime, unix:///PATH
	Port     int    // its API (https, anonymous) on 127.0.0.1
	Healthz  int    // its healthz (http) on 127.0.0.1
}

// Manifests is the static pod path.
func (k Kubelet) Manifests() string { return filepath.Join(k.Dir, "manifests") }

// Config is the KubeletConfiguration (JSON, which the kubelet reads as
// YAML) that runs on the test hosts: cgroup v1 allowed, cgroupfs, no QOS
// cgroups or node allocatable enforcement, swap allowed, no OOM score
// change (no CAP_SYS_RESOURCE), anonymous auth on loopback. Manifests are
// re-read every second and pods synced every 5 s, so tests wait little.
func (k Kubelet) Config() string {
	c := map[string]any{
		"apiVersion":                  "kubelet.config.k8s.io/v1beta1",
		"kind":                        "KubeletConfiguration",
		"failCgroupV1":                false,
		"cgroupDriver":                "cgroupfs",
		"cgroupsPerQOS":               false,
		"enforceNodeAllocatable":      []string{},
		"failSwapOn":                  false,
		"oomScoreAdj":                 0,
		"staticPodPath":               k.Manifests(),
		"fileCheckFrequency":          "1s",
		"syncFrequency":               "5s",
		"containerRuntimeEndpoint":    k.Endpoint,
		"address":                     "127.0.0.1",
		"port":                        k.Port,
		"readOnlyPort":                0,
		"healthzBindAddress":          "127.0.0.1",
		"healthzPort":                 k.Healthz,
		"podLogsDir":                  filepath.Join(k.Dir, "pod-logs"),
		"registerNode":                false,
		"resolvConf":                  "",
		"authentication":              map[string]any{"anonymous": map[string]any{"enabled": true}, "webhook": map[string]any{"enabled": false}},
		"authorization":               map[string]any{"mode": "AlwaysAllow"},
		"evictionHard":                map[string]string{"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return string(b) + "\n"
}

// Args are the kubelet's flags besides its config.
func (k Kubelet) Args() []string {
	return []string{"--config=" + filepath.Join(k.Dir, "config.json"), "--root-dir=" + filepath.Join(k.Dir, "root"),
		"--cert-dir=" + filepath.Join(k.Dir, "pki"), "--hostname-override=skiff-test-node", "--v=2"}
}

// kubeletSysctls are the host settings a kubelet changes when it starts
// (unless protectKernelDefaults), saved before and put back after.
var kubeletSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

// bridgeSysctls exist once br_netfilter is loaded (a Kubernetes host loads
// it). Bridged traffic through iptables breaks the CNI portmap's DNAT from
// the host (pkg/cni TestPublishedPorts), so what the kubelet run turned on
// is turned off again: to its value before, or 0 where the module was not
// loaded then.
var bridgeSysctls = []string{"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"}

// HostState is what a kubelet changes on the host, as it was before.
type HostState struct {
	sysctls map[string]string
	chains  map[string]bool // "iptables -t TABLE CHAIN" that existed
	logDir  bool            // /var/log/containers existed
	libDir  bool            // /var/lib/kubelet existed (the device plugins' socket goes there, whatever the root dir)
}

// iptablesTables are where the kubelet adds its KUBE-* chains.
var iptablesTables = []string{"filter", "nat", "mangle"}

// SaveHost records the host state a kubelet changes.
func SaveHost() (*HostState, error) {
	h := &HostState{sysctls: map[string]string{}, chains: map[string]bool{}}
	for _, s := range kubeletSysctls {
		b, err := os.ReadFile("/proc/sys/" + s)
		if err != nil {
			return nil, fmt.Errorf("save sysctl %s: %w", s, err)
		}
		h.sysctls[s] = strings.TrimSpace(string(b))
	}
	for _, s := range bridgeSysctls {
		h.sysctls[s] = "0"
		if b, err := os.ReadFile("/proc/sys/" + s); err == nil {
			h.sysctls[s] = strings.TrimSpace(string(b))
		}
	}
	for _, c := range kubeChains() {
		h.chains[c] = true
	}
	_, err := os.Stat("/var/log/containers")
	h.logDir = err == nil
	_, err = os.Stat("/var/lib/kubelet")
	h.libDir = err == nil
	return h, nil
}

// kubeChains lists the KUBE-* chains, as "CMD TABLE CHAIN".
func kubeChains() []string {
	var out []string
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, table := range iptablesTables {
			b, err := exec.Command(cmd, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-") {
					out = append(out, cmd+" "+table+" "+f[1])
				}
			}
		}
	}
	return out
}

// Restore puts back what the kubelet changed: the sysctls, its iptables
// chains (flushed, unlinked, deleted), the symlinks it left in
// /var/log/containers to logs below dir (the dir itself if it was not there),
// mounts below dir, and /var/lib/kubelet if it was not there.
func (h *HostState) Restore(dir string) error {
	var errs []string
	for s, v := range h.sysctls {
		if _, err := os.Stat("/proc/sys/" + s); err != nil && slices.Contains(bridgeSysctls, s) {
			continue // br_netfilter still not loaded
		}
		if err := os.WriteFile("/proc/sys/"+s, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Sprintf("restore sysctl %s: %v", s, err))
		}
	}
	var added [][]string
	for _, c := range kubeChains() {
		if !h.chains[c] {
			added = append(added, strings.Fields(c))
		}
	}
	for _, c := range added { // jumps to the chain first, from every chain
		b, _ := exec.Command(c[0], "-w", "-t", c[1], "-S").Output()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "-A ") && strings.Contains(l, " -j "+c[2]) && !strings.HasPrefix(l, "-A "+c[2]+" ") {
				args := append([]string{"-w", "-t", c[1], "-D"}, strings.Fields(l)[1:]...)
				exec.Command(c[0], args...).Run()
			}
		}
	}
	for _, c := range added {
		exec.Command(c[0], "-w", "-t", c[1], "-F", c[2]).Run()
	}
	for _, c := range added {
		if b, err := exec.Command(c[0], "-w", "-t", c[1], "-X", c[2]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("%s -t %s -X %s: %v: %s", c[0], c[1], c[2], err, strings.TrimSpace(string(b))))
		}
	}
	links, _ := filepath.Glob("/var/log/containers/*")
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && strings.HasPrefix(t, dir+"/") {
			os.Remove(l)
		}
	}
	if !h.logDir {
		os.Remove("/var/log/containers")
	}
	if err := UnmountUnder(dir); err != nil {
		errs = append(errs, err.Error())
	}
	if !h.libDir {
		os.RemoveAll("/var/lib/kubelet")
	}
	if len(errs) > 0 {
		return fmt.Errorf("restore host: %s", strings.Join(errs, "; "))
	}
	return nil
}
