package podunit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/pod"
)

func TestExecLine(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"/bin/true"}, `"/bin/true"`},
		{[]string{"/bin/sh", "-c", `echo "$HOME" 100% \o/`}, `"/bin/sh" "-c" "echo \"$$HOME\" 100%% \\o/"`},
		{[]string{"a b", ""}, `"a b" ""`},
	}
	for _, tt := range tests {
		if got := execLine(tt.argv); got != tt.want {
			t.Errorf("execLine(%q) = %s, want %s", tt.argv, got, tt.want)
		}
	}
}

func TestUnits(t *testing.T) {
	apps := []App{
		{Name: "web", Memory: 64 << 20, CPU: 500, CPUShares: 2048, PreStart: [][]string{{"/bin/prep"}}, PostStop: [][]string{{"/bin/clean", "x"}}},
		{Name: "db", StopSignal: 3},
	}
	units := Units(apps, false, false)
	tests := []struct {
		unit string
		want []string
		not  []string
	}{
		{"skiff-app-web.service", []string{
			`ExecStartPre="/skiff/stage2" "run" "--bundle=/opt/stage2/web" "--" "/bin/prep"`,
			`ExecStart="/skiff/stage2" "run" "--bundle=/opt/stage2/web" "--cgroups=/skiff/cgroup/web" "--journal=web"`,
			`ExecStartPost="/skiff/hook" "app-started"`,
			`ExecStopPost=-"/skiff/stage2" "run" "--bundle=/opt/stage2/web" "--" "/bin/clean" "x"`,
			`ExecStopPost="/skiff/hook" "app-exited" "web" "2"`,
			"StandardOutput=journal+console", "SyslogIdentifier=web", "MemoryMax=67108864", "CPUQuota=50%", "CPUShares=2048",
		}, []string{"TTYPath", "KillSignal"}},
		{"skiff-app-db.service", []string{`ExecStart="/skiff/stage2" "run" "--bundle=/opt/stage2/db" "--cgroups=/skiff/cgroup/db" "--journal=db"`, "KillSignal=3"}, []string{"MemoryMax", "CPUQuota", "CPUShares", "ExecStartPre"}},
		{"skiff-ready.service", []string{"After=skiff-app-web.service skiff-app-db.service systemd-journald.service", `ExecStart=/skiff/hook ready`}, nil},
		{"default.target", []string{"Wants=systemd-journald.service skiff-app-web.service skiff-app-db.service skiff-ready.service"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.unit, func(t *testing.T) {
			u, ok := units[tt.unit]
			if !ok {
				t.Fatalf("no unit %s in %v", tt.unit, units)
			}
			for _, w := range tt.want {
				if !strings.Contains(u, w+"\n") {
					t.Errorf("missing line %q in\n%s", w, u)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(u, n) {
					t.Errorf("unexpected %q in\n%s", n, u)
				}
			}
		})
	}
	if u := Units(apps[1:], true, false)["skiff-app-db.service"]; !strings.Contains(u, "StandardInput=tty-force\n") || strings.Contains(u, "--journal") {
		t.Errorf("interactive unit has no tty input, or journal streams:\n%s", u)
	}
}

func TestAppsOfStopSignal(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  int
		ok    bool
	}{{"3", 3, true}, {"64", 64, true}, {"0", 0, false}, {"65", 0, false}, {"SIGQUIT", 0, false}, {"", 0, false}} {
		pm := schema.BlankPodManifest()
		ra := schema.RuntimeApp{Name: "web", App: &types.App{Exec: types.Exec{"/x"}, User: "0", Group: "0"}}
		ra.Annotations.Set(StopSignalAnnotation, tt.value)
		pm.Apps = append(pm.Apps, ra)
		apps, err := AppsOf(pm)
		if (err == nil) != tt.ok || err == nil && apps[0].StopSignal != tt.want {
			t.Errorf("%q: %v, %v; want %d, ok %v", tt.value, apps, err, tt.want, tt.ok)
		}
	}
}

func TestAppsOfLimit(t *testing.T) {
	for _, tt := range []struct {
		n       int
		wantErr bool
	}{{1, false}, {MaxApps, false}, {MaxApps + 1, true}} {
		pm := schema.BlankPodManifest()
		for i := range tt.n {
			pm.Apps = append(pm.Apps, schema.RuntimeApp{Name: *types.MustACName(fmt.Sprintf("app-%d", i)), App: &types.App{}})
		}
		apps, err := AppsOf(pm)
		if tt.wantErr != errors.Is(err, ErrTooManyApps) || (err == nil && len(apps) != tt.n) {
			t.Errorf("%d apps: AppsOf = %d apps, %v; want error %v", tt.n, len(apps), err, tt.wantErr)
		}
	}
}

func TestAppsOfAttach(t *testing.T) {
	for _, tt := range []struct {
		stdin, once string
		want        string // in the app's ExecStart
		not         string
	}{
		{"true", "true", `"--attach=/skiff/attach/web" "--stdin-once" "--journal=web"` + "\n", ""},
		{"true", "", `"--attach=/skiff/attach/web" "--journal=web"` + "\n", "--stdin-once"},
		{"", "true", `"--cgroups=/skiff/cgroup/web" "--journal=web"` + "\n", "--attach"},
		{"false", "", `"--cgroups=/skiff/cgroup/web" "--journal=web"` + "\n", "--attach"},
	} {
		pm := schema.BlankPodManifest()
		ra := schema.RuntimeApp{Name: "web", App: &types.App{Exec: types.Exec{"/x"}, User: "0", Group: "0"}}
		if tt.stdin != "" {
			ra.Annotations.Set(pod.AnnotationStdin, tt.stdin)
		}
		if tt.once != "" {
			ra.Annotations.Set(pod.AnnotationStdinOnce, tt.once)
		}
		pm.Apps = append(pm.Apps, ra)
		apps, err := AppsOf(pm)
		if err != nil {
			t.Fatal(err)
		}
		u := SandboxUnit(apps[0])
		if !strings.Contains(u, tt.want) || tt.not != "" && strings.Contains(u, tt.not) {
			t.Errorf("stdin %q, once %q: unit has no %q (or has %q):\n%s", tt.stdin, tt.once, tt.want, tt.not, u)
		}
	}
}

func TestAppsOfHostDevices(t *testing.T) {
	for _, tt := range []struct {
		name                            string
		podPriv, appPriv, devices, want bool
	}{
		{"privileged app in a privileged pod", true, true, true, true},
		{"no devices asked", true, true, false, false},
		{"pod not privileged", false, true, true, false},
		{"app not privileged", true, false, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pm := schema.BlankPodManifest()
			if tt.podPriv {
				pm.Annotations.Set(pod.AnnotationPrivileged, "true")
			}
			ra := schema.RuntimeApp{Name: "web", App: &types.App{Exec: types.Exec{"/x"}, User: "0", Group: "0"}}
			if tt.appPriv {
				ra.Annotations.Set(pod.AnnotationPrivileged, "true")
			}
			if tt.devices {
				ra.Annotations.Set(pod.AnnotationHostDevices, `[]`)
			}
			pm.Apps = append(pm.Apps, ra)
			apps, err := AppsOf(pm)
			if err != nil {
				t.Fatal(err)
			}
			if apps[0].HostDevices != tt.want {
				t.Errorf("HostDevices = %t, want %t", apps[0].HostDevices, tt.want)
			}
		})
	}
}

