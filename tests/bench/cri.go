package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiffpod/skiff/tests/cri"
)

// The cri section: a pod sandbox and one container started to running
// through the CRI, driven by crictl as a kubelet drives a runtime (runp,
// create, start, then until the container is listed running), containerd
// 2.4.2 + runc (tests/cri/tools.sh) against `skiff cri` on stage1-ns, with
// stage1-kvm (runtime handler kvm) reported beside them, and -base's
// `skiff cri` on stage1-ns when given. Both pull busybox
// from one local registry through per-registry mirrors; the pull happens
// once, before the runs. Removing the pod is not timed.
var (
	criN   = flag.Int("cri-n", 10, "runs per contender for the cri section")
	criKVM = flag.Bool("cri-kvm", true, "time the kvm handler in the cri section too")
)

const criImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

func benchCRI(ctx context.Context, cfg config) error {
	runc, err := cri.Tool("runc")
	if err != nil {
		return err
	}
	o := &ociBench{cfg: cfg, dir: filepath.Join(cfg.scratch, "cri")}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	if err := o.startRegistry(); err != nil {
		return err
	}
	defer o.stop()
	repo, err := os.Getwd() // make bench runs at the checkout
	if err != nil {
		return err
	}
	layout, err := cri.ImageLayout(repo)
	if err != nil {
		return err
	}
	if err := cri.PushImages(layout, o.addr); err != nil {
		return err
	}
	ctrd, err := cri.StartContainerd(cri.Containerd{Dir: filepath.Join(o.dir, "containerd"), Runc: runc, CNIBin: "/usr/lib/cni", Registry: o.addr})
	if err != nil {
		return err
	}
	defer ctrd.Stop()
	cs := []contender{{"containerd + runc", criStart(ctx, o.dir, ctrd.Endpoint, "")}}
	endpoints := []string{ctrd.Endpoint}
	kvm := -1 // the index of the kvm row, if any
	bins, suffixes := cfg.binaries()
	for i, bin := range bins {
		if out, err := exec.Command(bin, "cri", "--help").CombinedOutput(); err != nil {
			first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
			fmt.Printf("\ncri: %s skipped: no cri command (--help: %v: %s)\n", bin, err, first)
			continue
		}
		// The base's store is a directory of its own beside cri/store
		// (cleanup finds both as scratch/*/store).
		dir := o.dir
		if i > 0 {
			dir = filepath.Join(cfg.scratch, "cri-base")
		}
		conf := filepath.Join(dir, "skiff-config")
		if err := os.MkdirAll(conf, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(conf, "registries.conf"), []byte(cri.RegistriesConf(o.addr)), 0o644); err != nil {
			return err
		}
		sock := filepath.Join(dir, "skiff-cri.sock")
		c := exec.Command(bin, "--dir="+filepath.Join(dir, "store"), "--local-config="+conf, "--insecure-options=image", "cri", "--listen", sock)
		if cfg.accel != "" {
			c.Env = append(os.Environ(), "SKIFF_KVM_ACCEL="+cfg.accel)
		}
		d, err := cri.Start(c, "unix://"+sock, filepath.Join(dir, "skiff-cri.log"))
		if err != nil {
			return err
		}
		defer d.Stop()
		endpoints = append(endpoints, d.Endpoint)
		cs = append(cs, contender{"skiff cri (ns)" + suffixes[i], criStart(ctx, o.dir, d.Endpoint, "")})
		if i == 0 && *criKVM {
			cs = append(cs, contender{"skiff cri (kvm)", criStart(ctx, o.dir, d.Endpoint, "kvm")})
			kvm = len(cs) - 1
		}
	}
	for _, ep := range endpoints {
		if _, err := cri.Crictl(ctx, ep, "pull", criImage); err != nil {
			return err
		}
	}
	runs, err := interleave(*criN, cs)
	if err != nil {
		return err
	}
	sums := printTable(os.Stdout, "cri: pod sandbox + container to running through the CRI (crictl runp, create, start)", cs, runs, 0)
	for i, c := range cs[1:] {
		if strings.HasPrefix(c.name, "skiff cri (ns)") {
			target(os.Stdout, c.name+" ≤ 1.0× containerd + runc", ratio(sums[i+1].median, sums[0].median), 1.0)
		}
	}
	if kvm > 0 {
		fmt.Printf("skiff cri (kvm, %s): %.2f× containerd + runc (no target)\n", accelName(cfg.accel), ratio(sums[kvm].median, sums[0].median))
	}
	return nil
}

func accelName(a string) string {
	if a == "" {
		return "skiff's choice"
	}
	return a
}

// criStart returns a contender that starts a pod sandbox (with handler;
// "" for the default) and a busybox container in it on endpoint, and waits
// until the container is listed running; the pod is removed afterwards,
// untimed.
func criStart(ctx context.Context, dir, endpoint, handler string) func() (time.Duration, error) {
	n := 0
	return func() (time.Duration, error) {
		n++
		name := fmt.Sprintf("bench-%s-%d", strings.NewReplacer("/", "-", ":", "-").Replace(filepath.Base(endpoint)), n)
		if handler != "" {
			name += "-" + handler
		}
		pod := filepath.Join(dir, name+"-pod.json")
		ctr := filepath.Join(dir, name+"-ctr.json")
		if err := writeJSON(pod, map[string]any{
			"metadata":      map[string]any{"name": name, "namespace": "bench", "uid": fmt.Sprintf("%s-%d", name, time.Now().UnixNano())},
			"log_directory": filepath.Join(dir, "logs", name),
			"linux":         map[string]any{},
		}); err != nil {
			return 0, err
		}
		if err := writeJSON(ctr, map[string]any{
			"metadata": map[string]any{"name": "sleep"},
			"image":    map[string]any{"image": criImage},
			"command":  []string{"sleep", "3600"},
			"log_path": "sleep.log",
			"linux":    map[string]any{},
		}); err != nil {
			return 0, err
		}
		runp := []string{"runp"}
		if handler != "" {
			runp = append(runp, "--runtime", handler)
		}
		start := time.Now()
		out, err := cri.Crictl(ctx, endpoint, append(runp, pod)...)
		if err != nil {
			return 0, err
		}
		podID := strings.TrimSpace(out)
		defer cri.Crictl(ctx, endpoint, "rmp", "--force", podID)
		out, err = cri.Crictl(ctx, endpoint, "create", podID, ctr, pod)
		if err != nil {
			return 0, err
		}
		ctrID := strings.TrimSpace(out)
		if _, err := cri.Crictl(ctx, endpoint, "start", ctrID); err != nil {
			return 0, err
		}
		for deadline := time.Now().Add(cmdTimeout); ; time.Sleep(10 * time.Millisecond) {
			out, err := cri.Crictl(ctx, endpoint, "ps", "-q", "--id", ctrID, "--state", "running")
			if err != nil {
				return 0, err
			}
			if strings.TrimSpace(out) != "" {
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("container %s not running after %s", ctrID, cmdTimeout)
			}
		}
		return time.Since(start), nil
	}
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
