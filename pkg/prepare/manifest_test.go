package prepare

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
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

// An app's OOM score adjustment becomes its os/linux/oom-score-adj
// isolator, replacing the image's; out of range is refused.
func TestOOMScoreAdj(t *testing.T) {
	n := func(i int) *int { return &i }
	for _, tc := range []struct {
		set     *int
		want    string // the isolator's value, "" for none
		wantErr bool
	}{
		{nil, "", false},
		{n(-500), "-500", false},
		{n(1000), "1000", false},
		{n(1001), "", true},
	} {
		app := &types.App{}
		err := isolators(app, App{OOMScoreAdj: tc.set})
		if (err != nil) != tc.wantErr {
			t.Fatalf("%v: error %v, want %v", tc.set, err, tc.wantErr)
		}
		got := ""
		if iso := app.Isolators.GetByName(types.LinuxOOMScoreAdjName); iso != nil {
			got = string(*iso.ValueRaw)
		}
		if !tc.wantErr && got != tc.want {
			t.Errorf("%v: isolator %q, want %q", tc.set, got, tc.want)
		}
	}
}
