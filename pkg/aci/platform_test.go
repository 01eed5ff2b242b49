package aci

import (
	"errors"
	"runtime"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

func TestCheckPlatform(t *testing.T) {
	host := map[string]string{"amd64": "amd64", "arm64": "aarch64", "386": "i386"}[runtime.GOARCH]
	if host == "" {
		t.Skipf("no appc arch name known for %s", runtime.GOARCH)
	}
	tests := []struct {
		name     string
		os, arch string
		want     string
		ok       bool
	}{
		{"host", "linux", host, "", true},
		{"no labels: any platform", "", "", "", true},
		{"os only", "linux", "", "", true},
		{"other os", "freebsd", host, "", false},
		{"other arch", "linux", "s390x", "", false},
		{"appc name against --platform", "linux", "aarch64", "linux/arm64", true},
		{"appc name against --platform, variant", "linux", "armv7l", "linux/arm/v7", true},
		{"host image against another --platform", "linux", host, "linux/s390x", false},
		{"arch only, other", "", "aarch64_be", "linux/amd64", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := schema.BlankImageManifest()
			m.Name = "example.com/app"
			if tt.os != "" {
				m.Labels = append(m.Labels, types.Label{Name: "os", Value: tt.os})
			}
			if tt.arch != "" {
				m.Labels = append(m.Labels, types.Label{Name: "arch", Value: tt.arch})
			}
			err := CheckPlatform(m, tt.want)
			if tt.ok != (err == nil) || err != nil && !errors.Is(err, ErrPlatform) {
				t.Errorf("CheckPlatform(%s/%s, %q) = %v, want ok=%v", tt.os, tt.arch, tt.want, err, tt.ok)
			}
		})
	}
	m := schema.BlankImageManifest()
	m.Name = "example.com/app"
	m.Labels = types.Labels{{Name: "os", Value: "linux"}, {Name: "arch", Value: "s390x"}}
	if err := CheckPlatform(m, "linux/amd64"); err == nil || err.Error() != "image for another platform: example.com/app is for linux/s390x, want linux/amd64" {
		t.Errorf("error = %v; want one naming both platforms", err)
	}
}
