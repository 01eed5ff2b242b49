package pty

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/term"
)

func TestRun(t *testing.T) {
	if _, _, err := Open("/dev/ptmx"); err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	tests := []struct {
		name   string
		script string
		size   Size
		want   string
	}{
		{"a terminal", `test -t 0 && test -t 1 && echo tty`, Size{}, "tty"},
		{"its size", `stty size`, Size{Rows: 33, Cols: 101}, "33 101"},
		{"the exit status", `echo out; exit 3`, Size{}, "out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Run(exec.Command("sh", "-c", tt.script), "/dev/ptmx", nil, &out, tt.size, nil)
			if got := strings.TrimSpace(out.String()); got != tt.want {
				t.Errorf("output %q, want %q", got, tt.want)
			}
			if tt.name == "the exit status" {
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
					t.Errorf("err %v, want exit status 3", err)
				}
			} else if err != nil {
				t.Errorf("err %v", err)
			}
		})
	}
}

func TestResizeAndInput(t *testing.T) {
	if _, _, err := Open("/dev/ptmx"); err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	resize := make(chan Size, 1)
	resize <- Size{Rows: 12, Cols: 34}
	in := strings.NewReader("go\n")
	var out bytes.Buffer
	// Waits for a line, by when the resize has been applied, then reports the size.
	err := Run(exec.Command("sh", "-c", `read x; stty size`), "/dev/ptmx", in, &out, Size{Rows: 1, Cols: 2}, resize)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "12 34") {
		t.Errorf("output %q, want the new size 12 34", out.String())
	}
}

func TestOpen(t *testing.T) {
	m, s, err := Open("/dev/ptmx")
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer m.Close()
	defer s.Close()
	if !term.IsTerminal(int(s.Fd())) {
		t.Error("the slave is not a terminal")
	}
	if err := SetSize(m, Size{Rows: 5, Cols: 7}); err != nil {
		t.Fatal(err)
	}
	if got, err := GetSize(s); err != nil || got != (Size{5, 7}) {
		t.Errorf("size %v, %v; want {5 7}", got, err)
	}
	if _, _, err := Open("/nonexistent/ptmx"); err == nil {
		t.Error("Open of a missing ptmx did not fail")
	}
}
