package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// line is m as on the wire.
func line(m Message) string {
	b, _ := json.Marshal(m)
	return string(b) + "\n"
}

// echo serves the test's requests: run replies with the number of its
// args; enter echoes stdin (a resize as ROWSxCOLS, a signal as "signal N") until its end, then exits 7; hang waits for its
// session to end and replies what must never reach the host.
func echo(s *Session) Message {
	switch s.Req.Op {
	case OpRun:
		return Message{Op: OpExit, Code: len(s.Req.Args)}
	case OpEnter:
		for m := range s.In {
			if m.Op == OpResize {
				s.Send(Message{Op: OpStdout, Data: []byte(fmt.Sprintf("%dx%d", m.Rows, m.Cols))})
				continue
			}
			if m.Op == OpSignal {
				s.Send(Message{Op: OpStdout, Data: []byte(fmt.Sprintf("signal %d", m.Code))})
				continue
			}
			if len(m.Data) == 0 {
				return Message{Op: OpExit, Code: 7}
			}
			s.Send(Message{Op: OpStdout, Data: m.Data})
		}
		return Message{Op: OpError, Error: "enter: session ended before stdin did"}
	case "hang":
		for range s.In {
		}
		return Message{Op: OpError, Error: "hang: reply after the session ended"}
	}
	return Message{Op: OpError, Error: "unknown"}
}

// flappy is a virtio-serial port as the guest reads it: end of input
// between any two reads (no host connected, or not yet known to be), and
// lines in pieces.
type flappy struct {
	r   io.Reader
	eof bool
}

func (f *flappy) Read(p []byte) (int, error) {
	if f.eof = !f.eof; f.eof {
		return 0, io.EOF
	}
	return f.r.Read(p[:min(len(p), 64)])
}

// TestServeSessions drives Serve as hosts do over one port: each step is
// what one write puts on the stream (sessions back to back, as when a
// host reconnects at once), and the replies that must come of it, in order.
// The agent that made a new reader per connection lost the second step's
// request; ending a session at end of input lost replies.
func TestServeSessions(t *testing.T) {
	run := func(args ...string) string { return line(Message{Op: OpRun, Args: args}) }
	end := line(Message{Op: OpEnd})
	exit := func(code int) Message { return Message{Op: OpExit, Code: code} }
	steps := []struct {
		name  string
		write string
		want  []Message
	}{
		{"first request", run("a", "b"), []Message{exit(2)}},
		{"end and the next request in one write", end + run("a"), []Message{exit(1)}},
		{"stdin to its session", end + line(Message{Op: OpEnter}) + line(Message{Op: OpStdin, Data: []byte("hi")}) +
			line(Message{Op: OpStdin}), []Message{{Op: OpStdout, Data: []byte("hi")}, exit(7)}},
		{"a resize to its session, not a request", end + line(Message{Op: OpEnter, TTY: true}) + line(Message{Op: OpResize, Rows: 12, Cols: 34}) +
			line(Message{Op: OpStdin}), []Message{{Op: OpStdout, Data: []byte("12x34")}, exit(7)}},
		{"replies carry the request's session", end + line(Message{Op: OpRun, Session: "s1"}), []Message{{Op: OpExit, Session: "s1"}}},
		{"a signal to its session, not a request", end + line(Message{Op: OpEnter}) + line(Message{Op: OpSignal, Code: 15}) +
			line(Message{Op: OpStdin}), []Message{{Op: OpStdout, Data: []byte("signal 15")}, exit(7)}},
		{"stdin after the reply or the end is dropped", strings.Repeat(line(Message{Op: OpStdin, Data: []byte("late")}), 100) +
			end + line(Message{Op: OpStdin, Data: []byte("later")}) + run("x", "y", "z"), []Message{exit(3)}},
		{"a session the host left without end", end + line(Message{Op: "hang"}), nil},
		{"ends at the next request, its reply dropped", run(), []Message{exit(0)}},
		{"a malformed line ends a session", end + "not json\n" + run("a"), []Message{exit(1)}},
		{"a partial line spoils only itself", `{"op":"ru` + "\n" + end + run("a", "b"), []Message{exit(2)}},
	}

	hostR, guestW := io.Pipe()
	guestR, hostW := io.Pipe()
	replies := make(chan Message, 16)
	go func() {
		defer close(replies)
		c := NewConn(struct {
			io.Reader
			io.Writer
		}{hostR, io.Discard})
		for {
			m, err := c.Recv()
			if err != nil {
				return
			}
			replies <- m
		}
	}()
	served := make(chan error, 1)
	go func() {
		served <- Serve(struct {
			io.Reader
			io.Writer
		}{&flappy{r: guestR}, guestW}, slog.New(slog.DiscardHandler), echo)
		guestW.Close()
	}()

	for _, st := range steps {
		if _, err := io.WriteString(hostW, st.write); err != nil {
			t.Fatalf("%s: write: %v", st.name, err)
		}
		for _, want := range st.want {
			select {
			case got := <-replies:
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: reply %+v, want %+v", st.name, got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: no reply in 5 s (want %+v): the request was lost", st.name, want)
			}
		}
	}
	stop := errors.New("port closed")
	hostW.CloseWithError(stop)
	select {
	case err := <-served:
		if !errors.Is(err, stop) {
			t.Errorf("Serve = %v, want %v", err, stop)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return when the port failed")
	}
	for m := range replies {
		if !strings.Contains(m.Error, "hang") {
			t.Errorf("extra reply %+v", m)
		} else {
			t.Errorf("an ended session's reply reached the host: %+v", m)
		}
	}
}
