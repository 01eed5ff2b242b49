package guest

import (
	"errors"
	"log/slog"
	"net"
	"os"

	"github.com/skiffpod/skiff/pkg/vm/agent"
	"github.com/skiffpod/skiff/pkg/vm/forward"
)

// serveForward, in the guest's agent, serves the skiff.fwd port: the
// connections run forwards into the guest (socket activation), and those
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
		if err := forward.Guest(log, port, back); err != nil {
			log.Warn("forward connections", "err", err)
		}
	}()
}
