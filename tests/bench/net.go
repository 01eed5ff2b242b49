package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skiffpod/skiff/pkg/vm"
)

// The net section: what a pod's private network costs.
//
//   - `skiff run --net=default` against `--net=host` of /bin/true on
//     stage1-ns, interleaved; target: the network costs ≤ 15 ms more.
//   - TCP throughput pod → host with iperf3: the server on the host, the
//     client in a pod on skiff's default bridge against a podman container
//     on podman's bridge network (target ≥ 0.95× podman), and a stage1-kvm
//     pod (TCG here; no target).

const (
	netTarget    = 15 * time.Millisecond
	iperfPort    = 5299
	iperfSecs    = 3
	skiffGW      = "172.16.28.1" // the default network's bridge address
	podmanGW     = "10.88.0.1"   // podman's default bridge network
	podmanBridge = "cni-podman0"
	podmanImage  = "localhost/skiff-bench-iperf3"
)

// podmanFlags make podman work on this host (docs: ENV.md): runc, cgroupfs,
// rlimits within the sandbox's hard limits.
var podmanFlags = []string{"--runtime", "runc", "--cgroup-manager=cgroupfs"}

func benchNet(ctx context.Context, cfg config) error {
	if err := needTools(map[string]string{"iperf3": "iperf3", "podman": "podman"}); err != nil {
		return err
	}
	p, err := setupPods(ctx, cfg)
	if err != nil {
		return err
	}
	busybox := filepath.Join(cfg.images, "busybox.aci")
	def := p.skiff("run", "--net=default", busybox, "--exec=/bin/true")
	host := p.skiff("run", "--net=host", busybox, "--exec=/bin/true")
	if _, err := output(ctx, nil, cfg.skiff, def...); err != nil { // warm-up
		return err
	}
	gcAfter := func(bin string, args []string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			d, err := timeCmd(ctx, nil, bin, args...)
			if err != nil {
				return d, err
			}
			return d, p.gc(ctx, cfg)
		}
	}
	cs := []contender{{"skiff run --net=default", gcAfter(cfg.skiff, def)}, {"skiff run --net=host", gcAfter(cfg.skiff, host)}}
	if cfg.base != "" {
		if _, err := output(ctx, nil, cfg.base, def...); err != nil { // warm-up
			return err
		}
		cs = append(cs, contender{"baseline run --net=default", gcAfter(cfg.base, def)}, contender{"baseline run --net=host", gcAfter(cfg.base, host)})
	}
	runs, err := interleave(cfg.n, cs)
	if err != nil {
		return err
	}
	sums := printTable(os.Stdout, "net: /bin/true in busybox on stage1-ns, the pod network's cost (setup timed, teardown in gc not)", cs, runs, 1)
	for i := 0; i+1 < len(sums); i += 2 {
		extra := sums[i].median - sums[i+1].median
		verdict := "MET"
		if extra > netTarget {
			verdict = "NOT MET"
		}
		who := "skiff"
		if i > 0 {
			who = "baseline " + cfg.base
		}
		fmt.Printf("target --net=default ≤ --net=host + %s: %s (+%s) [%s]\n", ms(netTarget), verdict, ms(extra), who)
	}

	return iperf(ctx, cfg, p)
}

