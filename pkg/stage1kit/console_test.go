package stage1kit

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
		w := CRLF(&buf)
		for _, s := range tt.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		if buf.String() != tt.want {
			t.Errorf("CRLF(%q) = %q, want %q", tt.writes, buf.String(), tt.want)
		}
	}
}
