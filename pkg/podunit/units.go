package podunit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/pod"
)

// App is what the units of one app are made from.
type App struct {
	Name     string
	PreStart [][]string // pre-start event handlers, run in the app's root by stage2 run
	PostStop [][]string // post-stop event handlers, likewise
	Memory   int64      // memory limit in bytes, 0 for none
	CPU      int64      // CPU limit in millicores, 0 for none
	// CPUShares is the app's CPU weight (os/linux/cpu-shares), 0 for the default.
	CPUShares int64
	// StopSignal stops the app (KillSignal=); 0 means systemd's SIGTERM.
	StopSignal int
	// Retain is the app's capabilities-retain-set isolator (--caps-retain):
	// stage2 can give the app only what the pod's init holds, so a stage1
	// whose init runs with fewer capabilities grants these (RetainedCaps).
	Retain []string
	// Stdin, when set, is the app's standard input: a file of the stage1
	// rootfs (StdinFIFO for a piped interactive pod).
	Stdin string
	// Attach gives the app stdio that enter --attach reaches (its pod
	// manifest entry has pod.AnnotationStdin "true"): stage2 starts a
	// relay listening on AttachSocket; StdinOnce (pod.AnnotationStdinOnce)
	// closes the app's stdin when the first attach ends it.
	Attach, StdinOnce bool
	// HostDevices: the app may use the host's devices (a privileged app
	// with pod.AnnotationHostDevices in a privileged pod): a devices
	// cgroup of its own that allows every device.
	HostDevices bool
}

// StopSignalAnnotation, on an app of the pod manifest, names the signal
// (a number) that stops it: an OCI image's StopSignal (docs/stage1-abi.md).
const StopSignalAnnotation = "skiff.dev/stop-signal"

// MaxApps is the most apps one pod may have. systemd in the pod, one unit
// per app, slows down super-linearly with the number of units and, past a
// few hundred on the 2-core build machines, some runs never ended (an
// app's ExecStopPost failing with 219/CGROUP); docs/decisions.md has the
// measurements. 256 apps ran in about 10 s.
const MaxApps = 256

// AppsOf extracts what the units need from a pod manifest.
func AppsOf(pm *schema.PodManifest) ([]App, error) {
	if len(pm.Apps) > MaxApps {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyApps, len(pm.Apps), MaxApps)
	}
	var apps []App
	for _, ra := range pm.Apps {
		a := App{Name: ra.Name.String()}
		if ra.App == nil {
			return nil, fmt.Errorf("app %s: no app section in the pod manifest", a.Name)
		}
		if v, ok := ra.Annotations.Get(StopSignalAnnotation); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 64 {
				return nil, fmt.Errorf("app %s: %s %q is not a signal number", a.Name, StopSignalAnnotation, v)
			}
			a.StopSignal = n
		}
		if v, _ := ra.Annotations.Get(pod.AnnotationStdin); v == "true" {
			a.Attach = true
			v, _ = ra.Annotations.Get(pod.AnnotationStdinOnce)
			a.StdinOnce = v == "true"
		}
		_, devs := ra.Annotations.Get(pod.AnnotationHostDevices)
		a.HostDevices = devs && privileged(pm.Annotations) && privileged(ra.Annotations)
		for _, h := range ra.App.EventHandlers {
			switch h.Name {
			case "pre-start":
				a.PreStart = append(a.PreStart, h.Exec)
			case "post-stop":
				a.PostStop = append(a.PostStop, h.Exec)
			}
		}
		for _, iso := range ra.App.Isolators {
			switch v := iso.Value().(type) {
			case *types.ResourceMemory:
				if l := v.Limit(); l != nil {
					a.Memory = l.Value()
				}
			case *types.ResourceCPU:
				if l := v.Limit(); l != nil {
					a.CPU = l.MilliValue()
				}
			case *types.LinuxCPUShares:
				a.CPUShares = int64(*v)
			case *types.LinuxCapabilitiesRetainSet:
				a.Retain = nil
				for _, c := range v.Set() {
					a.Retain = append(a.Retain, string(c))
				}
			}
		}
		apps = append(apps, a)
	}
	return apps, nil
}

