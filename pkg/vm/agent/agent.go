// Package agent is the wire protocol between the host and a skiff guest
// over virtio-serial ports: one JSON object per line.
//
// On the port named PortName the guest init speaks first with a "hello"
// once its root is mounted; the host then sends requests ("run",
// "poweroff") and reads one reply ("exit", "ok" or "error") for each, in
// order (when the init execs systemd instead, the hello is all it says).
//
// On the port named ControlPortName a guest-side server (stage1-kvm's
// agent, Serve) answers one host client at a time: "poweroff", "run",
// "stats" (an app's CPU and memory, from the guest's cgroups), or
// "enter", after which the host streams "stdin" (empty data: end of
// input), "resize" (an enter with a terminal) and "signal" (a signal the
// host's enter got, for the command) and the guest streams "stdout" and
// "stderr" until its final "exit" or "error". The host then sends "end":
// connections do not frame sessions for the guest, messages do (Serve).
//
// An "error" carries its text and, when it is one the other side acts on
// (no such app, a usage error, ...), a typed code (ErrCode).
package agent

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
)

// PortName is the virtserialport name; in a guest with udev it appears as
// /dev/virtio-ports/skiff.agent.
const PortName = "skiff.agent"

// ControlPortName is the port of the guest's control server.
const ControlPortName = "skiff.ctl"

// ForwardPortName is the port that carries connections to sockets passed
// to stage1-kvm's run into the guest, and connections to MetadataAddr out
// to run (package forward's protocol).
const ForwardPortName = "skiff.fwd"

// MetadataAddr is where the guest's agent listens for the pod's metadata
// service (docs/metadata.md), on the guest's loopback; run serves it.
// 18112 is the port of rkt's metadata service.
const MetadataAddr = "127.0.0.1:18112"

// Version is the protocol version the guest announces in its hello.
const Version = 1

// Operations.
const (
	OpHello    = "hello"    // guest → host, once booted
	OpRun      = "run"      // host → guest: run Args, reply OpExit
	OpPoweroff = "poweroff" // host → guest: reply OpOK, then power off
	OpExit     = "exit"     // reply: Code is the exit status
	OpOK       = "ok"       // reply
	OpError    = "error"    // reply: Error says why, ErrCode which sentinel it is
	OpEnter    = "enter"    // host → guest: run Args in app App, then stream
	OpStdin    = "stdin"    // host → guest: Data for the command's stdin
	OpStdout   = "stdout"   // guest → host: Data the command wrote
	OpStderr   = "stderr"   // guest → host: likewise
	OpEnd      = "end"      // host → guest on the control port: the session is over (see Serve)
	OpResize   = "resize"   // host → guest: the terminal of an enter with TTY is now Rows x Cols
	OpSignal   = "signal"   // host → guest: send signal Code to the entered command's process group
	OpStats    = "stats"    // host → guest: App's resource use; the reply is OpStats, Data a JSON pod.AppStats
)

// Message is one line of the protocol.
type Message struct {
	Op      string   `json:"op"`
	Version int      `json:"version,omitempty"`
	Args    []string `json:"args,omitempty"`
	App     string   `json:"app,omitempty"`
	Term    string   `json:"term,omitempty"` // with OpEnter: the caller's TERM, which the command gets
	// With OpEnter, for skiff debug: a directory of the shared tree (a
	// path in the guest) to mount for the command alone, and capabilities
	// to add (pod.EnterArgs's MountImage and CapAdd).
	MountImage string `json:"mountImage,omitempty"`
	CapAdd     string `json:"capAdd,omitempty"`
	// With OpEnter: run the command on a terminal of its own (stdout
	// carries its output, nothing comes on stderr), of Rows x Cols when
	// not zero; OpResize changes the size.
	TTY     bool    `json:"tty,omitempty"`
	Rows    uint16  `json:"rows,omitempty"`
	Cols    uint16  `json:"cols,omitempty"`
	Data    []byte  `json:"data,omitempty"`
	Code    int     `json:"code"`
	Error   string  `json:"error,omitempty"`
	ErrCode ErrCode `json:"errcode,omitempty"` // with OpError: the sentinel Error stands for (see Failure, Err)
	// Session names the host client a message is of: the host sets it on
	// what it sends, and the guest's server on every message of that
	// client's session (Serve). A reply of an earlier session can reach the
	// next client (its host died before the reply, and the reply went out
	// before the guest read the next request): the client drops it (Recv).
	Session string `json:"session,omitempty"`
}

// Conn reads and writes messages on a stream. Send is safe for concurrent
// use (a streaming command writes stdout and stderr at once); Recv is not.
type Conn struct {
	r       *bufio.Reader
	session string // set by SetSession

	mu sync.Mutex // serialises writes of whole lines
	w  io.Writer
}

// NewConn wraps rw.
func NewConn(rw io.ReadWriter) *Conn {
	return &Conn{r: bufio.NewReader(rw), w: rw}
}

// SetSession makes c a host client of its own session: a random name is
// put on every message it sends, and Recv drops messages of another
// session. Call it before the first Send.
func (c *Conn) SetSession() {
	b := make([]byte, 8)
	rand.Read(b)
	c.session = hex.EncodeToString(b)
}

// Send writes m as one line.
func (c *Conn) Send(m Message) error {
	if c.session != "" {
		m.Session = c.session
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("send %s: %w", m.Op, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send %s: %w", m.Op, err)
	}
	return nil
}

// MaxLine bounds one message on the wire. The guest is not trusted: a line
// that never ends must not grow the host's memory without bound. Commands'
// output goes in chunks of at most 32 KiB (44 KiB as base64).
const MaxLine = 1 << 20

// Recv reads the next message; with SetSession, the next one that is not
// another session's.
func (c *Conn) Recv() (Message, error) {
	for {
		m, err := c.recv()
		if err == nil && c.session != "" && m.Session != "" && m.Session != c.session {
			continue // a reply for a host that left before it came
		}
		return m, err
	}
}

func (c *Conn) recv() (Message, error) {
	var m Message
	var line []byte
	for {
		frag, err := c.r.ReadSlice('\n')
		if len(line)+len(frag) > MaxLine {
			return m, fmt.Errorf("receive: %w: %w", ErrBadMessage, ErrLineTooLong)
		}
		line = append(line, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return m, fmt.Errorf("receive: %w", err)
		}
		break
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("receive %.100q: %w: %w", line, ErrBadMessage, err)
	}
	return m, nil
}

// Exit is the reply for a command whose Wait returned err: OpExit with its
// status (128+signal when a signal killed it), or OpError when it did not
// run to an end.
func Exit(err error) Message {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return Message{Op: OpExit}
	case errors.As(err, &ee):
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return Message{Op: OpExit, Code: code}
	}
	return Message{Op: OpError, Error: err.Error()}
}
