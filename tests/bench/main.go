// Command bench measures skiff against its peers, side by side (`make bench`,
// as root; it runs pods, nspawn, crun, runc and qemu, and mounts).
//
// What is measured, each as the wall time of one complete command, from
// fork to exit:
//
//   - stage1-ns: `skiff run` of a cached busybox image running /bin/true,
//     bare `systemd-nspawn` of the same rootfs, `crun run` and `runc run`
//     of it as an OCI bundle, and a clone(pid,mnt,uts,ipc,net) + chroot +
//     exec of /bin/true, the floor any namespace runtime pays.
//   - stage1-kvm: `skiff run --stage1=kvm` of the same app against a bare
//     boot of the same kernel and initramfs through pkg/vm (boot to the
//     guest init's hello, run /bin/true, power off), same accelerator.
//   - net (net.go): `skiff run --net=default` against `--net=host`, and
//     TCP throughput pod → host with iperf3 against podman's bridge.
//   - store: `skiff fetch` (import) of redis.aci against `tar -xzf` of the
//     same file, and `skiff prepare` of busybox against redis.
//   - oci (oci.go): against one local docker-registry, `skiff fetch` vs
//     `podman pull` vs `skopeo copy` of a 5-layer image, the bytes each
//     serves for a second image sharing its base layer, `skiff run` of
//     the OCI image vs the same rootfs as an ACI vs `podman run --rm`,
//     and `skiff prepare` of the large image vs a small one.
//   - cri (cri.go): a pod sandbox + container started to running through
//     the CRI with crictl (runp, create, start), `skiff cri` against
//     containerd 2.4.2 + runc built from the module proxy (make cri-tools).
//
// Contenders of one table run interleaved (A B C A B C ...), so that load
// from other processes and drifting caches hit all of them alike; the table
// gives median, p10 and p90 over -n runs, and each median as a multiple of
// the reference row (ratio 3.0 = three times slower than the reference).
// Only ratios from one run of this program compare: absolute numbers move
// with the machine and its load. A breakdown follows each comparison: one
// extra run of skiff under `strace -f -e trace=execve` (whose overhead
// makes it slower than the median) with its output lines timestamped,
// split at the moments each stage starts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// config is what every section needs; set once from the flags.
type config struct {
	skiff   string // bin/skiff; stage1 images are found beside it
	base    string // another skiff, timed beside skiff in every section that has base rows (ns, kvm, store, pods, net, cri); "" for none
	images  string // bin/images
	scratch string
	n       int // runs per contender, stage1-ns and store
	kvmN    int // runs per contender, stage1-kvm
	accel   string
	pods    int // pods in the store for the list row
}

func main() { os.Exit(run()) }

func run() int {
	var cfg config
	var only string
	var keep bool
	flag.StringVar(&cfg.skiff, "skiff", "bin/skiff", "skiff binary; stage1-ns.aci and stage1-kvm.aci are taken from its directory")
	flag.StringVar(&cfg.base, "base", "", "a second skiff binary (a build of main, its stage1 images beside it), timed beside -skiff, interleaved, in the ns, kvm, store, pods, net and cri sections")
	flag.StringVar(&cfg.images, "images", "bin/images", "directory holding busybox.aci and redis.aci")
	flag.StringVar(&cfg.scratch, "scratch", "/var/tmp/skiff-bench", "scratch directory (emptied first)")
	flag.IntVar(&cfg.n, "n", 30, "runs per contender for stage1-ns and the store")
	flag.IntVar(&cfg.kvmN, "kvm-n", 10, "runs per contender for stage1-kvm")
	flag.StringVar(&cfg.accel, "accel", "", "qemu accelerator for both kvm contenders: kvm or tcg (default: $SKIFF_KVM_ACCEL, else what skiff would choose)")
	flag.IntVar(&cfg.pods, "pods", 1000, "pods in the store the pods section lists")
	flag.StringVar(&only, "only", "ns,kvm,store,pods,net,oci,cri", "comma-separated sections to run")
	flag.BoolVar(&keep, "keep", false, "keep the scratch directory")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: must run as root: it runs pods, systemd-nspawn, crun, runc and qemu, and mounts overlays (sudo make bench)")
		return 2
	}
	if cfg.n < 1 || cfg.kvmN < 1 {
		fmt.Fprintln(os.Stderr, "bench: -n and -kvm-n must be at least 1")
		return 2
	}
	for _, p := range []*string{&cfg.skiff, &cfg.images, &cfg.base} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		*p = abs
	}
	if err := cleanup(cfg, false); err != nil {
		fmt.Fprintln(os.Stderr, "bench: clean up the last run:", err)
		return 1
	}
	if err := os.MkdirAll(cfg.scratch, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	sections := map[string]func(context.Context, config) error{"ns": benchNS, "kvm": benchKVM, "store": benchStore, "pods": benchPodStore, "net": benchNet, "oci": benchOCI, "cri": benchCRI}
	var errs []error
	for _, name := range strings.Split(only, ",") {
		f, ok := sections[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown section %q (want ns, kvm, store, pods, net, oci, cri)\n", name)
			return 2
		}
		if err := f(context.Background(), cfg); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", name, err)
			errs = append(errs, err)
		}
	}
	if err := cleanup(cfg, keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench: clean up:", err)
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return 1
	}
	return 0
}

// binaries lists the skiffs to time side by side: skiff, then base if
// given, each with the suffix its rows carry.
func (cfg config) binaries() (bins, suffixes []string) {
	if cfg.base == "" {
		return []string{cfg.skiff}, []string{""}
	}
	return []string{cfg.skiff, cfg.base}, []string{"", " [base]"}
}

// cleanup collects the pods the sections left (unmounting their overlays)
// and removes the scratch directory, unless something is still mounted
// below it: removing would then reach into the mounted trees.
func cleanup(cfg config, keep bool) error {
	stores, _ := filepath.Glob(filepath.Join(cfg.scratch, "*", "store"))
	var errs []error
	for _, s := range stores {
		if _, err := output(context.Background(), nil, cfg.skiff, "--dir="+s, "gc", "--grace-period=0"); err != nil {
			errs = append(errs, err)
		}
	}
	if keep || len(errs) > 0 {
		return errors.Join(errs...)
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], cfg.scratch+"/") {
			return fmt.Errorf("%s is still mounted: not removing %s", f[1], cfg.scratch)
		}
	}
	return os.RemoveAll(cfg.scratch)
}