func privileged(an types.Annotations) bool {
	v, _ := an.Get(pod.AnnotationPrivileged)
	return v == "true"
}

// Limited says whether the app has a memory or CPU limit or CPU shares:
// a cgroup of its own to set up where the pod's systemd cannot.
func (a App) Limited() bool { return a.Memory > 0 || a.CPU > 0 || a.CPUShares > 0 }

// RetainedCaps is the union of the apps' Retain sets, sorted: the
// capabilities a stage1 grants the pod beyond its defaults, as rkt's
// stage1 gave systemd-nspawn --capability= for the apps' isolators.
func RetainedCaps(apps []App) []string {
	var caps []string
	for _, a := range apps {
		caps = append(caps, a.Retain...)
	}
	slices.Sort(caps)
	return slices.Compact(caps)
}

// Units returns the unit files, by name, that start the pod's apps once
// systemd boots in the container: one service per app, a oneshot that marks
// the pod ready, and the default target that wants them all. With netWait
// (the pod's network is still being attached, pod.FeatureNetWait), a path
// unit holds the apps back until the stage1 creates pod.InPodNetReady.
func Units(apps []App, interactive, netWait bool) map[string]string {
	units := map[string]string{}
	wants := []string{"systemd-journald.service"}
	var after []string
	for _, a := range apps {
		u := UnitName(a.Name)
		units[u] = appUnit(a, len(apps), interactive)
		wants = append(wants, u)
		after = append(after, u)
	}
	// Ready also waits for journald, so that a pod stopped once ready has
	// a journal for skiff logs (on a loaded host the apps can start first).
	units["skiff-ready.service"] = "[Unit]\nDescription=skiff pod ready\nDefaultDependencies=no\n" +
		"Requires=" + strings.Join(after, " ") + "\nAfter=" + strings.Join(after, " ") + " systemd-journald.service\n\n" +
		"[Service]\nType=oneshot\nExecStart=" + HookPath + " ready\n"
	wants = append(wants, "skiff-ready.service")
	if netWait {
		// systemd watches the path (inotify) and starts the target, which
		// wants the apps, once it exists (at once if it already does).
		units["skiff-net.path"] = "[Unit]\nDescription=skiff pod network\nDefaultDependencies=no\n\n" +
			"[Path]\nPathExists=" + pod.InPodNetReady + "\nUnit=skiff-net.target\n"
		units["skiff-net.target"] = "[Unit]\nDescription=skiff pod network attached\nDefaultDependencies=no\nWants=" +
			strings.Join(wants[1:], " ") + "\n"
		wants = []string{wants[0], "skiff-net.path"}
	}
	units["default.target"] = "[Unit]\nDescription=skiff pod\nWants=" + strings.Join(wants, " ") + "\n"
	return units
}

// SandboxUnit is the unit of app a added to an app sandbox: its end is
// recorded but, unlike Units', never powers the pod off.
func SandboxUnit(a App) string { return appUnit(a, 0, false) }

