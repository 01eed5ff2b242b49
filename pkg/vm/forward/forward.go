// Package forward carries TCP connections accepted on the host into a
// guest over one byte stream (stage1-kvm: the skiff.fwd virtio-serial
// port), for socket activation of KVM pods (docs/networking.md).
//
// The stream is multiplexed with yamux (github.com/hashicorp/yamux): the
// host opens one yamux stream per accepted connection, writes the guest
// address to connect to as its first line ("127.0.0.1:8080\n"), and from
// then on the stream carries the connection's bytes both ways, each
// direction ending on its own (half-close). yamux's per-stream windows
// keep a slow reader on one connection from stalling the others. The
// guest side only connects to loopback addresses, and to the unix sockets
// of one directory it was given ("unix:NAME"). The host's own
// connections (a port-forward) go in the same way (ServeDial). The other way, the
// guest opens a stream per connection to its back listener (the metadata
// service's address in the guest); the host serves those streams itself
// (Session is a net.Listener) and never connects them anywhere.
package forward

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// maxHeader bounds the first line of a stream: an address and a newline.
const maxHeader = 64

// Listener is a host socket whose connections go to Guest, an address
// (ip:port) in the guest.
type Listener struct {
	net.Listener
	Guest netip.AddrPort
}

// config is yamux's configuration for both sides. There is no keepalive:
// the guest's life is qemu's, and the stream ends with it. Timeouts that
// would close a whole session (a stream not acknowledged, a write queued
// too long) are off or long: under emulation on a busy host the guest may
// stall for seconds without being gone.
func config(log *slog.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = false
	c.StreamOpenTimeout = 0
	c.StreamCloseTimeout = 0
	c.ConnectionWriteTimeout = 2 * time.Minute
	c.LogOutput = nil
	c.Logger = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	return c
}

// Session is the host's end of the stream. It is also a net.Listener
// whose connections are the streams the guest opens, one per connection
// the guest accepted on its back listener (see Guest): stage1-kvm serves
// the pod's metadata service on them (docs/metadata.md). Those are
// answered by whatever serves the Session, never connected anywhere.
type Session struct {
	*yamux.Session
	log *slog.Logger
}

// Host starts the host's end of the stream on conn; Close ends it and
// closes conn.
func Host(log *slog.Logger, conn io.ReadWriteCloser) (*Session, error) {
	s, err := yamux.Client(conn, config(log))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("forward: %w", err)
	}
	return &Session{Session: s, log: log}, nil
}

// Accept returns the next stream the guest opened. Once the session has
// ended it returns an error wrapping net.ErrClosed, as a closed listener does.
func (s *Session) Accept() (net.Conn, error) {
	c, err := s.Session.Accept()
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrSessionShutdown)) {
		err = fmt.Errorf("forward: %w: %w", net.ErrClosed, err)
	}
	return c, err
}

// Forward forwards every connection accepted on ls into the guest, until
// the session fails or closes (the caller then closes ls) or every
// listener fails.
func (s *Session) Forward(ls []Listener) error {
	log := s.log
	var wg sync.WaitGroup
	errs := make([]error, len(ls))
	for i, l := range ls {
		wg.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					errs[i] = fmt.Errorf("forward %s: %w", l.Addr(), err)
					return
				}
				st, err := s.OpenStream()
				if err == nil {
					_, err = fmt.Fprintf(st, "%s\n", l.Guest)
				}
				if err != nil {
					c.Close()
					errs[i] = fmt.Errorf("forward %s: %w", l.Addr(), err)
					return
				}
				log.Debug("forward", "from", c.RemoteAddr(), "to", l.Guest)
				go join(c, st)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ServeDial serves the host's own connections into the guest (stage1-kvm:
// a port-forward, enter --port-forward): each connection accepted on l
// first names, in one line as a stream does, where in the guest to
// connect to (a loopback address, or unix:NAME); from then on it is joined to a stream to that
// address. It returns when l fails (the caller closes it).
func (s *Session) ServeDial(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return fmt.Errorf("forward: %w", err)
		}
		go func() {
			addr, err := header(c)
			var st net.Conn
			if err == nil {
				st, err = s.OpenStream()
			}
			if err == nil {
				_, err = fmt.Fprintf(st, "%s\n", addr)
			}
			if err != nil {
				s.log.Warn("forward", "err", err)
				c.Close()
				if st != nil {
					st.Close()
				}
				return
			}
			s.log.Debug("forward", "to", addr)
			join(c, st)
		}()
	}
}

