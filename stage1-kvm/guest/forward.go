package guest

import (
	"errors"
	"log/slog"
	"os"

	"github.com/skiffpod/skiff/pkg/vm/agent"
	"github.com/skiffpod/skiff/pkg/vm/forward"
)

// serveForward, in the guest's agent, serves the skiff.fwd port when the
// pod has one (run got sockets to forward).
func serveForward(log *slog.Logger) {
	port, err := openPort("/", agent.ForwardPortName)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		log.Warn("forward connections", "err", err)
		return
	}
	go func() {
		if err := forward.Guest(log, port); err != nil {
			log.Warn("forward connections", "err", err)
		}
	}()
}
