package cri

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffpod/skiff/pkg/journal"
	"github.com/skiffpod/skiff/pkg/pod"
)

// A container's log is copied from its pod's journal, where stage2 puts
// the app's stdout and stderr (priority 6 and 3) tagged with the app's name,
// into the CRI log file, a batch at a time. How far the copy got is the
// journal cursor kept beside the container's record (<id>.cursor): a
// restarted server goes on from there. A line copied just before a crash
// whose cursor was not yet written is copied again.

// logPoll is how often a running container's new log lines are copied.
const logPoll = 300 * time.Millisecond

// entry is one journal entry, as journalctl -o json prints it.
type entry struct {
	Cursor    string          `json:"__CURSOR"`
	Realtime  string          `json:"__REALTIME_TIMESTAMP"` // microseconds
	Message   json.RawMessage `json:"MESSAGE"`              // a string, or an array of bytes
	LineBreak string          `json:"_LINE_BREAK"`          // "line-max": a long line's part
	Priority  string          `json:"PRIORITY"`             // "3": the app's stderr
}

// stream is the CRI stream the entry came from: stage2 gives an app's
// stderr a journal stream of its own with priority 3 (err), its stdout 6.
func (e entry) stream() string {
	if e.Priority == strconv.Itoa(journal.PriorityStderr) {
		return "stderr"
	}
	return "stdout"
}

// message is the entry's text: MESSAGE is a JSON string, or an array of
// bytes when it is not valid UTF-8.
func (e entry) message() []byte {
	var s string
	if json.Unmarshal(e.Message, &s) == nil {
		return []byte(s)
	}
	var b []byte
	var ints []int
	if json.Unmarshal(e.Message, &ints) == nil {
		for _, i := range ints {
			b = append(b, byte(i))
		}
	}
	return b
}

// writeLine writes msg in the CRI log format, a line
// "TIMESTAMP STREAM F|P TEXT" for each of its lines; P marks the last one
// as a part of a longer line the journal split.
func writeLine(w io.Writer, t time.Time, stream string, partial bool, msg []byte) error {
	msg = bytes.TrimSuffix(msg, []byte("\n"))
	parts := bytes.Split(msg, []byte("\n"))
	ts := t.Format(time.RFC3339Nano)
	for i, p := range parts {
		tag := "F"
		if partial && i == len(parts)-1 {
			tag = "P"
		}
		if _, err := fmt.Fprintf(w, "%s %s %s %s\n", ts, stream, tag, p); err != nil {
			return err
		}
	}
	return nil
}

// followers copies running containers' logs, one goroutine each.
type followers struct {
	s       *Server
	mu      sync.Mutex // guards running
	running map[string]chan struct{}
	// done holds containers whose log was copied to its end after they
	// exited (a restarted server copies once more).
	done   map[string]bool
	copyMu sync.Mutex // one copy at a time
}

func (f *followers) init(s *Server) {
	f.s = s
	f.running = map[string]chan struct{}{}
	f.done = map[string]bool{}
}

// complete copies the rest of exited container r's log, once.
func (f *followers) complete(r *containerRecord) {
	f.mu.Lock()
	if f.done == nil || f.done[r.ID] {
		f.mu.Unlock()
		return
	}
	f.done[r.ID] = true
	f.mu.Unlock()
	f.s.finish(r)
}

// start follows r's log until it exits or stop is called.
func (f *followers) start(r *containerRecord) {
	if r.LogPath == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running == nil {
		return
	}
	if _, ok := f.running[r.ID]; ok {
		return
	}
	done := make(chan struct{})
	f.running[r.ID] = done
	go func() {
		t := time.NewTicker(logPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ended := f.s.containerState(r).state == runtimeapi.ContainerState_CONTAINER_EXITED
			f.s.copyLog(r)
			if ended {
				f.mu.Lock()
				if f.running[r.ID] == done {
					delete(f.running, r.ID)
				}
				f.mu.Unlock()
				return
			}
		}
	}()
}

func (f *followers) stop(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if done, ok := f.running[id]; ok {
		close(done)
		delete(f.running, id)
	}
}

func (f *followers) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, done := range f.running {
		close(done)
		delete(f.running, id)
	}
	f.running = nil
}

// resumeLogs follows again, after a restart, every started container
// whose log is not copied to its end.
func (s *Server) resumeLogs() {
	all, _ := ids(s.containerDir())
	for _, id := range all {
		r, err := s.loadContainer(id)
		if err != nil || r.StartedAt == 0 {
			continue
		}
		if s.containerState(r).state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			s.logs.start(r)
		} else {
			s.copyLog(r)
		}
	}
}

func (s *Server) cursorPath(id string) string {
	return filepath.Join(s.containerDir(), id+".cursor")
}

// copyLog appends r's journal lines after its cursor to its log file.
func (s *Server) copyLog(r *containerRecord) {
	if r.LogPath == "" {
		return
	}
	s.logs.copyMu.Lock()
	defer s.logs.copyMu.Unlock()
	if err := s.copyLogLocked(r); err != nil {
		s.Log.Debug("copy log", "container", r.ID, "err", err)
	}
}

func (s *Server) copyLogLocked(r *containerRecord) error {
	p, err := pod.Load(s.Dir, r.SandboxID)
	if err != nil {
		return err
	}
	files, err := journal.Open(p)
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	args := journal.Args(len(files), journal.Options{App: r.App, Output: "json"})
	cursor, _ := os.ReadFile(s.cursorPath(r.ID))
	// An app's name holds its container's ID: its lines are its own. No
	// time filter: a VM's clock need not agree with the host's.
	if c := strings.TrimSpace(string(cursor)); c != "" {
		args = append(args, "--after-cursor="+c)
	}
	c := exec.Command("journalctl", args...)
	c.ExtraFiles = files
	out, err := c.Output()
	if err != nil && len(out) == 0 {
		return fmt.Errorf("journalctl: %w", err)
	}
	if len(out) == 0 {
		return nil
	}
	lf, err := os.OpenFile(r.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(lf)
	last := ""
	for _, line := range bytes.Split(out, []byte("\n")) {
		var e entry
		if len(line) == 0 || json.Unmarshal(line, &e) != nil {
			continue
		}
		us, _ := strconv.ParseInt(e.Realtime, 10, 64)
		writeLine(w, time.UnixMicro(us), e.stream(), e.LineBreak == "line-max", e.message())
		last = e.Cursor
	}
	err = w.Flush()
	if cerr := lf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if last != "" {
		return writeAtomic(s.cursorPath(r.ID), []byte(last+"\n"))
	}
	return nil
}
