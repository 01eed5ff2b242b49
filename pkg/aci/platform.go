package aci

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/appc/spec/schema"
)

// ErrPlatform means an image is for another os or architecture than the
// one wanted (docs/images.md).
var ErrPlatform = errors.New("image for another platform")

// CheckPlatform refuses an image whose os or arch label names another
// platform than want, "os/arch[/variant]" in OCI's (Go's) names, "" for
// this host's. appc's names (aarch64, i386, armv7l...) are compared as the
// Go ones they stand for. An image without the labels is taken as fit
// for any platform (appc makes them optional); rkt refused it at run.
func CheckPlatform(m *schema.ImageManifest, want string) error {
	os, _ := m.Labels.Get("os")
	arch, _ := m.Labels.Get("arch")
	return CheckOSArch(string(m.Name), os, arch, want)
}

// CheckOSArch is CheckPlatform for image name, for os and arch in appc's
// or Go's names ("" where the image names none).
func CheckOSArch(name, os, arch, want string) error {
	wantOS, wantArch := runtime.GOOS, runtime.GOARCH
	if want != "" {
		f := strings.Split(want, "/")
		if len(f) < 2 {
			return fmt.Errorf("platform %q: want os/arch", want)
		}
		wantOS, wantArch = f[0], f[1]
	}
	if os == "" && arch == "" {
		return nil
	}
	goArch := cmp.Or(appcArch[arch], arch)
	if (os == "" || os == wantOS) && (arch == "" || goArch == wantArch) {
		return nil
	}
	where := "this host is"
	if want != "" {
		where = "want"
	}
	return fmt.Errorf("%w: %s is for %s/%s, %s %s/%s", ErrPlatform, name,
		cmp.Or(os, "any"), cmp.Or(arch, "any"), where, wantOS, wantArch)
}

// appcArch maps appc's arch names to Go's where they differ (darwin's
// x86_64 aside, which no Linux host runs).
var appcArch = map[string]string{"i386": "386", "aarch64": "arm64", "aarch64_be": "arm64be", "armv6l": "arm", "armv7l": "arm", "armv7b": "arm"}
