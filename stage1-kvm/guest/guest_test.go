package guest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/skiffpod/skiff/pkg/pod"
)

// TestCodes checks that each ABI error the agent reports comes back on
// the host as itself.
func TestCodes(t *testing.T) {
	for _, sentinel := range []error{pod.ErrUsage, pod.ErrNotRunning, pod.ErrNoApp} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			m := Codes.Failure(fmt.Errorf("find app web: %w", sentinel))
			if m.ErrCode == "" {
				t.Fatalf("Failure(%v) has no code", sentinel)
			}
			if err := Codes.Err(m); !errors.Is(err, sentinel) {
				t.Errorf("Err(%+v) = %v, want it to wrap %v", m, err, sentinel)
			}
		})
	}
}
