package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/skiffpod/skiff/pkg/pod"
)

// execRoot runs the CLI with args, returning what it printed.
func execRoot(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	g := &globals{stdout: &out, stderr: io.Discard}
	root := newRoot(g)
	root.SetArgs(append([]string{"--dir=" + t.TempDir()}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return out.String()
}

// TestVersion: `skiff --version` prints what `skiff version` does (rkt's
// lines), and --format=json the same facts for scripts.
func TestVersion(t *testing.T) {
	text := execRoot(t, "version")
	for _, w := range []string{"skiff version " + version + "\n", fmt.Sprintf("stage1 interface version %d\n", pod.ABIVersion), "appc version 0.8.", "go version " + runtime.Version(), "features +appc +oci "} {
		if !strings.Contains(text, w) {
			t.Errorf("version lacks %q:\n%s", w, text)
		}
	}
	if flag := execRoot(t, "--version"); flag != text {
		t.Errorf("--version printed\n%s\nversion printed\n%s", flag, text)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(execRoot(t, "version", "--format=json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != version || v.Stage1Interface != pod.ABIVersion || v.GoVersion != runtime.Version() || len(v.Features) < 4 || v.Stage1 == nil {
		t.Errorf("version --format=json = %+v", v)
	}
}
