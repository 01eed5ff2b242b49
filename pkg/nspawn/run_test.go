package nspawn

import (
	"bytes"
	"testing"
)

func TestCRLF(t *testing.T) {
	tests := []struct {
		writes []string
		want   string
	}{
		{[]string{"a\r\nb\r\n"}, "a\nb\n"},
		{[]string{"a\r", "\nb\r", "\r\n"}, "a\nb\n"},
		{[]string{"progress\r50%\r\n"}, "progress\r50%\n"},
		{[]string{"no newline"}, "no newline"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := &crlf{w: &buf}
		for _, s := range tt.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		if buf.String() != tt.want {
			t.Errorf("crlf(%q) = %q, want %q", tt.writes, buf.String(), tt.want)
		}
	}
}

func TestNspawnArgs(t *testing.T) {
	tests := []struct {
		o    RunOptions
		want []string
	}{
		{RunOptions{UUID: "u", Net: "none"}, []string{"--private-network", "--console=passive", "--quiet"}},
		{RunOptions{UUID: "u", Hostname: "h", Interactive: true, Debug: true}, []string{"--hostname=h", "--console=interactive", "systemd.log_level=debug"}},
	}
	for _, tt := range tests {
		args, err := nspawnArgs(tt.o, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			found := false
			for _, a := range args {
				found = found || a == w
			}
			if !found {
				t.Errorf("nspawnArgs(%+v) = %q, missing %q", tt.o, args, w)
			}
		}
	}
	if _, err := nspawnArgs(RunOptions{Net: "bridge"}, nil); err == nil {
		t.Error("nspawnArgs accepted --net=bridge")
	}
}
