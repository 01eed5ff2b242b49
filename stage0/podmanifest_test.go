package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/skiffpod/skiff/pkg/prepare"
)

// rkt's conflicts with --pod-manifest, and what goes with it.
func TestPodManifestConflicts(t *testing.T) {
	tests := []struct {
		args []string
		want string // "" for none
	}{
		{[]string{"--pod-manifest=p", "--net=none", "--hostname=h", "--stage1=kvm"}, ""},
		{[]string{"--pod-manifest=p", "--pull-policy=new"}, ""},
		{[]string{"--pod-manifest=p", "img.aci"}, "image img.aci"},
		{[]string{"--pod-manifest=p", "--volume=x,kind=empty"}, "--volume"},
		{[]string{"--pod-manifest=p", "--port=http:80"}, "--port"},
		{[]string{"--pod-manifest=p", "--pull-policy=never"}, "--pull-policy"},
		{[]string{"--pod-manifest=p", "--inherit-env"}, "--inherit-env"},
		{[]string{"--pod-manifest=p", "--set-env=A=b", "--set-env-file=f"}, "--set-env, --set-env-file"},
		{[]string{"--pod-manifest=p", "--mount=volume=x,target=/x"}, "--mount"},
		{[]string{"--pod-manifest=p", "--exec=/x"}, "--exec"},
	}
	for _, tt := range tests {
		var f podFlags
		fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
		fs.SetInterspersed(false)
		f.register(fs)
		f.registerPodManifest(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		err := f.checkPodManifest(fs)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%q: %v, want no conflict", tt.args, err)
			}
			continue
		}
		if _, usage := err.(usageError); !usage || !strings.Contains(err.Error(), "conflicting flags set with --pod-manifest: "+tt.want) {
			t.Errorf("%q: %v, want a usage error naming %s", tt.args, err, tt.want)
		}
	}
}

func TestPodManifestApps(t *testing.T) {
	id := "sha512-" + strings.Repeat("a", 128)
	head := `{"acKind":"PodManifest","acVersion":"0.8.11",`
	tests := []struct {
		name, manifest string
		refs           []string // nil: an error
	}{
		{"by ID and by name", head + `"apps":[{"name":"a","image":{"id":"` + id + `","name":"x.com/a"}},
			{"name":"b","image":{"name":"x.com/b","labels":[{"name":"version","value":"1.0"}]}},{"name":"c","image":{"name":"x.com/c"}}],
			"volumes":[{"name":"v","kind":"empty"}],"annotations":[{"name":"x.com/k","value":"v"}]}`,
			[]string{id, "x.com/b:1.0", "x.com/c"}},
		{"no apps", head + `"apps":[]}`, nil},
		{"no image", head + `"apps":[{"name":"a","image":{}}]}`, nil},
		{"not a pod manifest", `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"x"}`, nil},
		{"not JSON", `{`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "pod")
			if err := os.WriteFile(file, []byte(tt.manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			var o prepare.Options
			apps, err := podManifestApps(file, &o)
			if tt.refs == nil {
				if err == nil || !strings.Contains(err.Error(), "--pod-manifest") {
					t.Errorf("apps %v, err %v: want an error naming --pod-manifest", apps, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var refs []string
			for _, a := range apps {
				refs = append(refs, a.image)
				if a.runtime == nil {
					t.Errorf("app %s: no runtime app", a.image)
				}
			}
			if strings.Join(refs, " ") != strings.Join(tt.refs, " ") {
				t.Errorf("refs %q, want %q", refs, tt.refs)
			}
			if len(o.Volumes) != 1 || len(o.Annotations) != 1 {
				t.Errorf("volumes %v, annotations %v: want the manifest's", o.Volumes, o.Annotations)
			}
		})
	}
}
