package launch

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestInStage1(t *testing.T) {
	for _, tc := range []struct {
		d    specs.LinuxDevice
		want bool
	}{
		{specs.LinuxDevice{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}, true},
		{specs.LinuxDevice{Path: "/dev/null", Type: "c", Major: 1, Minor: 11}, false},
		{specs.LinuxDevice{Path: "/dev/null", Type: "b", Major: 1, Minor: 3}, false},
		{specs.LinuxDevice{Path: "/dev/no-such-node", Type: "c", Major: 1, Minor: 3}, false},
	} {
		if got := inStage1(tc.d); got != tc.want {
			t.Errorf("inStage1(%+v) = %t, want %t", tc.d, got, tc.want)
		}
	}
}
