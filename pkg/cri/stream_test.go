package cri

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRunWithStdin: a command ends when it ends, whatever the client's
// stdin does (critest's exec with a TTY keeps it open for 20 s; the exec
// waited for it and then failed on WaitDelay); what stdin carries reaches
// it, and its end is the command's end of input.
func TestRunWithStdin(t *testing.T) {
	// Never written: a client that holds its stdin open (closed after a
	// while, so that a wait for it ends too, late).
	open, w := io.Pipe()
	time.AfterFunc(4*time.Second, func() { w.Close() })
	for _, tt := range []struct {
		name string
		cmd  []string
		in   io.Reader
		want string
	}{
		{"stdin held open", []string{"echo", "done"}, open, "done\n"},
		{"stdin read to its end", []string{"cat"}, strings.NewReader("typed\n"), "typed\n"},
		{"no stdin", []string{"echo", "x"}, nil, "x\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := exec.Command(tt.cmd[0], tt.cmd[1:]...)
			c.Stdout = &out
			c.WaitDelay = time.Second
			start := time.Now()
			if err := runWithStdin(c, tt.in); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s", d)
			}
			if out.String() != tt.want {
				t.Errorf("output %q, want %q", out.String(), tt.want)
			}
		})
	}
}
