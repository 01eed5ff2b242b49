// Package appspec translates an app of an appc pod into the OCI runtime-spec
// document that stage2 runs it from, following appc's rules for the
// environment, the user and the isolators.
//
// Decisions, where appc or the OCI spec leave room:
//   - The spec is stage2's, not a general OCI bundle: bind-mount sources are
//     paths in the stage1 root (volume NAME at Options.VolumesDir/NAME), or
//     relative to the bundle directory (the hosts and hostname files that
//     Write puts next to spec.json).
//   - /etc/hosts and /etc/hostname are generated per app and bind-mounted
//     over the image's; /etc/resolv.conf is the stage1 root's, bound
//     read-only because every app of the pod shares it.
//   - /tmp gets a tmpfs only when the root filesystem is read-only, so such
//     apps still have a scratch directory; otherwise the image's /tmp is used.
//   - Device nodes are bound from the stage1's /dev, not created with mknod,
//     so stage2 works under a device cgroup and in a user namespace.
//   - Capabilities: see applyIsolators. A seccomp isolator implies
//     no_new_privs, as in systemd and rkt.
//   - The CRI's security context comes as annotations of the app
//     (applySecurity) and wins over the isolators: its seccomp filter
//     replaces theirs, its masked and read-only paths add to skiff's.
package appspec

import (
	"cmp"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	podabi "github.com/skiffpod/skiff/pkg/pod"
)

const (
	// DefaultVolumesDir is where stage1 exposes the pod's volumes.
	DefaultVolumesDir = "/skiff/volumes"
	// DefaultResolvConf is the stage1 file bound onto the app's /etc/resolv.conf.
	DefaultResolvConf = "/etc/resolv.conf"
	// DefaultPath is appc's PATH for apps that set none.
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// AnnotationApp names the app a spec runs.
	AnnotationApp = "skiff.dev/app"

	// Files of the bundle directory, next to the app's rootfs.
	SpecFile     = "spec.json"
	HostsFile    = "hosts"
	HostnameFile = "hostname"
)

// Options are what the stage1 knows and the manifests do not.
type Options struct {
	Hostname    string // the pod's hostname; empty leaves /etc/hostname and the UTS name alone
	VolumesDir  string // "" means DefaultVolumesDir
	ResolvConf  string // "" means DefaultResolvConf; "-" mounts none
	Interactive bool   // the app's stdio is a terminal
	MetadataURL string // AC_METADATA_URL, the pod's metadata service (docs/metadata.md); "" sets none
	// Withheld are capabilities the pod cannot hold (a stage1 drops them):
	// they leave the default set. An app that asks for one fails.
	Withheld []string
}

// Build returns the spec that runs app ra of pod pm. img is the app's image
// manifest and appRoot its rootfs, read for /etc/passwd and /etc/group.
func Build(pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, appRoot *os.Root, opts Options) (*specs.Spec, error) {
	name := ra.Name.String()
	app := ra.App
	if app == nil {
		app = img.App
	}
	if app == nil || len(app.Exec) == 0 {
		return nil, fmt.Errorf("build spec of app %s: nothing to exec", name)
	}
	if opts.VolumesDir == "" {
		opts.VolumesDir = DefaultVolumesDir
	}
	if opts.ResolvConf == "" {
		opts.ResolvConf = DefaultResolvConf
	}

	user, err := resolveUser(appRoot, app.User, app.Group, app.SupplementaryGIDs)
	if err != nil {
		return nil, fmt.Errorf("build spec of app %s: %w", name, err)
	}
	cwd := app.WorkingDirectory
	if cwd == "" {
		cwd = "/"
	}
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: opts.Hostname,
		Root:     &specs.Root{Path: "rootfs", Readonly: ra.ReadOnlyRootFS},
		Process: &specs.Process{
			Terminal: opts.Interactive,
			Args:     slices.Clone(app.Exec),
			Env:      env(name, opts.MetadataURL, app.Environment),
			Cwd:      cwd,
			User:     user,
		},
		Annotations: map[string]string{AnnotationApp: name},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}},
			Devices:    devices(),
			MaskedPaths: []string{
				"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
				"/sys/firmware", "/sys/fs/selinux",
			},
			ReadonlyPaths: []string{
				"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
	if v, _ := ra.Annotations.Get(podabi.AnnotationPIDNamespace); v == "app" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	if Insecure(pm, "paths") {
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	}
	if err := applyIsolators(s, app.Isolators, opts.Withheld, Insecure(pm, "capabilities"), Insecure(pm, "seccomp")); err != nil {
		return nil, fmt.Errorf("build spec of app %s: %w", name, err)
	}
	vols, err := volumeMounts(pm, ra, app, opts.VolumesDir)
	if err != nil {
		return nil, fmt.Errorf("build spec of app %s: %w", name, err)
	}
	s.Mounts = mounts(s, vols, opts)
	if err := applySecurity(s, ra.Annotations); err != nil {
		return nil, fmt.Errorf("build spec of app %s: %w", name, err)
	}
	if err := hostDevices(s, pm, ra.Annotations); err != nil {
		return nil, fmt.Errorf("build spec of app %s: %w", name, err)
	}
	return s, nil
}

