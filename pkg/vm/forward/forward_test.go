package forward

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// loopback is where the tests listen: IPv6's, because on a machine where
// pods publish ports, the CNI portmap plugin DNATs local IPv4 connections
// to those ports (any local address), and an ephemeral port the test got
// may be one of them.
const loopback = "[::1]:0"

// echoUpper is a guest-side server: it reads until the client's
// half-close and answers with what it read, upper-cased, and its peer.
func echoUpper(t *testing.T) (net.Listener, netip.AddrPort) {
	t.Helper()
	l, err := net.Listen("tcp", loopback)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				io.WriteString(c, strings.ToUpper(string(b))+" from "+c.RemoteAddr().(*net.TCPAddr).IP.String())
			}()
		}
	}()
	return l, l.Addr().(*net.TCPAddr).AddrPort()
}

// hostListener is a host socket whose connections go to guest.
func hostListener(t *testing.T, guest netip.AddrPort) Listener {
	t.Helper()
	l, err := net.Listen("tcp", loopback)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return Listener{Listener: l, Guest: guest}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// request connects to addr, sends msg, half-closes and reads the answer.
func request(addr, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestForward(t *testing.T) {
	_, g1 := echoUpper(t)
	_, g2 := echoUpper(t)
	ls := []Listener{hostListener(t, g1), hostListener(t, g2)}
	host, guest := net.Pipe()
	hostDone, guestDone := make(chan error, 1), make(chan error, 1)
	hs, err := Host(quiet(), host)
	if err != nil {
		t.Fatal(err)
	}
	go func() { hostDone <- hs.Forward(ls) }()
	go func() { guestDone <- Guest(quiet(), guest, nil, "") }()

	big := strings.Repeat("x", 1<<20) // more than a yamux window
	tests := []struct {
		name, msg string
		l         int
	}{
		{"first listener", "hello", 0},
		{"second listener", "world", 1},
		{"empty request", "", 0},
		{"a megabyte", big, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := request(ls[tt.l].Addr().String(), tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			// The app sees the guest-side forwarder, on loopback, as its peer.
			if want := strings.ToUpper(tt.msg) + " from ::1"; got != want {
				t.Errorf("answer = %.40q... (%d bytes), want %.40q... (%d bytes)", got, len(got), want, len(want))
			}
		})
	}
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				msg := strings.Repeat(string(rune('a'+i)), 1000*i)
				if got, err := request(ls[i%2].Addr().String(), msg); err != nil || got != strings.ToUpper(msg)+" from ::1" {
					t.Errorf("connection %d: %d bytes, %v", i, len(got), err)
				}
			})
		}
		wg.Wait()
	})

	// The channel going away ends both sides.
	host.Close()
	for _, l := range ls {
		l.Close()
	}
	for name, ch := range map[string]chan error{"Host": hostDone, "Guest": guestDone} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not return after the channel closed", name)
		}
	}
}

// TestGuestRefuses: the guest side connects only to loopback addresses
// and closes a stream whose header is not one.
func TestGuestRefuses(t *testing.T) {
	host, guest := net.Pipe()
	go Guest(quiet(), guest, nil, "")
	s, err := yamux.Client(host, config(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct{ name, header string }{
		{"not loopback", "192.0.2.1:80\n"},
		{"not an address", "web:80\n"},
		{"too long", strings.Repeat("1", 200) + "\n"},
		{"closed port", "[::1]:1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := s.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			st.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(st, tt.header)
			b, err := io.ReadAll(st)
			if err != nil || len(b) != 0 {
				t.Errorf("got %q, %v; want the stream closed, nothing read", b, err)
			}
		})
	}
}

// TestBack: connections to the guest's back listener reach whatever
// serves the host's Session, and nothing else.
func TestBack(t *testing.T) {
	host, guest := net.Pipe()
	back, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	guestDone := make(chan error, 1)
	go func() { guestDone <- Guest(quiet(), guest, back, "") }()
	hs, err := Host(quiet(), host)
	if err != nil {
		t.Fatal(err)
	}
	// The host side answers in upper case, as the test's service.
	go func() {
		for {
			c, err := hs.Accept()
			if err != nil {
				return
			}
			go func() {
				b, _ := io.ReadAll(c)
				io.WriteString(c, strings.ToUpper(string(b))+" from the host")
				c.Close()
			}()
		}
	}()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			msg := strings.Repeat(string(rune('a'+i)), 100*i)
			if got, err := request(back.Addr().String(), msg); err != nil || got != strings.ToUpper(msg)+" from the host" {
				t.Errorf("connection %d: %q, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	hs.Close()
	if _, err := hs.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	select {
	case <-guestDone:
	case <-time.After(10 * time.Second):
		t.Fatal("Guest did not return after the host closed the session")
	}
	if c, err := net.DialTimeout("tcp", back.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the back listener still accepts after Guest returned")
	}
}

// TestHeader: what the guest side accepts as a stream's first line.
func TestHeader(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{"127.0.0.1:8080\n", "127.0.0.1:8080", nil},
		{"[::1]:80\nrest", "[::1]:80", nil},
		{"0.0.0.0:80\n", "", ErrNotLoopback},
		{"10.0.0.1:80\n", "", ErrNotLoopback},
		{strings.Repeat("9", 100), "", ErrHeaderTooLong},
		{"127.0.0.1:80", "", io.ErrUnexpectedEOF},
		{"unix:web\n", "unix:web", nil},
		{"unix:\n", "", ErrBadSocket},
		{"unix:..\n", "", ErrBadSocket},
		{"unix:../x\n", "", ErrBadSocket},
		{"unix:a/b\n", "", ErrBadSocket},
	}
	for _, tt := range tests {
		got, err := header(bytes.NewBufferString(tt.in))
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) && !(tt.wantErr == io.ErrUnexpectedEOF && errors.Is(err, io.EOF)) {
				t.Errorf("header(%.20q) = %v, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("header(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

// TestServeDial: a host connection that names a loopback address in its
// first line is joined to that address in the guest; one that names
// anything else is closed.
func TestServeDial(t *testing.T) {
	_, g := echoUpper(t)
	// A unix socket of the guest side's directory, answering as echoUpper.
	socks := t.TempDir()
	ul, err := net.Listen("unix", filepath.Join(socks, "web"))
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				io.WriteString(c, strings.ToUpper(string(b))+" from web")
			}()
		}
	}()
	host, guest := net.Pipe()
	go Guest(quiet(), guest, nil, socks)
	hs, err := Host(quiet(), host)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "dial.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go hs.ServeDial(l)
	dial := func(header, msg string) (string, error) {
		c, err := net.Dial("unix", l.Addr().String())
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, header+msg); err != nil {
			return "", err
		}
		c.(*net.UnixConn).CloseWrite()
		b, err := io.ReadAll(c)
		return string(b), err
	}
	for _, tt := range []struct{ name, header, want string }{
		{"loopback", g.String() + "\n", "HELLO from ::1"},
		{"not loopback", "192.0.2.1:80\n", ""},
		{"not an address", "web:80\n", ""},
		{"a socket of the directory", "unix:web\n", "HELLO from web"},
		{"no such socket", "unix:nope\n", ""},
		{"out of the directory", "unix:../web\n", ""},
	} {
		// A refused connection is closed, its input unread: a reset is fine.
		if got, err := dial(tt.header, "hello"); got != tt.want || (err != nil && tt.want != "") {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
