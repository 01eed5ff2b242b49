package kvm

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGuestListen: where the guest's own socket listens for a passed one.
func TestGuestListen(t *testing.T) {
	tests := []struct {
		typ     int
		host    string
		want    string
		wantErr error
	}{
		{unix.SOCK_STREAM, "127.0.0.1:8080", "127.0.0.1:8080", nil},
		{unix.SOCK_STREAM, "0.0.0.0:80", "127.0.0.1:80", nil},
		{unix.SOCK_STREAM, "192.0.2.7:443", "127.0.0.1:443", nil},
		{unix.SOCK_STREAM, "[::]:8080", "[::1]:8080", nil},
		{unix.SOCK_STREAM, "[::ffff:127.0.0.1]:8080", "127.0.0.1:8080", nil},
		{unix.SOCK_STREAM, "[2001:db8::1]:25", "[::1]:25", nil},
		{unix.SOCK_DGRAM, "127.0.0.1:53", "", ErrUsage},
		{unix.SOCK_SEQPACKET, "127.0.0.1:53", "", ErrUsage},
	}
	for _, tt := range tests {
		got, err := guestListen(tt.typ, netip.MustParseAddrPort(tt.host))
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("guestListen(%d, %s) = %v, %v; want %v", tt.typ, tt.host, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("guestListen(%d, %s) = %v, %v; want %s", tt.typ, tt.host, got, err, tt.want)
		}
	}
}

// TestForwardListeners: a passed listening socket becomes a listener with
// its guest address; a connected one (what an Accept=yes unit passes) is
// refused, and every file is closed either way.
func TestForwardListeners(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	lf, _ := l.(*net.TCPListener).File()
	ls, err := forwardListeners([]*os.File{lf})
	if err != nil || len(ls) != 1 || ls[0].Guest.String() != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Fatalf("got %v, %v; want one listener to 127.0.0.1:%d", ls, err, port)
	}
	closeListeners(ls)

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cf, _ := c.(*net.TCPConn).File()
	lf, _ = l.(*net.TCPListener).File()
	ls, err = forwardListeners([]*os.File{lf, cf})
	if !errors.Is(err, ErrUsage) || ls != nil || !strings.Contains(err.Error(), "Accept=yes") {
		t.Errorf("a connected socket: got %v, %v; want a usage error naming Accept=yes", ls, err)
	}
	for _, f := range []*os.File{lf, cf} {
		if err := f.Close(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s still open (close: %v)", f.Name(), err)
		}
	}
}
