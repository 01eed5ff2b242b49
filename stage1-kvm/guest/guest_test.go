package guest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/vm/agent"
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

// TestRunSystemctlOnly checks that the agent's run request runs the
// guest's systemctl and nothing else.
func TestRunSystemctlOnly(t *testing.T) {
	for _, args := range [][]string{nil, {"/bin/true"}, {"systemctl", "daemon-reload"}, {"/usr/bin/systemctl/../../bin/true"}} {
		if m := runSystemctl(args); m.Op != agent.OpError {
			t.Errorf("run %q: %+v, want a refusal", args, m)
		}
	}
}