// With netWait the apps and the ready marker hang on a path unit of
// pod.InPodNetReady; the default target no longer wants them itself.
func TestUnitsNetWait(t *testing.T) {
	units := Units([]App{{Name: "web"}, {Name: "db"}}, false, true)
	for unit, want := range map[string]string{
		"default.target":   "Wants=systemd-journald.service skiff-net.path\n",
		"skiff-net.path":   "[Path]\nPathExists=/skiff/net-ready\nUnit=skiff-net.target\n",
		"skiff-net.target": "DefaultDependencies=no\nWants=skiff-app-web.service skiff-app-db.service skiff-ready.service\n",
	} {
		if !strings.Contains(units[unit], want) {
			t.Errorf("%s has no %q:\n%s", unit, want, units[unit])
		}
	}
	if _, ok := Units(nil, false, false)["skiff-net.path"]; ok {
		t.Error("a pod that waits for no network has skiff-net.path")
	}
}

// NetReady adds stage0's hosts lines to every app's hosts file before it
// creates the file that starts the apps.
func TestNetReady(t *testing.T) {
	t.Chdir(t.TempDir())
	apps := []App{{Name: "web"}, {Name: "db"}}
	for _, d := range []string{pod.NetDir, pod.Stage1Rootfs + SkiffDir, pod.AppDir("web"), pod.AppDir("db")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range apps {
		os.WriteFile(filepath.Join(pod.AppDir(a.Name), appspec.HostsFile), []byte("127.0.0.1\tlocalhost\n"), 0o644)
	}
	os.WriteFile(pod.NetHosts, []byte("172.16.28.5\tpod\n"), 0o644)
	if err := NetReady(apps); err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		b, _ := os.ReadFile(filepath.Join(pod.AppDir(a.Name), appspec.HostsFile))
		if string(b) != "127.0.0.1\tlocalhost\n172.16.28.5\tpod\n" {
			t.Errorf("%s's hosts: %q", a.Name, b)
		}
	}
	if _, err := os.Stat(pod.Stage1Rootfs + pod.InPodNetReady); err != nil {
		t.Errorf("no net-ready file: %v", err)
	}
}

func TestResourceProperties(t *testing.T) {
	tests := []struct {
		r    pod.AppResources
		want []string
	}{
		{pod.AppResources{}, nil},
		{pod.AppResources{MemoryBytes: 64 << 20}, []string{"MemoryMax=67108864"}},
		{pod.AppResources{CPUQuota: 50000, CPUPeriod: 100000}, []string{"CPUQuotaPeriodSec=100000us", "CPUQuota=50.00%"}},
		{pod.AppResources{CPUQuota: 250000, CPUPeriod: 100000}, []string{"CPUQuotaPeriodSec=100000us", "CPUQuota=250.00%"}},
		{pod.AppResources{CPUQuota: 1, CPUPeriod: 30000}, []string{"CPUQuotaPeriodSec=30000us", "CPUQuota=0.01%"}}, // rounded up
		{pod.AppResources{CPUQuota: 33333, CPUPeriod: 100000}, []string{"CPUQuotaPeriodSec=100000us", "CPUQuota=33.34%"}},
		{pod.AppResources{CPUShares: 512}, []string{"CPUShares=512"}},
		{pod.AppResources{MemoryBytes: 1 << 30, CPUQuota: 20000, CPUPeriod: 100000, CPUShares: 2},
			[]string{"MemoryMax=1073741824", "CPUQuotaPeriodSec=100000us", "CPUQuota=20.00%", "CPUShares=2"}},
	}
	for _, tt := range tests {
		if got := ResourceProperties(tt.r); !slices.Equal(got, tt.want) {
			t.Errorf("ResourceProperties(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}
