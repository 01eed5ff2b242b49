package launch

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCloneSharedRefuses(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, list string }{
		{"not JSON", `/mnt`},
		{"relative", `["mnt"]`},
		{"the root", `["/"]`},
		{"missing", `["/nothing"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ms, err := cloneShared(root, tc.list); err == nil {
				closeAll(ms)
				t.Errorf("cloneShared(%s): no error", tc.list)
			}
		})
	}
	if ms, err := cloneShared(root, ""); err != nil || ms != nil {
		t.Errorf("cloneShared of none = %v, %v; want nil, nil", ms, err)
	}
}
