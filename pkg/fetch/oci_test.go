package fetch

import (
	"context"
	"errors"
	"testing"

	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/oci"
	"github.com/skiffpod/skiff/pkg/store"
)

// noOCIStore has no OCI image and must not be asked to import one.
type noOCIStore struct{ t *testing.T }

func (noOCIStore) FindOCI(imageref.Ref) (store.Image, bool, error) { return store.Image{}, false, nil }
func (noOCIStore) Upgrade(string, store.Provenance) error          { return nil }
func (s noOCIStore) ImportOCI(context.Context, *oci.Image, store.OCIImportOptions) (string, error) {
	s.t.Error("ImportOCI called")
	return "", errors.New("no")
}

// TestFetchOCIRefusals: what FetchOCI refuses before it opens anything.
func TestFetchOCIRefusals(t *testing.T) {
	tests := []struct {
		name   string
		ref    string
		policy Policy
		noOCI  bool
		want   error
	}{
		{"a layout needs a signature it cannot carry", "oci:/nonexistent/layout:latest", PolicyNew, false, errUnsignedOCI},
		{"an archive too", "oci-archive:/nonexistent.tar", PolicyNew, false, errUnsignedOCI},
		{"pull policy never", "docker://registry.invalid/a/b@sha256:" + zeros, PolicyNever, false, store.ErrNotFound},
		{"no OCI configuration", "docker://registry.invalid/a/b:1", PolicyNew, true, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := imageref.Parse(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			f := &Fetcher{Policy: tt.policy, OCI: OCI{Store: noOCIStore{t}, Registry: func(imageref.Ref) (oci.Options, error) {
				t.Error("registry asked")
				return oci.Options{}, nil
			}}}
			if tt.noOCI {
				f.OCI = OCI{}
			}
			if _, err := f.FetchOCI(context.Background(), ref); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
