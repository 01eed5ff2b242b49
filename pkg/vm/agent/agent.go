// Package agent is the wire protocol between the host and the skiff guest
// init over the virtio-serial port named PortName: one JSON object per line.
//
// The guest speaks first with a "hello" message once its root is mounted;
// the host then sends requests ("run", "poweroff") and reads one reply
// ("exit", "ok" or "error") for each, in order.
package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// PortName is the virtserialport name; in a guest with udev it appears as
// /dev/virtio-ports/skiff.agent.
const PortName = "skiff.agent"

// Version is the protocol version the guest announces in its hello.
const Version = 1

// Operations.
const (
	OpHello    = "hello"    // guest → host, once booted
	OpRun      = "run"      // host → guest: run Args, reply OpExit
	OpPoweroff = "poweroff" // host → guest: reply OpOK, then power off
	OpExit     = "exit"     // reply: Code is the exit status
	OpOK       = "ok"       // reply
	OpError    = "error"    // reply: Error says why
)

// Message is one line of the protocol.
type Message struct {
	Op      string   `json:"op"`
	Version int      `json:"version,omitempty"`
	Args    []string `json:"args,omitempty"`
	Code    int      `json:"code"`
	Error   string   `json:"error,omitempty"`
}

// Conn reads and writes messages on a stream. It is not safe for
// concurrent use.
type Conn struct {
	r *bufio.Reader
	w io.Writer
}

// NewConn wraps rw.
func NewConn(rw io.ReadWriter) *Conn {
	return &Conn{r: bufio.NewReader(rw), w: rw}
}

// Send writes m as one line.
func (c *Conn) Send(m Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("send %s: %w", m.Op, err)
	}
	if _, err := c.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send %s: %w", m.Op, err)
	}
	return nil
}

// Recv reads the next message.
func (c *Conn) Recv() (Message, error) {
	var m Message
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return m, fmt.Errorf("receive: %w", err)
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("receive %q: %w", line, err)
	}
	return m, nil
}
