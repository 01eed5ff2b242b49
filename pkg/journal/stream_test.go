package journal

import (
	"io"
	"net"
	"path/filepath"
	"testing"
)

func TestStream(t *testing.T) {
	tests := []struct {
		name     string
		ident    string
		priority int
		console  bool
		want     string // header and line, as journald reads them
		wantErr  bool
	}{
		{"stdout", "web", PriorityStdout, true, "web\n\n6\n0\n0\n0\n1\nhello\n", false},
		{"stderr", "web", PriorityStderr, false, "web\n\n3\n0\n0\n0\n0\nhello\n", false},
		{"newline in identifier", "a\nb", 6, false, "", true},
		{"bad priority", "web", 8, false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "stdout")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got := make(chan string, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					got <- ""
					return
				}
				b, _ := io.ReadAll(c)
				c.Close()
				got <- string(b)
			}()
			f, err := Stream(sock, tt.ident, tt.priority, tt.console)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Stream: %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			f.Write([]byte("hello\n"))
			f.Close()
			if g := <-got; g != tt.want {
				t.Errorf("journald read %q, want %q", g, tt.want)
			}
		})
	}
	if _, err := Stream(filepath.Join(t.TempDir(), "none"), "web", 6, false); err == nil {
		t.Error("Stream to a missing socket: no error")
	}
}
