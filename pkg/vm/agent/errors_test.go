package agent

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestCodes checks that an error crosses the wire as its code: the
// receiver finds the sentinel with errors.Is, whatever the text says, and
// a text that merely names a sentinel is not taken for it.
func TestCodes(t *testing.T) {
	errA, errB := errors.New("no such running app"), errors.New("usage")
	codes := Codes{"a": errA, "b": errB}
	tests := []struct {
		name string
		sent Message
		want error // nil: no sentinel
	}{
		{"wrapped", codes.Failure(fmt.Errorf("find app web: %w", errA)), errA},
		{"other text", codes.Failure(fmt.Errorf("bad flag: %w", errB)), errB},
		{"unknown op", codes.Failure(fmt.Errorf("%w %q", ErrUnknownOp, "x")), ErrUnknownOp},
		{"no sentinel", codes.Failure(errors.New("disk full")), nil},
		{"text only", Message{Op: OpError, Error: "enter web: no such running app"}, nil},
		{"code from a newer peer", Message{Op: OpError, Error: "x", ErrCode: "future"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := NewConn(&buf)
			if err := c.Send(tt.sent); err != nil {
				t.Fatal(err)
			}
			m, err := c.Recv()
			if err != nil {
				t.Fatal(err)
			}
			got := codes.Err(m)
			if got == nil || got.Error() != tt.sent.Error {
				t.Fatalf("Err = %v, want an error saying %q", got, tt.sent.Error)
			}
			for _, s := range []error{errA, errB, ErrUnknownOp} {
				if is := errors.Is(got, s); is != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", got, s, is, !is)
				}
			}
		})
	}
	if err := codes.Err(Message{Op: OpExit, Code: 1}); err != nil {
		t.Errorf("Err(exit) = %v, want nil", err)
	}
}
