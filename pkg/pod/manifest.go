package pod

import (
	"fmt"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/strictjson"
)

// ParseManifest parses and validates an appc pod manifest.
func ParseManifest(b []byte) (*schema.PodManifest, error) {
	var m schema.PodManifest
	if err := strictjson.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse pod manifest: %w", err)
	}
	if len(m.Apps) == 0 {
		return nil, fmt.Errorf("parse pod manifest: no apps")
	}
	return &m, nil
}
