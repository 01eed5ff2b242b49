package journal

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// StdoutSocket is journald's stream socket, inside a pod.
const StdoutSocket = "/run/systemd/journal/stdout"

// Syslog priorities of an app's streams: its stdout is logged as info and
// its stderr as err, so that a reader (the CRI log copier) tells the two
// apart by PRIORITY.
const (
	PriorityStdout = 6
	PriorityStderr = 3
)

// Stream connects to journald's stream socket at socket, as
// sd_journal_stream_fd does, and returns the connection as a file to
// write lines to: each becomes an entry with SYSLOG_IDENTIFIER ident and
// PRIORITY priority, forwarded to the console too when console is set (as
// systemd's StandardOutput=journal+console). A line's "<N>" prefix is not
// parsed: the stream alone decides the priority.
func Stream(socket, ident string, priority int, console bool) (*os.File, error) {
	if strings.ContainsAny(ident, "\n") || priority < 0 || priority > 7 {
		return nil, fmt.Errorf("journal stream %q: bad identifier or priority %d", ident, priority)
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("journal stream: %w", err)
	}
	defer c.Close()
	fwd := 0
	if console {
		fwd = 1
	}
	// identifier, unit ID, priority, level prefix, forward to syslog,
	// kmsg, console: systemd's stdout stream header.
	hdr := fmt.Sprintf("%s\n\n%d\n0\n0\n0\n%d\n", ident, priority, fwd)
	if _, err := c.Write([]byte(hdr)); err != nil {
		return nil, fmt.Errorf("journal stream: %w", err)
	}
	if err := c.CloseRead(); err != nil {
		return nil, fmt.Errorf("journal stream: %w", err)
	}
	f, err := c.File() // a dup, blocking, that outlives c
	if err != nil {
		return nil, fmt.Errorf("journal stream: %w", err)
	}
	return f, nil
}
