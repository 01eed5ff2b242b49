package pod

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

func TestTransitions(t *testing.T) {
	tests := []struct {
		path []State
		ok   bool
	}{
		{[]State{Preparing, Prepared, Running, ExitedGarbage, Garbage}, true},
		{[]State{Preparing, Running}, true},
		{[]State{Preparing, Garbage}, true},
		{[]State{Prepared}, false},
		{[]State{Preparing, Prepared, Preparing}, false},
		{[]State{Running}, false},
	}
	for _, tt := range tests {
		t.Run(strings.Trim(strings.ReplaceAll(strings.Join(strs(tt.path), ">"), " ", ""), ">"), func(t *testing.T) {
			dir := t.TempDir()
			p, err := Create(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Unlock()
			var last error
			for _, s := range tt.path {
				if last = p.Transition(s); last != nil {
					break
				}
			}
			if tt.ok != (last == nil) {
				t.Fatalf("transition err = %v, want ok=%v", last, tt.ok)
			}
			if !tt.ok && !errors.Is(last, ErrState) {
				t.Errorf("err = %v, want ErrState", last)
			}
			if _, err := os.Stat(p.Path()); err != nil {
				t.Errorf("pod dir not where its state says: %v", err)
			}
		})
	}
}

func strs(ss []State) []string {
	var out []string
	for _, s := range ss {
		out = append(out, string(s))
	}
	return out
}

func TestLoadPrefix(t *testing.T) {
	dir := t.TempDir()
	a, _ := Create(dir)
	b, _ := Create(dir)
	a.Unlock()
	b.Unlock()
	got, err := Load(dir, a.UUID[:8])
	if a.UUID[:8] != b.UUID[:8] && (err != nil || got.UUID != a.UUID) {
		t.Errorf("Load(prefix) = %v, %v", got, err)
	}
	if _, err := Load(dir, ""); !errors.Is(err, ErrNotExist) {
		t.Errorf("Load(\"\") err = %v", err)
	}
	if _, err := Load(dir, "ffffffff-0000"); !errors.Is(err, ErrNotExist) {
		t.Errorf("Load(missing) err = %v", err)
	}
	// Every uuid starts with one of 16 hex digits: with 17 pods some
	// single-digit prefix is shared.
	for range 15 {
		p, _ := Create(dir)
		p.Unlock()
	}
	counts := map[byte]int{}
	all, _ := List(dir)
	for _, p := range all {
		counts[p.UUID[0]]++
	}
	for c, n := range counts {
		if n > 1 {
			if _, err := Load(dir, string(c)); !errors.Is(err, ErrAmbiguous) {
				t.Errorf("Load(%c) err = %v, want ErrAmbiguous", c, err)
			}
			break
		}
	}
}

func TestLocking(t *testing.T) {
	dir := t.TempDir()
	p, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := Load(dir, p.UUID)
	if locked, _ := q.IsLocked(); !locked {
		t.Errorf("IsLocked = false while held")
	}
	if err := q.TryLock(); !errors.Is(err, ErrLocked) {
		t.Errorf("second TryLock err = %v, want ErrLocked", err)
	}
	// Renaming keeps the lock: it is on the directory, not the path.
	if err := p.Transition(Preparing); err != nil {
		t.Fatal(err)
	}
	q, _ = Load(dir, p.UUID)
	if locked, _ := q.IsLocked(); !locked {
		t.Errorf("lock lost across rename")
	}
	st, _ := q.Status()
	if st.State != "preparing" {
		t.Errorf("state = %q, want preparing", st.State)
	}
	p.Unlock()
	st, _ = q.Status()
	if st.State != "aborted-prepare" {
		t.Errorf("state = %q, want aborted-prepare", st.State)
	}
}

// TestRaceRunPrepared has two processes race to lock and run one prepared
// pod: exactly one must win.
// TestLookIsNotUse checks that a look (gc, status) never makes a lock
// fail, while a holder of the lock still does, and is seen by a look.
func TestLookIsNotUse(t *testing.T) {
	dir := t.TempDir()
	p, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := Load(dir, p.UUID)
	if _, err := q.Look(); !errors.Is(err, ErrLocked) {
		t.Errorf("Look of a locked pod err = %v, want ErrLocked", err)
	}
	p.Unlock()
	done, err := q.Look()
	if err != nil {
		t.Fatal(err)
	}
	if locked, _ := p.IsLocked(); locked {
		t.Error("IsLocked = true during a look")
	}
	go func() { time.Sleep(200 * time.Millisecond); done() }()
	start := time.Now()
	if err := p.TryLock(); err != nil {
		t.Fatalf("TryLock during a look: %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("TryLock took %s: it did not wait for the look to end", d)
	}
	p.Unlock()
}

func TestRaceRunPrepared(t *testing.T) {
	if dir := os.Getenv("SKIFF_POD_RACE_DIR"); dir != "" {
		p, err := Load(dir, os.Getenv("SKIFF_POD_RACE_UUID"))
		if err == nil {
			err = p.TryLock()
		}
		if err == nil && p.State != Prepared {
			err = ErrState
		}
		if err == nil {
			err = p.Transition(Running)
		}
		if err != nil {
			os.Stdout.WriteString("lost: " + err.Error())
			os.Exit(1)
		}
		os.Stdout.WriteString("won")
		os.Stdin.Read(make([]byte, 1)) // hold the lock until the parent says
		os.Exit(0)
	}
	dir := t.TempDir()
	p, _ := Create(dir)
	p.Transition(Preparing)
	p.Transition(Prepared)
	p.Unlock()
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	var stdins []io.Closer
	for range 2 {
		c := exec.Command(os.Args[0], "-test.run=^TestRaceRunPrepared$")
		c.Env = append(os.Environ(), "SKIFF_POD_RACE_DIR="+dir, "SKIFF_POD_RACE_UUID="+p.UUID)
		out := &strings.Builder{}
		c.Stdout = out
		w, _ := c.StdinPipe()
		defer w.Close()
		stdins = append(stdins, w)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, c), append(outs, out)
	}
	errs := make(chan error, 2)
	for _, c := range cmds {
		go func() { errs <- c.Wait() }()
	}
	first := <-errs
	won := 0
	// The loser is done: the winner may finish its move and exit (a
	// signal now could end it before it says it won).
	for _, w := range stdins {
		w.Close()
	}
	<-errs
	for _, o := range outs {
		if strings.HasPrefix(o.String(), "won") {
			won++
		}
	}
	if won != 1 || first == nil {
		t.Fatalf("winners = %d (outputs %q, %q), want exactly 1", won, outs[0], outs[1])
	}
	if _, err := os.Stat(filepath.Join(PodsDir(dir), "run", p.UUID)); err != nil {
		t.Errorf("pod not in run: %v", err)
	}
}

func TestParseStage1(t *testing.T) {
	mk := func(ann map[string]string) *schema.ImageManifest {
		m := schema.BlankImageManifest()
		m.Name = *types.MustACIdentifier("example.com/stage1")
		for k, v := range ann {
			m.Annotations.Set(types.ACIdentifier(k), v)
		}
		return m
	}
	full := map[string]string{AnnotationVersion: "1", AnnotationRun: "/run", AnnotationEnter: "/enter"}
	tests := []struct {
		name string
		ann  map[string]string
		err  bool
	}{
		{"complete", full, false},
		{"no version", map[string]string{AnnotationRun: "/run"}, true},
		{"future version", map[string]string{AnnotationVersion: "99", AnnotationRun: "/run"}, true},
		{"bad version", map[string]string{AnnotationVersion: "one", AnnotationRun: "/run"}, true},
		{"no run", map[string]string{AnnotationVersion: "1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseStage1(mk(tt.ann))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err != nil {
				if !errors.Is(err, ErrNotStage1) {
					t.Errorf("err = %v, want ErrNotStage1", err)
				}
				return
			}
			if !s.Supports(EntrypointEnter) || s.Supports(EntrypointGC) {
				t.Errorf("Supports wrong: enter=%v gc=%v", s.Supports(EntrypointEnter), s.Supports(EntrypointGC))
			}
			if s.Supports(FeaturePrivateUsers) {
				t.Errorf("a stage1 without %s has feature %s", AnnotationFeatures, FeaturePrivateUsers)
			}
			if p, _ := s.Entrypoint(EntrypointRun); p != "/run" {
				t.Errorf("run = %q", p)
			}
		})
	}
	ann := Stage1Annotations(map[string]string{EntrypointRun: "/skiff/run"})
	s, err := ParseStage1(&schema.ImageManifest{Name: "x.com/s1", Annotations: ann})
	if err != nil {
		t.Errorf("Stage1Annotations output does not parse: %v", err)
	} else if s.Supports(FeatureMetadata) {
		t.Errorf("a stage1 without features supports %s", FeatureMetadata)
	}
	ann = Stage1Annotations(map[string]string{EntrypointRun: "/skiff/run"}, "other", FeatureMetadata)
	if s, err := ParseStage1(&schema.ImageManifest{Name: "x.com/s1", Annotations: ann}); err != nil || !s.Supports(FeatureMetadata) || !s.Supports("other") || s.Supports("metadat") {
		t.Errorf("features %q: err %v, Supports(%s) false or a prefix matched", ann, err, FeatureMetadata)
	}
}

// TestStatusPhase walks one pod through its states: each directory, with
// and without the lock, reports its own Phase.
func TestStatusPhase(t *testing.T) {
	dir := t.TempDir()
	p, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		to     State // "" stays
		locked bool
		want   Phase
	}{
		{"", true, PhaseEmbryo},
		{Preparing, true, PhasePreparing},
		{"", false, PhaseAbortedPrepare},
		{Prepared, false, PhasePrepared},
		{Running, true, PhaseRunning},
		{"", false, PhaseExited},
		{ExitedGarbage, false, PhaseExitedGarbage},
		{Garbage, false, PhaseGarbage},
	}
	for _, s := range steps {
		if s.to != "" {
			if err := p.Transition(s.to); err != nil {
				t.Fatal(err)
			}
		}
		if s.locked && p.LockFile() == nil {
			if err := p.TryLock(); err != nil {
				t.Fatal(err)
			}
		}
		if !s.locked {
			p.Unlock()
		}
		q, err := Load(dir, p.UUID)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := q.Status(); err != nil || st.State != s.want {
			t.Errorf("pod in %s/, locked %t: state %q (err %v), want %q", p.State, s.locked, st.State, err, s.want)
		}
	}
}
