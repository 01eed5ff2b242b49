package pod

import (
	"fmt"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/strictjson"
)

// AnnotationSandbox, "true" on a pod manifest, makes the pod an app
// sandbox (docs/app-sandbox.md): prepared with no apps, run with
// --mutable, its apps added and removed while it runs.
const AnnotationSandbox = "skiff.dev/app-sandbox"

// IsSandbox reports whether pod manifest pm is an app sandbox's.
func IsSandbox(pm *schema.PodManifest) bool {
	v, _ := pm.Annotations.Get(AnnotationSandbox)
	return v == "true"
}

// ParseManifest parses and validates an appc pod manifest.
func ParseManifest(b []byte) (*schema.PodManifest, error) {
	var m schema.PodManifest
	if err := strictjson.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse pod manifest: %w", err)
	}
	if len(m.Apps) == 0 && !IsSandbox(&m) {
		return nil, fmt.Errorf("parse pod manifest: no apps")
	}
	return &m, nil
}
