package cri

import (
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestNotifySocket: a READY=1 among sd_notify's lines wakes the sandbox
// wait; other messages do not.
func TestNotifySocket(t *testing.T) {
	tests := []struct {
		msg  string
		wake bool
	}{
		{"READY=1", true},
		{"STATUS=booting\nREADY=1\n", true},
		{"STOPPING=1", false},
		{"READY=10", false},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			n, stop := notifySocket(slog.New(slog.DiscardHandler))
			defer stop()
			if n.addr == "" {
				t.Fatal("no notify socket")
			}
			c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte(tt.msg)); err != nil {
				t.Fatal(err)
			}
			wait := 200 * time.Millisecond // for a message that must not wake it
			if tt.wake {
				wait = 10 * time.Second
			}
			select {
			case <-n.c:
				if !tt.wake {
					t.Errorf("%q woke the wait", tt.msg)
				}
			case <-time.After(wait):
				if tt.wake {
					t.Errorf("%q did not wake the wait", tt.msg)
				}
			}
		})
	}
}