func appUnit(a App, napps int, interactive bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Unit]\nDescription=skiff app %s\n", a.Name)
	// No sysinit/basic targets in the pod: boot straight to the apps.
	b.WriteString("DefaultDependencies=no\nConflicts=shutdown.target\nBefore=shutdown.target\n\n")
	b.WriteString("[Service]\nType=exec\nRestart=no\nKillMode=mixed\nTimeoutStopSec=10s\n")
	// Event handlers run as the app does (stage2 run sets up the app's
	// root and restrictions), with the handler in place of the app.
	handler := func(h []string) string {
		return execLine(append([]string{Stage2Path, "run", "--bundle=" + Bundle(a.Name), "--"}, h...))
	}
	for _, h := range a.PreStart {
		fmt.Fprintf(&b, "ExecStartPre=%s\n", handler(h))
	}
	// stage2 joins the cgroups stage1 made for the app's limits (stage1-ns
	// on cgroup v1 hosts), sets up its root and becomes the app.
	start := []string{Stage2Path, "run", "--bundle=" + Bundle(a.Name), "--cgroups=" + CgroupDir + "/" + a.Name}
	if a.Stdin != "" {
		// stage2 opens it for the app alone: every Exec*= of the unit
		// would open a StandardInput=file:, the hooks after the app too,
		// and a FIFO whose writer is gone blocks them.
		start = append(start, "--stdin="+a.Stdin)
	}
	if a.Attach {
		start = append(start, "--attach="+AttachSocket(a.Name))
		if a.StdinOnce {
			start = append(start, "--stdin-once")
		}
	}
	if !interactive {
		// stage2 gives the app's stdout and stderr journal streams of
		// their own (priority 6 and 3): systemd's one stream for both
		// would not let the CRI's log tell them apart.
		start = append(start, "--journal="+a.Name)
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", execLine(start))
	// The unit counts as started (and the pod as ready) only once the
	// app itself runs, not stage2 that becomes it.
	fmt.Fprintf(&b, "ExecStartPost=%s\n", execLine([]string{HookPath, "app-started"}))
	// A failing post-stop handler must not keep the status from being recorded.
	for _, h := range a.PostStop {
		fmt.Fprintf(&b, "ExecStopPost=-%s\n", handler(h))
	}
	fmt.Fprintf(&b, "ExecStopPost=%s\n", execLine([]string{HookPath, "app-exited", a.Name, strconv.Itoa(napps)}))
	switch {
	case interactive:
		b.WriteString("StandardInput=tty-force\nStandardOutput=tty\nStandardError=tty\nTTYPath=/dev/console\n")
	default:
		b.WriteString("StandardOutput=journal+console\nStandardError=journal+console\n")
	}
	fmt.Fprintf(&b, "SyslogIdentifier=%s\n", a.Name)
	// Effective where the pod's systemd owns the controllers (in a VM or
	// on a cgroup v2 host); on cgroup v1 hosts stage1-ns enforces the same
	// limits from outside.
	if a.Memory > 0 {
		fmt.Fprintf(&b, "MemoryMax=%d\n", a.Memory)
	}
	if a.CPU > 0 {
		fmt.Fprintf(&b, "CPUQuota=%d%%\n", (a.CPU+9)/10)
	}
	if a.CPUShares > 0 {
		// systemd turns it into CPUWeight= on cgroup v2, as rkt relied on.
		fmt.Fprintf(&b, "CPUShares=%d\n", a.CPUShares)
	}
	if a.StopSignal > 0 {
		fmt.Fprintf(&b, "KillSignal=%d\n", a.StopSignal)
	}
	return b.String()
}

// ResourceProperties are the unit properties (systemctl set-property)
// that give a running app r's limits, spelled as its unit file spells
// them; a zero field sets nothing. systemd keeps a CPU quota per second,
// in hundredths of a percent: the quota is rounded up to that.
func ResourceProperties(r pod.AppResources) []string {
	var props []string
	if r.MemoryBytes > 0 {
		props = append(props, fmt.Sprintf("MemoryMax=%d", r.MemoryBytes))
	}
	if r.CPUQuota > 0 && r.CPUPeriod > 0 {
		pm := (r.CPUQuota*10000 + r.CPUPeriod - 1) / r.CPUPeriod
		props = append(props, fmt.Sprintf("CPUQuotaPeriodSec=%dus", r.CPUPeriod), fmt.Sprintf("CPUQuota=%d.%02d%%", pm/100, pm%100))
	}
	if r.CPUShares > 0 {
		props = append(props, fmt.Sprintf("CPUShares=%d", r.CPUShares))
	}
	return props
}

// execLine quotes argv for an Exec= setting: every word double-quoted, and
// systemd's specifier (%) and variable ($) expansion disabled.
func execLine(argv []string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "$", "$$", "\n", `\n`)
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = `"` + r.Replace(a) + `"`
	}
	return strings.Join(q, " ")
}
