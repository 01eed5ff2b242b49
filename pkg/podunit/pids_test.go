package podunit

import (
	"errors"
	"testing"

	"github.com/appc/spec/schema"
)

func TestPidsLimit(t *testing.T) {
	tests := []struct {
		name, value string
		set         bool
		want        int64
		wantErr     bool
		wantUnit    string
	}{
		{name: "absent means the default", want: DefaultPidsLimit, wantUnit: "[Slice]\nTasksMax=4096\n"},
		{name: "a count", value: "64", set: true, want: 64, wantUnit: "[Slice]\nTasksMax=64\n"},
		{name: "zero means none", value: "0", set: true, want: 0, wantUnit: "[Slice]\nTasksMax=infinity\n"},
		{name: "negative", value: "-1", set: true, wantErr: true},
		{name: "not a number", value: "lots", set: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm := schema.BlankPodManifest()
			if tt.set {
				pm.Annotations.Set(AnnotationPidsLimit, tt.value)
			}
			got, err := PidsLimit(pm)
			if tt.wantErr {
				if !errors.Is(err, ErrUsage) {
					t.Fatalf("err = %v, want ErrUsage", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("PidsLimit = %d, %v; want %d", got, err, tt.want)
			}
			if u := pidsUnits(got)["system.slice.d/skiff-pids.conf"]; u != tt.wantUnit {
				t.Errorf("unit = %q, want %q", u, tt.wantUnit)
			}
		})
	}
}
