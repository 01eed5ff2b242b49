// Package stage1test builds the stub stage1 (tests/stub-stage1) as a
// stage1 image, for unit and end-to-end tests that need a real stage1
// without namespaces or a VM.
package stage1test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/pod"
)

// StubPackage is the stub stage1's Go package.
const StubPackage = "github.com/skiffpod/skiff/tests/stub-stage1"

// StubName is the stub image's name.
const StubName = "skiff.dev/stage1-stub"

// EnvGCLog names a file the stub's gc entrypoint appends the pod's UUID
// to, one line per call, when the variable is set: a test can see that
// stage0 ran gc after the pod dir it ran in is gone.
const EnvGCLog = "SKIFF_STUB_GC_LOG"

// Stub builds the stub stage1 with the go tool and packs it in dir as
// stage1-stub.aci: one static binary, with the run, enter, stop and gc
// entrypoints as symlinks to it. It returns the image's path.
func Stub(dir string) (string, error) {
	root := filepath.Join(dir, "stub", "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("build stub stage1: %w", err)
	}
	c := exec.Command("go", "build", "-o", filepath.Join(root, "stub"), StubPackage)
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "PATH="+os.Getenv("PATH")+":/usr/local/go/bin")
	if b, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build stub stage1: go build %s: %w\n%s", StubPackage, err, b)
	}
	eps := map[string]string{}
	for _, ep := range []string{pod.EntrypointRun, pod.EntrypointEnter, pod.EntrypointStop, pod.EntrypointGC} {
		if err := os.Symlink("stub", filepath.Join(root, ep)); err != nil {
			return "", fmt.Errorf("build stub stage1: %w", err)
		}
		eps[ep] = "/" + ep
	}
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier(StubName)
	m.Labels = types.Labels{{Name: "version", Value: "1"}, {Name: "os", Value: "linux"}, {Name: "arch", Value: "amd64"}}
	m.Annotations = pod.Stage1Annotations(eps, false)
	out := filepath.Join(dir, "stage1-stub.aci")
	f, err := os.Create(out)
	if err != nil {
		return "", fmt.Errorf("build stub stage1: %w", err)
	}
	defer f.Close()
	if err := aci.Write(f, m, root); err != nil {
		return "", fmt.Errorf("build stub stage1: %w", err)
	}
	return out, f.Close()
}
