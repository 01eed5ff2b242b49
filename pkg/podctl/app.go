package podctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/skiffpod/skiff/pkg/perm"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/prepare"
	"github.com/skiffpod/skiff/pkg/stage1"
)

// The app sandbox (docs/app-sandbox.md): a pod run with no apps, whose
// apps are added, started, stopped and removed while it runs. Each
// operation holds the pod's manifest lock (pod.LockManifest).

// sandboxReadyWait is how long the app commands wait for a sandbox that
// runs but is not ready yet.
const sandboxReadyWait = 60 * time.Second

// startedDir, in the pod dir, holds a file per app of a sandbox that was
// started (AppStart): with no exit status yet, such an app runs.
const startedDir = "sandbox"

// App states in a sandbox.
const (
	AppCreated = "created" // added, never started
	AppRunning = "running"
	AppExited  = "exited"
)

// AppState is one app of a sandbox as `skiff app list` and `app status`
// show it.
type AppState struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Exit is the app's exit status once it has exited.
	Exit *int `json:"exitCode,omitempty"`
}

// ErrNoApp means a sandbox has no app of that name.
var ErrNoApp = errors.New("no such app")

// ErrAppRunning means an app must be stopped before it is removed.
var ErrAppRunning = errors.New("app is running: stop it first")

// sandbox is a locked running app sandbox and its stage1.
type sandbox struct {
	p      *pod.Pod
	in     stage1.Invocation
	unlock func()
}

// sandbox loads running pod id for operation op, checks that it is an app
// sandbox whose stage1 has the app entrypoints, and takes its manifest lock.
func (c *Pods) sandbox(op, id string) (*sandbox, error) {
	// A sandbox just started (skiff app sandbox & skiff app add ...) is
	// waited for: its systemd must be up before its apps can change.
	if p, err := pod.Load(c.Dir, id); err == nil {
		if st, err := p.Status(); err == nil && (st.State == pod.PhasePreparing || st.State == pod.PhaseRunning && !st.Ready) {
			WaitReady(p, sandboxReadyWait) // what it ends in, Running says
		}
	}
	p, _, err := c.Running(op, id)
	if err != nil {
		return nil, err
	}
	pm, err := prepare.ReadManifest(p)
	if err != nil {
		return nil, err
	}
	if !pod.IsSandbox(pm) {
		return nil, fmt.Errorf("%s: pod %s is not an app sandbox (start one with skiff app sandbox)", op, p.UUID)
	}
	s1, err := pod.ReadStage1(p.Path())
	if err != nil {
		return nil, err
	}
	if !s1.SupportsApps() {
		return nil, fmt.Errorf("%s: pod %s: stage1 %s has no app entrypoints", op, p.UUID, s1.Name)
	}
	in, err := c.Invocation(p)
	if err != nil {
		return nil, err
	}
	unlock, err := p.LockManifest()
	if err != nil {
		return nil, err
	}
	return &sandbox{p: p, in: in, unlock: unlock}, nil
}

// state returns app name's state, or pod.ErrNoApp.
func (s *sandbox) state(name string) (AppState, error) {
	pm, err := prepare.ReadManifest(s.p)
	if err != nil {
		return AppState{}, err
	}
	for _, ra := range pm.Apps {
		if ra.Name.String() == name {
			return appState(s.p, name), nil
		}
	}
	return AppState{}, fmt.Errorf("pod %s has no app %q: %w", s.p.UUID, name, ErrNoApp)
}

func appState(p *pod.Pod, name string) AppState {
	st := AppState{Name: name, State: AppCreated}
	if codes, _ := p.AppExitStatuses(); codes != nil {
		if n, ok := codes[name]; ok {
			st.State, st.Exit = AppExited, &n
			return st
		}
	}
	if _, err := os.Stat(p.File(filepath.Join(startedDir, name))); err == nil {
		st.State = AppRunning
	}
	return st
}

// AppAdd adds app a, its image and layers resolved and checked by the
// caller, to running app sandbox id: stage0 prepares its rootfs and
// manifest entry (prepare.AddApp), then the stage1's app-add makes it
// known to the pod. The app is not started. On error nothing of it is left.
func (c *Pods) AppAdd(ctx context.Context, imgs prepare.Images, id string, a prepare.App, inherit []string) (string, error) {
	s, err := c.sandbox("app add", id)
	if err != nil {
		return "", err
	}
	defer s.unlock()
	name, err := prepare.AddApp(ctx, imgs, s.p, a, inherit)
	if err != nil {
		return "", err
	}
	if err := s.in.App(pod.EntrypointAppAdd, name); err != nil {
		return "", errors.Join(err, prepare.RemoveApp(s.p, name))
	}
	return name, nil
}

// AppStart starts app name of running sandbox id (again, if it exited).
func (c *Pods) AppStart(id, name string) error {
	s, err := c.sandbox("app start", id)
	if err != nil {
		return err
	}
	defer s.unlock()
	st, err := s.state(name)
	if err != nil {
		return err
	}
	if st.State == AppRunning {
		return fmt.Errorf("app start: app %s is already running", name)
	}
	if err := perm.MkdirPrivate(s.p.File(startedDir)); err != nil {
		return fmt.Errorf("app start %s: %w", name, err)
	}
	if err := perm.WriteFile(s.p.File(filepath.Join(startedDir, name)), nil, false); err != nil {
		return fmt.Errorf("app start %s: %w", name, err)
	}
	return s.in.App(pod.EntrypointAppStart, name)
}

// AppStop stops app name of running sandbox id; its exit status is
// recorded. Stopping an app that is not running does nothing.
func (c *Pods) AppStop(id, name string) error {
	s, err := c.sandbox("app stop", id)
	if err != nil {
		return err
	}
	defer s.unlock()
	st, err := s.state(name)
	if err != nil || st.State != AppRunning {
		return err
	}
	return s.in.App(pod.EntrypointAppStop, name)
}

// AppRm removes app name, which must not be running, from running sandbox
// id: the stage1 forgets it (app-rm), then its manifest entry, rootfs and
// status go.
func (c *Pods) AppRm(id, name string) error {
	s, err := c.sandbox("app rm", id)
	if err != nil {
		return err
	}
	defer s.unlock()
	st, err := s.state(name)
	if err != nil {
		return err
	}
	if st.State == AppRunning {
		return fmt.Errorf("app rm %s: %w", name, ErrAppRunning)
	}
	if err := s.in.App(pod.EntrypointAppRm, name); err != nil {
		return err
	}
	err = prepare.RemoveApp(s.p, name)
	if rerr := os.Remove(s.p.File(filepath.Join(startedDir, name))); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// Apps returns the states of the apps of sandbox id, in the manifest's
// order; with name, of that app alone.
func (c *Pods) Apps(id, name string) ([]AppState, error) {
	s, err := c.sandbox("app list", id)
	if err != nil {
		return nil, err
	}
	defer s.unlock()
	if name != "" {
		st, err := s.state(name)
		return []AppState{st}, err
	}
	pm, err := prepare.ReadManifest(s.p)
	if err != nil {
		return nil, err
	}
	var out []AppState
	for _, ra := range pm.Apps {
		out = append(out, appState(s.p, ra.Name.String()))
	}
	return out, nil
}