// Guest serves conn's streams: each one is joined to a TCP connection to
// the loopback address its first line names, or to the unix socket it
// names in sockDir ("" refuses those: stage1-kvm's attach sockets). Each connection accepted on
// back (when not nil) goes the other way, to the host, as a stream the
// Session accepts. It returns when conn fails or closes, and closes it
// and back.
func Guest(log *slog.Logger, conn io.ReadWriteCloser, back net.Listener, sockDir string) error {
	s, err := yamux.Server(conn, config(log))
	if err != nil {
		conn.Close()
		if back != nil {
			back.Close()
		}
		return fmt.Errorf("forward: %w", err)
	}
	defer s.Close()
	if back != nil {
		defer back.Close()
		go func() {
			for {
				c, err := back.Accept()
				if err != nil {
					return
				}
				st, err := s.OpenStream()
				if err != nil {
					c.Close()
					log.Warn("forward to the host", "err", err)
					continue
				}
				go join(c, st)
			}
		}()
	}
	for {
		st, err := s.AcceptStream()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrSessionShutdown) {
				return nil
			}
			return fmt.Errorf("forward: %w", err)
		}
		go func() {
			to, err := header(st)
			var c net.Conn
			switch {
			case err != nil:
			case to.sock == "":
				c, err = net.Dial("tcp", to.addr.String())
			case sockDir == "":
				err = fmt.Errorf("stream to %s: %w", to, ErrBadSocket)
			default:
				c, err = net.Dial("unix", filepath.Join(sockDir, to.sock))
			}
			if err != nil {
				log.Warn("forward", "err", err)
				st.Close()
				return
			}
			join(c, st)
		}()
	}
}

// target is where a stream goes in the guest: a loopback address, or a
// unix socket named sock in the guest side's socket directory.
type target struct {
	addr netip.AddrPort
	sock string
}

func (t target) String() string {
	if t.sock != "" {
		return "unix:" + t.sock
	}
	return t.addr.String()
}

// header reads the first line of a stream: a loopback address, or
// "unix:NAME", one name (no "/", not "." or "..").
func header(r io.Reader) (target, error) {
	var b strings.Builder
	one := make([]byte, 1)
	for b.Len() <= maxHeader {
		if _, err := io.ReadFull(r, one); err != nil {
			return target{}, fmt.Errorf("read stream header: %w", err)
		}
		if one[0] == '\n' {
			line := b.String()
			if name, ok := strings.CutPrefix(line, "unix:"); ok {
				if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
					return target{}, fmt.Errorf("stream header %q: %w", line, ErrBadSocket)
				}
				return target{sock: name}, nil
			}
			a, err := netip.ParseAddrPort(line)
			if err != nil || !a.Addr().IsLoopback() {
				return target{}, fmt.Errorf("stream header %q: %w", line, ErrNotLoopback)
			}
			return target{addr: a}, nil
		}
		b.WriteByte(one[0])
	}
	return target{}, fmt.Errorf("stream header: %w", ErrHeaderTooLong)
}

// join copies a to b and b to a until both directions ended, each
// passing its end on as a half-close, then closes both. A side that can
// no longer be written to is drained: the sender is never left blocked.
func join(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		pipe(b, a)
		close(done)
	}()
	pipe(a, b)
	<-done
	a.Close()
	b.Close()
}

func pipe(dst, src net.Conn) {
	io.Copy(&sink{w: dst}, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close() // a yamux stream: Close ends its write side only
	}
}

// sink writes to w until that fails, and then discards.
type sink struct {
	w      io.Writer
	failed bool
}

func (s *sink) Write(p []byte) (int, error) {
	if !s.failed {
		if _, err := s.w.Write(p); err != nil {
			s.failed = true
		}
	}
	return len(p), nil
}
