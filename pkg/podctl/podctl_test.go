package podctl

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
)

// TestGCSparesPodsInUse checks that gc never touches a pod some process
// holds (preparing or running), and collects the same pods once released.
func TestGCSparesPodsInUse(t *testing.T) {
	dir := t.TempDir()
	c := &Pods{Dir: dir, Log: slog.New(slog.DiscardHandler)}
	preparing, _ := pod.Create(dir)
	preparing.Transition(pod.Preparing)
	running, _ := pod.Create(dir)
	running.Transition(pod.Preparing)
	running.Transition(pod.Running)
	abandoned, _ := pod.Create(dir)
	abandoned.Transition(pod.Preparing)
	abandoned.Unlock()

	if err := c.GC(GCOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*pod.Pod{preparing, running} {
		if q, err := pod.Load(dir, p.UUID); err != nil || q.State != p.State {
			t.Errorf("gc touched pod in use %s (%s): %v", p.UUID, p.State, err)
		}
	}
	if _, err := pod.Load(dir, abandoned.UUID); err == nil {
		t.Errorf("gc left an aborted prepare")
	}

	preparing.Unlock()
	running.Unlock()
	if err := c.GC(GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if pods, _ := pod.List(dir); len(pods) != 0 {
		t.Errorf("pods left after gc of released pods: %d", len(pods))
	}
}

// TestWaitReadyFollowsThePod checks that `status --wait-ready` reports on
// the pod where it is now: loaded while preparing, it has moved to run by
// the time it is ready (the old code then failed "pod does not exist").
func TestWaitReadyFollowsThePod(t *testing.T) {
	dir := t.TempDir()
	p, err := pod.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Unlock()
	if err := p.Transition(pod.Preparing); err != nil {
		t.Fatal(err)
	}
	loaded, err := pod.Load(dir, p.UUID)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		p.Transition(pod.Running)
		os.MkdirAll(filepath.Dir(p.File(pod.ReadyFile)), 0o700)
		os.WriteFile(p.File(pod.ReadyFile), nil, 0o644)
	}()
	q, err := WaitReady(loaded, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := q.Status(); err != nil || st.State != pod.PhaseRunning {
		t.Errorf("status after wait-ready = %+v, %v; want running", st, err)
	}
}