// env applies appc's rules: the app's variables in order, a later one
// replacing an earlier one of the same name in place, then AC_APP_NAME
// and AC_METADATA_URL (when the pod has a metadata service) always, and
// PATH when the app sets none.
func env(app, metadataURL string, e types.Environment) []string {
	var names []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			names = append(names, k)
		}
		vals[k] = v
	}
	for _, v := range e {
		set(v.Name, v.Value)
	}
	set("AC_APP_NAME", app)
	if metadataURL != "" {
		set("AC_METADATA_URL", metadataURL)
	}
	if _, ok := vals["PATH"]; !ok {
		set("PATH", DefaultPath)
	}
	out := make([]string, len(names))
	for i, k := range names {
		out[i] = k + "=" + vals[k]
	}
	return out
}

func devices() []specs.LinuxDevice {
	mode := os.FileMode(0o666)
	var uid, gid uint32
	dev := func(p string, major, minor int64) specs.LinuxDevice {
		return specs.LinuxDevice{Path: p, Type: "c", Major: major, Minor: minor, FileMode: &mode, UID: &uid, GID: &gid}
	}
	return []specs.LinuxDevice{
		dev("/dev/null", 1, 3), dev("/dev/zero", 1, 5), dev("/dev/full", 1, 7),
		dev("/dev/random", 1, 8), dev("/dev/urandom", 1, 9), dev("/dev/tty", 5, 0),
	}
}

func mounts(s *specs.Spec, vols []specs.Mount, opts Options) []specs.Mount {
	m := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		// The pod's cgroup tree, read-only, so an app can read its own limits
		// (as under Docker without a cgroup namespace); sysfs alone has none.
		{Destination: "/sys/fs/cgroup", Type: "bind", Source: "/sys/fs/cgroup", Options: []string{"rbind", "ro"}},
	}
	if s.Process.Terminal {
		m = append(m, bind("/dev/console", "/dev/console", false))
	}
	if s.Root.Readonly {
		m = append(m, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}})
	}
	m = append(m, bind(HostsFile, "/etc/hosts", false))
	if s.Hostname != "" {
		m = append(m, bind(HostnameFile, "/etc/hostname", false))
	}
	if opts.ResolvConf != "-" {
		m = append(m, bind(opts.ResolvConf, "/etc/resolv.conf", true))
	}
	// Volumes last: a volume may be mounted below /dev, /tmp or /etc.
	return append(m, vols...)
}

func bind(src, dst string, ro bool) specs.Mount {
	o := []string{"bind"}
	if ro {
		o = append(o, "ro")
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: o}
}

// volumeMounts binds the pod's volumes: first the runtime app's mounts,
// then every mount point of the app that no mount covers, from the volume
// of the same name. Read-only as the volume says when it says (rkt's rule:
// a pod manifest's readOnly false overrides an image's read-only mount
// point), else as the mount point says.
func volumeMounts(pm *schema.PodManifest, ra *schema.RuntimeApp, app *types.App, dir string) ([]specs.Mount, error) {
	vols := map[types.ACName]types.Volume{}
	for _, v := range pm.Volumes {
		vols[v.Name] = v
	}
	var out []specs.Mount
	add := func(v types.Volume, target string, ro bool) {
		if v.ReadOnly != nil {
			ro = *v.ReadOnly
		}
		m := bind(path.Join(dir, v.Name.String()), path.Clean("/"+target), ro)
		if v.Recursive == nil || *v.Recursive {
			m.Options[0] = "rbind"
		}
		out = append(out, m)
	}
	covered := map[string]bool{}
	for _, m := range ra.Mounts {
		v, ok := vols[m.Volume]
		if m.AppVolume != nil {
			v, ok = *m.AppVolume, true
		}
		if !ok {
			return nil, fmt.Errorf("mount %s at %s: %w", m.Volume, m.Path, ErrNoVolume)
		}
		ro := false
		for _, mp := range app.MountPoints {
			ro = ro || (mp.ReadOnly && path.Clean(mp.Path) == path.Clean(m.Path))
		}
		add(v, m.Path, ro)
		covered[path.Clean(m.Path)] = true
	}
	for _, mp := range app.MountPoints {
		if covered[path.Clean(mp.Path)] {
			continue
		}
		v, ok := vols[mp.Name]
		if !ok {
			return nil, fmt.Errorf("mount point %s at %s: %w", mp.Name, mp.Path, ErrNoVolume)
		}
		add(v, mp.Path, mp.ReadOnly)
	}
	// A mount below another's target (--mount at /data/sub under the
	// mount point /data) goes on top of it, whatever order they came in.
	slices.SortStableFunc(out, func(a, b specs.Mount) int {
		return cmp.Compare(depth(a.Destination), depth(b.Destination))
	})
	return out, nil
}

// depth is the number of elements of a clean absolute path ("/" is 0).
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}
