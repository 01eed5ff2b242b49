package stage1

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/pod"
)

// recorder is an entrypoint that writes SKIFF_DEBUG and its arguments, one
// a line, to NAME.argv in its working directory, $OUT_NAME to stdout, and
// exits with $EXIT_NAME.
const recorder = `#!/bin/sh
name=$(basename "$0")
{ printf '%s\n' "$SKIFF_DEBUG"; for a; do printf '%s\n' "$a"; done; } > "$name.argv"
eval "printf '%s' \"\${OUT_$name}\""
eval "exit \${EXIT_$name:-0}"
`

// newInvocation makes a pod whose stage1 offers enter, stop and gc, all
// recorders, in a tree beside it.
func newInvocation(t *testing.T, features ...string) Invocation {
	t.Helper()
	dir := t.TempDir()
	// stage0 makes the data dir (store.Open); pod.Create makes what is below it.
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	p, err := pod.Create(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Unlock)
	tree := filepath.Join(dir, "tree")
	eps := map[string]string{}
	for _, ep := range []string{pod.EntrypointRun, pod.EntrypointEnter, pod.EntrypointStop, pod.EntrypointGC} {
		eps[ep] = "/bin/" + ep
		if err := os.MkdirAll(filepath.Join(tree, "rootfs", "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, "rootfs", "bin", ep), []byte(recorder), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier("example.com/stage1-recorder")
	m.Annotations = pod.Stage1Annotations(eps, features...)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(p.File(pod.Stage1Dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.File(pod.Stage1Manifest), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return Invocation{Pod: p, Tree: tree, Debug: true}
}

// recorded returns what entrypoint ep was called with: SKIFF_DEBUG and argv.
func recorded(t *testing.T, in Invocation, ep string) (debugEnv string, argv []string) {
	t.Helper()
	b, err := os.ReadFile(in.Pod.File(ep + ".argv"))
	if err != nil {
		t.Fatalf("%s was not called in the pod directory: %v", ep, err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	return lines[0], lines[1:]
}

// Stage0 calls each entrypoint in the pod directory with the argv its
// pod codec parses back to what stage0 meant, and passes its status on.
func TestInvocationArgv(t *testing.T) {
	cmd := []string{"/bin/sh", "-c", "echo a  b", "--", "--force"}
	tests := []struct {
		ep       string
		call     func(in Invocation) (int, error)
		exit     string
		wantCode int
		parse    func(argv []string) (any, error)
		want     func(uuid string) any
	}{
		{pod.EntrypointEnter, func(in Invocation) (int, error) { return in.Enter("web", cmd, EnterOptions{}) }, "7", 7,
			func(argv []string) (any, error) { var a pod.EnterArgs; err := a.Parse(argv); return a, err },
			func(u string) any { return pod.EnterArgs{Debug: true, App: "web", UUID: u, Cmd: cmd} }},
		{pod.EntrypointStop, func(in Invocation) (int, error) { return 0, in.Stop(true) }, "0", 0,
			func(argv []string) (any, error) { var a pod.StopArgs; err := a.Parse(argv); return a, err },
			func(u string) any { return pod.StopArgs{Debug: true, Force: true, UUID: u} }},
		{pod.EntrypointGC, func(in Invocation) (int, error) { return 0, in.GC() }, "0", 0,
			func(argv []string) (any, error) { var a pod.GCArgs; err := a.Parse(argv); return a, err },
			func(u string) any { return pod.GCArgs{Debug: true, UUID: u} }},
	}
	for _, tt := range tests {
		t.Run(tt.ep, func(t *testing.T) {
			in := newInvocation(t)
			t.Setenv("EXIT_"+tt.ep, tt.exit)
			code, err := tt.call(in)
			if err != nil || code != tt.wantCode {
				t.Fatalf("%s = %d, %v; want %d, nil", tt.ep, code, err, tt.wantCode)
			}
			debug, argv := recorded(t, in, tt.ep)
			if debug != "1" {
				t.Errorf("%s: %s=%q, want 1", tt.ep, pod.EnvDebug, debug)
			}
			got, err := tt.parse(argv)
			if err != nil {
				t.Fatalf("%s %q: %v", tt.ep, argv, err)
			}
			if want := tt.want(in.Pod.UUID); !reflect.DeepEqual(got, want) {
				t.Errorf("%s %q parses to %+v, want %+v", tt.ep, argv, got, want)
			}
		})
	}
}

// A stage1 entrypoint's own failure reaches stage0 as an error.
func TestInvocationStopFails(t *testing.T) {
	in := newInvocation(t)
	t.Setenv("EXIT_stop", "254")
	if err := in.Stop(false); err == nil || !strings.Contains(err.Error(), "exited 254") {
		t.Errorf("Stop with a failing entrypoint: err = %v, want one saying it exited 254", err)
	}
}

// Debug options go only to a stage1 whose manifest offers them; any
// other is not called at all.
func TestEnterDebugNeedsFeature(t *testing.T) {
	in := newInvocation(t)
	_, err := in.Enter("web", []string{"sh"}, EnterOptions{MountImage: "/tools"})
	if !errors.Is(err, pod.ErrUnsupported) {
		t.Fatalf("err = %v, want pod.ErrUnsupported", err)
	}
	if _, err := os.Stat(in.Pod.File(pod.EntrypointEnter + ".argv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("enter was called: %v", err)
	}
}

// Stats asks only a stage1 with the feature, as enter --stats, and takes
// nothing but one well-formed AppStats from it.
func TestStats(t *testing.T) {
	if _, err := newInvocation(t).Stats("web", time.Minute); !errors.Is(err, pod.ErrUnsupported) {
		t.Errorf("Stats without the feature: err = %v, want pod.ErrUnsupported", err)
	}
	for _, tt := range []struct {
		out, exit string
		want      pod.AppStats
		ok        bool
	}{
		{`{"cpuNanos":5,"workingSetBytes":6,"rssBytes":7}`, "0", pod.AppStats{CPUNanos: 5, WorkingSetBytes: 6, RSSBytes: 7}, true},
		{`{"cpuNanos":5,"cpuNanos":6}`, "0", pod.AppStats{}, false},
		{`not json`, "0", pod.AppStats{}, false},
		{`{"cpuNanos":5}`, "254", pod.AppStats{}, false},
	} {
		in := newInvocation(t, pod.FeatureStats)
		t.Setenv("OUT_enter", tt.out)
		t.Setenv("EXIT_enter", tt.exit)
		got, err := in.Stats("web", time.Minute)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Stats with %q, exit %s = %+v, %v; want %+v, ok %t", tt.out, tt.exit, got, err, tt.want, tt.ok)
		}
		_, argv := recorded(t, in, pod.EntrypointEnter)
		var a pod.EnterArgs
		if err := a.Parse(argv); err != nil || !a.Stats || a.App != "web" || len(a.Cmd) != 0 {
			t.Errorf("enter %q parses to %+v, %v; want --stats for web", argv, a, err)
		}
	}
}

// SetResources asks only a stage1 with the feature, as enter
// --resources with the limits as JSON, and fails when enter does.
func TestSetResources(t *testing.T) {
	r := pod.AppResources{MemoryBytes: 64 << 20, CPUQuota: 50000, CPUPeriod: 100000}
	if err := newInvocation(t).SetResources("web", r, time.Minute); !errors.Is(err, pod.ErrUnsupported) {
		t.Errorf("SetResources without the feature: err = %v, want pod.ErrUnsupported", err)
	}
	for _, exit := range []string{"0", "254"} {
		in := newInvocation(t, pod.FeatureResources)
		t.Setenv("EXIT_enter", exit)
		if err := in.SetResources("web", r, time.Minute); (err == nil) != (exit == "0") {
			t.Errorf("SetResources, enter exits %s: err = %v", exit, err)
		}
		_, argv := recorded(t, in, pod.EntrypointEnter)
		var a pod.EnterArgs
		err := a.Parse(argv)
		got, perr := pod.ParseResources(a.Resources)
		if err != nil || perr != nil || got != r || a.App != "web" || len(a.Cmd) != 0 {
			t.Errorf("enter %q parses to %+v (%+v), %v, %v; want --resources for web", argv, a, got, err, perr)
		}
	}
}

// PortForward asks only a stage1 with the feature, as enter
// --port-forward, with the connection as its stdin and stdout.
func TestPortForward(t *testing.T) {
	var out bytes.Buffer
	conn := struct {
		io.Reader
		io.Writer
	}{strings.NewReader("request"), &out}
	if err := newInvocation(t).PortForward(context.Background(), 8080, conn); !errors.Is(err, pod.ErrUnsupported) {
		t.Errorf("PortForward without the feature: err = %v, want pod.ErrUnsupported", err)
	}
	in := newInvocation(t, pod.FeaturePortForward)
	t.Setenv("OUT_enter", "answer")
	if err := in.PortForward(context.Background(), 8080, conn); err != nil || out.String() != "answer" {
		t.Errorf("PortForward = %v, wrote %q; want nil, %q", err, out.String(), "answer")
	}
	_, argv := recorded(t, in, pod.EntrypointEnter)
	var a pod.EnterArgs
	if err := a.Parse(argv); err != nil || a.PortForward != 8080 || a.App != "" {
		t.Errorf("enter %q parses to %+v, %v; want --port-forward=8080", argv, a, err)
	}
	t.Setenv("EXIT_enter", "254")
	if err := in.PortForward(context.Background(), 8080, conn); err == nil {
		t.Error("PortForward with a failing enter: no error")
	}
}
