package podctl

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/aci/acitest"
	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/prepare"
	"github.com/skiffpod/skiff/pkg/stage1/stage1test"
	"github.com/skiffpod/skiff/pkg/store"
)

// stubACI is the stub stage1 image, built once by TestMain.
var stubACI string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "podctl-test-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	if stubACI, err = stage1test.Stub(dir); err != nil {
		fmt.Println(err)
		return 1
	}
	return m.Run()
}

// stubPods is a data dir with the stub stage1 and an app in its store,
// and a Pods over it that records whose network it detached and which
// pods' stage1 gc ran.
type stubPods struct {
	*Pods
	store     *store.Store
	stage1    string
	app       string
	detached  []string
	gcLog     string
	unlockAll []*pod.Pod
}

func newStubPods(t *testing.T) *stubPods {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("pods of the stub stage1 are prepared with mounts: needs root")
	}
	ctx := context.Background()
	// Not t.TempDir(): a subtest's name can put a ',' in it, which no
	// overlay lowerdir may hold.
	base, err := os.MkdirTemp("", "podctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "data")
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(stubACI)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sp := &stubPods{store: s, gcLog: filepath.Join(base, "gc.log")}
	if sp.stage1, err = s.Import(ctx, f, store.ImportOptions{Source: stubACI}); err != nil {
		t.Fatal(err)
	}
	if sp.app, err = s.Import(ctx, bytes.NewReader(acitest.Image(t, "example.com/hello", map[string]string{"hello": "world"},
		`"app":{"exec":["/hello"],"user":"0","group":"0"}`)), store.ImportOptions{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(stage1test.EnvGCLog, sp.gcLog)
	sp.Pods = &Pods{
		Dir:       dir,
		Store:     func() (*store.Store, error) { return s, nil },
		DetachNet: func(p *pod.Pod) error { sp.detached = append(sp.detached, p.UUID); return nil },
		Log:       slog.New(slog.DiscardHandler),
	}
	t.Cleanup(func() {
		for _, p := range sp.unlockAll {
			p.Unlock()
		}
		mount.UnmountAll(dir)
	})
	return sp
}

// prepare returns a pod prepared for the stub, locked, in state Preparing.
func (sp *stubPods) prepare(t *testing.T) *pod.Pod {
	t.Helper()
	p, err := prepare.Prepare(context.Background(), sp.store, prepare.Options{DataDir: sp.Dir, Stage1: sp.stage1, Stage1Layers: []string{sp.stage1},
		Apps: []prepare.App{{Image: sp.app, Layers: []string{sp.app}}}, Log: sp.Log})
	if err != nil {
		t.Fatal(err)
	}
	sp.unlockAll = append(sp.unlockAll, p)
	return p
}

// gcRan lists the pods whose stage1 gc entrypoint ran.
func (sp *stubPods) gcRan() []string {
	b, _ := os.ReadFile(sp.gcLog)
	return strings.Fields(string(b))
}

// Pod states a test starts from, from a pod prepare just returned. A pod
// that ran has its trees mounted, as stage0 mounts them to run it.
var (
	exited = func(p *pod.Pod) { prepare.Mount(p); p.Transition(pod.Running); p.Unlock() }
	// running is held by the test, as stage1 holds a running pod.
	running        = func(p *pod.Pod) { prepare.Mount(p); p.Transition(pod.Running) }
	prepared       = func(p *pod.Pod) { p.Transition(pod.Prepared); p.Unlock() }
	abortedPrepare = func(p *pod.Pod) { p.Unlock() }
)

// What gc does to a pod of the stub stage1, by state and options: which
// pods it removes (unmounting them), whose network it releases, and that
// stage1's gc entrypoint runs for an exited pod it removes.
func TestGC(t *testing.T) {
	tests := []struct {
		name        string
		state       func(p *pod.Pod)
		opts        GCOptions
		wantPhase   pod.Phase // "" for removed
		wantDetach  bool
		wantStage1G bool
	}{
		{"exited, grace over", exited, GCOptions{}, "", true, true},
		{"exited, in grace", exited, GCOptions{Grace: time.Hour}, pod.PhaseExitedGarbage, true, false},
		{"prepared, expired", prepared, GCOptions{}, "", true, false},
		{"prepared, fresh", prepared, GCOptions{ExpirePrepared: time.Hour}, pod.PhasePrepared, false, false},
		{"aborted prepare", abortedPrepare, GCOptions{ExpirePrepared: time.Hour}, "", true, false},
		{"running", running, GCOptions{}, pod.PhaseRunning, false, false},
		{"exited, mark only", exited, GCOptions{MarkOnly: true}, pod.PhaseExitedGarbage, true, false},
		{"prepared, expired, mark only", prepared, GCOptions{MarkOnly: true}, pod.PhasePrepared, false, false},
		{"aborted prepare, mark only", abortedPrepare, GCOptions{MarkOnly: true}, pod.PhaseGarbage, false, false},
		{"preparing", func(*pod.Pod) {}, GCOptions{}, pod.PhasePreparing, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newStubPods(t)
			p := sp.prepare(t)
			tt.state(p)
			if err := sp.GC(tt.opts); err != nil {
				t.Fatalf("GC: %v", err)
			}
			q, err := pod.Load(sp.Dir, p.UUID)
			switch {
			case tt.wantPhase == "" && err == nil:
				t.Errorf("pod left as %s, want it removed", q.State)
			case tt.wantPhase == "":
				if ms, _ := mount.Under(sp.Dir); len(ms) > 0 {
					t.Errorf("mounts left after the pod was removed: %q", ms)
				}
			case err != nil:
				t.Errorf("pod removed (%v), want it %s", err, tt.wantPhase)
			default:
				if st, err := q.Status(); err != nil || st.State != tt.wantPhase {
					t.Errorf("pod is %s (%v), want %s", st.State, err, tt.wantPhase)
				}
			}
			if got := slices.Contains(sp.detached, p.UUID); got != tt.wantDetach {
				t.Errorf("network released: %v, want %v", got, tt.wantDetach)
			}
			if got := slices.Contains(sp.gcRan(), p.UUID); got != tt.wantStage1G {
				t.Errorf("stage1 gc ran: %v, want %v", got, tt.wantStage1G)
			}
		})
	}
}

// Remove removes exited and prepared pods, running stage1's gc for an
// exited one, and refuses a pod that is running.
func TestRemove(t *testing.T) {
	tests := []struct {
		name        string
		state       func(p *pod.Pod)
		wantErr     string
		wantStage1G bool
	}{
		{"exited", exited, "", true},
		{"prepared", prepared, "", false},
		{"aborted prepare", abortedPrepare, "", false},
		{"running", running, "stop it first", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newStubPods(t)
			p := sp.prepare(t)
			tt.state(p)
			err := sp.Remove(p.UUID)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Remove = %v, want an error with %q", err, tt.wantErr)
				}
				if _, err := pod.Load(sp.Dir, p.UUID); err != nil {
					t.Errorf("refused Remove lost the pod: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if _, err := pod.Load(sp.Dir, p.UUID); err == nil {
				t.Errorf("pod still there after Remove")
			}
			if got := slices.Contains(sp.gcRan(), p.UUID); got != tt.wantStage1G {
				t.Errorf("stage1 gc ran: %v, want %v", got, tt.wantStage1G)
			}
		})
	}
}
