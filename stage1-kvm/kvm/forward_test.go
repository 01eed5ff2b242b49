package kvm

import (
	"errors"
	"net/netip"
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
