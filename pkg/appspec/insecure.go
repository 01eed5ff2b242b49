package appspec

import (
	"slices"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/moby/sys/capability"

	podabi "github.com/skiffpod/skiff/pkg/pod"
)

// Insecure reports whether the pod's --insecure-options turned off
// protection opt ("capabilities", "paths" or "seccomp";
// pod.AnnotationInsecureOptions).
func Insecure(pm *schema.PodManifest, opt string) bool {
	v, _ := pm.Annotations.Get(podabi.AnnotationInsecureOptions)
	return slices.Contains(strings.Split(v, ","), opt)
}

// HeldCaps lists the capabilities in this process's bounding set by name
// (CAP_...): what "every capability" means here.
func HeldCaps() []string {
	var out []string
	caps, err := capability.NewPid2(0)
	if err == nil {
		err = caps.Load()
	}
	for _, c := range capability.ListKnown() {
		if err != nil || caps.Get(capability.BOUNDING, c) {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out
}
