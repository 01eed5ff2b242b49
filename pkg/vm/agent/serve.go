package agent

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"
)

// A control port is one byte stream for the guest, whoever is connected to
// qemu's end: a host client that disconnects and the next one that
// connects at once follow each other on it with no gap the guest can see.
// So the guest keeps one reader for the port's whole life, and a session
// is framed by messages, not by connections: it starts with a request,
// and ends with the host's OpEnd, with the next request (a host that went
// away without OpEnd), or with a malformed line. End of input is not an
// end: the port reports it whenever no host is connected, and also just
// after a host has connected and sent its first bytes (the guest learns of
// the connection on another queue, later), in the middle of its session.

// Session is one host request being served: Req, the messages the host
// sends after it (OpStdin), and the replies.
type Session struct {
	Req Message
	// In carries the host's further messages; it is closed when the
	// session ends.
	In <-chan Message

	in    chan Message
	done  chan struct{} // closed when the handler has returned
	srv   *server
	ended bool // guarded by srv.mu
}

// Send writes m to the host of this session; once the session has ended it
// drops m (another host may be talking by then) and returns ErrSessionEnded.
func (s *Session) Send(m Message) error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.ended {
		return ErrSessionEnded
	}
	m.Session = s.Req.Session
	return s.srv.c.Send(m)
}

// server is Serve's state.
type server struct {
	c *Conn

	mu  sync.Mutex // guards the current session's end against its Sends
	cur *Session
}

// eofPause is how long Serve waits after the port reported end of input:
// a virtio-serial port with no host connected reports it at once, and
// there is no event for a host connecting.
const eofPause = 20 * time.Millisecond

// waitReader reads through end of input, which it never returns.
type waitReader struct{ r io.Reader }

func (w waitReader) Read(p []byte) (int, error) {
	for {
		n, err := w.r.Read(p)
		if errors.Is(err, io.EOF) {
			if n > 0 {
				return n, nil
			}
			time.Sleep(eofPause)
			continue
		}
		return n, err
	}
}

// Serve serves the guest side of a control port: each request starts a
// session, whose handle runs in a goroutine of its own and returns the
// final reply (sent unless the session ended meanwhile). It returns the
// port's first read error other than end of input.
func Serve(rw io.ReadWriter, log *slog.Logger, handle func(*Session) Message) error {
	srv := &server{c: NewConn(struct {
		io.Reader
		io.Writer
	}{waitReader{rw}, rw})}
	for {
		m, err := srv.c.Recv()
		switch {
		case errors.Is(err, ErrBadMessage):
			log.Warn("control port", "err", err)
			srv.end()
			continue
		case err != nil:
			srv.end()
			return err
		}
		switch m.Op {
		case OpEnd:
			srv.end()
		case OpStdin, OpResize, OpSignal:
			srv.deliver(m, log)
		default:
			srv.end()
			s := srv.start(m)
			go func() {
				reply := handle(s)
				close(s.done)
				s.Send(reply)
			}()
		}
	}
}

// start makes req's session the current one.
func (srv *server) start(req Message) *Session {
	in := make(chan Message, 64)
	s := &Session{Req: req, In: in, in: in, done: make(chan struct{}), srv: srv}
	srv.mu.Lock()
	srv.cur = s
	srv.mu.Unlock()
	return s
}

// end ends the current session, if any: its In is closed and its Sends
// are dropped from now on.
func (srv *server) end() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if s := srv.cur; s != nil {
		s.ended = true
		close(s.in)
		srv.cur = nil
	}
}

// deliver passes m to the current session's handler; with none, or once
// the handler has returned, the host sent it after the session's end or
// reply (stdin racing the final reply) and it is dropped.
func (srv *server) deliver(m Message, log *slog.Logger) {
	srv.mu.Lock()
	s := srv.cur
	srv.mu.Unlock()
	if s == nil {
		log.Debug("control port: message outside a session", "op", m.Op)
		return
	}
	// Only this goroutine closes s.in, so the send cannot race the close;
	// a running handler that does not read its In holds the port up (flow
	// control).
	select {
	case s.in <- m:
	case <-s.done:
	}
}
