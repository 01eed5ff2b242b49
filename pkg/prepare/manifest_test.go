package prepare

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiffpod/skiff/pkg/pod"
)

// TestEnvironment: precedence (inherited < image < files in order <
// --set-env) and rkt's env file format: blank lines and # or ; comments
// skipped, anything else must be KEY=VALUE.
func TestEnvironment(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	commented := file("commented", "# a comment\n\n   \nA=from-file\n  # indented comment\n; rkt's other comment\r\nB=x=y\r\n\t\nC=\n")
	later := file("later", "A=later\n")
	bad := file("bad", "A=1\nnot a pair\n")
	tests := []struct {
		name    string
		inherit []string
		image   types.Environment
		files   []string
		set     []string
		want    map[string]string // nil: an error
	}{
		{"comments and blank lines", nil, nil, []string{commented}, nil, map[string]string{"A": "from-file", "B": "x=y", "C": ""}},
		{"precedence", []string{"A=inherited", "D=inherited"}, types.Environment{{Name: "A", Value: "image"}, {Name: "E", Value: "image"}},
			[]string{commented, later}, []string{"B=set"}, map[string]string{"A": "later", "B": "set", "C": "", "D": "inherited", "E": "image"}},
		{"a line that is no pair", nil, nil, []string{bad}, nil, nil},
		{"a missing file", nil, nil, []string{filepath.Join(dir, "missing")}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := environment(tt.inherit, tt.image, tt.files, tt.set)
			if tt.want == nil {
				if err == nil {
					t.Errorf("environment = %v, want an error", env)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, ev := range env {
				got[ev.Name] = ev.Value
			}
			if len(got) != len(tt.want) {
				t.Errorf("environment = %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

func TestMountTargets(t *testing.T) {
	mps := []types.MountPoint{{Name: "data", Path: "/var/data"}, {Name: "logs", Path: "/var/log/app"}}
	tests := []struct{ target, want string }{
		{"/srv", "/srv"},
		{"data", "/var/data"},              // a mount point's name
		{"logs", "/var/log/app"},           // another's
		{"dir1", "/dir1"},                  // no such mount point: relative to the root, as rkt
		{"a/../../etc", "/etc"},            // and it stays in the root
		{"/var/data/sub", "/var/data/sub"}, // nested: kept as given
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			got := mountTargets([]schema.Mount{{Volume: "v", Path: tt.target}}, mps)
			if len(got) != 1 || got[0].Path != tt.want {
				t.Errorf("target %q: %+v, want path %q", tt.target, got, tt.want)
			}
		})
	}
	// A mount point that a --mount targets by path or name needs no implicit volume.
	for _, m := range []schema.Mount{{Volume: "other", Path: "/var/data"}, {Volume: "data", Path: "/elsewhere"}} {
		if !mounted([]schema.Mount{m}, mps[0]) {
			t.Errorf("mount %+v does not satisfy %+v", m, mps[0])
		}
	}
	if mounted([]schema.Mount{{Volume: "other", Path: "/var/data/sub"}}, mps[0]) {
		t.Error("a mount below a mount point satisfies it")
	}
}

// An app's supplementary GIDs are added to the image's.
func TestSupplementaryGIDs(t *testing.T) {
	im := &schema.ImageManifest{App: &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0", SupplementaryGIDs: []int{7}}}
	ra, err := runtimeApp(im, App{Name: "a", Image: "sha512-" + strings.Repeat("0", 128), SupplementaryGIDs: []int{1234, 5678}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ra.App.SupplementaryGIDs; len(got) != 3 || got[0] != 7 || got[1] != 1234 || got[2] != 5678 {
		t.Errorf("supplementary GIDs %v, want [7 1234 5678]", got)
	}
	if len(im.App.SupplementaryGIDs) != 1 {
		t.Errorf("the image's manifest changed: %v", im.App.SupplementaryGIDs)
	}
}

// rkt's --cpu-shares and --oom-score-adj: checked ranges, and isolators
// that replace the image's of the same name.
func TestParseIsolators(t *testing.T) {
	tests := []struct {
		shares, oom string
		wantErr     bool
	}{
		{"", "", false},
		{"2048", "-500", false},
		{"2", "1000", false},
		{"1", "", true},
		{"262145", "", true},
		{"x", "", true},
		{"", "1001", true},
		{"", "-1001", true},
		{"", "1.5", true},
	}
	for _, tt := range tests {
		var a App
		err := a.ParseIsolators(tt.shares, tt.oom)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseIsolators(%q, %q) = %v, want error %v", tt.shares, tt.oom, err, tt.wantErr)
		}
	}
	oom, _ := types.NewLinuxOOMScoreAdj(99)
	im := &schema.ImageManifest{App: &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0", Isolators: types.Isolators{oom.AsIsolator()}}}
	a := App{Name: "a", Image: "sha512-" + strings.Repeat("0", 128)}
	if err := a.ParseIsolators("12345", "42"); err != nil {
		t.Fatal(err)
	}
	ra, err := runtimeApp(im, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[types.ACIdentifier]string{}
	for _, iso := range ra.App.Isolators {
		if _, dup := got[iso.Name]; dup {
			t.Errorf("isolator %s twice", iso.Name)
		}
		got[iso.Name] = string(*iso.ValueRaw)
	}
	if got[types.LinuxCPUSharesName] != "12345" || got[types.LinuxOOMScoreAdjName] != "42" {
		t.Errorf("isolators %v, want cpu-shares 12345 and oom-score-adj 42 (the flag over the image's 99)", got)
	}
}

// An app from a user's pod manifest is taken as given, with the image's
// app section where it has none (rkt); skiff.dev/ pod annotations are
// refused.
func TestGivenApp(t *testing.T) {
	id := "sha512-" + strings.Repeat("0", 128)
	im := &schema.ImageManifest{Name: "x.com/img", App: &types.App{Exec: types.Exec{"/image"}, User: "0", Group: "0"}}
	given := &types.App{Exec: types.Exec{"/given", "'\"$"}, User: "1000", Group: "100"}
	tests := []struct {
		name     string
		app      *types.App
		image    *types.App
		wantExec string // "" for an error
	}{
		{"its own app section", given, im.App, "/given '\"$"},
		{"the image's", nil, im.App, "/image"},
		{"neither", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := *im
			im.App = tt.image
			ra := &schema.RuntimeApp{Name: "a", App: tt.app, ReadOnlyRootFS: true}
			got, err := runtimeApp(&im, App{Image: id, Runtime: ra, Exec: []string{"/ignored"}}, nil)
			if tt.wantExec == "" {
				if err == nil {
					t.Errorf("got %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e := strings.Join(got.App.Exec, " "); e != tt.wantExec || !got.ReadOnlyRootFS || got.Image.ID.String() != id || got.Image.Name.String() != "x.com/img" {
				t.Errorf("got exec %q, %+v; want exec %q, read-only, the image's ID and name", e, got, tt.wantExec)
			}
		})
	}
	var ann types.Annotations
	ann.Set("skiff.dev/app-sandbox", "true")
	if _, err := Manifest(nil, Options{Annotations: ann}); err == nil || !strings.Contains(err.Error(), "skiff.dev/") {
		t.Errorf("a skiff.dev/ pod annotation: %v, want refused", err)
	}
}

// TestSeccompFlag: rkt's groups pass --seccomp, an unknown group does not.
func TestSeccompFlag(t *testing.T) {
	for _, tt := range []struct {
		flag string
		ok   bool
	}{
		{"mode=retain,errno=EXFULL,@rkt/default-whitelist", true},
		{"mode=remove,@rkt/default-blacklist,mkdir", true},
		{"mode=retain,@docker/default-whitelist", true},
		{"mode=remove,@docker/default-blacklist", true},
		{"mode=remove,@appc.io/empty", true},
		{"mode=remove,@systemd/mount", false},
		{"mode=retain,@rkt/whitelist", false},
	} {
		_, err := seccompIsolator(tt.flag)
		if (err == nil) != tt.ok {
			t.Errorf("--seccomp=%s: err %v, want ok=%v", tt.flag, err, tt.ok)
		}
	}
}

// TestManifestPlatform: an app image for another platform is refused,
// naming both; one for the platform asked for is taken.
func TestManifestPlatform(t *testing.T) {
	im := schema.BlankImageManifest()
	im.Name = "example.com/arm"
	im.App = &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0"}
	im.Labels = types.Labels{{Name: "os", Value: "linux"}, {Name: "arch", Value: "aarch64"}}
	id := "sha512-" + strings.Repeat("0", 128)
	imgs := manifests{id: im}
	o := Options{Apps: []App{{Image: id}}, Platform: "linux/amd64"}
	if _, err := Manifest(imgs, o); err == nil || !strings.Contains(err.Error(), "example.com/arm is for linux/aarch64, want linux/amd64") {
		t.Errorf("Manifest = %v, want the platforms named", err)
	}
	o.Platform = "linux/arm64"
	if _, err := Manifest(imgs, o); err != nil {
		t.Errorf("--platform=linux/arm64: %v", err)
	}
}

// manifests is an Images of manifests only.
type manifests map[string]*schema.ImageManifest

func (m manifests) Manifest(id string) (*schema.ImageManifest, error) { return m[id], nil }
func (m manifests) Trees(context.Context, []string) ([]string, error) { return nil, nil }

// TestStdinAnnotations: attach's annotations, stdin-once only with stdin.
func TestStdinAnnotations(t *testing.T) {
	for _, tt := range []struct {
		stdin, once         bool
		wantStdin, wantOnce string
	}{{false, false, "", ""}, {true, false, "true", ""}, {true, true, "true", "true"}, {false, true, "", ""}} {
		im := &schema.ImageManifest{App: &types.App{Exec: types.Exec{"/bin/sh"}, User: "0", Group: "0"}}
		ra, err := runtimeApp(im, App{Name: "a", Image: "sha512-" + strings.Repeat("0", 128), Stdin: tt.stdin, StdinOnce: tt.once}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := ra.Annotations.Get(pod.AnnotationStdin)
		o, _ := ra.Annotations.Get(pod.AnnotationStdinOnce)
		if s != tt.wantStdin || o != tt.wantOnce {
			t.Errorf("stdin %v once %v: annotations %q %q, want %q %q", tt.stdin, tt.once, s, o, tt.wantStdin, tt.wantOnce)
		}
	}
}

// The CRI's security context reaches the runtime app as annotations;
// an app without it carries none.
func TestSecurityAnnotations(t *testing.T) {
	im := &schema.ImageManifest{App: &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0"}}
	id := "sha512-" + strings.Repeat("0", 128)
	for _, tt := range []struct {
		name string
		app  App
		want map[string]string
	}{
		{"none", App{}, map[string]string{}},
		{"all", App{SeccompProfile: "unconfined", Privileged: true, MaskedPaths: []string{"/a"}, ReadonlyPaths: []string{"/b", "/c"}, SharedMounts: []string{"/d"}, HostDevices: []specs.LinuxDevice{{Path: "/dev/kmsg", Type: "c", Major: 1, Minor: 11}}},
			map[string]string{pod.AnnotationSeccomp: "unconfined", pod.AnnotationPrivileged: "true",
				pod.AnnotationMaskedPaths: `["/a"]`, pod.AnnotationReadonlyPaths: `["/b","/c"]`, pod.AnnotationSharedMounts: `["/d"]`,
				pod.AnnotationHostDevices: `[{"path":"/dev/kmsg","type":"c","major":1,"minor":11}]`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.app.Name, tt.app.Image = "a", id
			ra, err := runtimeApp(im, tt.app, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{pod.AnnotationSeccomp, pod.AnnotationPrivileged, pod.AnnotationMaskedPaths, pod.AnnotationReadonlyPaths, pod.AnnotationSharedMounts, pod.AnnotationHostDevices} {
				got, _ := ra.Annotations.Get(k)
				if got != tt.want[k] {
					t.Errorf("%s = %q, want %q", k, got, tt.want[k])
				}
			}
		})
	}
}
