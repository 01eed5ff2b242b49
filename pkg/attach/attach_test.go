package attach

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// safeBuffer is a bytes.Buffer for concurrent writers.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// app is a fake app on pipes: it echoes each line of its stdin to stdout,
// "err:" and the line to stderr, and ends at the end of its stdin.
func start(t *testing.T, once bool) (sock string, journal *safeBuffer, done chan struct{}) {
	t.Helper()
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := inR.Read(b)
			if n > 0 {
				outW.Write(b[:n])
				errW.Write(append([]byte("err:"), b[:n]...))
			}
			if err != nil {
				break
			}
		}
		inR.Close()
		outW.Close()
		errW.Close()
	}()
	sock = filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	journal = &safeBuffer{}
	r := &Relay{Stdin: inW, Stdout: outR, Stderr: errR, Out: journal, Err: journal, Once: once, Log: slog.New(slog.DiscardHandler)}
	done = make(chan struct{})
	go func() { r.Serve(ln); close(done) }()
	return sock, journal, done
}

func dial(t *testing.T, sock string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOnce(t *testing.T) {
	sock, journal, done := start(t, true)
	// An output-only client sees what the app writes from its attach on.
	watch := dial(t, sock)
	var wout, werr safeBuffer
	watched := make(chan error, 1)
	go func() { watched <- Attach(watch, nil, &wout, &werr) }()
	time.Sleep(100 * time.Millisecond) // the watcher is registered
	var out, errb safeBuffer
	err := Attach(dial(t, sock), strings.NewReader("hello\n"), &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	// The stdin's end closed the app's stdin: the app ended, the output with it.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the relay did not end with the app")
	}
	if out.String() != "hello\n" || errb.String() != "err:hello\n" {
		t.Errorf("stdout %q, stderr %q; want hello and err:hello", out.String(), errb.String())
	}
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	if wout.String() != "hello\n" || werr.String() != "err:hello\n" {
		t.Errorf("watcher: stdout %q, stderr %q", wout.String(), werr.String())
	}
	if !strings.Contains(journal.String(), "hello\n") || !strings.Contains(journal.String(), "err:hello\n") {
		t.Errorf("journal %q lacks the output", journal.String())
	}
}

func TestNotOnce(t *testing.T) {
	sock, _, done := start(t, false)
	for _, line := range []string{"one\n", "two\n"} {
		var out safeBuffer
		// Without once, each attach ends with its stdin and the app reads on.
		if err := Attach(dial(t, sock), strings.NewReader(line), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		// The connection may close before the echo arrives; the app got it.
		select {
		case <-done:
			t.Fatal("the app's stdin was closed by an attach without once")
		default:
		}
	}
}

func TestBadFrame(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		io.ReadFull(b, make([]byte, 1))
		b.Write([]byte{Stdout, 0xff, 0xff, 0xff, 0xff})
		b.Close()
	}()
	if err := Attach(a, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "frame") {
		t.Errorf("err %v, want a refused frame", err)
	}
}

func TestDial(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	os.Symlink(filepath.Join(dir, "app"), filepath.Join(dir, "link"))
	for _, tt := range []struct {
		name string
		ok   bool
	}{{"app", true}, {"file", false}, {"link", false}, {"missing", false}, {"../" + filepath.Base(dir) + "/app", false}} {
		c, err := Dial(dir, tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("Dial %s: %v, want ok %v", tt.name, err, tt.ok)
		}
		if c != nil {
			c.Close()
		}
	}
}
