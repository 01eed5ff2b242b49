//go:build e2e

package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// rkt's remaining run flags (issue 14 item 5): --cpu-shares,
// --oom-score-adj, --pod-manifest, --ipc and image extract/render
// --rootfs-only, as rkt's functional tests ran them.

// TestRktCPUSharesOOMScore: rkt's TestAppIsolatorCPUShares and
// TestOOMScoreAdj: --cpu-shares and --oom-score-adj after an image set
// that app's isolators (over the image's); a negative score is raised to
// what the host allows, with the warning; values out of range are usage
// errors. On both stage1s, as rkt ran them.
func TestRktCPUSharesOOMScore(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, errs, code := e.run("run", "--stage1="+s,
			image(t, "probe.aci"), "--name=shares", "--cpu-shares=12345", "--oom-score-adj=42", "--",
			"-print-cpushares", "-read-file=/proc/self/oom_score_adj", "---",
			image(t, "probe.aci"), "--name=neg", "--oom-score-adj=-50", "--", "-read-file=/proc/self/oom_score_adj")
		all := out + errs
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, all)
		}
		shares := appLines(all, "shares")
		mustContain(t, shares, "READ_FILE=42\n")
		// v1: cpu.shares as given; v2 (systemd's CPUShares= as CPUWeight=): 12345*100/1024.
		if !strings.Contains(shares, "CPUSHARES=12345\nCPUSHARES_FILE=") && !strings.Contains(shares, "CPUSHARES=1205\nCPUSHARES_FILE=") {
			t.Errorf("cpu shares: want 12345 (v1) or weight 1205 (v2):\n%s", all)
		}
		if neg := appLines(all, "neg"); !strings.Contains(neg, "READ_FILE=-50\n") {
			mustContain(t, neg, "READ_FILE=0\n")
			mustContain(t, all, "oom score -50: this host does not let the pod lower its OOM score")
		}
	})
	e := newEnv(t)
	for _, bad := range []string{"--cpu-shares=1", "--cpu-shares=x", "--oom-score-adj=1001", "--oom-score-adj=-1001"} {
		_, errs, code := e.run("run", image(t, "probe.aci"), bad)
		if code != 2 || !strings.Contains(errs, "skiff: "+bad) {
			t.Errorf("%s: exit %d, want 2 and a line naming the flag:\n%s", bad, code, errs)
		}
	}
}