// iperf measures TCP throughput pod → host on skiff's bridge, podman's,
// and from a KVM pod.
func iperf(ctx context.Context, cfg config, p pods) error {
	dir := filepath.Join(p.dir, "iperf3")
	root := filepath.Join(dir, "rootfs")
	aciFile := filepath.Join(p.dir, "iperf3.aci")
	if err := iperfRootfs(p.rootfs, root); err != nil {
		return err
	}
	if err := writeACI(ctx, dir, aciFile, "skiff.local/bench-iperf3"); err != nil {
		return err
	}
	if err := podmanImport(ctx, root, podmanImage); err != nil {
		return err
	}
	defer output(context.Background(), nil, "podman", "rmi", "-f", podmanImage)
	// podman's network (its CNI bridge here) stays after its containers;
	// remove it if it was not there before.
	if _, err := os.Stat("/sys/class/net/" + podmanBridge); err != nil {
		defer output(context.Background(), nil, "ip", "link", "del", podmanBridge)
	}
	// iperf3 maps a temporary file per stream; TMPDIR on tmpfs for all
	// (the KVM guest's /tmp is on 9p, where an unlinked file cannot be
	// truncated).
	client := func(gw string) []string {
		return []string{"-c", gw, "-p", strconv.Itoa(iperfPort), "-t", strconv.Itoa(iperfSecs), "-J"}
	}
	skiffArgs := func(stage1 string) []string {
		return p.skiff(append([]string{"run", "--stage1=" + stage1, "--set-env=TMPDIR=/dev/shm", aciFile, "--"}, client(skiffGW)...)...)
	}
	podmanArgs := append(append([]string{"run", "--rm"}, podmanFlags...), "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
		"--network", "bridge", "--env", "TMPDIR=/dev/shm", podmanImage, "/usr/bin/iperf3")
	podmanArgs = append(podmanArgs, client(podmanGW)...)
	rate := func(env []string, name string, args ...string) func() (float64, error) {
		return func() (float64, error) {
			g, err := throughput(ctx, env, name, args...)
			if err == nil && name == cfg.skiff {
				err = p.gc(ctx, cfg)
			}
			return g, err
		}
	}
	n := max(3, cfg.n/6)
	names := []string{"skiff, stage1-ns, default bridge", "podman, bridge network"}
	fs := []func() (float64, error){rate(nil, cfg.skiff, skiffArgs("ns")...), rate(nil, "podman", podmanArgs...)}
	got := make([][]float64, len(fs))
	for range n {
		for i, f := range fs {
			g, err := f()
			if err != nil {
				return fmt.Errorf("%s: %w", names[i], err)
			}
			got[i] = append(got[i], g)
		}
	}
	fmt.Printf("\nnet: TCP pod → host, iperf3 -t %d, the server on the host (%d runs each, interleaved; Gbit/s)\n", iperfSecs, n)
	med := make([]float64, len(got))
	for i, g := range got {
		slices.Sort(g)
		med[i] = g[len(g)/2]
	}
	for i, g := range got {
		fmt.Printf("  %-36s median %6.2f  min %6.2f  max %6.2f  × podman %.2f\n", names[i], med[i], g[0], g[len(g)-1], med[i]/med[1])
	}
	verdict := "MET"
	if med[0] < 0.95*med[1] {
		verdict = "NOT MET"
	}
	fmt.Printf("target skiff ≥ 0.95× podman: %s (%.2f×)\n", verdict, med[0]/med[1])

	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg.skiff), "stage1-kvm.aci")); err != nil {
		fmt.Println("stage1-kvm: not built, no KVM figure")
		return nil
	}
	accel := cfg.accel
	if accel == "" {
		var err error
		if accel, err = vm.AccelFromEnv(slog.New(slog.DiscardHandler)); err != nil {
			return err
		}
	}
	var kvm []float64
	for range max(1, cfg.kvmN/5) {
		g, err := rate([]string{"SKIFF_KVM_ACCEL=" + accel}, cfg.skiff, skiffArgs("kvm")...)()
		if err != nil {
			return fmt.Errorf("skiff, stage1-kvm: %w", err)
		}
		kvm = append(kvm, g)
	}
	slices.Sort(kvm)
	fmt.Printf("  %-36s median %6.2f  (%d runs, accel %s; no target)\n", "skiff, stage1-kvm, default bridge", kvm[len(kvm)/2], len(kvm), accel)
	return nil
}

// throughput starts a one-shot iperf3 server on the host, runs the client
// command, and returns what the server received, in Gbit/s.
func throughput(ctx context.Context, env []string, name string, args ...string) (float64, error) {
	srv, cancel := command(ctx, nil, "iperf3", "-s", "-1", "-p", strconv.Itoa(iperfPort), "-J")
	defer cancel()
	var out strings.Builder
	srv.Stdout = &out
	if err := srv.Start(); err != nil {
		return 0, err
	}
	time.Sleep(200 * time.Millisecond) // listening
	cout, err := output(ctx, env, name, args...)
	if err != nil {
		srv.Process.Kill()
		srv.Wait()
		return 0, err
	}
	if err := srv.Wait(); err != nil {
		return 0, fmt.Errorf("iperf3 server: %w", err)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil || r.End.SumReceived.BitsPerSecond == 0 {
		return 0, fmt.Errorf("iperf3 server said %v:\n%s\nclient:\n%s", err, tail(out.String()), tail(cout))
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, nil
}

// iperfRootfs makes root: busybox's rootfs with the host's iperf3 and the
// libraries it loads.
func iperfRootfs(busybox, root string) error {
	if _, err := os.Stat(filepath.Join(root, "usr/bin/iperf3")); err == nil {
		return nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("cp", "-a", busybox+"/.", root).CombinedOutput(); err != nil {
		return fmt.Errorf("copy busybox: %w: %s", err, out)
	}
	bin, err := exec.LookPath("iperf3")
	if err != nil {
		return err
	}
	ldd, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", bin, err)
	}
	files := []string{bin}
	for _, l := range strings.Split(string(ldd), "\n") {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		real, err := filepath.EvalSymlinks(f)
		if err != nil {
			return err
		}
		dst := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		os.Remove(dst) // busybox's own /usr/bin entries are symlinks
		if out, err := exec.Command("cp", "-L", real, dst).CombinedOutput(); err != nil {
			return fmt.Errorf("copy %s: %w: %s", f, err, out)
		}
	}
	return nil
}

// writeACI packs dir/rootfs as an ACI named name running /usr/bin/iperf3.
func writeACI(ctx context.Context, dir, file, name string) error {
	manifest := fmt.Sprintf(`{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": %q,
  "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
  "app": {"exec": ["/usr/bin/iperf3"], "user": "0", "group": "0"}}`, name)
	if err := os.WriteFile(filepath.Join(dir, "manifest"), []byte(manifest), 0o644); err != nil {
		return err
	}
	_, err := output(ctx, nil, "tar", "-C", dir, "--numeric-owner", "-czf", file, "manifest", "rootfs")
	return err
}

// podmanImport imports root as image into podman's default storage.
func podmanImport(ctx context.Context, root, image string) error {
	cmd, cancel := command(ctx, nil, "sh", "-c", `tar -C "$1" -c . | podman import - "$2"`, "sh", root, image)
	defer cancel()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("podman import: %w: %s", err, tail(string(out)))
	}
	return nil
}
