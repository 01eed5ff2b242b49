// Package attach connects clients to a running app's stdio: the relay,
// which stage2 starts beside an app created with a stdin to attach to
// (pod.AnnotationStdin), holds the app's stdin pipe and reads its stdout
// and stderr pipes, copying them to the unit's own output (the pod's
// journal) and to every attached client; a stage1's enter --attach is
// the client (Attach). The relay listens on a unix socket in the pod.
//
// The wire: the client sends one byte, 1 to pass its stdin on (what
// follows, until it shuts down its writing side) or 0 not to; the relay
// sends frames of one kind byte (Stdout, Stderr), a big-endian uint32
// length and the data. The relay closes the connection when the app's
// output has ended, or when the client's stdin ended and the app's stdin
// stays open (without once); with once, the first client's end of stdin
// closes the app's stdin and the client sees the output to the end.
package attach

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/safefile"
)

// Frame kinds.
const (
	Stdout byte = 1
	Stderr byte = 2
)

// maxFrame bounds a frame the client accepts: the relay is in the pod.
const maxFrame = 1 << 20

// writeTimeout is how long a frame may take to reach a client before the
// relay drops it: a stuck client must not hold the app's output up.
const writeTimeout = 10 * time.Second

// Relay is the app side. Its zero value is not usable: see Serve.
type Relay struct {
	// Stdin is the writing end of the app's stdin pipe; Stdout and Stderr
	// the reading ends of its output pipes; Out and Err where the output
	// goes besides the clients (the unit's journal streams).
	Stdin          io.WriteCloser
	Stdout, Stderr io.Reader
	Out, Err       io.Writer
	// Once closes Stdin when the first client that passed stdin ends it.
	Once bool
	Log  *slog.Logger

	mu       sync.Mutex // guards what follows
	clients  map[*client]bool
	inClosed bool
}

type client struct {
	conn net.Conn
	mu   sync.Mutex // serialises frames
}

// Serve accepts clients on ln and copies until the app's output has ended
// (both pipes at end of file); it then closes every client and ln.
func (r *Relay) Serve(ln net.Listener) error {
	r.clients = map[*client]bool{}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serveClient(conn)
		}
	}()
	var wg sync.WaitGroup
	for _, s := range []struct {
		kind byte
		in   io.Reader
		out  io.Writer
	}{{Stdout, r.Stdout, r.Out}, {Stderr, r.Stderr, r.Err}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.pump(s.kind, s.in, s.out)
		}()
	}
	wg.Wait()
	ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.clients {
		c.conn.Close()
	}
	r.clients = nil
	return nil
}

// pump copies one output stream to out and to the clients.
func (r *Relay) pump(kind byte, in io.Reader, out io.Writer) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			out.Write(buf[:n])
			r.broadcast(kind, buf[:n])
		}
		if err != nil {
			return
		}
	}
}

func (r *Relay) broadcast(kind byte, p []byte) {
	r.mu.Lock()
	cs := make([]*client, 0, len(r.clients))
	for c := range r.clients {
		cs = append(cs, c)
	}
	r.mu.Unlock()
	for _, c := range cs {
		if err := c.frame(kind, p); err != nil {
			r.drop(c)
		}
	}
}

func (c *client) frame(kind byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	hdr := [5]byte{kind}
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := (&net.Buffers{hdr[:], p}).WriteTo(c.conn)
	return err
}

func (r *Relay) drop(c *client) {
	r.mu.Lock()
	delete(r.clients, c)
	r.mu.Unlock()
	c.conn.Close()
}

func (r *Relay) serveClient(conn net.Conn) {
	c := &client{conn: conn}
	var hdr [1]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		conn.Close()
		return
	}
	r.mu.Lock()
	if r.clients == nil { // the output has ended
		r.mu.Unlock()
		conn.Close()
		return
	}
	r.clients[c] = true
	r.mu.Unlock()
	if hdr[0] != 1 {
		return // output only: ends when the output does
	}
	_, err := io.Copy(stdinWriter{r}, conn)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		r.Log.Debug("attach: client stdin", "err", err)
	}
	if r.Once {
		r.mu.Lock()
		if !r.inClosed {
			r.inClosed = true
			r.Stdin.Close()
		}
		r.mu.Unlock()
		return // the client sees the output to its end
	}
	r.drop(c)
}

// stdinWriter writes to the app's stdin unless it was closed.
type stdinWriter struct{ r *Relay }

func (w stdinWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	closed := w.r.inClosed
	w.r.mu.Unlock()
	if closed {
		return len(p), nil // the app's stdin is gone: input is dropped
	}
	if _, err := w.r.Stdin.Write(p); err != nil {
		return len(p), nil // the app closed its stdin; keep reading to the end
	}
	return len(p), nil
}

// Caller attaches the calling process's stdio to app on conn (its own
// stdin only when stdin) and closes conn: `skiff attach` on either stage1.
func Caller(conn net.Conn, app string, stdin bool) error {
	defer conn.Close()
	var in io.Reader
	if stdin {
		in = os.Stdin
	}
	if err := Attach(conn, in, os.Stdout, os.Stderr); err != nil {
		return fmt.Errorf("attach %s: %w", app, err)
	}
	return nil
}

// Attach is the client side on conn: it passes stdin on when it is not
// nil (its end shuts down the writing side), and writes the app's frames
// to stdout and stderr until the relay closes the connection.
func Attach(conn net.Conn, stdin io.Reader, stdout, stderr io.Writer) error {
	hdr := []byte{0}
	if stdin != nil {
		hdr[0] = 1
	}
	if _, err := conn.Write(hdr); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	if stdin != nil {
		go func() {
			io.Copy(conn, stdin)
			if cw, ok := conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}()
	}
	var h [5]byte
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(conn, h[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("attach: %w", err)
		}
		n := binary.BigEndian.Uint32(h[1:])
		if n > maxFrame {
			return fmt.Errorf("attach: a frame of %d bytes, more than %d", n, maxFrame)
		}
		var w io.Writer
		switch h[0] {
		case Stdout:
			w = stdout
		case Stderr:
			w = stderr
		default:
			return fmt.Errorf("attach: unknown frame kind %d", h[0])
		}
		for n > 0 {
			m := min(int(n), len(buf))
			if _, err := io.ReadFull(conn, buf[:m]); err != nil {
				return fmt.Errorf("attach: %w", err)
			}
			w.Write(buf[:m])
			n -= uint32(m)
		}
	}
}

// Dial connects to the relay socket name below dir, which the pod could
// have written: the path follows no symlink and leaves dir nowhere, and
// it must name a socket (connected through an O_PATH fd on it, so it is
// the socket checked that is dialled).
func Dial(dir, name string) (net.Conn, error) {
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	defer unix.Close(dfd)
	fd, err := safefile.OpenBeneath(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("attach: %s: %w", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("attach: %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("attach: %s: %w", name, ErrNotSocket)
	}
	conn, err := net.Dial("unix", "/proc/self/fd/"+strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("attach: %s: %w", name, err)
	}
	return conn, nil
}

// ErrNotSocket: what should be the relay's socket is something else.
var ErrNotSocket = errors.New("not a socket")