// TestRktIPC: rkt's TestIpc. --ipc=auto and private (and no flag) give
// the pod its own IPC namespace, parent leaves it in the host's, on run
// and run-prepared; any other value is a usage error; stage1-kvm refuses
// parent before a pod is made (a VM has a kernel of its own).
func TestRktIPC(t *testing.T) {
	host, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	ipcNS := func(t *testing.T, out string) string {
		t.Helper()
		m := regexp.MustCompile(`IPCNS=(ipc:\[\d+\])`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no IPC namespace in the output:\n%s", out)
		}
		return m[1]
	}
	app := []string{image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c", `echo IPCNS=$(readlink /proc/self/ns/ipc)`}
	for _, tt := range []struct {
		flag string
		host bool
	}{{"", false}, {"--ipc=auto", false}, {"--ipc=private", false}, {"--ipc=parent", true}} {
		args := []string{"run", "--stage1=ns"}
		if tt.flag != "" {
			args = append(args, tt.flag)
		}
		out, errs, code := e.run(append(args, app...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d:\n%s%s", tt.flag, code, out, errs)
		}
		if ns := ipcNS(t, out+errs); (ns == host) != tt.host {
			t.Errorf("%q: IPC namespace %s, host's %s: want the host's: %v", tt.flag, ns, host, tt.host)
		}
	}
	uuid := strings.TrimSpace(e.mustRun(append([]string{"prepare", "--stage1=ns"}, app...)...))
	out, errs, code := e.run("run-prepared", "--ipc=parent", uuid)
	if code != 0 || ipcNS(t, out+errs) != host {
		t.Errorf("run-prepared --ipc=parent: exit %d, want the host's IPC namespace %s:\n%s%s", code, host, out, errs)
	}
	before := e.mustRun("list", "--no-legend")
	for _, args := range [][]string{
		{"run", "--ipc=supercalifragilisticexpialidocious", image(t, "busybox.aci")},
		{"prepare", "--ipc=parent", image(t, "busybox.aci")},
		{"run", "--stage1=kvm", "--ipc=parent", image(t, "busybox.aci"), "--exec=/bin/true"},
	} {
		_, errs, code := e.run(args...)
		if code != 2 || !strings.Contains(errs, "--ipc") || strings.Count(strings.TrimSpace(errs), "\n") > 1 {
			t.Errorf("%v: exit %d, want 2 and a line about --ipc:\n%s", args, code, errs)
		}
	}
	if after := e.mustRun("list", "--no-legend"); after != before {
		t.Errorf("a refused --ipc left a pod behind:\n%s", after)
	}
}

// TestRktPodManifest: rkt's TestPodManifest cases that apply, each by run
// and by prepare + run-prepared: the pod manifest's app sections
// (arguments with special characters, working directory, user and group,
// environment, capabilities, a memory isolator, a read-only rootfs), its
// volumes (empty with mode and owner; host, read-only or not, over the
// image's mount point's readOnly), two apps sharing a volume, an app with
// no app section taking the image's, and its annotations; rkt's
// TestPodManifestWithEmptyApps; and the conflicts rkt reports, as usage
// errors. On stage1-ns, as rkt ran them.
func TestRktPodManifest(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.mustRun("fetch", "--full", image(t, "probe.aci")))
	// An image whose app writes into a read-only mount point, run with
	// no app section.
	roMount := probeVariant(t, t.TempDir(), "probe-ro-mount", func(a *types.App) {
		a.Exec = types.Exec{"/probe", "-write-file=/dir1/file", "-content=host:zaz", "-read-file=/dir1/file"}
		a.MountPoints = []types.MountPoint{{Name: "dir1", Path: "/dir1", ReadOnly: true}}
	}, nil)
	roID := strings.TrimSpace(e.mustRun("--insecure-options=image", "fetch", "--full", roMount))
	mem, err := types.NewResourceMemoryIsolator("4194304", "4194304")
	if err != nil {
		t.Fatal(err)
	}
	caps, err := types.NewLinuxCapabilitiesRetainSet("CAP_NET_ADMIN")
	if err != nil {
		t.Fatal(err)
	}
	capsIso, err := caps.AsIsolator()
	if err != nil {
		t.Fatal(err)
	}
	app := func(name string, mod func(*types.App), exec ...string) schema.RuntimeApp {
		a := &types.App{Exec: append(types.Exec{"/probe"}, exec...), User: "0", Group: "0"}
		if mod != nil {
			mod(a)
		}
		h, err := types.NewHash(id)
		if err != nil {
			t.Fatal(err)
		}
		return schema.RuntimeApp{Name: *types.MustACName(name), Image: schema.RuntimeImage{ID: *h}, App: a}
	}
	dir1 := func(a *types.App) { a.MountPoints = []types.MountPoint{{Name: "dir1", Path: "/dir1"}} }
	boolP := func(b bool) *bool { return &b }
	mode, uid, gid := "0123", 9991, 9992
	tests := []struct {
		name    string
		pm      func(host string) *schema.PodManifest
		code    int
		want    []string
		hostOut string // the content of the host volume's file afterwards
	}{
		{"special characters", func(string) *schema.PodManifest {
			return &schema.PodManifest{Apps: []schema.RuntimeApp{app("p", nil, "-print-args", "--", "'\"$")}}
		}, 0, []string{"ARG='\"$"}, ""},
		{"working directory, user, environment", func(string) *schema.PodManifest {
			return &schema.PodManifest{Apps: []schema.RuntimeApp{app("p", func(a *types.App) {
				a.WorkingDirectory, a.User, a.Group = "/tmp", "1000", "100"
				a.Environment.Set("FOO", "bar")
			}, "-print-cwd", "-print-user", "-print-env=FOO")}}
		}, 0, []string{"CWD=/tmp\n", "UID=1000\n", "GID=100\n", "FOO=bar\n"}, ""},
		{"unknown user", func(string) *schema.PodManifest {
			return &schema.PodManifest{Apps: []schema.RuntimeApp{app("p", func(a *types.App) { a.User = "user2" }, "-print-user")}}
		}, -1, []string{"user2"}, ""},
		{"capabilities and memory isolators", func(string) *schema.PodManifest {
			return &schema.PodManifest{Apps: []schema.RuntimeApp{app("p", func(a *types.App) {
				a.Isolators = types.Isolators{mem.AsIsolator(), *capsIso}
			}, "-print-caps", "-print-memlimit")}}
		}, 0, []string{"CAPEFF_NAMES=CAP_NET_ADMIN\n", "MEMLIMIT=4194304\n"}, ""},
		{"empty volume, read-only rootfs", func(string) *schema.PodManifest {
			ra := app("p", dir1, "-stat=/dir1", "-write-file=/dir1/file", "-content=empty:foo", "-read-file=/dir1/file")
			ra.ReadOnlyRootFS = true
			return &schema.PodManifest{Apps: []schema.RuntimeApp{ra},
				Volumes: []types.Volume{{Name: "dir1", Kind: "empty", Mode: &mode, UID: &uid, GID: &gid}}}
		}, 0, []string{"STAT_PERM=0123\n", "STAT_UID=9991\n", "STAT_GID=9992\n", "READ_FILE=empty:foo\n"}, ""},
		{"host volume", func(host string) *schema.PodManifest {
			return &schema.PodManifest{Apps: []schema.RuntimeApp{app("p", dir1, "-write-file=/dir1/file", "-content=host:foo", "-read-file=/dir1/file")},
				Volumes: []types.Volume{{Name: "dir1", Kind: "host", Source: host}}}
		}, 0, []string{"READ_FILE=host:foo\n"}, "host:foo"},
		{"read-only host volume", func(host string) *schema.PodManifest {
			return &schema.PodManifest{Apps: []schema.RuntimeApp{app("p", dir1, "-write-file=/dir1/file", "-content=host:bar")},
				Volumes: []types.Volume{{Name: "dir1", Kind: "host", Source: host, ReadOnly: boolP(true)}}}
		}, -1, []string{"read-only file system"}, ""},
		{"no app section, the volume's readOnly over the mount point's", func(host string) *schema.PodManifest {
			h, err := types.NewHash(roID)
			if err != nil {
				t.Fatal(err)
			}
			return &schema.PodManifest{Apps: []schema.RuntimeApp{{Name: "p", Image: schema.RuntimeImage{ID: *h}}},
				Volumes: []types.Volume{{Name: "dir1", Kind: "host", Source: host, ReadOnly: boolP(false)}}}
		}, 0, []string{"READ_FILE=host:zaz\n"}, "host:zaz"},
		{"two apps, one volume", func(host string) *schema.PodManifest {
			return &schema.PodManifest{Apps: []schema.RuntimeApp{
				app("reader", func(a *types.App) {
					dir1(a)
					a.Exec = types.Exec{"/bin/sh", "-c", "sleep 3; echo READ_FILE=$(cat /dir1/file)"}
				}),
				app("writer", dir1, "-write-file=/dir1/file", "-content=host:two"),
			}, Volumes: []types.Volume{{Name: "dir1", Kind: "host", Source: host}}}
		}, 0, []string{"READ_FILE=host:two\n"}, "host:two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, how := range []string{"run", "prepare"} {
				host := t.TempDir()
				pm := tt.pm(host)
				pm.ACKind, pm.ACVersion = schema.PodManifestKind, schema.AppContainerVersion
				pm.Annotations.Set("example.com/test", "pod-manifest")
				file := writePodManifest(t, pm)
				var out, errs string
				var code int
				if how == "run" {
					out, errs, code = e.run("run", "--pod-manifest="+file)
				} else {
					uuid := strings.TrimSpace(e.mustRun("prepare", "--pod-manifest="+file))
					mustContain(t, e.mustRun("cat-manifest", uuid), `"example.com/test"`)
					out, errs, code = e.run("run-prepared", uuid)
				}
				if tt.code >= 0 && code != tt.code || tt.code < 0 && code == 0 {
					t.Errorf("%s: exit %d, want %d (-1: any failure):\n%s%s", how, code, tt.code, out, errs)
				}
				mustContain(t, out+errs, tt.want...)
				if tt.hostOut != "" {
					if b, err := os.ReadFile(filepath.Join(host, "file")); string(b) != tt.hostOut {
						t.Errorf("%s: host file %q, %v, want %q", how, b, err, tt.hostOut)
					}
				}
			}
		})
	}
	// By name, as an IMAGE argument: resolved in the store, the run policy
	// checked (the variant was fetched unverified).
	t.Run("by name", func(t *testing.T) {
		host := t.TempDir()
		// Written by hand: appc's types will not marshal an app without an image ID.
		byName := filepath.Join(t.TempDir(), "pod.json")
		if err := os.WriteFile(byName, []byte(`{"acKind":"PodManifest","acVersion":"0.8.11",
			"apps":[{"name":"p","image":{"name":"skiff.local/probe-ro-mount"}}],
			"volumes":[{"name":"dir1","kind":"host","source":"`+host+`","readOnly":false}]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errs, code := e.run("run", "--pod-manifest="+byName); code == 0 || !strings.Contains(errs, "refused by the run policy") {
			t.Errorf("an unverified image by name: exit %d, want a refusal by the run policy:\n%s", code, errs)
		}
		out, errs, code := e.run("--insecure-options=image", "run", "--pod-manifest="+byName)
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, out, errs)
		}
		mustContain(t, out+errs, "READ_FILE=host:zaz\n")
	})
	t.Run("refused", func(t *testing.T) {
		empty := writePodManifest(t, &schema.PodManifest{ACKind: schema.PodManifestKind, ACVersion: schema.AppContainerVersion, Apps: []schema.RuntimeApp{}})
		one := writePodManifest(t, &schema.PodManifest{ACKind: schema.PodManifestKind, ACVersion: schema.AppContainerVersion, Apps: []schema.RuntimeApp{app("p", nil)}})
		before := e.mustRun("list", "--no-legend")
		for _, tt := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"run", "--pod-manifest=" + empty}, 254, "pod must contain at least one application"},
			{[]string{"run", "--pod-manifest=" + filepath.Join(t.TempDir(), "missing")}, 254, "--pod-manifest"},
			{[]string{"run", "--pod-manifest=" + one, image(t, "probe.aci")}, 2, "conflicting flags set with --pod-manifest"},
			{[]string{"prepare", "--pod-manifest=" + one, "--volume=x,kind=empty"}, 2, "conflicting flags set with --pod-manifest: --volume"},
			{[]string{"run", "--pod-manifest=" + one, "--set-env=A=b"}, 2, "conflicting flags set with --pod-manifest: --set-env"},
			{[]string{"run", "--pod-manifest=" + one, "--mount=volume=x,target=/x"}, 2, "conflicting flags set with --pod-manifest: --mount"},
			{[]string{"run", "--pod-manifest=" + one, "--pull-policy=never"}, 2, "conflicting flags set with --pod-manifest: --pull-policy"},
			{[]string{"run", "--pod-manifest=" + one, "--inherit-env"}, 2, "conflicting flags set with --pod-manifest: --inherit-env"},
		} {
			_, errs, code := e.run(tt.args...)
			if code != tt.code || !strings.Contains(errs, "skiff: ") || !strings.Contains(errs, tt.want) {
				t.Errorf("%v: exit %d, want %d and %q:\n%s", tt.args, code, tt.code, tt.want, errs)
			}
		}
		if after := e.mustRun("list", "--no-legend"); after != before {
			t.Errorf("a refused pod manifest left a pod behind:\n%s", after)
		}
	})
}

func writePodManifest(t *testing.T, pm *schema.PodManifest) string {
	t.Helper()
	b, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}
