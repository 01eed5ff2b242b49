package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		line string
	}{
		{"hello", Message{Op: OpHello, Version: Version}, `{"op":"hello","version":1,"code":0}`},
		{"run", Message{Op: OpRun, Args: []string{"/bin/echo", "a b", "\n"}}, `{"op":"run","args":["/bin/echo","a b","\n"],"code":0}`},
		{"exit", Message{Op: OpExit, Code: 3}, `{"op":"exit","code":3}`},
		{"error", Message{Op: OpError, Error: "no such file"}, `{"op":"error","code":0,"error":"no such file"}`},
		{"enter", Message{Op: OpEnter, App: "web", Args: []string{"/bin/sh"}}, `{"op":"enter","args":["/bin/sh"],"app":"web","code":0}`},
		{"stdout", Message{Op: OpStdout, Data: []byte("hi\n")}, `{"op":"stdout","data":"aGkK","code":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := NewConn(&buf)
			if err := c.Send(tt.msg); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tt.line+"\n" {
				t.Errorf("wire = %q, want %q", got, tt.line+"\n")
			}
			got, err := c.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.msg) {
				t.Errorf("Recv = %+v, want %+v", got, tt.msg)
			}
		})
	}
}

func TestRecvErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"eof", ""},
		{"garbage", "not json\n"},
		{"partial line", `{"op":"hello"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConn(struct {
				io.Reader
				io.Writer
			}{bytes.NewBufferString(tt.in), io.Discard})
			if m, err := c.Recv(); err == nil {
				t.Errorf("Recv(%q) = %+v, want error", tt.in, m)
			}
		})
	}
}

func TestExit(t *testing.T) {
	tests := []struct {
		name string
		cmd  *exec.Cmd
		want Message
	}{
		{"success", exec.Command("sh", "-c", "exit 0"), Message{Op: OpExit}},
		{"status", exec.Command("sh", "-c", "exit 3"), Message{Op: OpExit, Code: 3}},
		{"signal", exec.Command("sh", "-c", "kill -TERM $$"), Message{Op: OpExit, Code: 128 + 15}},
		{"not started", exec.Command("/nonexistent/cmd"), Message{Op: OpError}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Exit(tt.cmd.Run())
			if tt.want.Op == OpError && got.Op == OpError && got.Error != "" {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Exit = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// endless is a peer that writes one line that never ends.
type endless struct{ read int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	e.read += int64(len(p))
	return len(p), nil
}

// TestRecvBounded checks that a line without end (a hostile guest) is
// refused once it passes MaxLine, having read little more than that.
func TestRecvBounded(t *testing.T) {
	src := &endless{}
	r := io.LimitReader(src, 64<<20) // the old code read all of it
	c := NewConn(struct {
		io.Reader
		io.Writer
	}{r, io.Discard})
	_, err := c.Recv()
	if !errors.Is(err, ErrLineTooLong) {
		t.Errorf("Recv = %v, want %v", err, ErrLineTooLong)
	}
	if src.read > 2*MaxLine {
		t.Errorf("Recv read %d bytes of an endless line, want at most %d", src.read, 2*MaxLine)
	}
	// A long line within MaxLine is still a message.
	big := Message{Op: OpStdout, Data: bytes.Repeat([]byte("x"), MaxLine/2)}
	var buf bytes.Buffer
	if err := NewConn(&buf).Send(big); err != nil {
		t.Fatal(err)
	}
	if _, err := NewConn(&buf).Recv(); err != nil {
		t.Errorf("Recv of a %d-byte line: %v", buf.Len(), err)
	}
}

// TestSessionRecv: a host client of its own session names it on what it
// sends, and drops a reply of another session (a host that left before its
// reply came), not one without any.
func TestSessionRecv(t *testing.T) {
	var wire bytes.Buffer
	in := strings.NewReader(line(Message{Op: OpExit, Code: 143, Session: "earlier"}) + line(Message{Op: OpHello}))
	c := NewConn(struct {
		io.Reader
		io.Writer
	}{in, &wire})
	c.SetSession()
	if err := c.Send(Message{Op: OpRun}); err != nil {
		t.Fatal(err)
	}
	var sent Message
	if err := json.Unmarshal(wire.Bytes(), &sent); err != nil || sent.Session == "" {
		t.Fatalf("sent %q (%v), want a session named", wire.String(), err)
	}
	if m, err := c.Recv(); err != nil || m.Op != OpHello {
		t.Errorf("Recv = %+v, %v; want the hello, the other session's exit dropped", m, err)
	}
}
