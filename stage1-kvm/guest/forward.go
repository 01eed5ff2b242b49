package guest

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/vm/agent"
	"github.com/skiffpod/skiff/pkg/vm/forward"
)

// serveForward, in the guest's agent, serves the skiff.fwd port: the
// connections run forwards into the guest (socket activation, port
// forwards, attaches to the apps' relays), and those
// to the metadata service's address, which go out to run. It returns once
// that address listens, before the apps start (their units are ordered
// after the agent's).
func serveForward(log *slog.Logger) {
	port, err := openPort("/", agent.ForwardPortName)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		log.Warn("forward connections", "err", err)
		return
	}
	back, err := net.Listen("tcp", agent.MetadataAddr)
	if err != nil {
		log.Warn("metadata service", "err", err)
		back = nil
	}
	go func() {
		if err := forward.Guest(log, port, back, podunit.AttachDir); err != nil {
			log.Warn("forward connections", "err", err)
		}
	}()
	if back != nil {
		warm(log)
	}
}

// warm sends one request through the whole path — the guest's loopback,
// the agent, skiff.fwd, run's handler — before the apps start: it returns
// once run answers, and under TCG the path's code is translated then, not
// during an app's first request (the ACE validator allows 100 ms each).
func warm(log *slog.Logger) {
	c, err := net.DialTimeout("tcp", agent.MetadataAddr, 10*time.Second)
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err = io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err == nil {
			_, err = io.Copy(io.Discard, c)
		}
	}
	if err != nil {
		log.Warn("metadata service: no answer from run", "err", err)
	}
}
