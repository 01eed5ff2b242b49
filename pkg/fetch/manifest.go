package fetch

import (
	"fmt"
	"io"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/aci"
)

// readManifest reads the manifest of a possibly compressed ACI from the
// start of r: trust needs the name before the store sees the image.
func readManifest(r io.ReadSeeker) (*schema.ImageManifest, error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	tr, err := aci.Decompress(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotACI, err)
	}
	defer tr.Close()
	m, err := aci.ReadManifest(tr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotACI, err)
	}
	return m, nil
}
