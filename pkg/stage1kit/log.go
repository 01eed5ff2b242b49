package stage1kit

import (
	"log/slog"
	"os"

	"github.com/skiffpod/skiff/pkg/clilog"
	"github.com/skiffpod/skiff/pkg/pod"
)

// Logger is an entrypoint's logger on stderr, for people: lines start
// "skiff STAGE ENTRYPOINT:" and carry the pod; debug (or SKIFF_DEBUG=1)
// turns on debug lines.
func Logger(stage, entrypoint, uuid string, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug || os.Getenv(pod.EnvDebug) == "1" {
		level = slog.LevelDebug
	}
	return clilog.New(os.Stderr, "skiff "+stage+" "+entrypoint, level).With("pod", uuid)
}
